// Helpers shared by the kernels in cuda/*.cu (device code, and the dtype dispatch of the
// host launchers).
//
//  - acc_t<T>: the type a kernel computes in for storage type T. bf16 and f16 are only a
//    storage format: loads widen to float, stores round once (round to nearest even).
//    f32 computes in float, f64 in double (what gradcheck runs).
//  - ld / st: load a T as acc_t<T>, store an acc_t<T> as T.
//  - math overloads for float and double (expf vs exp: one spelling in templates).
//  - warp and block reductions (blockDim.x a multiple of 32; scratch of 33 values in
//    shared memory; two barriers; the scratch may be reused by the next call at once).
//  - the launch shape of a flat loop over n elements, and of one block per row.
//  - MM_CUDA_DISPATCH_FLOAT: the dtype switch of the launchers.
#pragma once
#include <cstdint>
#include <type_traits>

#include "cuda/kernel_api.h"
#include "runtime/dtype.h"
#include "runtime/error.h"

// `#pragma unroll` for nvcc, its GCC spelling for the emulator build.
#if defined(__CUDACC__)
#define MM_UNROLL _Pragma("unroll")
#else
#define MM_UNROLL _Pragma("GCC unroll 16")
#endif

namespace mm::cuda {

template <class T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <> struct AccOf<int32_t> { using type = int32_t; };  // integers compute as themselves
template <> struct AccOf<int64_t> { using type = int64_t; };
template <class T> using acc_t = typename AccOf<T>::type;

template <class T>
__host__ __device__ __forceinline__ acc_t<T> ld(const T& v) {
  if constexpr (std::is_same_v<acc_t<T>, T>) return v;
  else return float(v);
}
template <class T>
__host__ __device__ __forceinline__ T st(acc_t<T> v) {
  return T(v);
}

__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ float d_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double d_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float d_erf(float x) { return erff(x); }
__device__ __forceinline__ double d_erf(double x) { return erf(x); }
__device__ __forceinline__ float d_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double d_pow(double x, double y) { return pow(x, y); }
__device__ __forceinline__ float d_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double d_abs(double x) { return fabs(x); }
// N values of T in one aligned load or store: 16 bytes is one 128-bit memory instruction.
template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
  T v[N];
};
template <class T> constexpr int kPack = int(16 / sizeof(T));
// Whether p may be accessed as Pack<T, kPack<T>> (16-byte aligned).
inline bool pack_aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class A> __device__ __forceinline__ A d_inf() { return A(INFINITY); }
template <class A> __device__ __forceinline__ A d_nan() { return A(NAN); }

struct SumOp {
  template <class A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};
struct MaxOp {  // NaN-ignoring, as fmaxf
  template <class A> __device__ __forceinline__ A operator()(A a, A b) const { return b > a || a != a ? b : a; }
};

template <class A, class Op>
__device__ __forceinline__ A warp_reduce(A v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The reduction of v over the block, returned to every thread.
template <class A, class Op>
__device__ A block_reduce(A v, Op op, A identity, mm_smem_ptr<A> scratch) {
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, nwarps = int(blockDim.x) / 32;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    A t = identity;
    if (lane < nwarps) t = scratch[lane];
    t = warp_reduce(t, op);
    if (lane == 0) scratch[32] = t;
  }
  __syncthreads();
  const A r = scratch[32];
  return r;
}

// Threads per block for one block per row of n elements: a multiple of 32 in [32, 1024],
// about one element per thread for short rows, 256 (or max_threads) for long ones.
inline unsigned row_threads(int64_t n, unsigned max_threads = 256) {
  unsigned t = 32;
  while (t < max_threads && int64_t(t) < n) t *= 2;
  return t;
}

// Grid size for a grid-stride loop over n work items with `threads` per block.
inline unsigned flat_blocks(int64_t n, unsigned threads, int64_t max_blocks = 65535) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return unsigned(b < max_blocks ? b : max_blocks);
}

// A grid-stride loop index: the first item of this thread and the step.
__device__ __forceinline__ int64_t flat_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t flat_step() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace mm::cuda

// Runs the body with T = float, double, __nv_bfloat16 or __half according to dt; other
// dtypes throw naming `op`.
#define MM_CUDA_DISPATCH_FLOAT(dt, op, ...)                                                          \
  do {                                                                                               \
    switch (dt) {                                                                                    \
      case ::mm::DType::f32: { using T = float; __VA_ARGS__; break; }                                \
      case ::mm::DType::f64: { using T = double; __VA_ARGS__; break; }                               \
      case ::mm::DType::bf16: { using T = __nv_bfloat16; __VA_ARGS__; break; }                       \
      case ::mm::DType::f16: { using T = __half; __VA_ARGS__; break; }                               \
      default:                                                                                       \
        throw ::mm::Error(::mm::cat(op, ": the cuda backend supports f32, f64, bf16 and f16, not ",  \
                                    ::mm::dtype_name(dt)));                                          \
    }                                                                                                \
  } while (0)
