// Fused softmax + cross-entropy over rows of logits [M, V] (see ops/loss.h for the math).
//
// Forward, per row, one pass over the logits in blocks of kBlock (a block stays in L1):
// the block's maximum over allowed tokens, a rescale of the running sum when the maximum
// grows (the "online softmax" trick), then the block's sum of exp(x - max), plus, for
// label smoothing, the sum of allowed logits and their count. Nothing of size V is
// written. Backward: p = exp(x - lse) from the saved lse, one pass writing g * (p - q).
// Rows are independent: parallel over rows. The f32 loops vectorise (fast_exp, omp simd).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/strided.h"
#include "ops/cpu/vec_math.h"

namespace mm {
using namespace cpu;

namespace {

constexpr int64_t kBlock = 1024;

// The allowed mask of one row, or null for "everything allowed". The op passes masks
// with unit column stride; any other stride is gathered into `buf`.
struct MaskRows {
  const uint8_t* base = nullptr;
  int64_t row_stride = 0, col_stride = 1;

  explicit MaskRows(const Tensor& allowed) {
    if (!allowed.defined()) return;
    base = static_cast<const uint8_t*>(allowed.raw_data());
    row_stride = allowed.stride(0);
    col_stride = allowed.stride(1);
  }
  const uint8_t* row(int64_t r, int64_t V, std::vector<uint8_t>& buf) const {
    if (!base) return nullptr;
    const uint8_t* p = base + r * row_stride;
    if (col_stride == 1) return p;
    buf.resize(size_t(V));
    for (int64_t j = 0; j < V; ++j) buf[size_t(j)] = p[j * col_stride];
    return buf.data();
  }
};

struct RowStats {
  double lse;     // log sum_{j in A} exp(x_j); -inf when A is empty
  double sum_x;   // sum_{j in A} x_j (only when asked)
  int64_t count;  // |A| (only when asked)
};

// One streaming pass over a row: logsumexp over the allowed set, and optionally the sum
// and count of the allowed logits (label smoothing needs both).
template <typename T>
RowStats row_stats(const T* x, const uint8_t* a, int64_t V, bool want_sums) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  T m = kNegInf;
  double s = 0, sx = 0;
  int64_t K = 0;
  for (int64_t b0 = 0; b0 < V; b0 += kBlock) {
    const int64_t n = V - b0 < kBlock ? V - b0 : kBlock;
    const T* xb = x + b0;
    const uint8_t* ab = a ? a + b0 : nullptr;
    T bm = kNegInf;
    if (ab) {
#pragma omp simd reduction(max : bm)
      for (int64_t j = 0; j < n; ++j) {
        const T v = ab[j] ? xb[j] : kNegInf;
        bm = v > bm ? v : bm;  // not std::max: a reference to bm stops vectorisation
      }
    } else {
#pragma omp simd reduction(max : bm)
      for (int64_t j = 0; j < n; ++j) bm = xb[j] > bm ? xb[j] : bm;
    }
    if (bm > m) {  // rescale what was summed relative to the old maximum
      s = m == kNegInf ? 0.0 : s * std::exp(double(m) - double(bm));
      m = bm;
    }
    if (want_sums) {
      T bx = 0;
      int64_t bk = 0;
      if (ab) {
#pragma omp simd reduction(+ : bx, bk)
        for (int64_t j = 0; j < n; ++j) {
          bx += ab[j] ? xb[j] : T(0);
          bk += ab[j] ? 1 : 0;
        }
      } else {
#pragma omp simd reduction(+ : bx)
        for (int64_t j = 0; j < n; ++j) bx += xb[j];
        bk = n;
      }
      sx += double(bx);
      K += bk;
    }
    if (m == kNegInf) continue;  // nothing allowed (or only -inf logits) so far
    T bs = 0;
    if (ab) {
#pragma omp simd reduction(+ : bs)
      for (int64_t j = 0; j < n; ++j) bs += ab[j] ? fast_exp(xb[j] - m) : T(0);
    } else {
#pragma omp simd reduction(+ : bs)
      for (int64_t j = 0; j < n; ++j) bs += fast_exp(xb[j] - m);
    }
    s += double(bs);
  }
  const double lse = m == kNegInf ? -std::numeric_limits<double>::infinity() : double(m) + std::log(s);
  return {lse, sx, K};
}

// Number of allowed tokens in a row (V without a mask).
inline int64_t count_allowed(const uint8_t* a, int64_t V) {
  if (!a) return V;
  int64_t k = 0;
#pragma omp simd reduction(+ : k)
  for (int64_t j = 0; j < V; ++j) k += a[j] ? 1 : 0;
  return k;
}

template <typename T>
void ce_forward(const Tensor& logits, const Tensor& targets, const Tensor& allowed, const CrossEntropyArgs& args,
                Tensor& loss, Tensor& lse) {
  const int64_t M = logits.size(0), V = logits.size(1);
  const T* X = logits.data<T>();
  const int64_t* tg = targets.data<int64_t>();
  T* L = loss.data<T>();
  T* S = lse.data<T>();
  const MaskRows mask(allowed);
  const double eps = args.label_smoothing;
  // Kernels never throw inside the pool: the first bad row is remembered and reported after.
  std::atomic<int64_t> bad_row{M};
  parallel_for(M, std::max<int64_t>(1, kGrain / (V ? V : 1)), [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> buf;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = tg[r];
      if (t == args.ignore_index) { L[r] = 0; S[r] = 0; continue; }
      const uint8_t* a = mask.row(r, V, buf);
      if (t < 0 || t >= V || (a && !a[t])) {
        int64_t cur = bad_row.load();
        while (r < cur && !bad_row.compare_exchange_weak(cur, r)) {}
        L[r] = 0; S[r] = 0;
        continue;
      }
      const T* x = X + r * V;
      const RowStats st = row_stats(x, a, V, eps > 0);
      const double nll = st.lse - double(x[t]);
      double l = nll;
      // Only touched when smoothing: eps * (inf) from a -inf logit would be 0 * inf = NaN.
      if (eps > 0) l = (1 - eps) * nll + eps * (st.lse - st.sum_x / double(st.count));
      L[r] = T(l);
      S[r] = T(st.lse);
    }
  });
  const int64_t r = bad_row.load();
  if (r < M) {
    const int64_t t = tg[r];
    MM_CHECK(t >= 0 && t < V, "cross_entropy: row ", r, ": target id ", t, " is out of range [0, ", V,
             ") (and is not ignore_index ", args.ignore_index, ")");
    std::vector<uint8_t> buf;
    throw Error(cat("cross_entropy: row ", r, ": target id ", t, " is not in the allowed set (",
                    count_allowed(mask.row(r, V, buf), V), " of ", V, " tokens allowed in that row)"));
  }
}

template <typename T>
void ce_backward(const Tensor& logits, const Tensor& targets, const Tensor& allowed, const CrossEntropyArgs& args,
                 const Tensor& lse, const Tensor& gloss, Tensor& glogits) {
  const int64_t M = logits.size(0), V = logits.size(1);
  const T* X = logits.data<T>();
  const int64_t* tg = targets.data<int64_t>();
  const T* S = lse.data<T>();
  const T* G = gloss.data<T>();
  T* GX = glogits.data<T>();
  const MaskRows mask(allowed);
  const double eps = args.label_smoothing;
  parallel_for(M, std::max<int64_t>(1, kGrain / (V ? V : 1)), [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> buf;
    for (int64_t r = r0; r < r1; ++r) {
      T* gx = GX + r * V;
      const int64_t t = tg[r];
      if (t == args.ignore_index || t < 0 || t >= V) {  // invalid ids never pass the forward
        for (int64_t j = 0; j < V; ++j) gx[j] = T(0);
        continue;
      }
      const T* x = X + r * V;
      const uint8_t* a = mask.row(r, V, buf);
      const T g = G[r], m = S[r];
      // q = (1 - eps) one_hot(t) + eps / K on allowed tokens; the one-hot part is applied after.
      const T qu = eps > 0 ? T(eps / double(count_allowed(a, V))) : T(0);
      if (a) {
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) gx[j] = a[j] ? g * (fast_exp(x[j] - m) - qu) : T(0);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < V; ++j) gx[j] = g * (fast_exp(x[j] - m) - qu);
      }
      gx[t] -= g * T(1 - eps);
    }
  });
}

}  // namespace

void CpuBackend::cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& allowed,
                               const CrossEntropyArgs& a, Tensor& loss, Tensor& lse) {
  MM_DISPATCH_FLOAT(logits.dtype(), "cross_entropy", ce_forward<T>(logits, targets, allowed, a, loss, lse));
}

void CpuBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& allowed,
                                        const CrossEntropyArgs& a, const Tensor& lse, const Tensor& gloss,
                                        Tensor& glogits) {
  MM_DISPATCH_FLOAT(logits.dtype(), "cross_entropy_backward",
                    ce_backward<T>(logits, targets, allowed, a, lse, gloss, glogits));
}

}  // namespace mm
