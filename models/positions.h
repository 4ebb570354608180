// OFA's relative position buckets (shared by the encoder, the decoder and Gato's tests).
//
// Text (1-D): distances up to `bucket/2` keep their own bucket; beyond that, log-spaced
// buckets up to max_position - 1, signed; bucket ids are in [0, 2*bucket - 1):
//   rel = i - j, mid = bucket/2
//   |rel| < mid            -> rel
//   otherwise              -> sign(rel) * (ceil(log(|rel|/mid) / log((max-1)/mid) * (mid-1)) + mid)
//   id = that + bucket - 1
// (|rel| == mid also keeps rel: the log formula gives exactly mid there.)
// Image (2-D), patches at (row, col) on a grid of side `bucket` (42):
//   id = (drow + bucket-1) * (2*bucket-1) + (dcol + bucket-1)
// The image table has (2*bucket-1)^2 + 3 rows (OFA reserves 3 for a class token).
#pragma once
#include <cstdint>

namespace mm {

inline constexpr int64_t kTokenBucketSize = 256;     // text relative buckets: 2*256-1 = 511
inline constexpr int64_t kMaxTextPositions = 1024;   // longest text/audio sequence
inline constexpr int64_t kImageBucketSize = 42;      // image grid side: 42x42 patches

int64_t token_rel_bucket(int64_t i, int64_t j, int64_t bucket = kTokenBucketSize,
                         int64_t max_position = kMaxTextPositions);
int64_t token_rel_table_size(int64_t bucket = kTokenBucketSize);  // 2*bucket - 1
int64_t image_rel_bucket(int64_t row_i, int64_t col_i, int64_t row_j, int64_t col_j,
                         int64_t bucket = kImageBucketSize);
int64_t image_rel_table_size(int64_t bucket = kImageBucketSize);  // (2*bucket-1)^2 + 3

}  // namespace mm
