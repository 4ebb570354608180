#include "ops/matmul.h"

#include "autograd/node.h"
#include "ops/autocast.h"
#include "ops/creation.h"
#include "ops/op_util.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

// How a [..., R, C] tensor is handed to BLAS: row-major as is, or as the transpose of a
// row-major [C, R] (a transposed view), with a uniform stride between the matrices.
struct Operand {
  Tensor t;
  bool trans = false;
  int64_t ld = 0, batch_stride = 0;
};

Operand as_operand(const Tensor& x, int64_t batch) {
  const int n = x.dim();
  const int64_t r = x.size(n - 2), c = x.size(n - 1);
  auto uniform_batch = [&](const Tensor& t, int64_t* bs) {
    // The batch dims must collapse to one stride (row-major over the matrices).
    if (batch <= 1) { *bs = r * c; return true; }
    int64_t expect = -1;
    for (int i = n - 3; i >= 0; --i) {
      if (t.size(i) == 1) continue;
      if (expect < 0) { expect = t.stride(i); *bs = expect; }
      else if (t.stride(i) != expect) return false;
      expect *= t.size(i);
    }
    if (expect < 0) *bs = 0;
    return true;
  };
  int64_t bs = 0;
  if (x.stride(n - 1) == 1 && x.stride(n - 2) >= (c > 1 ? c : 1) && uniform_batch(x, &bs))
    return {x, false, x.stride(n - 2) > 0 ? x.stride(n - 2) : 1, bs};
  if (x.stride(n - 2) == 1 && x.stride(n - 1) >= (r > 1 ? r : 1) && uniform_batch(x, &bs))
    return {x, true, x.stride(n - 1), bs};
  Tensor xc = contiguous(x);
  return {xc, false, c > 0 ? c : 1, r * c};
}

// out[b] = a[b] @ b[b]; a [batch..., M, K] and b [batch..., K, N] already share batch dims.
void gemm_into(const Tensor& a, const Tensor& b, Tensor& out, int64_t batch, double beta) {
  const int n = a.dim();
  Operand oa = as_operand(a, batch), ob = as_operand(b, batch);
  GemmArgs g;
  g.m = a.size(n - 2);
  g.k = a.size(n - 1);
  g.n = b.size(n - 1);
  g.trans_a = oa.trans;
  g.trans_b = ob.trans;
  g.a = oa.t.raw_data(); g.lda = oa.ld; g.stride_a = oa.batch_stride;
  g.b = ob.t.raw_data(); g.ldb = ob.ld; g.stride_b = ob.batch_stride;
  g.c = out.raw_data(); g.ldc = g.n > 0 ? g.n : 1; g.stride_c = g.m * g.n;
  g.batch = batch;
  g.beta = beta;
  g.dtype = a.dtype();
  if (g.m == 0 || g.n == 0 || batch == 0) return;
  backend_of(a).gemm(g);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined("matmul", a, "a");
  check_defined("matmul", b, "b");
  check_same_device("matmul", a, b);
  check_same_dtype("matmul", a, b);
  if (autocast_applies(a)) {  // ops/autocast.h: bf16 operands, f32 result
    const DType lo = autocast_dtype();
    return cast(matmul(cast(a, lo), cast(b, lo)), DType::f32);
  }
  check_floating("matmul", a);
  MM_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: expected tensors of at least 2 dimensions, got ",
           a.shape(), " and ", b.shape());
  MM_CHECK(a.size(-1) == b.size(-2), "matmul: inner dimensions differ: ", a.shape(), " @ ", b.shape());
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  Tensor out;
  if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
    // [..., M, K] @ [K, N]: one GEMM with the batch folded into the rows.
    Tensor a2 = a.as_strided({a.numel() / (K ? K : 1), K}, {K, 1}, a.offset());
    Shape s = a.shape();
    s[s.n - 1] = N;
    out = Tensor::empty(s, a.dtype(), a.device());
    Tensor o2 = out.as_strided({a2.size(0), N}, {N, 1}, 0);
    gemm_into(a2, b, o2, 1, 0.0);
  } else {
    Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
    Shape bs = broadcast_shapes("matmul", ba, bb);
    Shape sa = bs, sb = bs, so = bs;
    sa.push_back(M); sa.push_back(K);
    sb.push_back(K); sb.push_back(N);
    so.push_back(M); so.push_back(N);
    autograd::NoGradGuard ng;
    Tensor ae = a.shape() == sa ? a : expand(a, sa), be = b.shape() == sb ? b : expand(b, sb);
    out = Tensor::empty(so, a.dtype(), a.device());
    gemm_into(ae, be, out, bs.numel(), 0.0);
  }
  autograd::record(out, "matmul", {a, b}, [a, b](const Tensor& g, const Node& n) {
    // C = A B  =>  dA = dC B^T, dB = A^T dC (sum_to folds broadcast batch dims).
    Tensor ga, gb;
    if (n.needs(0)) ga = matmul(g, transpose(b, -1, -2));
    if (n.needs(1)) {
      if (b.dim() == 2 && a.dim() > 2) {
        const int64_t k = a.size(-1);
        gb = matmul(transpose(reshape(a, {-1, k}), 0, 1), reshape(g, {-1, g.size(-1)}));
      } else {
        gb = matmul(transpose(a, -1, -2), g);
      }
    }
    return grads{ga, gb};
  });
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_defined("linear", x, "x");
  check_defined("linear", w, "w");
  check_same_device("linear", x, w);
  check_same_dtype("linear", x, w);
  check_floating("linear", x);
  MM_CHECK(w.dim() == 2, "linear: weight must be [OUT, IN], got ", w.shape());
  if (autocast_applies(x)) {  // ops/autocast.h: bf16 operands, f32 result
    const DType lo = autocast_dtype();
    return cast(linear(cast(x, lo), cast(w, lo), b.defined() ? cast(b, lo) : b), DType::f32);
  }
  MM_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: input ", x.shape(),
           " does not end in IN = ", w.size(1), " of weight ", w.shape());
  const int64_t IN = w.size(1), OUT = w.size(0);
  if (b.defined()) {
    check_same_device("linear", x, b);
    check_same_dtype("linear", x, b);
    MM_CHECK(b.dim() == 1 && b.size(0) == OUT, "linear: bias must be [", OUT, "], got ", b.shape());
  }
  Tensor xc = contiguous(x);
  const int64_t rows = IN ? xc.numel() / IN : 0;
  Shape s = x.shape();
  s[s.n - 1] = OUT;
  Tensor out = Tensor::empty(s, x.dtype(), x.device());
  {
    autograd::NoGradGuard ng;
    Tensor o2 = out.as_strided({rows, OUT}, {OUT, 1}, 0);
    double beta = 0.0;
    if (b.defined()) {  // out = bias (broadcast), then GEMM accumulates with beta = 1
      backend_of(x).copy(expand(b, {rows, OUT}), o2);
      beta = 1.0;
    }
    Tensor x2 = xc.as_strided({rows, IN}, {IN, 1}, xc.offset());
    gemm_into(x2, transpose(w, 0, 1), o2, 1, beta);
  }
  if (autograd::should_record({xc, w, b})) {
    Shape xs = x.shape();
    autograd::record(out, "linear", {xc, w, b}, [xc, w, xs, rows, IN, OUT](const Tensor& g, const Node& n) {
      Tensor g2 = reshape(g, {rows, OUT});
      Tensor gx, gw, gb;
      if (n.needs(0)) gx = reshape(matmul(g2, w), xs);                                  // [rows, IN]
      if (n.needs(1)) gw = matmul(transpose(g2, 0, 1), reshape(xc, {rows, IN}));        // [OUT, IN]
      if (n.needs(2)) gb = sum(g2, {0});                                                // [OUT]
      return grads{gx, gw, gb};
    });
  }
  return out;
}

}  // namespace mm
