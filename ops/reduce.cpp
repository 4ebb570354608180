#include "ops/reduce.h"

#include <algorithm>

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/op_util.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

std::vector<int> normalise_dims(const char* op, const Tensor& x, const std::vector<int>& dims) {
  std::vector<int> ds;
  if (dims.empty()) {
    for (int i = 0; i < x.dim(); ++i) ds.push_back(i);
  } else {
    for (int d : dims) ds.push_back(x.wrap_dim(d));
  }
  std::sort(ds.begin(), ds.end());
  MM_CHECK(std::adjacent_find(ds.begin(), ds.end()) == ds.end(), op, ": repeated dimension in reduction");
  return ds;
}

Shape reduced_shape(const Shape& in, const std::vector<int>& ds, bool keepdim) {
  Shape out;
  for (int i = 0; i < in.n; ++i) {
    bool r = std::find(ds.begin(), ds.end(), i) != ds.end();
    if (!r) out.push_back(in[i]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

// Sum over dims (sorted), keepdim shape; merges runs of adjacent dims into one kernel call.
Tensor sum_raw(const Tensor& x, const std::vector<int>& ds) {
  Tensor cur = contiguous(x);
  if (ds.empty()) return clone(cur);
  // Reduce from the last run to the first so earlier dim indices stay valid.
  size_t i = ds.size();
  while (i > 0) {
    size_t j = i - 1;
    while (j > 0 && ds[j - 1] == ds[j] - 1) --j;
    int first = ds[j], last = ds[i - 1];
    Shape s = cur.shape();
    int64_t outer = prod(s, 0, first), red = prod(s, first, last + 1), inner = prod(s, last + 1, s.n);
    for (int d = first; d <= last; ++d) s[d] = 1;
    Tensor out = Tensor::empty(s, cur.dtype(), cur.device());
    backend_of(cur).reduce(ReduceOp::sum, cur, outer, red, inner, out, nullptr);
    cur = out;
    i = j;
  }
  return cur;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  check_defined("sum", x, "x");
  check_floating("sum", x);
  auto ds = normalise_dims("sum", x, dims);
  Tensor out;
  {
    autograd::NoGradGuard ng;
    out = sum_raw(x, ds);
    Shape s = reduced_shape(x.shape(), ds, keepdim);
    out = out.as_strided(s, contiguous_strides(s), out.offset());
  }
  Shape in = x.shape(), kept = reduced_shape(x.shape(), ds, true);
  autograd::record(out, "sum", {x}, [in, kept](const Tensor& g, const Node&) {
    return grads{expand(reshape(g, kept), in)};
  });
  return out;
}

Tensor mean(const Tensor& x, const std::vector<int>& dims, bool keepdim) {
  check_defined("mean", x, "x");
  auto ds = normalise_dims("mean", x, dims);
  int64_t n = 1;
  for (int d : ds) n *= x.size(d);
  MM_CHECK(n > 0, "mean: reducing over an empty dimension of shape ", x.shape());
  return mul(sum(x, dims, keepdim), 1.0 / double(n));
}

Tensor max(const Tensor& x, int dim, bool keepdim) {
  check_defined("max", x, "x");
  check_floating("max", x);
  int d = x.wrap_dim(dim);
  MM_CHECK(x.size(d) > 0, "max: empty dimension ", d, " of shape ", x.shape());
  Tensor xc = contiguous(x);
  Shape s = x.shape();
  int64_t outer = prod(s, 0, d), red = s[d], inner = prod(s, d + 1, s.n);
  s[d] = 1;
  Tensor out = Tensor::empty(s, x.dtype(), x.device());
  Tensor arg = Tensor::empty(s, DType::i64, x.device());
  backend_of(x).reduce(ReduceOp::max, xc, outer, red, inner, out, &arg);
  Shape kept = s;
  if (!keepdim) {
    s.erase(d);
    out = out.as_strided(s, contiguous_strides(s), 0);
  }
  Shape in = x.shape();
  autograd::record(out, "max", {xc}, [in, kept, arg, outer, red, inner](const Tensor& g, const Node&) {
    Tensor gx = zeros(in, g.dtype(), g.device());
    Tensor gc = contiguous(g);
    backend_of(g).scatter_add(reshape(gc, kept), arg, outer, red, inner, gx);
    return grads{gx};
  });
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  MM_CHECK(g.dim() >= shape.n, "sum_to: cannot reduce ", g.shape(), " to ", shape);
  std::vector<int> ds;
  const int lead = g.dim() - shape.n;
  for (int i = 0; i < g.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && g.size(i) != 1)) ds.push_back(i);
  Tensor r = ds.empty() ? g : sum(g, ds, true);
  return reshape(r, shape);
}

}  // namespace mm
