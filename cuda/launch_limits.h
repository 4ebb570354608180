// Launch-configuration limits shared by the nvcc path and the CPU emulator, so both reject
// a bad launch with the same mm::Error before anything runs. The numbers are those of
// compute capability 8.0-9.0 (A100/H100): 1024 threads per block, block dims
// (1024, 1024, 64), grid dims (2^31-1, 65535, 65535), 48 KiB of shared memory per block
// unless the kernel opts in with cudaFuncSetAttribute(..MaxDynamicSharedMemorySize..),
// at most 227 KiB (the H100 opt-in limit; an A100 stops at 163 KiB).
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/error.h"

namespace mm::cuda_limits {

constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr unsigned kMaxBlockDim[3] = {1024, 1024, 64};
constexpr uint64_t kMaxGridDim[3] = {2147483647ull, 65535, 65535};
constexpr size_t kDefaultSharedBytes = 48 * 1024;   // static + dynamic without opt-in
constexpr size_t kMaxStaticSharedBytes = 48 * 1024;
constexpr size_t kMaxOptinSharedBytes = 227 * 1024;  // static + dynamic with opt-in

// Throws mm::Error naming the kernel and the offending sizes.
inline void check_launch(const char* kernel, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                         unsigned by, unsigned bz, size_t dyn_smem, size_t dyn_smem_limit) {
  auto where = [&] {
    return ::mm::cat("launch of kernel '", kernel, "' with grid (", gx, ",", gy, ",", gz, ") block (",
                     bx, ",", by, ",", bz, ") dynamic shared memory ", dyn_smem, " bytes: ");
  };
  const unsigned b[3] = {bx, by, bz};
  const uint64_t g[3] = {gx, gy, gz};
  for (int i = 0; i < 3; ++i) {
    MM_CHECK(b[i] >= 1 && b[i] <= kMaxBlockDim[i], where(), "block dimension ", "xyz"[i], " = ", b[i],
             " is outside [1, ", kMaxBlockDim[i], "]");
    MM_CHECK(g[i] >= 1 && g[i] <= kMaxGridDim[i], where(), "grid dimension ", "xyz"[i], " = ", g[i],
             " is outside [1, ", kMaxGridDim[i], "]");
  }
  uint64_t threads = uint64_t(bx) * by * bz;
  MM_CHECK(threads <= kMaxThreadsPerBlock, where(), threads,
           " threads per block exceed the limit of ", kMaxThreadsPerBlock);
  MM_CHECK(dyn_smem <= dyn_smem_limit, where(), "dynamic shared memory exceeds this kernel's limit of ",
           dyn_smem_limit, " bytes",
           dyn_smem <= kMaxOptinSharedBytes
               ? " (raise it with cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, "
                 "bytes); at most 227 KiB)"
               : " (the device maximum is 227 KiB = 232448 bytes)");
}

}  // namespace mm::cuda_limits
