#include "ops/shape.h"

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/op_util.h"
#include "ops/reduce.h"

namespace mm {
using autograd::grads;
using autograd::Node;

Tensor contiguous(const Tensor& x) {
  check_defined("contiguous", x, "x");
  if (x.is_contiguous()) return x;
  return clone(x);
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined("reshape", x, "x");
  Shape s = infer_shape("reshape", shape, x.numel());
  Tensor c = contiguous(x);
  Tensor out = c.as_strided(s, contiguous_strides(s), c.offset());
  Shape in = x.shape();
  autograd::record(out, "reshape", {c}, [in](const Tensor& g, const Node&) { return grads{reshape(g, in)}; });
  return out;
}

Tensor flatten(const Tensor& x, int start_dim, int end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  int s = x.wrap_dim(start_dim), e = x.wrap_dim(end_dim);
  MM_CHECK(s <= e, "flatten: start_dim ", start_dim, " after end_dim ", end_dim, " for shape ", x.shape());
  Shape out;
  for (int i = 0; i < s; ++i) out.push_back(x.size(i));
  out.push_back(prod(x.shape(), s, e + 1));
  for (int i = e + 1; i < x.dim(); ++i) out.push_back(x.size(i));
  return reshape(x, out);
}

Tensor transpose(const Tensor& x, int d0, int d1) {
  check_defined("transpose", x, "x");
  int a = x.wrap_dim(d0), b = x.wrap_dim(d1);
  Shape sh = x.shape(), st = x.strides();
  std::swap(sh[a], sh[b]);
  std::swap(st[a], st[b]);
  Tensor out = x.as_strided(sh, st, x.offset());
  autograd::record(out, "transpose", {x}, [a, b](const Tensor& g, const Node&) { return grads{transpose(g, a, b)}; });
  return out;
}

Tensor permute(const Tensor& x, const std::vector<int>& dims) {
  check_defined("permute", x, "x");
  MM_CHECK(int(dims.size()) == x.dim(), "permute: ", dims.size(), " dims for shape ", x.shape());
  Shape sh, st;
  std::vector<int> inv(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int d = x.wrap_dim(dims[i]);
    MM_CHECK(inv[size_t(d)] < 0, "permute: dimension ", d, " repeated");
    inv[size_t(d)] = int(i);
    sh.push_back(x.size(d));
    st.push_back(x.stride(d));
  }
  Tensor out = x.as_strided(sh, st, x.offset());
  autograd::record(out, "permute", {x}, [inv](const Tensor& g, const Node&) { return grads{permute(g, inv)}; });
  return out;
}

Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t len) {
  check_defined("narrow", x, "x");
  int d = x.wrap_dim(dim);
  MM_CHECK(start >= 0 && len >= 0 && start + len <= x.size(d), "narrow: range [", start, ", ",
           start + len, ") out of bounds for dimension ", d, " of shape ", x.shape());
  Shape sh = x.shape();
  sh[d] = len;
  Tensor out = x.as_strided(sh, x.strides(), x.offset() + start * x.stride(d));
  Shape in = x.shape();
  autograd::record(out, "narrow", {x}, [in, d, start](const Tensor& g, const Node&) {
    // Scatter the slice's gradient into zeros of the input's shape.
    Tensor gx = zeros(in, g.dtype(), g.device());
    Tensor slot = gx.as_strided(g.shape(), gx.strides(), start * gx.stride(d));
    backend_of(g).copy(g, slot);
    return grads{gx};
  });
  return out;
}

Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined("expand", x, "x");
  MM_CHECK(shape.n >= x.dim(), "expand: cannot expand shape ", x.shape(), " to ", shape);
  Shape sh, st;
  const int lead = shape.n - x.dim();
  for (int i = 0; i < shape.n; ++i) {
    int64_t want = shape[i];
    if (i < lead) {
      MM_CHECK(want >= 0, "expand: bad size ", want, " in ", shape);
      sh.push_back(want);
      st.push_back(0);
      continue;
    }
    int64_t have = x.size(i - lead);
    if (want == -1) want = have;
    MM_CHECK(have == want || have == 1, "expand: cannot expand shape ", x.shape(), " to ", shape,
             " (dimension ", i, ")");
    sh.push_back(want);
    st.push_back(have == want ? x.stride(i - lead) : 0);
  }
  Tensor out = x.as_strided(sh, st, x.offset());
  Shape in = x.shape();
  autograd::record(out, "expand", {x}, [in](const Tensor& g, const Node&) { return grads{sum_to(g, in)}; });
  return out;
}

Tensor unsqueeze(const Tensor& x, int dim) {
  int d = dim < 0 ? dim + x.dim() + 1 : dim;
  MM_CHECK(d >= 0 && d <= x.dim(), "unsqueeze: dimension ", dim, " out of range for shape ", x.shape());
  Shape s = x.shape();
  s.insert(d, 1);
  return reshape(x, s);
}

Tensor squeeze(const Tensor& x, int dim) {
  int d = x.wrap_dim(dim);
  MM_CHECK(x.size(d) == 1, "squeeze: dimension ", d, " of shape ", x.shape(), " is not 1");
  Shape s = x.shape();
  s.erase(d);
  return reshape(x, s);
}

Tensor concat(const std::vector<Tensor>& xs, int dim) {
  MM_CHECK(!xs.empty(), "concat: no tensors");
  const Tensor& x0 = xs[0];
  check_defined("concat", x0, "xs[0]");
  int d = x0.wrap_dim(dim);
  Shape out_shape = x0.shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_defined("concat", xs[i], "xs[i]");
    check_same_device("concat", x0, xs[i]);
    check_same_dtype("concat", x0, xs[i]);
    MM_CHECK(xs[i].dim() == x0.dim(), "concat: tensor ", i, " has shape ", xs[i].shape(), ", tensor 0 ",
             x0.shape());
    for (int k = 0; k < x0.dim(); ++k)
      MM_CHECK(k == d || xs[i].size(k) == x0.size(k), "concat: tensor ", i, " has shape ", xs[i].shape(),
               ", tensor 0 ", x0.shape(), " (only dimension ", d, " may differ)");
    total += xs[i].size(d);
  }
  out_shape[d] = total;
  Tensor out = Tensor::empty(out_shape, x0.dtype(), x0.device());
  std::vector<int64_t> sizes;
  int64_t at = 0;
  for (const Tensor& x : xs) {
    Shape sh = out_shape;
    sh[d] = x.size(d);
    Tensor slot = out.as_strided(sh, out.strides(), at * out.stride(d));
    backend_of(x).copy(x, slot);
    sizes.push_back(x.size(d));
    at += x.size(d);
  }
  autograd::record(out, "concat", xs, [sizes, d](const Tensor& g, const Node& n) {
    grads gs;
    int64_t a = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      gs.push_back(n.needs(i) ? narrow(g, d, a, sizes[i]) : Tensor());
      a += sizes[i];
    }
    return gs;
  });
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim) {
  int d = x.wrap_dim(dim);
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  MM_CHECK(total == x.size(d), "split: sizes sum to ", total, " but dimension ", d, " of ", x.shape(),
           " is ", x.size(d));
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(narrow(x, d, at, s));
    at += s;
  }
  return out;
}

}  // namespace mm
