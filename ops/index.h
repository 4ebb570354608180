// Indexing ops: rows of a table by id (embedding, index_select) and per-element picks
// (gather, torch.gather semantics). Gradients flow to the floating input only; indices
// (i64 or i32) are data. Backward accumulates deterministically (no atomics on the CPU),
// so repeated ids sum their gradients in a fixed order.
//
//   Tensor e = embedding(wte, ids);            // [V, C], [B, T] -> [B, T, C]
//   Tensor lp = gather(logp, -1, targets);     // [M, V], [M, 1] -> [M, 1]
//
// An out-of-range index is a user error naming the op, the index, the valid range and
// the shapes.
#pragma once
#include "runtime/tensor.h"

namespace mm {

// weight [V, C], ids [...] (i64/i32, values in [0, V)) -> [..., C].
Tensor embedding(const Tensor& weight, const Tensor& ids);
// x [..., N, ...] (N at dim), idx [K] (values in [0, N)) -> [..., K, ...].
Tensor index_select(const Tensor& x, int dim, const Tensor& idx);
// x [d0, .., N, .., dn], idx of the same rank with idx.size(d) <= x.size(d) for d != dim
// -> out of idx's shape: out[.., k, ..] = x[.., idx[.., k, ..], ..] (torch.gather).
Tensor gather(const Tensor& x, int dim, const Tensor& idx);

}  // namespace mm
