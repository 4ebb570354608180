// Strided views as kernels see them: K operands walked together over one shape.
//
// The host flattens the walk first (make_strided): size-1 dims are dropped and adjacent
// dims merged wherever every operand allows, so a contiguous tensor becomes one dim and a
// [B, T, C] + [C] broadcast two. A kernel thread then turns its linear index into one
// element offset per operand:
//
//   const Strided<3> d = make_strided<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()});
//   ... in the kernel:  int64_t off[3]; d.offsets(i, off);  z[off[2]] = x[off[0]] + y[off[1]];
//
// Strides are in elements, relative to each operand's first element (raw_data()).
#pragma once
#include <array>
#include <cstdint>

#include "runtime/tensor.h"

#ifndef MM_HD
#if defined(__CUDACC__)
#define MM_HD __host__ __device__ __forceinline__
#else
#define MM_HD inline
#endif
#endif

namespace mm::cuda {

template <int K>
struct Strided {
  static constexpr int kMaxDims = Shape::kMaxDims;
  int nd = 0;
  int64_t numel = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride[K][kMaxDims] = {};

  // Offsets of linear (row-major) element i in each operand.
  MM_HD void offsets(int64_t i, int64_t (&off)[K]) const {
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t s = size[d];
      const int64_t q = i / s, r = i - q * s;
      for (int k = 0; k < K; ++k) off[k] += r * stride[k][d];
      i = q;
    }
  }
  // Whether operand k is laid out contiguously (one unit-stride dim, or no dims at all).
  MM_HD bool contiguous(int k) const { return nd == 0 || (nd == 1 && stride[k][0] == 1); }
};

template <int K>
Strided<K> make_strided(const Shape& shape, const std::array<const Shape*, K>& strides) {
  Strided<K> d;
  d.numel = shape.numel();
  // Walk from the innermost dim outwards, merging dim i into the run above it when
  // stride[k][i] == stride[k][i+1] * size[i+1] for every operand.
  int64_t sz[Shape::kMaxDims];
  int64_t st[K][Shape::kMaxDims];
  int n = 0;
  for (int i = shape.n - 1; i >= 0; --i) {
    if (shape[i] == 1) continue;
    bool merge = n > 0;
    for (int k = 0; merge && k < K; ++k) merge = (*strides[k])[i] == st[k][n - 1] * sz[n - 1];
    if (merge) {
      sz[n - 1] *= shape[i];
    } else {
      sz[n] = shape[i];
      for (int k = 0; k < K; ++k) st[k][n] = (*strides[k])[i];
      ++n;
    }
  }
  d.nd = n;
  for (int j = 0; j < n; ++j) {  // back to outermost-first order
    d.size[j] = sz[n - 1 - j];
    for (int k = 0; k < K; ++k) d.stride[k][j] = st[k][n - 1 - j];
  }
  return d;
}

}  // namespace mm::cuda
