// index_select / index_add (embedding rows) and gather / scatter_add (per-element ids).
//
// The accumulating kernels give each thread one column (o, c) and add the K source rows
// in order, exactly the CPU's order: deterministic, bit-identical to ops/cpu/index.cpp,
// and free of float atomics. (Many repeats of one id then serialise on one thread: fine
// for embeddings, where K is the number of tokens and the columns fill the GPU.)
//
// An id outside [0, n) is skipped and its position recorded in *bad with atomicMin, so
// the backend can report the first one the way the CPU backend does.
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

constexpr unsigned kThreads = 256;

__device__ __forceinline__ int64_t load_id(const void* idx, bool i64, int64_t k) {
  return i64 ? static_cast<const int64_t*>(idx)[k] : int64_t(static_cast<const int32_t*>(idx)[k]);
}
__device__ __forceinline__ bool valid(int64_t id, int64_t n, int64_t pos, long long* bad) {
  if (id >= 0 && id < n) return true;
  atomicMin(bad, (long long)pos);
  return false;
}

template <class U>
__global__ void index_select_kernel(const U* __restrict__ x, const void* __restrict__ idx, bool i64, int64_t K,
                                    int64_t outer, int64_t n, int64_t inner, U* __restrict__ out, long long* bad) {
  const int64_t total = outer * K * inner;
  for (int64_t t = flat_index(); t < total; t += flat_step()) {
    const int64_t c = t % inner, k = (t / inner) % K, o = t / (inner * K);
    const int64_t id = load_id(idx, i64, k);
    if (valid(id, n, k, bad)) out[t] = x[(o * n + id) * inner + c];
  }
}

template <class T>
__global__ void index_add_kernel(const T* __restrict__ g, const void* __restrict__ idx, bool i64, int64_t K,
                                 int64_t outer, int64_t n, int64_t inner, T* __restrict__ gx, long long* bad) {
  for (int64_t t = flat_index(); t < outer * inner; t += flat_step()) {
    const int64_t o = t / inner, c = t % inner;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t id = load_id(idx, i64, k);
      if (!valid(id, n, k, bad)) continue;
      T* dst = gx + (o * n + id) * inner + c;
      *dst = st<T>(ld(*dst) + ld(g[(o * K + k) * inner + c]));
    }
  }
}

template <class T>
__global__ void gather_kernel(const T* __restrict__ x, const void* __restrict__ idx, bool i64, int64_t K,
                              int64_t outer, int64_t n, int64_t inner, T* __restrict__ out, long long* bad) {
  const int64_t total = outer * K * inner;
  for (int64_t t = flat_index(); t < total; t += flat_step()) {
    const int64_t c = t % inner, o = t / (inner * K);
    const int64_t id = load_id(idx, i64, t);
    if (valid(id, n, t, bad)) out[t] = x[(o * n + id) * inner + c];
  }
}

template <class T>
__global__ void scatter_add_kernel(const T* __restrict__ g, const void* __restrict__ idx, bool i64, int64_t K,
                                   int64_t outer, int64_t n, int64_t inner, T* __restrict__ gx, long long* bad) {
  for (int64_t t = flat_index(); t < outer * inner; t += flat_step()) {
    const int64_t o = t / inner, c = t % inner;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t src = (o * K + k) * inner + c;
      const int64_t id = load_id(idx, i64, src);
      if (!valid(id, n, src, bad)) continue;
      T* dst = gx + (o * n + id) * inner + c;
      *dst = st<T>(ld(*dst) + ld(g[src]));
    }
  }
}

template <class U>
void select_as(const void* x, const void* idx, bool i64, int64_t K, int64_t outer, int64_t n, int64_t inner,
               void* out, long long* bad, cudaStream_t s) {
  MM_LAUNCH(index_select_kernel<U>, dim3(flat_blocks(outer * K * inner, kThreads)), dim3(kThreads), 0, s,
            static_cast<const U*>(x), idx, i64, K, outer, n, inner, static_cast<U*>(out), bad);
}

}  // namespace

void index_select(int elem_size, const void* x, const void* idx, bool idx_i64, int64_t K, int64_t outer, int64_t n,
                  int64_t inner, void* out, long long* bad, cudaStream_t s) {
  if (outer * K * inner == 0) return;
  switch (elem_size) {
    case 1: select_as<uint8_t>(x, idx, idx_i64, K, outer, n, inner, out, bad, s); break;
    case 2: select_as<uint16_t>(x, idx, idx_i64, K, outer, n, inner, out, bad, s); break;
    case 4: select_as<uint32_t>(x, idx, idx_i64, K, outer, n, inner, out, bad, s); break;
    case 8: select_as<uint64_t>(x, idx, idx_i64, K, outer, n, inner, out, bad, s); break;
    default: throw Error(cat("index_select: element size ", elem_size, " is not 1, 2, 4 or 8"));
  }
}

void index_add(DType dt, const void* g, const void* idx, bool idx_i64, int64_t K, int64_t outer, int64_t n,
               int64_t inner, void* gx, long long* bad, cudaStream_t s) {
  if (outer * inner * K == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "index_add",
                         MM_LAUNCH(index_add_kernel<T>, dim3(flat_blocks(outer * inner, kThreads)), dim3(kThreads), 0,
                                   s, static_cast<const T*>(g), idx, idx_i64, K, outer, n, inner, static_cast<T*>(gx),
                                   bad));
}

void gather(DType dt, const void* x, const void* idx, bool idx_i64, int64_t K, int64_t outer, int64_t n,
            int64_t inner, void* out, long long* bad, cudaStream_t s) {
  if (outer * K * inner == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "gather",
                         MM_LAUNCH(gather_kernel<T>, dim3(flat_blocks(outer * K * inner, kThreads)), dim3(kThreads), 0,
                                   s, static_cast<const T*>(x), idx, idx_i64, K, outer, n, inner, static_cast<T*>(out),
                                   bad));
}

void scatter_add(DType dt, const void* g, const void* idx, bool idx_i64, int64_t K, int64_t outer, int64_t n,
                 int64_t inner, void* gx, long long* bad, cudaStream_t s) {
  if (outer * inner * K == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "scatter_add",
                         MM_LAUNCH(scatter_add_kernel<T>, dim3(flat_blocks(outer * inner, kThreads)), dim3(kThreads),
                                   0, s, static_cast<const T*>(g), idx, idx_i64, K, outer, n, inner,
                                   static_cast<T*>(gx), bad));
}

}  // namespace mm::cuda::kernels
