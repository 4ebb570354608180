// A tiled shared-memory GEMM: C[b] = alpha op(A[b]) op(B[b]) + beta C[b], row-major.
//
// The version to study (and the emulator's matmul); on a GPU the backend calls cuBLAS.
// Each block computes a 64x64 tile of C with 256 threads, each thread a 4x4 grid of
// outputs spaced 16 apart (rows ty + 16 i, columns tx + 16 j): a warp then stores whole
// 64-byte row segments, and its shared-memory reads hit distinct banks or broadcast.
// The K axis advances 16 at a time: the block loads a 64x16 slice of op(A) and a 16x64
// slice of op(B) into shared memory (transposed where needed, so that loads from global
// memory stay coalesced: along k for a row-major A, along m for a transposed one), then
// every thread does 16 x 16 multiply-adds from shared memory.
//
//   traffic per tile step: (64 + 64) x 16 loads for 64 x 64 x 16 multiply-adds: 32 MACs
//   per element loaded from global memory (the naive kernel does 1).
//
// Accumulation is in acc_t<T> (float for bf16/f16). beta == 0 never reads C, which may
// hold garbage (fresh device memory).
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

constexpr int kBM = 64, kBN = 64, kBK = 16, kTX = 16, kTY = 16;  // 256 threads
constexpr int kRM = kBM / kTY, kRN = kBN / kTX;                    // 4 x 4 outputs per thread

template <class T>
__global__ void __launch_bounds__(256) gemm_kernel(bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                                                   acc_t<T> alpha, const T* __restrict__ A, int64_t lda,
                                                   int64_t sa, const T* __restrict__ B, int64_t ldb, int64_t sb,
                                                   acc_t<T> beta, T* __restrict__ C, int64_t ldc, int64_t sc,
                                                   int64_t batch) {
  using Acc = acc_t<T>;
  MM_SHARED_2D(Acc, As, kBK, kBM);  // As[k][m] = op(A)[m0 + m][k0 + k]
  MM_SHARED_2D(Acc, Bs, kBK, kBN);  // Bs[k][n] = op(B)[k0 + k][n0 + n]
  const int tx = int(threadIdx.x), ty = int(threadIdx.y), t = ty * kTX + tx;
  const int64_t m0 = int64_t(blockIdx.y) * kBM, n0 = int64_t(blockIdx.x) * kBN;
  for (int64_t z = blockIdx.z; z < batch; z += gridDim.z) {
    const T* a = A + z * sa;
    const T* b = B + z * sb;
    T* c = C + z * sc;
    Acc acc[kRM][kRN];
    MM_UNROLL
    for (int i = 0; i < kRM; ++i)
      MM_UNROLL
      for (int j = 0; j < kRN; ++j) acc[i][j] = Acc(0);
    for (int64_t k0 = 0; k0 < K; k0 += kBK) {
      // 64 x 16 = 1024 elements of each operand: 4 per thread.
      MM_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int idx = t + 256 * e;
        // op(A)[m][k] = ta ? A[k][m] : A[m][k]; the fast-moving index follows memory.
        const int am = ta ? idx % kBM : idx / kBK, ak = ta ? idx / kBM : idx % kBK;
        const int64_t gm = m0 + am, gk = k0 + ak;
        Acc av = Acc(0);
        if (gm < M && gk < K) av = ld(ta ? a[gk * lda + gm] : a[gm * lda + gk]);
        As[ak][am] = av;
        // op(B)[k][n] = tb ? B[n][k] : B[k][n].
        const int bn = tb ? idx / kBK : idx % kBN, bk = tb ? idx % kBK : idx / kBN;
        const int64_t gn = n0 + bn, gk2 = k0 + bk;
        Acc bv = Acc(0);
        if (gn < N && gk2 < K) bv = ld(tb ? b[gn * ldb + gk2] : b[gk2 * ldb + gn]);
        Bs[bk][bn] = bv;
      }
      __syncthreads();
      MM_UNROLL
      for (int kk = 0; kk < kBK; ++kk) {
        Acc ar[kRM], br[kRN];
        MM_UNROLL
        for (int i = 0; i < kRM; ++i) ar[i] = As[kk][ty + kTY * i];
        MM_UNROLL
        for (int j = 0; j < kRN; ++j) br[j] = Bs[kk][tx + kTX * j];
        MM_UNROLL
        for (int i = 0; i < kRM; ++i)
          MM_UNROLL
          for (int j = 0; j < kRN; ++j) acc[i][j] += ar[i] * br[j];
      }
      __syncthreads();  // the next slice overwrites As and Bs
    }
    MM_UNROLL
    for (int i = 0; i < kRM; ++i) {
      const int64_t gm = m0 + ty + kTY * i;
      if (gm >= M) continue;
      MM_UNROLL
      for (int j = 0; j < kRN; ++j) {
        const int64_t gn = n0 + tx + kTX * j;
        if (gn >= N) continue;
        T* p = c + gm * ldc + gn;
        Acc v = alpha * acc[i][j];
        if (beta != Acc(0)) v += beta * ld(*p);
        *p = st<T>(v);
      }
    }
  }
}

}  // namespace

void gemm_tiled(const GemmArgs& g, cudaStream_t s) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  const int64_t gx = (g.n + kBN - 1) / kBN, gy = (g.m + kBM - 1) / kBM;
  MM_CHECK(gx <= int64_t(cuda_limits::kMaxGridDim[0]) && gy <= int64_t(cuda_limits::kMaxGridDim[1]),
           "gemm: ", g.m, "x", g.n, " output needs a grid of ", gx, "x", gy, " tiles, beyond the launch limits");
  const dim3 grid(unsigned(gx), unsigned(gy), unsigned(g.batch < 65535 ? g.batch : 65535));
  MM_CUDA_DISPATCH_FLOAT(g.dtype, "gemm",
                         MM_LAUNCH(gemm_kernel<T>, grid, dim3(kTX, kTY), 0, s, g.trans_a, g.trans_b, g.m, g.n, g.k,
                                   acc_t<T>(g.alpha), static_cast<const T*>(g.a), g.lda, g.stride_a,
                                   static_cast<const T*>(g.b), g.ldb, g.stride_b, acc_t<T>(g.beta),
                                   static_cast<T*>(g.c), g.ldc, g.stride_c, g.batch));
}

}  // namespace mm::cuda::kernels
