// Fused softmax cross-entropy over rows of logits [M, V] (the math: ops/loss.h).
//
// Forward, one block per row, one read of the row: each thread keeps a running maximum m
// and a sum s of exp(x - m) over its share of the allowed tokens (the "online softmax":
// when a larger x arrives, s is rescaled by exp(m_old - m_new)); the block then merges
// the (m, s) pairs, lse = m + log s. With label smoothing it also sums the allowed logits
// and counts them. Nothing of size V is written: loss [M] and lse [M] only.
// Backward, one block per row: p = exp(x - lse) from the saved lse, and
//   glogits = gloss * (p - q),   q = (1 - eps) onehot(t) + eps / K on the K allowed tokens.
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

// Merges (m2, s2) into (m, s): both sums are relative to their own maxima.
template <class A>
__device__ __forceinline__ void lse_merge(A& m, A& s, A m2, A s2) {
  const A mm = m > m2 ? m : m2;
  if (mm == -d_inf<A>()) return;  // both empty
  s = (m == -d_inf<A>() ? A(0) : s * d_exp(m - mm)) + (m2 == -d_inf<A>() ? A(0) : s2 * d_exp(m2 - mm));
  m = mm;
}

// The merged (m, s) of the block, returned to every thread.
template <class A>
__device__ void block_lse(A& m, A& s, mm_smem_ptr<A> sm, mm_smem_ptr<A> ss) {
  for (int o = 16; o > 0; o >>= 1) {
    const A m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    lse_merge(m, s, m2, s2);
  }
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  if (lane == 0) { sm[warp] = m; ss[warp] = s; }
  __syncthreads();
  if (warp == 0) {
    m = -d_inf<A>();
    s = A(0);
    if (lane < int(blockDim.x) / 32) { m = sm[lane]; s = ss[lane]; }
    for (int o = 16; o > 0; o >>= 1) {
      const A m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
      lse_merge(m, s, m2, s2);
    }
    if (lane == 0) { sm[32] = m; ss[32] = s; }
  }
  __syncthreads();
  m = sm[32];
  s = ss[32];
}

template <class T>
__global__ void cross_entropy_kernel(const T* __restrict__ logits, const int64_t* __restrict__ targets,
                                     const uint8_t* __restrict__ allowed, int64_t a_row, int64_t a_col,
                                     int64_t ignore_index, acc_t<T> eps, T* __restrict__ loss, T* __restrict__ lse,
                                     int64_t V, long long* bad) {
  using A = acc_t<T>;
  MM_SHARED(A, sm, 33);
  MM_SHARED(A, ss, 33);
  MM_SHARED(long long, scount, 33);
  const int64_t r = blockIdx.x, t = targets[r];
  const T* x = logits + r * V;
  const uint8_t* a = allowed ? allowed + r * a_row : nullptr;
  if (t == ignore_index || t < 0 || t >= V || (a && !a[t * a_col])) {
    if (threadIdx.x == 0) {
      loss[r] = st<T>(A(0));
      lse[r] = st<T>(A(0));
      if (t != ignore_index) atomicMin(bad, (long long)r);
    }
    return;
  }
  A m = -d_inf<A>(), s = A(0), sx = A(0);
  long long k = 0;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    if (a && !a[j * a_col]) continue;
    const A v = ld(x[j]);
    sx += v;
    ++k;
    if (v == -d_inf<A>()) continue;  // contributes exp(-inf) = 0
    if (v > m) {
      s = (m == -d_inf<A>() ? A(0) : s * d_exp(m - v)) + A(1);
      m = v;
    } else {
      s += d_exp(v - m);
    }
  }
  block_lse(m, s, sm, ss);
  const A l_se = m == -d_inf<A>() ? -d_inf<A>() : m + d_log(s);
  A l = l_se - ld(x[t]);
  if (eps > A(0)) {
    sx = block_reduce(sx, SumOp{}, A(0), sm);
    k = block_reduce(k, SumOp{}, 0ll, scount);
    l = (A(1) - eps) * l + eps * (l_se - sx / A(k));
  }
  if (threadIdx.x == 0) {
    loss[r] = st<T>(l);
    lse[r] = st<T>(l_se);
  }
}

template <class T>
__global__ void cross_entropy_backward_kernel(const T* __restrict__ logits, const int64_t* __restrict__ targets,
                                              const uint8_t* __restrict__ allowed, int64_t a_row, int64_t a_col,
                                              int64_t ignore_index, acc_t<T> eps, const T* __restrict__ lse,
                                              const T* __restrict__ gloss, T* __restrict__ glogits, int64_t V) {
  using A = acc_t<T>;
  MM_SHARED(long long, scount, 33);
  const int64_t r = blockIdx.x, t = targets[r];
  const T* x = logits + r * V;
  T* gx = glogits + r * V;
  if (t == ignore_index || t < 0 || t >= V) {  // invalid ids never pass the forward
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) gx[j] = st<T>(A(0));
    return;
  }
  const uint8_t* a = allowed ? allowed + r * a_row : nullptr;
  A qu = A(0);
  if (eps > A(0)) {
    long long k = V;
    if (a) {
      k = 0;
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) k += a[j * a_col] ? 1 : 0;
      k = block_reduce(k, SumOp{}, 0ll, scount);
    }
    qu = eps / A(k);
  }
  const A g = ld(gloss[r]), m = ld(lse[r]), gt = g * (A(1) - eps);
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    A v = A(0);
    if (!a || a[j * a_col]) v = g * (d_exp(ld(x[j]) - m) - qu);
    if (j == t) v -= gt;
    gx[j] = st<T>(v);
  }
}

}  // namespace

void cross_entropy(DType dt, const void* logits, const int64_t* targets, const uint8_t* allowed, int64_t a_row,
                   int64_t a_col, int64_t ignore_index, double smoothing, void* loss, void* lse, int64_t m, int64_t v,
                   long long* bad, cudaStream_t s) {
  if (m == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "cross_entropy",
                         MM_LAUNCH(cross_entropy_kernel<T>, dim3(unsigned(m)), dim3(row_threads(v, 512)), 0, s,
                                   static_cast<const T*>(logits), targets, allowed, a_row, a_col, ignore_index,
                                   acc_t<T>(smoothing), static_cast<T*>(loss), static_cast<T*>(lse), v, bad));
}

void cross_entropy_backward(DType dt, const void* logits, const int64_t* targets, const uint8_t* allowed,
                            int64_t a_row, int64_t a_col, int64_t ignore_index, double smoothing, const void* lse,
                            const void* gloss, void* glogits, int64_t m, int64_t v, cudaStream_t s) {
  if (m == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "cross_entropy_backward",
                         MM_LAUNCH(cross_entropy_backward_kernel<T>, dim3(unsigned(m)), dim3(row_threads(v, 512)), 0,
                                   s, static_cast<const T*>(logits), targets, allowed, a_row, a_col, ignore_index,
                                   acc_t<T>(smoothing), static_cast<const T*>(lse), static_cast<const T*>(gloss),
                                   static_cast<T*>(glogits), v));
}

}  // namespace mm::cuda::kernels
