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

// The same words for kLanes consecutive blocks blk0 .. blk0 + kLanes - 1, computed in
// structure-of-arrays form so GCC vectorises the rounds (2.7x the scalar blocks here):
// bits[4 * l + w] = word w of block blk0 + l, i.e. the bits of element 4 * blk0 + 4 * l + w.
constexpr int kLanes = 16;
inline void philox_lanes(uint64_t seed, uint64_t offset, uint64_t blk0, uint32_t* bits) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t b = blk0 + uint64_t(l);
    c0[l] = uint32_t(b);
    c1[l] = uint32_t(b >> 32);
    c2[l] = uint32_t(offset);
    c3[l] = uint32_t(offset >> 32);
  }
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int r = 0; r < 10; ++r) {  // philox4x32's rounds, lane by lane
    _Pragma("omp simd") for (int l = 0; l < kLanes; ++l) {
      const uint64_t p0 = uint64_t(kPhiloxM0) * c0[l], p1 = uint64_t(kPhiloxM1) * c2[l];
      const uint32_t n0 = uint32_t(p1 >> 32) ^ c1[l] ^ k0, n2 = uint32_t(p0 >> 32) ^ c3[l] ^ k1;
      c0[l] = n0;
      c1[l] = uint32_t(p1);
      c2[l] = n2;
      c3[l] = uint32_t(p0);
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  for (int l = 0; l < kLanes; ++l) {
    bits[4 * l] = c0[l];
    bits[4 * l + 1] = c1[l];
    bits[4 * l + 2] = c2[l];
    bits[4 * l + 3] = c3[l];
  }
}

}  // namespace

void CpuBackend::dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) {
  const int64_t n = x.numel();
  const uint32_t thr = keep_threshold(p);
  MM_DISPATCH_FLOAT(x.dtype(), "dropout", {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const T scale = keep_scale<T>(p);
    // One Philox block yields four elements' bits; groups of kLanes blocks (4 * kLanes
    // elements) are drawn together, the last partial group block by block.
    constexpr int64_t G = 4 * kLanes;
    parallel_for((n + G - 1) / G, kGrain / 64, [&](int64_t g0, int64_t g1) {
      uint32_t bits[G];
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t i0 = g * G;
        if (i0 + G <= n) {
          philox_lanes(seed, offset, uint64_t(g * kLanes), bits);
          _Pragma("omp simd") for (int64_t j = 0; j < G; ++j)
            po[i0 + j] = (bits[j] >> 8) >= thr ? px[i0 + j] * scale : T(0);
          continue;
        }
        for (int64_t blk = g * kLanes; blk * 4 < n; ++blk) {
          const Philox4 r = philox_block(seed, offset, uint64_t(blk));
          const int64_t b0 = blk * 4, m = n - b0 < 4 ? n - b0 : 4;
          for (int64_t j = 0; j < m; ++j) po[b0 + j] = (r.x[j] >> 8) >= thr ? px[b0 + j] * scale : T(0);
        }
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
