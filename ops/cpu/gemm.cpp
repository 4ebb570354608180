// GEMM through OpenBLAS, which runs single-threaded (runtime/parallel.h): we split the
// work over our pool ourselves: by batch when there are enough matrices, else by rows
// of C (or columns when C is short and wide).
#include <cblas.h>

#include "ops/cpu/cpu_backend.h"
#include "runtime/parallel.h"

namespace mm {

namespace {

template <typename T>
void blas_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
               int64_t ldb, T beta, T* c, int64_t ldc) {
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (sizeof(T) == 4)
    cblas_sgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
  else
    cblas_dgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

template <typename T>
void gemm_t(const GemmArgs& g) {
  const T* A = static_cast<const T*>(g.a);
  const T* B = static_cast<const T*>(g.b);
  T* C = static_cast<T*>(g.c);
  const T alpha = T(g.alpha), beta = T(g.beta);
  const int nt = num_threads();
  const double flops = 2.0 * double(g.m) * double(g.n) * double(g.k) * double(g.batch);
  if (nt == 1 || flops < 2e5) {
    for (int64_t i = 0; i < g.batch; ++i)
      blas_gemm<T>(g.trans_a, g.trans_b, g.m, g.n, g.k, alpha, A + i * g.stride_a, g.lda, B + i * g.stride_b, g.ldb,
                   beta, C + i * g.stride_c, g.ldc);
    return;
  }
  if (g.batch >= nt) {
    parallel_for(g.batch, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i)
        blas_gemm<T>(g.trans_a, g.trans_b, g.m, g.n, g.k, alpha, A + i * g.stride_a, g.lda, B + i * g.stride_b,
                     g.ldb, beta, C + i * g.stride_c, g.ldc);
    });
    return;
  }
  // Few matrices: split each one. Rows of C come from rows of op(A); columns from op(B).
  for (int64_t i = 0; i < g.batch; ++i) {
    const T* a = A + i * g.stride_a;
    const T* b = B + i * g.stride_b;
    T* c = C + i * g.stride_c;
    if (g.m >= g.n) {
      parallel_for(g.m, 16, [&](int64_t r0, int64_t r1) {
        const T* ar = g.trans_a ? a + r0 : a + r0 * g.lda;
        blas_gemm<T>(g.trans_a, g.trans_b, r1 - r0, g.n, g.k, alpha, ar, g.lda, b, g.ldb, beta, c + r0 * g.ldc, g.ldc);
      });
    } else {
      parallel_for(g.n, 16, [&](int64_t c0, int64_t c1) {
        const T* bc = g.trans_b ? b + c0 * g.ldb : b + c0;
        blas_gemm<T>(g.trans_a, g.trans_b, g.m, c1 - c0, g.k, alpha, a, g.lda, bc, g.ldb, beta, c + c0, g.ldc);
      });
    }
  }
}

}  // namespace

void CpuBackend::gemm(const GemmArgs& g) {
  MM_CHECK(g.m < (int64_t(1) << 31) && g.n < (int64_t(1) << 31) && g.k < (int64_t(1) << 31),
           "gemm: dimensions ", g.m, "x", g.n, "x", g.k, " exceed BLAS's 32-bit limit");
  MM_DISPATCH_FLOAT(g.dtype, "gemm", gemm_t<T>(g));
}

}  // namespace mm
