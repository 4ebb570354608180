// Softmax and log-softmax over the rows of x [M, N], forward and backward.
//
// Each row is small enough to stay in L1 (N = 768 floats is 3 KiB), so a row is read from
// memory once, front to back (the max), and then swept twice in cache: exp-and-sum,
// normalise. The f32 sweeps are `omp simd` loops over exp_nonpos (vec_math.h), which GCC turns
// into AVX2 code; the kernel then runs at memory speed (one read of x, one write of y).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/row_reduce.h"
#include "ops/cpu/strided.h"
#include "ops/cpu/vec_math.h"

namespace mm {
using namespace cpu;

namespace {


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
  const T m = row_max(x, n, has_nan);
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
    const T m = row_max(y, n, has_nan);
    if (has_nan || m == -std::numeric_limits<T>::infinity()) {
      // A NaN row stays NaN; a fully masked row is constant: zero gradient.
      const T v = has_nan ? std::numeric_limits<T>::quiet_NaN() : T(0);
      for (int64_t j = 0; j < n; ++j) gx[j] = v;
      return;
    }
    const T s = row_sum(gy, n, [](T g) { return g; });
    _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) gx[j] = gy[j] - exp_nonpos(y[j]) * s;
  } else {
    const T dot = row_sum(gy, y, n, [](T g, T p) { return g * p; });
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
