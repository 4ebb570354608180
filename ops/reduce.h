// Reductions. dims may be negative; an empty dims list reduces over everything.
#pragma once
#include <vector>

#include "runtime/tensor.h"

namespace mm {

Tensor sum(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& dims = {}, bool keepdim = false);
// Maximum along one dim; the gradient goes to the first maximal element.
Tensor max(const Tensor& x, int dim, bool keepdim = false);
// Sums a broadcast gradient back to `shape` (the inverse of expand).
Tensor sum_to(const Tensor& g, const Shape& shape);

}  // namespace mm
