#include "ops/backend.h"

namespace mm {

static Backend* g_backends[2] = {nullptr, nullptr};

void Backend::unsupported(const char* kernel) const {
  throw Error(cat("kernel '", kernel, "' is not implemented by the ", name(), " backend"));
}

void register_backend(DeviceType t, Backend* b) { g_backends[int(t)] = b; }

Backend& cpu_backend();  // ops/cpu/cpu_backend.cpp

Backend& backend_for(Device d) {
  if (d.is_cpu()) return cpu_backend();
  Backend* b = g_backends[int(d.type)];
  MM_CHECK(b, "device ", d, " is not available: this build has no CUDA backend "
              "(rebuild with `make CUDA=1` on a machine with the CUDA toolkit and a GPU)");
  return *b;
}

}  // namespace mm
