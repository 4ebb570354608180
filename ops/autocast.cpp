#include "ops/autocast.h"

#include "runtime/error.h"

namespace mm {
namespace {
thread_local DType t_autocast = DType::f32;
}

DType autocast_dtype() { return t_autocast; }

AutocastGuard::AutocastGuard(DType dt) : prev_(t_autocast) {
  MM_CHECK(dt == DType::bf16 || dt == DType::f16 || dt == DType::f32, "autocast: dtype must be bf16, f16 or f32 "
           "(off), got ", dtype_name(dt));
  t_autocast = dt;
}
AutocastGuard::~AutocastGuard() { t_autocast = prev_; }

bool autocast_applies(const Tensor& x) {
  return t_autocast != DType::f32 && x.dtype() == DType::f32 && x.device().is_cuda();
}

}  // namespace mm
