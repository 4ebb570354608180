// The training loss of both models: label-smoothed cross-entropy over the allowed set,
// summed over the scored tokens, with the sample size the trainer normalises by.
//
//   LossOptions o;  o.label_smoothing = 0.1;  o.weight = task.weight;
//   o.allowed = trie_mask;                                   // closed_set tasks
//   LossResult r = sequence_loss(logits, batch.target, batch.loss_mask, o);
//   autograd::backward(r.loss);                              // gradient of the SUM
//   total_loss += r.loss.item(); total_size += r.sample_size;   // OFASys: divide the
//   // accumulated gradients by the summed sample sizes of all tasks of the update
//
// Scored = loss_mask is true and the target is not <pad> (id 0): padding and no_loss
// tokens never count. The per-row loss is ops/loss.h's fused cross_entropy:
//   (1 - eps) * nll + eps * mean_{j in allowed} (lse - x_j)
// with the smoothing spread over the allowed set (the whole vocabulary, or the
// trie-allowed tokens of a closed_set answer).
#pragma once
#include <cstdint>

#include "runtime/tensor.h"

namespace mm {

struct LossOptions {
  double label_smoothing = 0.0;
  double weight = 1.0;  // per-task loss weight (scales the loss, not the sample size)
  // Undefined, or u8/bool with 1 = allowed: one [V] mask for every position or one per
  // position ([B, T, V] or [B*T, V]).
  Tensor allowed;
};

struct LossResult {
  Tensor loss;              // [] weight * sum of the scored tokens' losses (differentiable)
  int64_t sample_size = 0;  // number of scored tokens (ntokens)
};

// logits [B, T, V], target [B, T] i64, loss_mask [B, T] bool (undefined: target != 0).
LossResult sequence_loss(const Tensor& logits, const Tensor& target, const Tensor& loss_mask,
                         const LossOptions& o = {});

}  // namespace mm
