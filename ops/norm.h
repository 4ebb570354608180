// Normalisation layers as functional ops: LayerNorm (transformers), GroupNorm and
// BatchNorm (ResNets). Each normalises a set of values to zero mean and unit variance,
// then applies a per-feature scale w and shift b (either may be undefined: 1 and 0).
//
//   Tensor y = layer_norm(x, w, b);                         // x [B, T, C], w, b [C]
//   auto [h, y2] = add_layer_norm(x, attn_out, w, b);       // h = x + attn_out, y2 = LN(h)
//   Tensor z = group_norm(img, 32, w, b);                   // img [B, C, H, W], w, b [C]
//   Tensor u = batch_norm2d(img, w, b, run_mean, run_var, /*training=*/true);
//
// Gradients flow to x, w and b. Statistics use the biased variance (divide by n), as
// PyTorch does; BatchNorm's running variance is the unbiased one.
#pragma once
#include <utility>

#include "runtime/tensor.h"

namespace mm {

// x [..., N]; w, b [N] or undefined -> [..., N]; normalised over the last dim.
Tensor layer_norm(const Tensor& x, const Tensor& w = Tensor(), const Tensor& b = Tensor(), double eps = 1e-5);

// x, residual [..., N] (same shape); w, b [N] -> {h = x + residual, layer_norm(h, w, b)}.
// The residual stream of a pre-/post-LN transformer block: h feeds the next residual add,
// the normalised copy feeds the next sublayer.
std::pair<Tensor, Tensor> add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& w = Tensor(),
                                         const Tensor& b = Tensor(), double eps = 1e-5);

// x [B, C, ...spatial]; groups divides C; w, b [C] or undefined -> x's shape.
// Statistics per sample and group of C/groups channels (groups = 1: over C and space;
// groups = C: InstanceNorm).
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& w = Tensor(), const Tensor& b = Tensor(),
                  double eps = 1e-5);

// x [B, C, ...spatial]; w, b, running_mean, running_var [C] -> x's shape.
// training: normalise with the batch's statistics per channel (over B and space; needs
// more than one value per channel) and update the running statistics in place:
//   running = (1 - momentum) * running + momentum * batch   (variance: unbiased)
// running_mean / running_var may be undefined in training (not tracked).
// eval: normalise with the running statistics (required); nothing is updated.
Tensor batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& running_mean, Tensor& running_var,
                  bool training, double momentum = 0.1, double eps = 1e-5);
// x [B, C, H, W]; otherwise batch_norm.
Tensor batch_norm2d(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& running_mean, Tensor& running_var,
                    bool training, double momentum = 0.1, double eps = 1e-5);

}  // namespace mm
