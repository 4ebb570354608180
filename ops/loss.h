// Fused softmax + cross-entropy: the loss of the whole model in one op.
//
//   CrossEntropyOptions o;
//   o.label_smoothing = 0.1;           // OFA fine-tuning
//   o.allowed = trie_mask;             // closed-set decoding: u8 [V] or [M, V]
//   Tensor loss = cross_entropy(logits /* [B, T, V] */, targets /* [B, T] i64 */, o);  // []
//   autograd::backward(loss);
//
// Per row r with target t, allowed set A (all V tokens when no mask), K = |A|:
//   lse  = log sum_{j in A} exp(x_j)                  (the softmax normaliser over A)
//   nll  = lse - x_t                                  (-log p_t)
//   loss = (1 - eps) * nll + eps * (1/K) sum_{j in A} (lse - x_j)
// which is PyTorch's label smoothing with the uniform part spread over A instead of
// all V classes. Rows whose target is ignore_index give 0 and no gradient.
// The probabilities are never stored: the forward keeps lse [M], the backward
// recomputes p_j = exp(x_j - lse) and writes d loss / d x_j = p_j - q_j, where q is
// the smoothed target distribution ((1-eps) on t plus eps/K on every allowed token).
#pragma once
#include <cstdint>

#include "runtime/tensor.h"

namespace mm {

enum class Reduction : uint8_t {
  none,  // per-row losses, shaped like targets (0 on ignored rows)
  sum,   // their sum
  mean   // their sum / number of non-ignored rows (PyTorch); 0 when every row is ignored
};

struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;  // eps in [0, 1]
  // Undefined, or u8/bool with 1 = allowed: one [V] mask for every row, or one mask per
  // row ([..., V] broadcastable to logits, or [M, V] with M = the number of rows).
  Tensor allowed;
  Reduction reduction = Reduction::mean;
};

// logits [..., V] (f32/f64), targets [...] (i64) -> [] (sum, mean) or [...] (none).
// A target that is neither ignore_index nor an allowed id in [0, V) is an error naming
// the row and the id.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& o = {});

}  // namespace mm
