// Sum and max (+ argmax) over the middle axis of x viewed as [outer, red, inner], and the
// sum of squares behind gradient-norm clipping.
//
// Two shapes of work:
//  - inner == 1 (reducing a contiguous last axis): one block per row; each thread walks
//    the row with stride blockDim.x, then a warp-shuffle + shared-memory block reduction.
//  - inner > 1: one thread per output (o, c), looping over red; neighbouring threads read
//    neighbouring columns, so every load instruction of a warp is coalesced.
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

constexpr unsigned kThreads = 256;

// Whether candidate (bv, bi) beats (av, ai) for "the first maximum, a NaN wins": the order
// the CPU's front-to-back scan produces, made independent of the combination order.
template <class A>
__device__ __forceinline__ bool beats(A av, int64_t ai, A bv, int64_t bi) {
  const bool an = av != av, bn = bv != bv;
  if (an || bn) return an && bn ? bi < ai : bn;
  if (bv != av) return bv > av;
  return bi < ai;
}

template <class T>
__global__ void sum_rows_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t red) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const T* row = x + int64_t(blockIdx.x) * red;
  A s = A(0);
  for (int64_t j = threadIdx.x; j < red; j += blockDim.x) s += ld(row[j]);
  s = block_reduce(s, SumOp{}, A(0), scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = st<T>(s);
}

template <class T>
__global__ void max_rows_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t* __restrict__ argmax,
                                int64_t red) {
  using A = acc_t<T>;
  MM_SHARED(A, wv, 32);
  MM_SHARED(int64_t, wi, 32);
  const T* row = x + int64_t(blockIdx.x) * red;
  A v = -d_inf<A>();
  int64_t vi = INT64_MAX;
  for (int64_t j = threadIdx.x; j < red; j += blockDim.x) {
    const A y = ld(row[j]);
    if (beats(v, vi, y, j)) { v = y; vi = j; }
  }
  // Warp: butterfly over (value, index) pairs.
  for (int o = 16; o > 0; o >>= 1) {
    const A ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, vi, o);
    if (beats(v, vi, ov, oi)) { v = ov; vi = oi; }
  }
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  if (lane == 0) { wv[warp] = v; wi[warp] = vi; }
  __syncthreads();
  if (warp == 0) {
    v = -d_inf<A>();
    vi = INT64_MAX;
    if (lane < int(blockDim.x) / 32) { v = wv[lane]; vi = wi[lane]; }
    for (int o = 16; o > 0; o >>= 1) {
      const A ov = __shfl_xor_sync(0xffffffffu, v, o);
      const int64_t oi = __shfl_xor_sync(0xffffffffu, vi, o);
      if (beats(v, vi, ov, oi)) { v = ov; vi = oi; }
    }
    if (lane == 0) {
      out[blockIdx.x] = st<T>(v);
      if (argmax) argmax[blockIdx.x] = vi;
    }
  }
}

template <class T>
__global__ void reduce_cols_kernel(ReduceOp op, const T* __restrict__ x, T* __restrict__ out,
                                   int64_t* __restrict__ argmax, int64_t outer, int64_t red, int64_t inner) {
  using A = acc_t<T>;
  for (int64_t t = flat_index(); t < outer * inner; t += flat_step()) {
    const int64_t o = t / inner, c = t - o * inner;
    const T* src = x + o * red * inner + c;
    if (op == ReduceOp::sum) {
      A s = A(0);
      for (int64_t r = 0; r < red; ++r) s += ld(src[r * inner]);
      out[t] = st<T>(s);
    } else {
      A v = ld(src[0]);
      int64_t vi = 0;
      for (int64_t r = 1; r < red; ++r) {
        const A y = ld(src[r * inner]);
        if (beats(v, vi, y, r)) { v = y; vi = r; }
      }
      out[t] = st<T>(v);
      if (argmax) argmax[t] = vi;
    }
  }
}

// Each block sums x^2 over its grid-stride share into partial[blockIdx.x], in double.
template <class T>
__global__ void sum_squares_kernel(const T* __restrict__ x, int64_t n, double* __restrict__ partial) {
  MM_SHARED(double, scratch, 33);
  double s = 0;
  for (int64_t i = flat_index(); i < n; i += flat_step()) {
    const double v = double(ld(x[i]));
    s += v * v;
  }
  s = block_reduce(s, SumOp{}, 0.0, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

}  // namespace

void reduce(ReduceOp op, DType dt, const void* x, int64_t outer, int64_t red, int64_t inner, void* out,
            int64_t* argmax, cudaStream_t s) {
  if (outer * inner == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "reduce", {
    const T* px = static_cast<const T*>(x);
    T* po = static_cast<T*>(out);
    if (inner == 1 && red > 1) {
      const dim3 grid{unsigned(outer)}, block{row_threads(red)};
      if (op == ReduceOp::sum) MM_LAUNCH(sum_rows_kernel<T>, grid, block, 0, s, px, po, red);
      else MM_LAUNCH(max_rows_kernel<T>, grid, block, 0, s, px, po, argmax, red);
    } else {
      MM_LAUNCH(reduce_cols_kernel<T>, dim3(flat_blocks(outer * inner, kThreads)), dim3(kThreads), 0, s, op, px, po,
                argmax, outer, red, inner);
    }
  });
}

int sum_squares_blocks(int64_t n) { return int(flat_blocks(n, kThreads * 8, 1024)); }

void sum_squares(DType dt, const void* x, int64_t n, double* partial, cudaStream_t s) {
  MM_CUDA_DISPATCH_FLOAT(dt, "sum_squares",
                         MM_LAUNCH(sum_squares_kernel<T>, dim3(unsigned(sum_squares_blocks(n))), dim3(kThreads), 0, s,
                                   static_cast<const T*>(x), n, partial));
}

}  // namespace mm::cuda::kernels
