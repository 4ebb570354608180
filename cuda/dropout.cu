// Dropout and drop path with the CPU backend's masks (ops/cpu/dropout.cpp): element i is
// kept iff (philox_u32(seed, offset, i) >> 8) >= ceil(p 2^24), an integer test, so both
// backends drop exactly the same elements. One Philox call gives the bits of four
// consecutive elements: a dropout thread handles four.
#include <cmath>

#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"
#include "runtime/philox.h"

namespace mm::cuda::kernels {
namespace {

constexpr unsigned kThreads = 256;

uint32_t keep_threshold(double p) { return uint32_t(std::ceil(p * 16777216.0)); }
double keep_scale(double p) { return p < 1.0 ? 1.0 / (1.0 - p) : 0.0; }

template <class T>
__global__ void dropout_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t n, uint32_t thr,
                               acc_t<T> scale, uint64_t seed, uint64_t offset) {
  const int64_t blocks4 = (n + 3) / 4;
  for (int64_t blk = flat_index(); blk < blocks4; blk += flat_step()) {
    const Philox4 c{{uint32_t(blk), uint32_t(uint64_t(blk) >> 32), uint32_t(offset), uint32_t(offset >> 32)}};
    const Philox4 r = philox4x32(c, uint32_t(seed), uint32_t(seed >> 32));
    const int64_t i0 = blk * 4;
    MM_UNROLL
    for (int j = 0; j < 4; ++j)
      if (i0 + j < n) out[i0 + j] = (r.x[j] >> 8) >= thr ? st<T>(ld(x[i0 + j]) * scale) : st<T>(acc_t<T>(0));
  }
}

// x [B, R]; blockIdx.y walks the samples. A dropped sample is written as zeros (not
// x * 0, which would keep inf and NaN alive).
template <class T>
__global__ void drop_path_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t B, int64_t R, uint32_t thr,
                                 acc_t<T> scale, uint64_t seed, uint64_t offset) {
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const bool keep = (philox_u32(seed, offset, uint64_t(b)) >> 8) >= thr;
    for (int64_t j = flat_index(); j < R; j += flat_step())
      out[b * R + j] = keep ? st<T>(ld(x[b * R + j]) * scale) : st<T>(acc_t<T>(0));
  }
}

}  // namespace

void dropout(DType dt, const void* x, double p, uint64_t seed, uint64_t offset, void* out, int64_t n,
             cudaStream_t s) {
  if (n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "dropout",
                         MM_LAUNCH(dropout_kernel<T>, dim3(flat_blocks((n + 3) / 4, kThreads)), dim3(kThreads), 0, s,
                                   static_cast<const T*>(x), static_cast<T*>(out), n, keep_threshold(p),
                                   acc_t<T>(st<T>(acc_t<T>(keep_scale(p)))), seed, offset));
}

void drop_path(DType dt, const void* x, double p, uint64_t seed, uint64_t offset, void* out, int64_t B, int64_t R,
               cudaStream_t s) {
  if (B * R == 0) return;
  const dim3 grid(flat_blocks(R, kThreads, 1024), unsigned(B < 65535 ? B : 65535));
  MM_CUDA_DISPATCH_FLOAT(dt, "drop_path",
                         MM_LAUNCH(drop_path_kernel<T>, grid, dim3(kThreads), 0, s, static_cast<const T*>(x),
                                   static_cast<T*>(out), B, R, keep_threshold(p),
                                   acc_t<T>(st<T>(acc_t<T>(keep_scale(p)))), seed, offset));
}

}  // namespace mm::cuda::kernels
