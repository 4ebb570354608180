#include "ops/attention.h"

#include <cmath>

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/op_util.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  check_defined("attention", q, "q");
  check_defined("attention", k, "k");
  check_defined("attention", v, "v");
  check_floating("attention", q);
  check_same_device("attention", q, k);
  check_same_device("attention", q, v);
  check_same_dtype("attention", q, k);
  check_same_dtype("attention", q, v);
  check_dim("attention", q, 4, "q [B, H, Tq, D]");
  check_dim("attention", k, 4, "k [B, H, Tk, D]");
  check_dim("attention", v, 4, "v [B, H, Tk, D]");
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2);
  MM_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == D, "attention: k ", k.shape(),
           " does not match q ", q.shape(), " (expected [", B, ", ", H, ", Tk, ", D, "])");
  MM_CHECK(v.shape() == k.shape(), "attention: v ", v.shape(), " must have the shape of k ", k.shape());
  const Shape full_shape{B, H, Tq, Tk};

  Tensor bias;  // a broadcast view [B, H, Tq, Tk] (stride 0 on broadcast dims)
  if (o.bias.defined()) {
    check_same_device("attention", q, o.bias);
    check_same_dtype("attention", q, o.bias);
    bool fits = o.bias.dim() <= 4;
    for (int i = 0; fits && i < o.bias.dim(); ++i) {
      const int64_t s = o.bias.size(i), f = full_shape[4 - o.bias.dim() + i];
      fits = s == f || s == 1;
    }
    MM_CHECK(fits, "attention: bias of shape ", o.bias.shape(), " cannot be broadcast to [B, H, Tq, Tk] = ",
             full_shape);
    autograd::NoGradGuard ng;  // the bias's gradient is summed back by the rule below
    bias = expand(o.bias, full_shape);
  }
  Tensor pad;
  if (o.key_padding_mask.defined()) {
    const Tensor& m = o.key_padding_mask;
    MM_CHECK(m.dtype() == DType::u8 || m.dtype() == DType::boolean,
             "attention: key_padding_mask must be u8 or bool, got ", dtype_name(m.dtype()));
    check_same_device("attention", q, m);
    MM_CHECK(m.dim() == 2 && m.size(0) == B && m.size(1) == Tk, "attention: key_padding_mask of shape ", m.shape(),
             " must be [B, Tk] = [", B, ", ", Tk, "]");
    pad = contiguous(m);
  }
  const double scale = o.scale ? *o.scale : 1.0 / std::sqrt(double(D > 0 ? D : 1));

  // Non-contiguous q/k/v (a permute of [B, T, H, D]) are copied; contiguous() routes
  // their gradients back through the view.
  Tensor qc = contiguous(q), kc = contiguous(k), vc = contiguous(v);
  Tensor out = Tensor::empty({B, H, Tq, D}, q.dtype(), q.device());
  Tensor probs = Tensor::empty(full_shape, q.dtype(), q.device());
  if (out.numel() > 0 || probs.numel() > 0)
    backend_of(q).attention(qc, kc, vc, bias, pad, o.causal, scale, out, probs);

  if (autograd::should_record({qc, kc, vc, o.bias})) {
    const Tensor b0 = o.bias;
    autograd::record(out, "attention", {qc, kc, vc, o.bias},
                     [qc, kc, vc, probs, scale, b0](const Tensor& g, const Node& n) {
      // Chain rule through O = P V, P = softmax(S), S = scale Q K^T + bias:
      //   dV = P^T dO                   dP = dO V^T
      //   dS = P * (dP - rowsum(dP * P))   (softmax Jacobian; masked entries have P = 0,
      //                                      so they, and fully masked rows, get dS = 0)
      //   dQ = scale dS K               dK = scale dS^T Q            dbias = dS
      // The kernel computes all of it per (b, h); dbias is then summed over the dims the
      // bias was broadcast along (a [1, H, Tq, Tk] relative bias sums over the batch).
      Tensor gc = contiguous(g);
      Tensor gq = Tensor::empty(qc.shape(), qc.dtype(), qc.device());
      Tensor gk = Tensor::empty(kc.shape(), kc.dtype(), kc.device());
      Tensor gv = Tensor::empty(vc.shape(), vc.dtype(), vc.device());
      Tensor gbias;
      if (n.needs(3)) gbias = Tensor::empty(probs.shape(), probs.dtype(), probs.device());
      backend_of(gc).attention_backward(qc, kc, vc, probs, gc, scale, gq, gk, gv, n.needs(3) ? &gbias : nullptr);
      if (gbias.defined()) gbias = sum_to(gbias, b0.shape());
      return grads{n.needs(0) ? gq : Tensor(), n.needs(1) ? gk : Tensor(), n.needs(2) ? gv : Tensor(), gbias};
    });
  }
  return out;
}

}  // namespace mm
