#include "ops/creation.h"

#include "autograd/node.h"
#include "ops/op_util.h"

namespace mm {
using autograd::grads;
using autograd::Node;

Tensor full(const Shape& shape, double value, DType dt, Device dev) {
  Tensor t = Tensor::empty(shape, dt, dev);
  backend_for(dev).fill(t, value);
  return t;
}
Tensor zeros(const Shape& shape, DType dt, Device dev) { return full(shape, 0.0, dt, dev); }
Tensor ones(const Shape& shape, DType dt, Device dev) { return full(shape, 1.0, dt, dev); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }

Tensor randn(const Shape& shape, Generator& gen, double mean, double std, DType dt, Device dev) {
  Tensor t = Tensor::empty(shape, dt, dev);
  backend_for(dev).fill_random(t, true, mean, std, gen.seed(), gen.advance());
  return t;
}
Tensor rand(const Shape& shape, Generator& gen, double lo, double hi, DType dt, Device dev) {
  Tensor t = Tensor::empty(shape, dt, dev);
  backend_for(dev).fill_random(t, false, lo, hi, gen.seed(), gen.advance());
  return t;
}

Tensor to(const Tensor& t, Device dev) {
  check_defined("to", t, "t");
  if (t.device() == dev) return t;
  Tensor out = Tensor::empty(t.shape(), t.dtype(), dev);
  // The non-CPU side's backend knows how to move bytes across.
  backend_for(dev.is_cpu() ? t.device() : dev).copy(t, out);
  Device from = t.device();
  autograd::record(out, "to", {t}, [from](const Tensor& g, const Node&) { return grads{to(g, from)}; });
  return out;
}

Tensor cast(const Tensor& t, DType dt) {
  check_defined("cast", t, "t");
  if (t.dtype() == dt) return t;
  Tensor out = Tensor::empty(t.shape(), dt, t.device());
  backend_of(t).copy(t, out);
  if (is_floating(dt) && is_floating(t.dtype())) {
    DType from = t.dtype();
    autograd::record(out, "cast", {t}, [from](const Tensor& g, const Node&) { return grads{cast(g, from)}; });
  }
  return out;
}

Tensor clone(const Tensor& t) {
  check_defined("clone", t, "t");
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  backend_of(t).copy(t, out);
  autograd::record(out, "clone", {t}, [](const Tensor& g, const Node&) { return grads{g}; });
  return out;
}

}  // namespace mm
