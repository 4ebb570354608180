// Gradient checking by central finite differences, the test every op's backward passes.
//
//   auto r = gradcheck([](const std::vector<Tensor>& x) { return layer_norm(x[0], x[1], x[2]); },
//                      {x, w, b});
//   CHECK_MESSAGE(r.ok, r.message);
//
// Floating inputs are copied to f64 (so differences are not drowned by f32 rounding) and
// the function is run on the copies; non-floating inputs (indices, masks) pass through.
// The output is projected on a fixed random vector v, L = sum(f(x) * v), so one backward
// gives the full vector-Jacobian product that is compared with (L(x+e) - L(x-e)) / 2e
// element by element.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace mm::autograd {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-4;
  uint64_t seed = 1234;
  // Check only these inputs (empty: every floating input).
  std::vector<int> wrt;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the first mismatch: input, element, analytic vs numeric
  double max_abs_error = 0;
  int64_t checked = 0;  // elements compared
};

using GradFn = std::function<Tensor(const std::vector<Tensor>&)>;
GradcheckResult gradcheck(const GradFn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {});

}  // namespace mm::autograd
