// Reductions over one contiguous row, for the kernels that sweep a row several times
// (softmax, the norms). Two flavours, because the first sweep and the later ones are
// limited by different things:
//
//  - The first sweep brings the row in from memory. It must walk the row front to back:
//    the hardware prefetchers follow one sequential stream into the next row, and the
//    kernel then runs at memory speed. row_sum / row_max are that plain loop, one vector
//    accumulator.
//  - Later sweeps hit L1, where a single accumulator makes every 8-float step wait for
//    the previous add (3-5 cycles). row_sum4 cuts the row into four quarters summed in
//    one loop by four independent accumulators: about twice as fast in cache. (Used for
//    the first sweep it is slower: four short streams per row defeat the prefetcher.)
//
// f is a small pure function of the values, called inside an `omp simd` loop that GCC
// vectorises at -O2; capture constants by value:
//   T mean = row_sum(x, n, [](T v) { return v; }) / T(n);                  // from memory
//   T var = row_sum4(x, n, [mean](T v) { return (v - mean) * (v - mean); }) / T(n);  // in L1
#pragma once
#include <cstdint>
#include <limits>

namespace mm::cpu {

// sum over j < n of f(a[j]) / f(a[j], b[j]), front to back.
template <typename T, typename F>
inline T row_sum(const T* a, int64_t n, F f) {
  T s = 0;
  _Pragma("omp simd reduction(+:s)") for (int64_t j = 0; j < n; ++j) s += f(a[j]);
  return s;
}
template <typename T, typename F>
inline T row_sum(const T* a, const T* b, int64_t n, F f) {
  T s = 0;
  _Pragma("omp simd reduction(+:s)") for (int64_t j = 0; j < n; ++j) s += f(a[j], b[j]);
  return s;
}

// The same sums with four accumulators, for rows already in L1.
template <typename T, typename F>
inline T row_sum4(const T* a, int64_t n, F f) {
  const int64_t q = n / 4;
  const T* a1 = a + q;
  const T* a2 = a + 2 * q;
  const T* a3 = a + 3 * q;
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  _Pragma("omp simd reduction(+:s0, s1, s2, s3)") for (int64_t j = 0; j < q; ++j) {
    s0 += f(a[j]);
    s1 += f(a1[j]);
    s2 += f(a2[j]);
    s3 += f(a3[j]);
  }
  for (int64_t j = 4 * q; j < n; ++j) s0 += f(a[j]);
  return (s0 + s1) + (s2 + s3);
}
template <typename T, typename F>
inline T row_sum4(const T* a, const T* b, int64_t n, F f) {
  const int64_t q = n / 4;
  const T* a1 = a + q;
  const T* a2 = a + 2 * q;
  const T* a3 = a + 3 * q;
  const T* b1 = b + q;
  const T* b2 = b + 2 * q;
  const T* b3 = b + 3 * q;
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  _Pragma("omp simd reduction(+:s0, s1, s2, s3)") for (int64_t j = 0; j < q; ++j) {
    s0 += f(a[j], b[j]);
    s1 += f(a1[j], b1[j]);
    s2 += f(a2[j], b2[j]);
    s3 += f(a3[j], b3[j]);
  }
  for (int64_t j = 4 * q; j < n; ++j) s0 += f(a[j], b[j]);
  return (s0 + s1) + (s2 + s3);
}

// max over j < n of x[j] (-inf for n = 0), front to back, and whether some x[j] is NaN
// (the comparison skips NaNs; the caller decides what a NaN row means). The max chain
// is latency-bound, so the NaN test rides along for free.
template <typename T>
inline T row_max(const T* x, int64_t n, bool& has_nan) {
  T m = -std::numeric_limits<T>::infinity();
  int nan = 0;
  _Pragma("omp simd reduction(max:m) reduction(|:nan)") for (int64_t j = 0; j < n; ++j) {
    m = x[j] > m ? x[j] : m;
    nan |= x[j] != x[j];
  }
  has_nan = nan != 0;
  return m;
}

}  // namespace mm::cpu
