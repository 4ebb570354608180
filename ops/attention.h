// Scaled dot-product attention with an additive bias and masks, fused in one op.
//
//   AttentionOptions o;
//   o.bias = rel_bias;              // [1, H, Tq, Tk], learned: it receives a gradient
//   o.key_padding_mask = pad;       // u8/bool [B, Tk], 1 = padding
//   o.causal = true;                // decoder self-attention
//   Tensor y = attention(q, k, v, o);  // q [B, H, Tq, D], k, v [B, H, Tk, D] -> [B, H, Tq, D]
//
// Per batch b and head h:
//   S = scale * Q K^T + bias                          [Tq, Tk]
//   S_ij = -inf where key j is padding, or (causal) j > i + (Tk - Tq)
//   P = softmax over j of S (a row with no visible key is all zeros, never NaN)
//   O = P V                                            [Tq, D]
// The causal offset Tk - Tq aligns the last query with the last key, so decoding one new
// query against a cache of Tk keys sees them all.
// P [B, H, Tq, Tk] is kept for the backward (no recomputation on the CPU).
#pragma once
#include <optional>

#include "runtime/tensor.h"

namespace mm {

struct AttentionOptions {
  Tensor bias;              // undefined, or any shape broadcastable to [B, H, Tq, Tk]
  Tensor key_padding_mask;  // undefined, or u8/bool [B, Tk]: 1 = padding, never attended
  bool causal = false;      // mask keys j > i + (Tk - Tq)
  std::optional<double> scale;  // default 1 / sqrt(D)
};

// q [B, H, Tq, D], k, v [B, H, Tk, D] -> [B, H, Tq, D]. Any strides (e.g. a permuted
// [B, T, H, D] projection): they are made contiguous here.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o = {});

}  // namespace mm
