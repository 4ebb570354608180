#include "models/positions.h"

#include <cmath>
#include <cstdlib>

namespace mm {

int64_t token_rel_bucket(int64_t i, int64_t j, int64_t bucket, int64_t max_position) {
  const int64_t rel = i - j, mid = bucket / 2;
  const int64_t a = std::llabs(rel);
  if (a <= mid) return rel + bucket - 1;
  // f32 arithmetic as OFA's torch code computes it, so the tables agree exactly.
  const float l = std::log(float(a) / float(mid)) / float(std::log(double(max_position - 1) / double(mid)));
  const int64_t log_pos = int64_t(std::ceil(l * float(mid - 1))) + mid;
  return (rel > 0 ? log_pos : -log_pos) + bucket - 1;
}

int64_t token_rel_table_size(int64_t bucket) { return 2 * bucket - 1; }

int64_t image_rel_bucket(int64_t row_i, int64_t col_i, int64_t row_j, int64_t col_j, int64_t bucket) {
  return (row_i - row_j + bucket - 1) * (2 * bucket - 1) + (col_i - col_j + bucket - 1);
}

int64_t image_rel_table_size(int64_t bucket) { return (2 * bucket - 1) * (2 * bucket - 1) + 3; }

}  // namespace mm
