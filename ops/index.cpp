#include "ops/index.h"

#include <string>

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/op_util.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

void check_index_tensor(const char* op, const Tensor& x, const Tensor& idx) {
  check_defined(op, idx, "idx");
  MM_CHECK(idx.dtype() == DType::i64 || idx.dtype() == DType::i32, op, ": indices must be i64 or i32, got ",
           dtype_name(idx.dtype()), " of shape ", idx.shape());
  check_same_device(op, x, idx);
}

// Runs a kernel; an error it raises (an out-of-range index) is rethrown with the op the
// user called and the shapes involved in place of the kernel's own name.
template <typename F>
void run_kernel(const char* op, const char* kernel, const Tensor& x, const char* xname, const Tensor& idx,
                const char* iname, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    std::string msg = e.what();
    const std::string prefix = cat(kernel, ": ");
    if (msg.rfind(prefix, 0) == 0) msg = msg.substr(prefix.size());
    throw Error(cat(op, " (", xname, " ", x.shape(), ", ", iname, " ", idx.shape(), "): ", msg));
  }
}

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  check_defined("embedding", weight, "weight");
  check_floating("embedding", weight);
  check_index_tensor("embedding", weight, ids);
  MM_CHECK(weight.dim() == 2, "embedding: weight must be [V, C], got ", weight.shape());
  const int64_t V = weight.size(0), C = weight.size(1);
  Tensor wc = contiguous(weight), ic = contiguous(ids);
  Shape s = ids.shape();
  s.push_back(C);
  Tensor out = Tensor::empty(s, weight.dtype(), weight.device());
  // Rows of the table: the [1, V, C] -> [1, K, C] case of index_select.
  run_kernel("embedding", "index_select", weight, "weight", ids, "ids",
             [&] { backend_of(weight).index_select(wc, ic, 1, V, C, out); });
  autograd::record(out, "embedding", {wc}, [ic, V, C](const Tensor& g, const Node&) {
    // d out[k, :] / d weight[ids[k], :] = I: each row's gradient is added to its id's row.
    Tensor gw = zeros({V, C}, g.dtype(), g.device());
    backend_of(g).index_add(contiguous(g), ic, 1, V, C, gw);
    return grads{gw};
  });
  return out;
}

Tensor index_select(const Tensor& x, int dim, const Tensor& idx) {
  check_defined("index_select", x, "x");
  check_floating("index_select", x);
  check_index_tensor("index_select", x, idx);
  MM_CHECK(idx.dim() == 1, "index_select: indices must be 1-D [K], got shape ", idx.shape());
  const int d = x.wrap_dim(dim);
  const Shape in = x.shape();
  const int64_t outer = prod(in, 0, d), n = in[d], inner = prod(in, d + 1, in.n);
  Tensor xc = contiguous(x), ic = contiguous(idx);
  Shape s = in;
  s[d] = idx.size(0);
  Tensor out = Tensor::empty(s, x.dtype(), x.device());
  run_kernel("index_select", "index_select", x, "input", idx, "indices",
             [&] { backend_of(x).index_select(xc, ic, outer, n, inner, out); });
  autograd::record(out, "index_select", {xc}, [ic, in, outer, n, inner](const Tensor& g, const Node&) {
    Tensor gx = zeros(in, g.dtype(), g.device());
    backend_of(g).index_add(contiguous(g), ic, outer, n, inner, gx);
    return grads{gx};
  });
  return out;
}

Tensor gather(const Tensor& x, int dim, const Tensor& idx) {
  check_defined("gather", x, "x");
  check_floating("gather", x);
  check_index_tensor("gather", x, idx);
  MM_CHECK(idx.dim() == x.dim(), "gather: indices ", idx.shape(), " must have the rank of the input ", x.shape());
  const int d = x.wrap_dim(dim);
  // torch.gather lets idx be smaller than x off `dim`: only the leading part of x is read,
  // so narrow x to idx's extent there (narrow's backward pads the gradient back).
  Tensor xn = x;
  for (int i = 0; i < x.dim(); ++i) {
    if (i == d) continue;
    MM_CHECK(idx.size(i) <= x.size(i), "gather: indices ", idx.shape(), " exceed the input ", x.shape(),
             " in dimension ", i);
    if (idx.size(i) < x.size(i)) xn = narrow(xn, i, 0, idx.size(i));
  }
  const Shape in = xn.shape();
  const int64_t outer = prod(in, 0, d), n = in[d], inner = prod(in, d + 1, in.n);
  Tensor xc = contiguous(xn), ic = contiguous(idx);
  Tensor out = Tensor::empty(idx.shape(), x.dtype(), x.device());
  run_kernel("gather", "gather", x, "input", idx, "indices",
             [&] { backend_of(x).gather(xc, ic, outer, n, inner, out); });
  autograd::record(out, "gather", {xc}, [ic, in, outer, n, inner](const Tensor& g, const Node&) {
    Tensor gx = zeros(in, g.dtype(), g.device());
    backend_of(g).scatter_add(contiguous(g), ic, outer, n, inner, gx);
    return grads{gx};
  });
  return out;
}

}  // namespace mm
