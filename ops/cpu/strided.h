// Walking several strided views of one shape together, a row (the last dim) at a time,
// in parallel over rows. Used by copy, binary ops and where.
#pragma once
#include <array>

#include "runtime/parallel.h"
#include "runtime/tensor.h"

namespace mm::cpu {

// Calls f(offs, len, inner) for every row: offs[k] = element offset of the row's first
// element in operand k, len = row length, inner[k] = operand k's stride along the row.
template <size_t K, typename F>
void for_each_row(const Shape& shape, const std::array<Shape, K>& strides,
                  const std::array<int64_t, K>& bases, int64_t grain_elems, F&& f) {
  const int nd = shape.n;
  if (shape.numel() == 0) return;
  std::array<int64_t, K> inner{};
  const int64_t len = nd ? shape[nd - 1] : 1;
  for (size_t k = 0; k < K; ++k) inner[k] = nd ? strides[k][nd - 1] : 0;
  const int64_t rows = nd ? shape.numel() / len : 1;
  int64_t grain_rows = grain_elems / (len ? len : 1);
  if (grain_rows < 1) grain_rows = 1;
  parallel_for(rows, grain_rows, [&](int64_t r0, int64_t r1) {
    // Multi-index of row r0, then increment like an odometer.
    int64_t idx[Shape::kMaxDims] = {};
    std::array<int64_t, K> offs = bases;
    int64_t r = r0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = r % shape[d];
      r /= shape[d];
      for (size_t k = 0; k < K; ++k) offs[k] += idx[d] * strides[k][d];
    }
    for (int64_t row = r0; row < r1; ++row) {
      f(offs, len, inner);
      for (int d = nd - 2; d >= 0; --d) {
        for (size_t k = 0; k < K; ++k) offs[k] += strides[k][d];
        if (++idx[d] < shape[d]) break;
        for (size_t k = 0; k < K; ++k) offs[k] -= strides[k][d] * shape[d];
        idx[d] = 0;
      }
    }
  });
}

// Elements per parallel task: below this, threads cost more than they save.
constexpr int64_t kGrain = 32768;

}  // namespace mm::cpu
