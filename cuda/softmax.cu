// Softmax and log-softmax over the rows of x [M, N], forward and backward: one block per
// row, a strided sweep per pass (max, sum of exponentials, write) with block reductions
// in between. Special rows follow ops/cpu/softmax.cpp: a NaN or +inf anywhere makes the
// row NaN; a row of -inf (everything masked) gives zeros (log: -inf) and a zero gradient.
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

template <class T>
__global__ void softmax_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, bool log) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const T* xr = x + int64_t(blockIdx.x) * n;
  T* yr = y + int64_t(blockIdx.x) * n;
  A m = -d_inf<A>();
  int nan = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const A v = ld(xr[j]);
    m = v > m ? v : m;
    nan |= v != v;
  }
  nan = __syncthreads_or(nan);
  m = block_reduce(m, MaxOp{}, -d_inf<A>(), scratch);
  if (nan || m == d_inf<A>() || m == -d_inf<A>()) {
    const A fill = nan || m == d_inf<A>() ? d_nan<A>() : (log ? -d_inf<A>() : A(0));
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = st<T>(fill);
    return;
  }
  A s = A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += d_exp(ld(xr[j]) - m);
  s = block_reduce(s, SumOp{}, A(0), scratch);
  if (log) {
    const A ls = d_log(s);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = st<T>((ld(xr[j]) - m) - ls);
  } else {
    const A r = A(1) / s;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = st<T>(d_exp(ld(xr[j]) - m) * r);
  }
}

// softmax:      gx_k = y_k (gy_k - sum_j gy_j y_j)
// log-softmax:  gx_k = gy_k - e^(y_k) sum_j gy_j
template <class T>
__global__ void softmax_backward_kernel(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                                        int64_t n, bool log) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const int64_t off = int64_t(blockIdx.x) * n;
  const T* yr = y + off;
  const T* gr = gy + off;
  T* gxr = gx + off;
  if (log) {
    A m = -d_inf<A>();
    int nan = 0;
    A s = A(0);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const A v = ld(yr[j]);
      m = v > m ? v : m;
      nan |= v != v;
      s += ld(gr[j]);
    }
    nan = __syncthreads_or(nan);
    m = block_reduce(m, MaxOp{}, -d_inf<A>(), scratch);
    s = block_reduce(s, SumOp{}, A(0), scratch);
    if (nan || m == -d_inf<A>()) {  // NaN stays NaN; a fully masked row is constant
      const A fill = nan ? d_nan<A>() : A(0);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) gxr[j] = st<T>(fill);
      return;
    }
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) gxr[j] = st<T>(ld(gr[j]) - d_exp(ld(yr[j])) * s);
  } else {
    A dot = A(0);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dot += ld(gr[j]) * ld(yr[j]);
    dot = block_reduce(dot, SumOp{}, A(0), scratch);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) gxr[j] = st<T>(ld(yr[j]) * (ld(gr[j]) - dot));
  }
}

}  // namespace

void softmax(DType dt, const void* x, void* y, int64_t m, int64_t n, bool log, cudaStream_t s) {
  if (m == 0 || n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "softmax",
                         MM_LAUNCH(softmax_kernel<T>, dim3(unsigned(m)), dim3(row_threads(n)), 0, s,
                                   static_cast<const T*>(x), static_cast<T*>(y), n, log));
}

void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t m, int64_t n, bool log,
                      cudaStream_t s) {
  if (m == 0 || n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "softmax_backward",
                         MM_LAUNCH(softmax_backward_kernel<T>, dim3(unsigned(m)), dim3(row_threads(n)), 0, s,
                                   static_cast<const T*>(y), static_cast<const T*>(gy), static_cast<T*>(gx), n, log));
}

}  // namespace mm::cuda::kernels
