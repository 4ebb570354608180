// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
// a counter-based generator, so element i of a random tensor is a pure function of
// (seed, offset, i). CPU kernels and CUDA kernels include this same header and draw
// identical numbers for the same seed: dropout masks agree across devices.
//
//   Generator g(42);  uint64_t off = g.advance();          // one op call, one offset
//   float u = philox_uniform(g.seed(), off, i);            // in [0, 1)
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MM_HD __host__ __device__ __forceinline__
#else
#define MM_HD inline
#endif

namespace mm {

struct Philox4 { uint32_t x[4]; };

// The round multipliers and the key increments (Weyl sequence) of Philox4x32; also used by
// the CPU dropout kernel's lane-parallel form (ops/cpu/dropout.cpp).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

MM_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  *hi = uint32_t(p >> 32);
  return uint32_t(p);
}

// 10 rounds of Philox4x32 on counter `c` with key `k`.
MM_HD Philox4 philox4x32(Philox4 c, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(kPhiloxM0, c.x[0], &hi0);
    uint32_t lo1 = mulhilo32(kPhiloxM1, c.x[2], &hi1);
    c = Philox4{{hi1 ^ c.x[1] ^ k0, lo1, hi0 ^ c.x[3] ^ k1, lo0}};
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return c;
}

// The 32 random bits for element i of the draw at `offset` of generator `seed`.
// Counter = (i / 4, offset); word i % 4 of the block.
MM_HD uint32_t philox_u32(uint64_t seed, uint64_t offset, uint64_t i) {
  uint64_t blk = i >> 2;
  Philox4 c{{uint32_t(blk), uint32_t(blk >> 32), uint32_t(offset), uint32_t(offset >> 32)}};
  Philox4 r = philox4x32(c, uint32_t(seed), uint32_t(seed >> 32));
  return r.x[i & 3];
}

// Uniform in [0, 1) with 24 random bits (exactly representable in f32).
MM_HD float philox_uniform(uint64_t seed, uint64_t offset, uint64_t i) {
  return float(philox_u32(seed, offset, i) >> 8) * (1.0f / 16777216.0f);
}

// Standard normal by Box-Muller over elements 2j and 2j+1 of the draw.
MM_HD float philox_normal(uint64_t seed, uint64_t offset, uint64_t i) {
  uint64_t j = i & ~uint64_t(1);
  float u1 = (float(philox_u32(seed, offset, j) >> 8) + 1.0f) * (1.0f / 16777216.0f);  // (0,1]
  float u2 = philox_uniform(seed, offset, j + 1);
  float r = sqrtf(-2.0f * logf(u1));
  float th = 6.28318530717958647692f * u2;
  return (i & 1) ? r * sinf(th) : r * cosf(th);
}

// A seed and a running offset: each random op call takes the next offset.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  uint64_t advance() { return offset_++; }
  void set_state(uint64_t seed, uint64_t offset) { seed_ = seed; offset_ = offset; }

 private:
  uint64_t seed_ = 0, offset_ = 0;
};

}  // namespace mm
