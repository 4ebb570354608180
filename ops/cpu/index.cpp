// index_select / index_add (embedding, rows of a table) and gather / scatter_add
// (per-element indices, e.g. picking target log-probabilities, the backward of max).
// Indices are validated before any parallel work: an out-of-range id is a user error.
#include <cstring>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/strided.h"

namespace mm {
using namespace cpu;

namespace {

// Index i of an i64 or i32 tensor.
inline int64_t load_index(const Tensor& idx, int64_t i) {
  return idx.dtype() == DType::i64 ? idx.data<int64_t>()[i] : int64_t(idx.data<int32_t>()[i]);
}

void check_indices(const char* op, const Tensor& idx, int64_t n) {
  MM_CHECK(idx.dtype() == DType::i64 || idx.dtype() == DType::i32, op, ": indices must be i64 or i32, got ",
           dtype_name(idx.dtype()));
  for (int64_t i = 0; i < idx.numel(); ++i) {
    int64_t v = load_index(idx, i);
    MM_CHECK(v >= 0 && v < n, op, ": index ", v, " at position ", i, " is out of range [0, ", n, ")");
  }
}

}  // namespace

void CpuBackend::index_select(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                              Tensor& out) {
  check_indices("index_select", idx, n);
  const int64_t K = idx.numel();
  const size_t es = dtype_size(x.dtype());
  const char* px = static_cast<const char*>(x.raw_data());
  char* po = static_cast<char*>(out.raw_data());
  parallel_for(outer * K, kGrain / (inner ? inner : 1) + 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / K, k = t % K;
      std::memcpy(po + size_t(t * inner) * es, px + size_t((o * n + load_index(idx, k)) * inner) * es,
                  size_t(inner) * es);
    }
  });
}

void CpuBackend::index_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                           Tensor& gx) {
  check_indices("index_add", idx, n);
  const int64_t K = idx.numel();
  MM_DISPATCH_FLOAT(g.dtype(), "index_add", {
    const T* pg = g.data<T>();
    T* px = gx.data<T>();
    // Parallel over the inner axis (columns): every thread owns its columns, so repeated
    // ids accumulate in a fixed order: deterministic, no atomics.
    parallel_for(inner, 64, [&](int64_t c0, int64_t c1) {
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t k = 0; k < K; ++k) {
          T* dst = px + (o * n + load_index(idx, k)) * inner;
          const T* src = pg + (o * K + k) * inner;
          _Pragma("omp simd") for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
        }
    });
  });
}

void CpuBackend::gather(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n, int64_t inner, Tensor& out) {
  check_indices("gather", idx, n);
  const int64_t K = idx.numel() / (outer * inner > 0 ? outer * inner : 1);
  MM_DISPATCH_FLOAT(x.dtype(), "gather", {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    parallel_for(outer * K * inner, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / (K * inner), c = t % inner;
        po[t] = px[(o * n + load_index(idx, t)) * inner + c];
      }
    });
  });
}

void CpuBackend::scatter_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                             Tensor& gx) {
  check_indices("scatter_add", idx, n);
  const int64_t K = idx.numel() / (outer * inner > 0 ? outer * inner : 1);
  MM_DISPATCH_FLOAT(g.dtype(), "scatter_add", {
    const T* pg = g.data<T>();
    T* px = gx.data<T>();
    // Each (o, c) column is owned by one thread: deterministic accumulation order.
    parallel_for(outer * inner, kGrain / (K ? K : 1) + 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / inner, c = t % inner;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t src = (o * K + k) * inner + c;
          px[(o * n + load_index(idx, src)) * inner + c] += pg[src];
        }
      }
    });
  });
}

}  // namespace mm
