// The fused AdamW step: one pass over p, g, m, v (ops/cpu/adamw.cpp's formula):
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//   p = p (1 - lr wd) - (lr / c1) m / (sqrt(v) / sqrt(c2) + eps)
// 16 bytes of state read and 12 written per f32 parameter: memory-bound.
#include <cmath>

#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

template <class T>
__global__ void adamw_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                             int64_t n, acc_t<T> b1, acc_t<T> b2, acc_t<T> decay, acc_t<T> step,
                             acc_t<T> inv_sqrt_c2, acc_t<T> eps) {
  using A = acc_t<T>;
  for (int64_t i = flat_index(); i < n; i += flat_step()) {
    const A gi = ld(g[i]);
    const A mi = b1 * ld(m[i]) + (A(1) - b1) * gi;
    const A vi = b2 * ld(v[i]) + (A(1) - b2) * gi * gi;
    m[i] = st<T>(mi);
    v[i] = st<T>(vi);
    p[i] = st<T>(ld(p[i]) * decay - step * mi / (d_sqrt(vi) * inv_sqrt_c2 + eps));
  }
}

}  // namespace

void adamw(DType dt, void* p, const void* g, void* m, void* v, int64_t n, double lr, double b1, double b2,
           double eps, double wd, double c1, double c2, cudaStream_t s) {
  if (n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "adamw", {
    using A = acc_t<T>;
    MM_LAUNCH(adamw_kernel<T>, dim3(flat_blocks(n, 256)), dim3(256), 0, s, static_cast<T*>(p),
              static_cast<const T*>(g), static_cast<T*>(m), static_cast<T*>(v), n, A(b1), A(b2), A(1.0 - lr * wd),
              A(lr / c1), A(1.0 / std::sqrt(c2)), A(eps));
  });
}

}  // namespace mm::cuda::kernels
