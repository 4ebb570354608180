// Helpers shared by the op tests: random inputs (never zeros), naive references, and
// closeness checks that say where two tensors differ.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/node.h"
#include "ops/creation.h"
#include "runtime/tensor.h"

namespace mm::test {

// Normal(0, 1) values, nudged away from 0 (some ops have kinks there).
inline Tensor random(const Shape& shape, uint64_t seed, DType dt = DType::f32, double scale = 1.0) {
  Generator g(seed);
  Tensor t = randn(shape, g, 0.0, scale, DType::f64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (std::fabs(p[i]) < 1e-3 * scale) p[i] = (p[i] < 0 ? -1e-3 : 1e-3) * scale;
  return dt == DType::f64 ? t : cast(t, dt);
}

// Fails with the first differing index when |a - b| > atol + rtol |b| somewhere.
inline void check_close(const Tensor& a, const std::vector<double>& b, double atol, double rtol,
                        const std::string& what = "") {
  REQUIRE_MESSAGE(a.numel() == int64_t(b.size()), what, ": ", a.numel(), " elements vs ", b.size());
  std::vector<double> av = a.to_vector();
  for (size_t i = 0; i < b.size(); ++i) {
    const double d = std::fabs(av[i] - b[i]);
    if (!(d <= atol + rtol * std::fabs(b[i]))) {
      FAIL_CHECK(what, ": element ", i, " is ", av[i], ", expected ", b[i], " (|diff| ", d, ")");
      return;
    }
  }
}
inline void check_close(const Tensor& a, const Tensor& b, double atol, double rtol, const std::string& what = "") {
  REQUIRE_MESSAGE(a.shape() == b.shape(), what, ": shape ", a.shape(), " vs ", b.shape());
  check_close(a, b.to_vector(), atol, rtol, what);
}

// Runs gradcheck and reports its message on failure.
inline void check_grad(const autograd::GradFn& f, const std::vector<Tensor>& inputs,
                       autograd::GradcheckOptions opt = {}) {
  auto r = autograd::gradcheck(f, inputs, opt);
  CHECK_MESSAGE(r.ok, r.message);
  CHECK(r.checked > 0);
}

// Expects fn to throw mm::Error whose message contains every fragment.
inline void check_throws_with(const std::function<void()>& fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    FAIL_CHECK("expected an mm::Error mentioning '", fragments.empty() ? "" : fragments[0], "'");
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& f : fragments) CHECK_MESSAGE(msg.find(f) != std::string::npos, "message '", msg, "' lacks '", f, "'");
  }
}

}  // namespace mm::test
