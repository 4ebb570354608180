// Dynamic loss scaling (autograd/loss_scaler.h) on the CPU in f32: exact unscaling, a
// forced overflow that skips the step and backs the scale off until gradients are finite
// again, growth after N good steps, the minimum scale, and checkpoint state.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/loss_scaler.h"
#include "autograd/node.h"
#include "ops/elementwise.h"
#include "ops/reduce.h"
#include "test_util.h"

using namespace mm;
using mm::test::check_throws_with;

namespace {

// loss = sum(p * x): the gradient of p is x, whatever p is.
struct Problem {
  Tensor p = Tensor::from_vector({1.0, 2.0, 3.0}, {3});
  Tensor x;
  explicit Problem(const std::vector<double>& xv) : x(Tensor::from_vector(xv, {3})) { p.set_requires_grad(); }
  Tensor loss() const { return sum(mul(p, x)); }
};

}  // namespace

TEST_SUITE("loss_scaler") {
  TEST_CASE("gradients are unscaled exactly and the step is taken") {
    Problem pr({0.25, -1.5, 3.0});
    LossScaler scaler;  // S = 2^16
    autograd::backward(scaler.scale_loss(pr.loss()));
    CHECK(pr.p.grad().to_vector() == std::vector<double>{0.25 * 65536, -1.5 * 65536, 3.0 * 65536});
    CHECK(scaler.unscale({pr.p}));
    CHECK(pr.p.grad().to_vector() == std::vector<double>{0.25, -1.5, 3.0});
    SGD opt({{{pr.p}, 0.0}}, {.lr = 0.5});
    CHECK(scaler.step(opt, {pr.p}));
    CHECK(pr.p.to_vector() == std::vector<double>{1.0 - 0.125, 2.0 + 0.75, 3.0 - 1.5});
    CHECK(scaler.scale() == 65536.0);
    CHECK(scaler.good_steps() == 1);
    CHECK(scaler.skipped_steps() == 0);
  }

  TEST_CASE("an overflow skips the step and halves the scale until gradients are finite") {
    // S x = 2^120 * 2^10 = 2^130 overflows f32 (max about 2^128): inf gradients. Three
    // halvings bring it to 2^127, which fits.
    Problem pr({1024.0, 1.0, -2.0});
    LossScaler scaler({.init_scale = std::ldexp(1.0, 120)});
    SGD opt({{{pr.p}, 0.0}}, {.lr = 1.0 / 1024});
    int taken_at = -1;
    for (int step = 0; step < 6 && taken_at < 0; ++step) {
      autograd::backward(scaler.scale_loss(pr.loss()));
      if (scaler.step(opt, {pr.p})) taken_at = step;
      opt.zero_grad();
      if (taken_at < 0) CHECK(pr.p.to_vector() == std::vector<double>{1.0, 2.0, 3.0});  // untouched
    }
    CHECK(taken_at == 3);
    CHECK(scaler.skipped_steps() == 3);
    CHECK(scaler.scale() == std::ldexp(1.0, 117));
    CHECK(pr.p.to_vector() == std::vector<double>{0.0, 2.0 - 1.0 / 1024, 3.0 + 2.0 / 1024});
  }

  TEST_CASE("a NaN gradient is skipped; the scale stops at min_scale") {
    Problem pr({1.0, 1.0, 1.0});
    LossScaler scaler({.init_scale = 4.0, .min_scale = 2.0});
    SGD opt({{{pr.p}, 0.0}}, {.lr = 1.0});
    for (int i = 0; i < 3; ++i) {
      pr.p.impl()->grad = Tensor::from_vector({1.0, std::nan(""), 1.0}, {3}).impl_ptr();
      CHECK_FALSE(scaler.step(opt, {pr.p}));
      opt.zero_grad();
    }
    CHECK(scaler.scale() == 2.0);
    CHECK(scaler.skipped_steps() == 3);
    CHECK(pr.p.to_vector() == std::vector<double>{1.0, 2.0, 3.0});
  }

  TEST_CASE("the scale grows after growth_interval good steps in a row; a bad step restarts the count") {
    Problem pr({1.0, 1.0, 1.0});
    LossScaler scaler({.init_scale = 8.0, .growth_interval = 3});
    SGD opt({{{pr.p}, 0.0}}, {.lr = 0.0});
    auto good = [&] {
      autograd::backward(scaler.scale_loss(pr.loss()));
      CHECK(scaler.step(opt, {pr.p}));
      opt.zero_grad();
    };
    good();
    good();
    CHECK(scaler.scale() == 8.0);
    pr.p.impl()->grad = Tensor::from_vector({std::numeric_limits<double>::infinity(), 0.0, 0.0}, {3}).impl_ptr();
    CHECK_FALSE(scaler.step(opt, {pr.p}));
    opt.zero_grad();
    CHECK(scaler.scale() == 4.0);
    CHECK(scaler.good_steps() == 0);
    good();
    good();
    CHECK(scaler.scale() == 4.0);
    good();
    CHECK(scaler.scale() == 8.0);
    CHECK(scaler.good_steps() == 0);
  }

  TEST_CASE("state round trip and bad options") {
    LossScaler a({.init_scale = 1024.0, .growth_interval = 5});
    Problem pr({1.0, 1.0, 1.0});
    SGD opt({{{pr.p}, 0.0}}, {.lr = 0.0});
    autograd::backward(a.scale_loss(pr.loss()));
    a.step(opt, {pr.p});
    LossScaler b;
    b.load_state(a.state());
    CHECK(b.scale() == 1024.0);
    CHECK(b.good_steps() == 1);
    check_throws_with([&] { b.load_state({{"scale", 1.0}}); }, {"LossScaler::load_state", "good_steps"});
    check_throws_with([] { LossScaler s({.growth_factor = 1.0}); }, {"growth_factor", "> 1"});
    check_throws_with([] { LossScaler s({.backoff_factor = 1.5}); }, {"backoff_factor"});
    check_throws_with([] { LossScaler s({.growth_interval = 0}); }, {"growth_interval"});
    check_throws_with([] { LossScaler s({.init_scale = -1.0}); }, {"init_scale"});

    autograd::backward(a.scale_loss(pr.loss()));
    a.unscale({pr.p});
    check_throws_with([&] { a.unscale({pr.p}); }, {"already called"});
  }
}
