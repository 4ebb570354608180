// Argument checks and shape helpers shared by the ops. Every message names the op.
#pragma once
#include <string_view>
#include <vector>

#include "ops/backend.h"
#include "runtime/tensor.h"

namespace mm {

void check_defined(std::string_view op, const Tensor& t, std::string_view arg);
void check_same_device(std::string_view op, const Tensor& a, const Tensor& b);
void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b);
void check_floating(std::string_view op, const Tensor& t);
void check_dim(std::string_view op, const Tensor& t, int dim, std::string_view what);
// The broadcast of two shapes (numpy rules); throws naming the op and both shapes.
Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b);
// Resolves one -1 in a target shape against numel; throws on mismatch.
Shape infer_shape(std::string_view op, const Shape& target, int64_t numel);
// Product of shape[b:e].
int64_t prod(const Shape& s, int b, int e);

inline Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

}  // namespace mm
