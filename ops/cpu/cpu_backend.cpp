#include "ops/cpu/cpu_backend.h"

namespace mm {

Backend& cpu_backend() {
  static CpuBackend b;
  return b;
}

}  // namespace mm
