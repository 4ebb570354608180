// Views and rearrangements. Views share storage with their input (no copy); their
// gradients are routed back by the inverse view.
#pragma once
#include <vector>

#include "runtime/tensor.h"

namespace mm {

// Same elements in a new shape (one -1 is inferred); a view when x is contiguous.
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int start_dim = 0, int end_dim = -1);
Tensor transpose(const Tensor& x, int d0, int d1);                // view
Tensor permute(const Tensor& x, const std::vector<int>& dims);    // view
// x[..., start:start+len, ...] along dim: a view.
Tensor narrow(const Tensor& x, int dim, int64_t start, int64_t len);
// A broadcast view (stride 0 on expanded dims); -1 keeps a size.
Tensor expand(const Tensor& x, const Shape& shape);
Tensor unsqueeze(const Tensor& x, int dim);
Tensor squeeze(const Tensor& x, int dim);
// x itself when contiguous, else a contiguous copy.
Tensor contiguous(const Tensor& x);
// Joins tensors of equal shapes except along dim.
Tensor concat(const std::vector<Tensor>& xs, int dim);
// Views of consecutive pieces of the given sizes along dim.
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int dim);

}  // namespace mm
