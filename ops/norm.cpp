#include "ops/norm.h"

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/op_util.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

// A [size] parameter of a norm op (w, b, a running statistic): undefined is allowed
// (checked by the caller where it is not); else 1-D of the right size, dtype, device.
void check_param(const char* op, const Tensor& p, const char* name, int64_t size, const Tensor& x,
                 const char* what) {
  if (!p.defined()) return;
  MM_CHECK(p.dim() == 1 && p.size(0) == size, op, ": ", name, " has shape ", p.shape(), ", expected [", size,
           "] (", what, " of x ", x.shape(), ")");
  check_same_device(op, x, p);
  check_same_dtype(op, x, p);
}

Tensor contiguous_or_undefined(const Tensor& t) { return t.defined() ? contiguous(t) : t; }

// A contiguous tensor seen through a raw view (no autograd), for the kernels' 2-D/3-D shapes.
Tensor view_as(const Tensor& t, const Shape& s) { return t.as_strided(s, contiguous_strides(s), t.offset()); }

// [B, C, S] view of x [B, C, ...spatial].
Shape bcs_shape(const Tensor& x) { return {x.size(0), x.size(1), prod(x.shape(), 2, x.dim())}; }

Tensor layer_norm_op(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  check_defined(op, x, "x");
  check_floating(op, x);
  MM_CHECK(x.dim() >= 1 && x.size(-1) > 0, op, ": x must have a non-empty last dimension, got shape ", x.shape());
  MM_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  const int64_t n = x.size(-1), m = x.numel() / n;
  check_param(op, w, "weight w", n, x, "the last dim");
  check_param(op, b, "bias b", n, x, "the last dim");
  Tensor xc = contiguous(x), wc = contiguous_or_undefined(w), bc = contiguous_or_undefined(b);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({m}, x.dtype(), x.device()), rstd = Tensor::empty({m}, x.dtype(), x.device());
  if (m > 0) {
    Tensor y2 = view_as(y, {m, n});
    backend_of(x).layer_norm(view_as(xc, {m, n}), wc, bc, eps, y2, mean, rstd);
  }
  if (autograd::should_record({xc, wc, bc})) {
    autograd::record(y, op, {xc, wc, bc}, [xc, wc, mean, rstd, m, n](const Tensor& g, const Node& node) {
      Tensor gc = contiguous(g);
      Tensor gx = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
      Tensor gw = node.needs(1) ? zeros({n}, xc.dtype(), xc.device()) : Tensor();
      Tensor gb = node.needs(2) ? zeros({n}, xc.dtype(), xc.device()) : Tensor();
      if (m > 0) {
        Tensor gx2 = view_as(gx, {m, n});
        backend_of(gc).layer_norm_backward(view_as(xc, {m, n}), wc, mean, rstd, view_as(gc, {m, n}), gx2,
                                           gw.defined() ? &gw : nullptr, gb.defined() ? &gb : nullptr);
      }
      return grads{node.needs(0) ? gx : Tensor(), gw, gb};
    });
  }
  return y;
}

}  // namespace

Tensor layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  return layer_norm_op("layer_norm", x, w, b, eps);
}

// Composed on every backend as add + layer_norm (h must be materialised anyway: it is
// the next residual). A single-pass fused kernel (read x and residual once, write h and
// y) would need its own Backend entry.
std::pair<Tensor, Tensor> add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& w, const Tensor& b,
                                         double eps) {
  const char* op = "add_layer_norm";
  check_defined(op, x, "x");
  check_defined(op, residual, "residual");
  MM_CHECK(x.shape() == residual.shape(), op, ": x ", x.shape(), " and residual ", residual.shape(),
           " must have the same shape");
  check_same_device(op, x, residual);
  check_same_dtype(op, x, residual);
  if (x.dim() >= 1) {  // the parameters are checked before any work is done
    check_param(op, w, "weight w", x.size(-1), x, "the last dim");
    check_param(op, b, "bias b", x.size(-1), x, "the last dim");
  }
  Tensor h = add(x, residual);
  Tensor y = layer_norm_op(op, h, w, b, eps);
  return {h, y};
}

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& w, const Tensor& b, double eps) {
  const char* op = "group_norm";
  check_defined(op, x, "x");
  check_floating(op, x);
  MM_CHECK(x.dim() >= 2, op, ": expected x [B, C, ...spatial] with at least 2 dims, got shape ", x.shape());
  const int64_t C = x.size(1);
  MM_CHECK(groups >= 1 && C % groups == 0, op, ": groups (", groups, ") must be >= 1 and divide the ", C,
           " channels of x ", x.shape());
  MM_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  check_param(op, w, "weight w", C, x, "the channels");
  check_param(op, b, "bias b", C, x, "the channels");
  const Shape s3 = bcs_shape(x);
  const int64_t B = s3[0];
  Tensor xc = contiguous(x), wc = contiguous_or_undefined(w), bc = contiguous_or_undefined(b);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({B, groups}, x.dtype(), x.device());
  Tensor rstd = Tensor::empty({B, groups}, x.dtype(), x.device());
  const bool empty = x.numel() == 0;
  if (!empty) {
    Tensor y3 = view_as(y, s3);
    backend_of(x).group_norm(view_as(xc, s3), wc, bc, groups, eps, y3, mean, rstd);
  }
  if (autograd::should_record({xc, wc, bc})) {
    autograd::record(y, op, {xc, wc, bc}, [xc, wc, mean, rstd, groups, s3, C, empty](const Tensor& g,
                                                                                       const Node& node) {
      Tensor gc = contiguous(g);
      Tensor gx = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
      Tensor gw = node.needs(1) ? zeros({C}, xc.dtype(), xc.device()) : Tensor();
      Tensor gb = node.needs(2) ? zeros({C}, xc.dtype(), xc.device()) : Tensor();
      if (!empty) {
        Tensor gx3 = view_as(gx, s3);
        backend_of(gc).group_norm_backward(view_as(xc, s3), wc, mean, rstd, groups, view_as(gc, s3), gx3,
                                           gw.defined() ? &gw : nullptr, gb.defined() ? &gb : nullptr);
      }
      return grads{node.needs(0) ? gx : Tensor(), gw, gb};
    });
  }
  return y;
}

static Tensor batch_norm_op(const char* op, const Tensor& x, const Tensor& w, const Tensor& b,
                            Tensor& running_mean, Tensor& running_var, bool training, double momentum,
                            double eps) {
  const int64_t C = x.size(1);
  const Shape s3 = bcs_shape(x);
  const int64_t per_channel = s3[0] * s3[2];
  MM_CHECK(eps >= 0, op, ": eps must be >= 0, got ", eps);
  check_param(op, w, "weight w", C, x, "the channels");
  check_param(op, b, "bias b", C, x, "the channels");
  check_param(op, running_mean, "running_mean", C, x, "the channels");
  check_param(op, running_var, "running_var", C, x, "the channels");
  for (const Tensor* r : {&running_mean, &running_var})
    MM_CHECK(!r->defined() || r->is_contiguous(), op, ": running statistics must be contiguous (they are "
                                                      "updated in place)");
  if (training) {
    MM_CHECK(per_channel > 1, op, ": training needs more than one value per channel to estimate a variance, "
                                  "got x ", x.shape());
    MM_CHECK(running_mean.defined() == running_var.defined(), op,
             ": give both running_mean and running_var, or neither");
  } else {
    MM_CHECK(running_mean.defined() && running_var.defined(), op,
             ": eval mode normalises with running_mean and running_var; both must be defined");
  }
  Tensor xc = contiguous(x), wc = contiguous_or_undefined(w), bc = contiguous_or_undefined(b);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  Tensor mean = Tensor::empty({C}, x.dtype(), x.device()), rstd = Tensor::empty({C}, x.dtype(), x.device());
  const bool empty = x.numel() == 0;
  if (!empty) {
    Tensor y3 = view_as(y, s3);
    backend_of(x).batch_norm(view_as(xc, s3), wc, bc, running_mean, running_var, training, momentum, eps, y3, mean,
                             rstd);
  }
  if (autograd::should_record({xc, wc, bc})) {
    autograd::record(y, op, {xc, wc, bc}, [xc, wc, mean, rstd, training, s3, C, empty](const Tensor& g,
                                                                                         const Node& node) {
      Tensor gc = contiguous(g);
      Tensor gx = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
      Tensor gw = node.needs(1) ? zeros({C}, xc.dtype(), xc.device()) : Tensor();
      Tensor gb = node.needs(2) ? zeros({C}, xc.dtype(), xc.device()) : Tensor();
      if (!empty) {
        Tensor gx3 = view_as(gx, s3);
        backend_of(gc).batch_norm_backward(view_as(xc, s3), wc, mean, rstd, training, view_as(gc, s3), gx3,
                                           gw.defined() ? &gw : nullptr, gb.defined() ? &gb : nullptr);
      }
      return grads{node.needs(0) ? gx : Tensor(), gw, gb};
    });
  }
  return y;
}

Tensor batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& running_mean, Tensor& running_var,
                  bool training, double momentum, double eps) {
  check_defined("batch_norm", x, "x");
  check_floating("batch_norm", x);
  MM_CHECK(x.dim() >= 2, "batch_norm: expected x [B, C, ...spatial] with at least 2 dims, got shape ", x.shape());
  return batch_norm_op("batch_norm", x, w, b, running_mean, running_var, training, momentum, eps);
}

Tensor batch_norm2d(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& running_mean, Tensor& running_var,
                    bool training, double momentum, double eps) {
  check_defined("batch_norm2d", x, "x");
  check_floating("batch_norm2d", x);
  check_dim("batch_norm2d", x, 4, "x [B, C, H, W]");
  return batch_norm_op("batch_norm2d", x, w, b, running_mean, running_var, training, momentum, eps);
}

}  // namespace mm
