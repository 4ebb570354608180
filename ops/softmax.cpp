#include "ops/softmax.h"

#include <vector>

#include "autograd/node.h"
#include "ops/op_util.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

// A contiguous tensor seen as [rows, n] with n its last dim (a raw view, no autograd).
Tensor as_rows(const Tensor& t) {
  const int64_t n = t.size(-1), m = t.numel() / n;
  return t.as_strided({m, n}, {n, 1}, t.offset());
}

// Softmax over the last dim; records the rule that calls softmax_backward.
Tensor softmax_last(const Tensor& x, bool log, const char* name) {
  Tensor xc = contiguous(x);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (y.numel() == 0) return y;
  Tensor y2 = as_rows(y);
  backend_of(x).softmax(as_rows(xc), y2, log);
  if (autograd::should_record({xc})) {
    Tensor ys = y.detach();  // the backward needs only the output
    autograd::record(y, name, {xc}, [ys, log](const Tensor& g, const Node&) {
      Tensor gc = contiguous(g);
      Tensor gx = Tensor::empty(ys.shape(), ys.dtype(), ys.device());
      Tensor gx2 = as_rows(gx);
      backend_of(gc).softmax_backward(as_rows(ys), as_rows(gc), gx2, log);
      return grads{gx};
    });
  }
  return y;
}

Tensor softmax_op(const Tensor& x, int dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_defined(name, x, "x");
  check_floating(name, x);
  if (x.dim() == 0) {  // a single element: softmax 1, log-softmax 0
    MM_CHECK(dim == 0 || dim == -1, name, ": dimension ", dim, " out of range for a 0-d tensor");
    return reshape(softmax_last(reshape(x, {1}), log, name), Shape{});
  }
  MM_CHECK(dim >= -x.dim() && dim < x.dim(), name, ": dimension ", dim, " out of range for shape ", x.shape());
  const int d = x.wrap_dim(dim), last = x.dim() - 1;
  if (d == last) return softmax_last(x, log, name);
  // Move dim last (swap it with the last dim), normalise rows, swap back.
  std::vector<int> perm(size_t(x.dim()));
  for (int i = 0; i <= last; ++i) perm[size_t(i)] = i;
  perm[size_t(d)] = last;
  perm[size_t(last)] = d;  // a swap is its own inverse
  return contiguous(permute(softmax_last(permute(x, perm), log, name), perm));
}

}  // namespace

Tensor softmax(const Tensor& x, int dim) { return softmax_op(x, dim, false); }
Tensor log_softmax(const Tensor& x, int dim) { return softmax_op(x, dim, true); }

}  // namespace mm
