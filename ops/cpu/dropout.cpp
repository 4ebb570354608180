// Dropout and drop path (stochastic depth) masks from Philox.
//
// Element i is kept iff philox_uniform(seed, offset, i) >= p. The uniform is
// (bits >> 8) * 2^-24, so the test is exactly (bits >> 8) >= ceil(p * 2^24) in integers:
// no float rounding of p, the same mask on every backend. p = 1 gives a threshold of 2^24
// that no 24-bit value reaches: everything dropped, and the scale is 0, not 1/0.
#include <cmath>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/strided.h"

namespace mm {
using namespace cpu;

namespace {

uint32_t keep_threshold(double p) { return uint32_t(std::ceil(p * 16777216.0)); }

template <typename T>
T keep_scale(double p) { return p < 1.0 ? T(1.0 / (1.0 - p)) : T(0); }

// The 4 words of Philox block `blk` of draw (seed, offset): elements 4*blk .. 4*blk+3,
// exactly what philox_u32 returns for them one at a time.
inline Philox4 philox_block(uint64_t seed, uint64_t offset, uint64_t blk) {
  Philox4 c{{uint32_t(blk), uint32_t(blk >> 32), uint32_t(offset), uint32_t(offset >> 32)}};
  return philox4x32(c, uint32_t(seed), uint32_t(seed >> 32));
}

}  // namespace

void CpuBackend::dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) {
  const int64_t n = x.numel();
  const uint32_t thr = keep_threshold(p);
  MM_DISPATCH_FLOAT(x.dtype(), "dropout", {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const T scale = keep_scale<T>(p);
    // One Philox call yields four elements' bits: parallel over blocks of 4.
    parallel_for((n + 3) / 4, kGrain / 16, [&](int64_t b0, int64_t b1) {
      for (int64_t blk = b0; blk < b1; ++blk) {
        const Philox4 r = philox_block(seed, offset, uint64_t(blk));
        const int64_t i0 = blk * 4, m = n - i0 < 4 ? n - i0 : 4;
        for (int64_t j = 0; j < m; ++j) po[i0 + j] = (r.x[j] >> 8) >= thr ? px[i0 + j] * scale : T(0);
      }
    });
  });
}

void CpuBackend::drop_path(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) {
  const int64_t B = x.size(0), R = x.dim() > 1 ? x.size(1) : 1;
  const uint32_t thr = keep_threshold(p);
  MM_DISPATCH_FLOAT(x.dtype(), "drop_path", {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const T scale = keep_scale<T>(p);
    parallel_for(B, kGrain / (R ? R : 1) + 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const bool keep = (philox_u32(seed, offset, uint64_t(b)) >> 8) >= thr;
        const T* src = px + b * R;
        T* dst = po + b * R;
        // A dropped sample is written as zeros, not x * 0 (which keeps inf/NaN alive).
        if (keep) { _Pragma("omp simd") for (int64_t j = 0; j < R; ++j) dst[j] = src[j] * scale; }
        else { for (int64_t j = 0; j < R; ++j) dst[j] = T(0); }
      }
    });
  });
}

}  // namespace mm
