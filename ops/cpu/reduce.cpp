// Sum and max over the middle axis of [outer, red, inner]; sum of squares.
#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/strided.h"

namespace mm {
using namespace cpu;

void CpuBackend::reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t red, int64_t inner, Tensor& out,
                        Tensor* argmax) {
  MM_DISPATCH_FLOAT(x.dtype(), "reduce", {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    int64_t* pa = argmax ? argmax->data<int64_t>() : nullptr;
    const int64_t work_per_outer = red * inner;
    int64_t grain = kGrain / (work_per_outer ? work_per_outer : 1);
    if (inner == 1) {
      // Rows are contiguous: accumulate each row (double accumulator for f32 sums of long rows
      // would cost speed; pairwise 8-lane partial sums keep f32 rounding error small).
      parallel_for(outer, grain < 1 ? 1 : grain, [&](int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; ++o) {
          const T* r = px + o * red;
          if (op == ReduceOp::sum) {
            T acc[8] = {};
            int64_t j = 0;
            for (; j + 8 <= red; j += 8)
              for (int l = 0; l < 8; ++l) acc[l] += r[j + l];
            T s = 0;
            for (; j < red; ++j) s += r[j];
            po[o] = s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
          } else {
            T best = r[0];
            int64_t bi = 0;
            for (int64_t j = 1; j < red; ++j)
              if (r[j] > best || (r[j] != r[j] && best == best)) { best = r[j]; bi = j; }
            po[o] = best;
            if (pa) pa[o] = bi;
          }
        }
      });
    } else {
      // Reduce across rows: accumulate whole rows of `inner` at a time (vectorised).
      parallel_for(outer * inner, kGrain / (red ? red : 1) + 1, [&](int64_t b, int64_t e) {
        int64_t i = b;
        while (i < e) {
          const int64_t o = i / inner, c0 = i % inner;
          const int64_t c1 = (o + 1) * inner <= e ? inner : e - o * inner;
          T* dst = po + o * inner;
          const T* src = px + o * red * inner;
          if (op == ReduceOp::sum) {
            for (int64_t c = c0; c < c1; ++c) dst[c] = 0;
            for (int64_t r = 0; r < red; ++r)
              _Pragma("omp simd") for (int64_t c = c0; c < c1; ++c) dst[c] += src[r * inner + c];
          } else {
            for (int64_t c = c0; c < c1; ++c) { dst[c] = src[c]; if (pa) pa[o * inner + c] = 0; }
            for (int64_t r = 1; r < red; ++r)
              for (int64_t c = c0; c < c1; ++c) {
                T v = src[r * inner + c];
                if (v > dst[c] || (v != v && dst[c] == dst[c])) { dst[c] = v; if (pa) pa[o * inner + c] = r; }
              }
          }
          i += c1 - c0;
        }
      });
    }
  });
}

double CpuBackend::sum_squares(const Tensor& x) {
  MM_ASSERT(x.is_contiguous());
  double total = 0;
  MM_DISPATCH_FLOAT(x.dtype(), "sum_squares", {
    const T* p = x.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) total += double(p[i]) * double(p[i]);
  });
  return total;
}

}  // namespace mm
