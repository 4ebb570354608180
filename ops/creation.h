// Creating tensors on any device, moving them between devices, and casting.
#pragma once
#include "runtime/philox.h"
#include "runtime/tensor.h"

namespace mm {

Tensor zeros(const Shape& shape, DType dt = DType::f32, Device dev = Device::cpu());
Tensor ones(const Shape& shape, DType dt = DType::f32, Device dev = Device::cpu());
Tensor full(const Shape& shape, double value, DType dt = DType::f32, Device dev = Device::cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
// Normal(mean, std) / uniform [lo, hi) from the Philox generator (advances it by one).
Tensor randn(const Shape& shape, Generator& gen, double mean = 0.0, double std = 1.0,
             DType dt = DType::f32, Device dev = Device::cpu());
Tensor rand(const Shape& shape, Generator& gen, double lo = 0.0, double hi = 1.0,
            DType dt = DType::f32, Device dev = Device::cpu());

// A contiguous copy on `dev` (autograd: the gradient moves back). Same device: returns t.
Tensor to(const Tensor& t, Device dev);
// A contiguous copy in dtype `dt` (autograd: the gradient is cast back). Same dtype: t.
Tensor cast(const Tensor& t, DType dt);
// A contiguous copy (autograd: identity gradient).
Tensor clone(const Tensor& t);

}  // namespace mm
