// Softmax and log-softmax over the rows of x [M, N], forward and backward.
//
// Each row is small enough to stay in L1 (N = 768 floats is 3 KiB), so a row is read from
// memory once and then swept three times in cache: max, exp-and-sum, normalise. The
// f32 sweeps are `omp simd` loops over fast_exp, which GCC turns into AVX2 code; the
// whole kernel then runs at memory speed (one read of x, one write of y).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/row_reduce.h"
#include "ops/cpu/strided.h"

namespace mm {
using namespace cpu;

namespace {

// e^d for d <= 0 or -inf (never NaN: rows holding a NaN are caught before), the only
// arguments softmax produces (x - max, or a log-probability), written so that GCC
// vectorises it at -O2. vec_math.h's fast_exp does not vectorise there: __builtin_roundf
// has no vector form, and its float clamps become branches that -ftrapping-math keeps
// out of if-conversion. Here the clamp to >= -100 is an integer min on the float's bits
// (for d <= -0 the unsigned bit patterns order like the magnitudes), rounding uses the
// 1.5 * 2^23 trick, and results below 2^-126 flush to exactly 0 through an integer max
// on the exponent, so a masked -inf logit gets probability 0, not 1e-38.
// Relative error < 3e-7 on [-87, 0]; about 18 vector instructions.
inline float exp_nonpos(float d) {
  uint32_t u;
  std::memcpy(&u, &d, 4);
  u = u < 0xC2C80000u ? u : 0xC2C80000u;  // max(d, -100) for d <= -0 (0xC2C80000 is -100.0f)
  float x;
  std::memcpy(&x, &u, 4);
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;  // |r| <= ln2 / 2
  float p = 1.0f / 720;  // Taylor polynomial of e^r, degree 6
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t ni = int32_t(n);
  ni = ni < -127 ? -127 : ni;  // 2^-127 and below: a zero scale
  const int32_t bits = (ni + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}
inline double exp_nonpos(double d) { return std::exp(d); }

// Special rows, decided by the max pass:
//  - all entries -inf (every position masked): softmax would be 0/0. We define it as all
//    zeros and log-softmax as all -inf (the log of those zeros), with a zero gradient
//    (the output is constant).
//  - a NaN or +inf anywhere: the whole row is NaN (as the sum it normalises by would be).
template <typename T>
bool special_row(T m, bool has_nan, T* y, int64_t n, bool log) {
  constexpr T kInf = std::numeric_limits<T>::infinity();
  if (has_nan || m == kInf) {
    for (int64_t j = 0; j < n; ++j) y[j] = std::numeric_limits<T>::quiet_NaN();
    return true;
  }
  if (m == -kInf) {
    for (int64_t j = 0; j < n; ++j) y[j] = log ? -kInf : T(0);
    return true;
  }
  return false;
}

template <typename T>
void softmax_row(const T* x, T* y, int64_t n, bool log) {
  bool has_nan;
  const T m = max4(x, n, has_nan);
  if (special_row(m, has_nan, y, n, log)) return;
  T s = 0;
  if (log) {
    // log softmax(x)_j = (x_j - m) - log sum_k e^(x_k - m)
    _Pragma("omp simd reduction(+:s)") for (int64_t j = 0; j < n; ++j) s += exp_nonpos(x[j] - m);
    const T ls = std::log(s);
    _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - m) - ls;
  } else {
    _Pragma("omp simd reduction(+:s)") for (int64_t j = 0; j < n; ++j) {
      const T e = exp_nonpos(x[j] - m);
      y[j] = e;
      s += e;
    }
    const T r = T(1) / s;
    _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) y[j] *= r;
  }
}

// Chain rule, per row with y = softmax(x):  dy_j/dx_k = y_j (delta_jk - y_k), so
//   gx_k = sum_j gy_j y_j (delta_jk - y_k) = y_k (gy_k - sum_j gy_j y_j).
// With y = log softmax(x):  dy_j/dx_k = delta_jk - softmax_k = delta_jk - e^(y_k), so
//   gx_k = gy_k - e^(y_k) sum_j gy_j.
template <typename T>
void softmax_backward_row(const T* y, const T* gy, T* gx, int64_t n, bool log) {
  if (log) {
    bool has_nan;
    const T m = max4(y, n, has_nan);
    if (has_nan || m == -std::numeric_limits<T>::infinity()) {
      // A NaN row stays NaN; a fully masked row is constant: zero gradient.
      const T v = has_nan ? std::numeric_limits<T>::quiet_NaN() : T(0);
      for (int64_t j = 0; j < n; ++j) gx[j] = v;
      return;
    }
    const T s = sum4(gy, n, [](T g) { return g; });
    _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) gx[j] = gy[j] - exp_nonpos(y[j]) * s;
  } else {
    const T dot = sum4(gy, y, n, [](T g, T p) { return g * p; });
    _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) gx[j] = y[j] * (gy[j] - dot);
  }
}

int64_t row_grain(int64_t n) { return n >= kGrain ? 1 : kGrain / (n ? n : 1); }

}  // namespace

void CpuBackend::softmax(const Tensor& x, Tensor& y, bool log) {
  MM_ASSERT(x.dim() == 2 && x.is_contiguous() && y.shape() == x.shape());
  const int64_t m = x.size(0), n = x.size(1);
  MM_DISPATCH_FLOAT(x.dtype(), "softmax", {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    parallel_for(m, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) softmax_row<T>(px + r * n, py + r * n, n, log);
    });
  });
}

void CpuBackend::softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) {
  MM_ASSERT(y.dim() == 2 && y.is_contiguous() && gy.shape() == y.shape() && gx.shape() == y.shape());
  const int64_t m = y.size(0), n = y.size(1);
  MM_DISPATCH_FLOAT(y.dtype(), "softmax_backward", {
    const T* py = y.data<T>();
    const T* pg = gy.data<T>();
    T* pgx = gx.data<T>();
    parallel_for(m, row_grain(n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) softmax_backward_row<T>(py + r * n, pg + r * n, pgx + r * n, n, log);
    });
  });
}

}  // namespace mm
