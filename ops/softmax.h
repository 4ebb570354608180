// Softmax and log-softmax along one dimension (any dim; the last by default).
//
//   Tensor p = softmax(logits);             // [B, T, V] -> [B, T, V], rows sum to 1
//   Tensor lp = log_softmax(scores, 1);     // along dim 1
//
// Numerically stable (the row maximum is subtracted before exponentiating); -inf entries
// (masked positions) get probability exactly 0. A slice whose entries are all -inf
// (everything masked) gives softmax 0 and log-softmax -inf, with a zero gradient, rather
// than NaN. A slice holding a NaN or +inf gives NaN throughout. For a loss over a
// vocabulary use cross_entropy, which never materialises the probabilities.
#pragma once
#include "runtime/tensor.h"

namespace mm {

// x [..., N, ...] -> same shape; normalised along dim.
Tensor softmax(const Tensor& x, int dim = -1);
// x [..., N, ...] -> same shape; log of softmax, computed without forming softmax first.
Tensor log_softmax(const Tensor& x, int dim = -1);

}  // namespace mm
