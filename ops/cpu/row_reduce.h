// Reductions over one contiguous row that run at the speed of the loads, not of the
// adder's latency. A plain `omp simd reduction(+:s)` loop keeps one vector accumulator,
// so each 8-float step waits for the previous add (3-5 cycles); cutting the row into
// four quarters gives four independent accumulators in one loop, which GCC vectorises
// at -O2 with contiguous loads from four streams. Used by softmax and the norms, whose
// rows are swept twice or three times in L1.
//
//   T mean = sum4(x, n, [](T v) { return v; }) / T(n);
#pragma once
#include <cstdint>
#include <limits>

namespace mm::cpu {

// sum over j < n of f(a[j]) (one row) or f(a[j], b[j]) (two rows); f is a small pure
// function of the values (capture constants by value), called in a vectorised loop.
//   T ss = sum4(x, n, [mu](T v) { return (v - mu) * (v - mu); });
template <typename T, typename F>
inline T sum4(const T* a, int64_t n, F f) {
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
inline T sum4(const T* a, const T* b, int64_t n, F f) {
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

// max over j < n of x[j] (-inf for n = 0), and whether some x[j] is NaN (the comparison
// skips NaNs; callers decide what a NaN row means).
template <typename T>
inline T max4(const T* x, int64_t n, bool& has_nan) {
  const int64_t q = n / 4;
  const T* x1 = x + q;
  const T* x2 = x + 2 * q;
  const T* x3 = x + 3 * q;
  T m0 = -std::numeric_limits<T>::infinity(), m1 = m0, m2 = m0, m3 = m0;
  int nan = 0;
  _Pragma("omp simd reduction(max:m0, m1, m2, m3) reduction(|:nan)") for (int64_t j = 0; j < q; ++j) {
    m0 = x[j] > m0 ? x[j] : m0;
    m1 = x1[j] > m1 ? x1[j] : m1;
    m2 = x2[j] > m2 ? x2[j] : m2;
    m3 = x3[j] > m3 ? x3[j] : m3;
    nan |= (x[j] != x[j]) | (x1[j] != x1[j]) | (x2[j] != x2[j]) | (x3[j] != x3[j]);
  }
  for (int64_t j = 4 * q; j < n; ++j) {
    m0 = x[j] > m0 ? x[j] : m0;
    nan |= x[j] != x[j];
  }
  has_nan = nan != 0;
  m0 = m1 > m0 ? m1 : m0;
  m2 = m3 > m2 ? m3 : m2;
  return m2 > m0 ? m2 : m0;
}

}  // namespace mm::cpu
