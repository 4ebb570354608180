// The fused AdamW update: one pass over p, g, m, v.
#include <cmath>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/strided.h"

namespace mm {

void CpuBackend::adamw(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps,
                       double wd, double c1, double c2) {
  MM_DISPATCH_FLOAT(p.dtype(), "adamw", {
    T* pp = p.data<T>();
    const T* pg = g.data<T>();
    T* pm = m.data<T>();
    T* pv = v.data<T>();
    const T tb1 = T(b1), tb2 = T(b2), decay = T(1.0 - lr * wd), step = T(lr / c1), inv_sqrt_c2 = T(1.0 / std::sqrt(c2));
    const T teps = T(eps);
    parallel_for(p.numel(), cpu::kGrain, [&](int64_t b, int64_t e) {
      _Pragma("omp simd") for (int64_t i = b; i < e; ++i) {
        const T gi = pg[i];
        const T mi = tb1 * pm[i] + (T(1) - tb1) * gi;
        const T vi = tb2 * pv[i] + (T(1) - tb2) * gi * gi;
        pm[i] = mi;
        pv[i] = vi;
        // p <- p (1 - lr wd) - lr * (m / c1) / (sqrt(v / c2) + eps)
        pp[i] = pp[i] * decay - step * mi / (std::sqrt(vi) * inv_sqrt_c2 + teps);
      }
    });
  });
}

}  // namespace mm
