// Attention on the CPU: one (batch, head) pair per task, in parallel over B*H. Within a
// task the two products of the forward (and four of the backward) go to a single-threaded
// BLAS call each (our pool owns the cores; see runtime/parallel.h), and the softmax with
// bias and masks runs in between on the [Tq, Tk] score matrix, written in place into
// `probs`, which the op keeps for the backward.
//
// Shapes: q [B, H, Tq, D], k, v [B, H, Tk, D], probs [B, H, Tq, Tk], all contiguous; the
// bias is a strided view broadcast to [B, H, Tq, Tk]; key_pad u8 [B, Tk] (1 = pad).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/vec_math.h"
#include "runtime/parallel.h"

namespace mm {
using namespace cpu;

namespace {

// C [m, n] = alpha * op(A) @ op(B), row-major, one thread. k == 0 gives zeros (BLAS
// would reject the leading dimension 0 of an empty operand).
template <typename T>
void gemm1(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
           int64_t ldb, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
    return;
  }
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (sizeof(T) == 4)
    cblas_sgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), 0.0f, c, int(ldc));
  else
    cblas_dgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), 0.0, c, int(ldc));
}

// Softmax of one score row s[0, Tk) in place. Keys at j >= lim (causal) or with pad[j]
// set are masked; so is a -inf score (a bias used as a mask). A row with nothing visible
// becomes zeros.
template <typename T>
void masked_softmax_row(T* s, int64_t Tk, int64_t lim, const uint8_t* pad) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  T mx = kNegInf;
  if (pad) {
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < lim; ++j) {
      const T x = pad[j] ? kNegInf : s[j];
      s[j] = x;
      mx = x > mx ? x : mx;  // not std::max: a reference to mx stops vectorisation
    }
  } else {
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < lim; ++j) mx = s[j] > mx ? s[j] : mx;
  }
  std::fill(s + lim, s + Tk, T(0));
  if (mx == kNegInf) {  // no visible key: zeros, not 0/0
    std::fill(s, s + lim, T(0));
    return;
  }
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < lim; ++j) {
    // fast_exp clamps its argument, so a masked (-inf) score must be zeroed explicitly.
    const T e = s[j] == kNegInf ? T(0) : fast_exp(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  const T inv = T(1) / sum;
#pragma omp simd
  for (int64_t j = 0; j < lim; ++j) s[j] *= inv;
}

template <typename T>
void attention_fwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, const Tensor& key_pad,
                   bool causal, double scale, Tensor& out, Tensor& probs) {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2);
  const T* Q = q.data<T>();
  const T* K = k.data<T>();
  const T* Vv = v.data<T>();
  T* O = out.data<T>();
  T* P = probs.data<T>();
  const uint8_t* pad = key_pad.defined() ? static_cast<const uint8_t*>(key_pad.raw_data()) : nullptr;
  const T* bb = bias.defined() ? bias.data<T>() : nullptr;
  const int64_t sb0 = bb ? bias.stride(0) : 0, sb1 = bb ? bias.stride(1) : 0;
  const int64_t sb2 = bb ? bias.stride(2) : 0, sb3 = bb ? bias.stride(3) : 0;
  parallel_for(B * H, 1, [&](int64_t z0, int64_t z1) {
    for (int64_t z = z0; z < z1; ++z) {
      const int64_t b = z / H, h = z % H;
      const T* Qz = Q + z * Tq * D;
      const T* Kz = K + z * Tk * D;
      const T* Vz = Vv + z * Tk * D;
      T* Pz = P + z * Tq * Tk;
      // S = scale * Q K^T  [Tq, Tk]
      gemm1<T>(false, true, Tq, Tk, D, T(scale), Qz, D, Kz, D, Pz, Tk);
      const uint8_t* padb = pad ? pad + b * Tk : nullptr;
      for (int64_t i = 0; i < Tq; ++i) {
        T* s = Pz + i * Tk;
        if (bb) {
          const T* br = bb + b * sb0 + h * sb1 + i * sb2;
          if (sb3 == 1) {
#pragma omp simd
            for (int64_t j = 0; j < Tk; ++j) s[j] += br[j];
          } else {
            for (int64_t j = 0; j < Tk; ++j) s[j] += br[j * sb3];
          }
        }
        // Causal: query i sees keys j <= i + (Tk - Tq).
        const int64_t lim = causal ? std::clamp<int64_t>(i + (Tk - Tq) + 1, 0, Tk) : Tk;
        masked_softmax_row(s, Tk, lim, padb);
      }
      // O = P V  [Tq, D]
      gemm1<T>(false, false, Tq, D, Tk, T(1), Pz, Tk, Vz, D, O + z * Tq * D, D);
    }
  });
}

template <typename T>
void attention_bwd(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs, const Tensor& gout,
                   double scale, Tensor& gq, Tensor& gk, Tensor& gv, Tensor* gbias) {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2);
  const T* Q = q.data<T>();
  const T* K = k.data<T>();
  const T* Vv = v.data<T>();
  const T* P = probs.data<T>();
  const T* dO = gout.data<T>();
  T* dQ = gq.data<T>();
  T* dK = gk.data<T>();
  T* dV = gv.data<T>();
  T* dB = gbias ? gbias->data<T>() : nullptr;
  const T sc = T(scale);
  parallel_for(B * H, 1, [&](int64_t z0, int64_t z1) {
    std::vector<T> scratch;  // dS when the caller wants no dbias (else dS is written there)
    if (!dB) scratch.resize(size_t(Tq * Tk));
    for (int64_t z = z0; z < z1; ++z) {
      const T* Qz = Q + z * Tq * D;
      const T* Kz = K + z * Tk * D;
      const T* Vz = Vv + z * Tk * D;
      const T* Pz = P + z * Tq * Tk;
      const T* dOz = dO + z * Tq * D;
      T* dS = dB ? dB + z * Tq * Tk : scratch.data();
      // dV = P^T dO  [Tk, D]
      gemm1<T>(true, false, Tk, D, Tq, T(1), Pz, Tk, dOz, D, dV + z * Tk * D, D);
      // dP = dO V^T  [Tq, Tk]
      gemm1<T>(false, true, Tq, Tk, D, T(1), dOz, D, Vz, D, dS, Tk);
      // dS = P * (dP - rowsum(dP * P)): the softmax Jacobian applied row by row.
      for (int64_t i = 0; i < Tq; ++i) {
        const T* p = Pz + i * Tk;
        T* d = dS + i * Tk;
        T dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < Tk; ++j) dot += p[j] * d[j];
#pragma omp simd
        for (int64_t j = 0; j < Tk; ++j) d[j] = p[j] * (d[j] - dot);
      }
      // dQ = scale dS K  [Tq, D];  dK = scale dS^T Q  [Tk, D]
      gemm1<T>(false, false, Tq, D, Tk, sc, dS, Tk, Kz, D, dQ + z * Tq * D, D);
      gemm1<T>(true, false, Tk, D, Tq, sc, dS, Tk, Qz, D, dK + z * Tk * D, D);
    }
  });
}

}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                           const Tensor& key_pad, bool causal, double scale, Tensor& out, Tensor& probs) {
  MM_CHECK(q.size(2) < (int64_t(1) << 31) && k.size(2) < (int64_t(1) << 31) && q.size(3) < (int64_t(1) << 31),
           "attention: sizes exceed BLAS's 32-bit limit");
  MM_DISPATCH_FLOAT(q.dtype(), "attention", attention_fwd<T>(q, k, v, bias, key_pad, causal, scale, out, probs));
}

void CpuBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                                    const Tensor& gout, double scale, Tensor& gq, Tensor& gk, Tensor& gv,
                                    Tensor* gbias) {
  MM_DISPATCH_FLOAT(q.dtype(), "attention_backward",
                    attention_bwd<T>(q, k, v, probs, gout, scale, gq, gk, gv, gbias));
}

}  // namespace mm
