// The backward engine on graph shapes that break naive implementations, gradcheck's
// power to catch a wrong rule, optimizers against hand-computed steps, schedules, clipping
// and the module registry.
#include <cmath>

#include "autograd/module.h"
#include "autograd/optim.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "test_util.h"

using namespace mm;
using autograd::backward;
using autograd::grads;
using autograd::Node;
using V = std::vector<Tensor>;

TEST_SUITE("autograd") {

TEST_CASE("a tensor used twice gets the sum of both gradients") {
  Tensor x = Tensor::from_vector({1.5, -2.0, 3.0}, {3}).set_requires_grad();
  Tensor y = sum(mul(x, x));  // d/dx = 2x
  backward(y);
  CHECK(x.grad().to_vector() == std::vector<double>{3.0, -4.0, 6.0});
}

TEST_CASE("shared subexpressions (diamond) and gradient accumulation across backward calls") {
  Tensor x = Tensor::from_vector({0.5, 2.0}, {2}).set_requires_grad();
  Tensor a = exp(x);
  Tensor y = sum(add(mul(a, a), a));  // d/dx = 2 e^{2x} + e^x
  backward(y);
  auto g = x.grad().to_vector();
  for (int i = 0; i < 2; ++i) {
    double v = i ? 2.0 : 0.5;
    CHECK(g[size_t(i)] == doctest::Approx(2 * std::exp(2 * v) + std::exp(v)).epsilon(1e-6));
  }
  backward(sum(mul(x, 3.0)));  // accumulates on top
  auto g2 = x.grad().to_vector();
  CHECK(g2[0] == doctest::Approx(g[0] + 3).epsilon(1e-6));
}

TEST_CASE("a leaf reached through a node no gradient flows from still gets its gradient") {
  Tensor x = Tensor::from_vector({1.0, 2.0}, {2}).set_requires_grad();
  Tensor w = Tensor::from_vector({3.0, 4.0}, {2});  // no grad
  Tensor unused = mul(x, w);                        // a branch the loss ignores
  Tensor y = sum(mul(x, 2.0));
  backward(y);
  CHECK(x.grad().to_vector() == std::vector<double>{2.0, 2.0});
  CHECK_FALSE(w.grad().defined());
  (void)unused;
}

TEST_CASE("no-grad guard records nothing; backward on it is a clear error") {
  Tensor x = Tensor::from_vector({1.0}, {1}).set_requires_grad();
  Tensor y;
  {
    autograd::NoGradGuard ng;
    y = mul(x, 2.0);
  }
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  test::check_throws_with([&] { backward(sum(y)); }, {"does not require grad"});
  Tensor z = sum(mul(x, 2.0));
  backward(z);
  test::check_throws_with([&] { backward(z); }, {"second time"});
  Tensor x2 = Tensor::from_vector({1.0, 2.0}, {2}).set_requires_grad();
  test::check_throws_with([&] { backward(mul(x2, 2.0)); }, {"one-element", "[2]"});
}

TEST_CASE("detach cuts the graph") {
  Tensor x = Tensor::from_vector({2.0}, {1}).set_requires_grad();
  Tensor y = mul(mul(x, x).detach(), x);  // d/dx = x^2 (detached part is constant)
  backward(sum(y));
  CHECK(x.grad().item() == doctest::Approx(4.0));
}

// An op whose backward is deliberately wrong: gradcheck must say so.
static Tensor wrong_square(const Tensor& x) {
  Tensor out;
  {
    autograd::NoGradGuard ng;
    out = mul(x, x);
  }
  autograd::record(out, "wrong_square", {x}, [x](const Tensor& g, const Node&) {
    return grads{mul(g, x)};  // should be 2 g x
  });
  return out;
}

TEST_CASE("gradcheck fails on a deliberately wrong backward and names the element") {
  Tensor x = test::random({4}, 1, DType::f64);
  auto r = autograd::gradcheck([](const V& t) { return wrong_square(t[0]); }, {x});
  CHECK_FALSE(r.ok);
  CHECK(r.message.find("input 0") != std::string::npos);
  CHECK(r.message.find("analytic") != std::string::npos);
  // And passes on the correct rule.
  auto ok = autograd::gradcheck([](const V& t) { return mul(t[0], t[0]); }, {x});
  CHECK_MESSAGE(ok.ok, ok.message);
  CHECK(ok.checked == 4);
}

TEST_CASE("SGD with momentum, weight decay and nesterov matches hand computation") {
  Tensor p = Tensor::from_vector({1.0, -2.0}, {2}).set_requires_grad();
  SGD opt({{{p}, 0.1}}, {.lr = 0.5, .momentum = 0.9, .dampening = 0.0, .nesterov = false});
  // step 1: g = [2, 3] + 0.1 p = [2.1, 2.8]; buf = g; p -= 0.5 buf
  p.impl()->grad = Tensor::from_vector({2.0, 3.0}, {2}).impl_ptr();
  opt.step();
  auto v1 = p.to_vector();
  CHECK(v1[0] == doctest::Approx(1.0 - 0.5 * 2.1));
  CHECK(v1[1] == doctest::Approx(-2.0 - 0.5 * 2.8));
  // step 2: g = [1, 1] + 0.1 p; buf = 0.9 buf + g; p -= 0.5 buf
  p.impl()->grad = Tensor::from_vector({1.0, 1.0}, {2}).impl_ptr();
  opt.step();
  double g0 = 1 + 0.1 * v1[0], b0 = 0.9 * 2.1 + g0;
  CHECK(p.to_vector()[0] == doctest::Approx(v1[0] - 0.5 * b0));
  CHECK(opt.steps() == 2);
}

TEST_CASE("AdamW matches a hand-computed two-step trajectory (f32 and f64)") {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor p = Tensor::from_vector({1.0, -0.5}, {2}, dt).set_requires_grad();
    const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
    AdamW opt({{{p}, wd}}, {.lr = lr, .beta1 = b1, .beta2 = b2, .eps = eps});
    double pv[2] = {1.0, -0.5}, m[2] = {0, 0}, v[2] = {0, 0};
    const double gs[2][2] = {{0.3, -0.2}, {-0.1, 0.4}};
    for (int t = 1; t <= 2; ++t) {
      p.impl()->grad = Tensor::from_vector({gs[t - 1][0], gs[t - 1][1]}, {2}, dt).impl_ptr();
      opt.step();
      for (int i = 0; i < 2; ++i) {
        double g = gs[t - 1][i];
        pv[i] -= lr * wd * pv[i];
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
        pv[i] -= lr * mh / (std::sqrt(vh) + eps);
      }
    }
    auto got = p.to_vector();
    CAPTURE(dtype_name(dt)); CAPTURE(got[0] - pv[0]);
    CHECK(got[0] == doctest::Approx(pv[0]).epsilon(dt == DType::f32 ? 1e-5 : 1e-12));
    CHECK(got[1] == doctest::Approx(pv[1]).epsilon(dt == DType::f32 ? 1e-5 : 1e-12));
    // State round trip resumes exactly.
    auto st = opt.state();
    CHECK(st.at("step").item() == 2);
    AdamW opt2({{{p}, wd}}, {.lr = lr});
    opt2.load_state(st);
    CHECK(opt2.steps() == 2);
  }
}

TEST_CASE("clip_grad_norm scales to the max norm and reports the norm before") {
  Tensor a = Tensor::from_vector({3.0}, {1}).set_requires_grad();
  Tensor b = Tensor::from_vector({0.0, 0.0}, {2}).set_requires_grad();
  a.impl()->grad = Tensor::from_vector({3.0}, {1}).impl_ptr();
  b.impl()->grad = Tensor::from_vector({4.0, 0.0}, {2}).impl_ptr();
  double n = clip_grad_norm({a, b}, 1.0);
  CHECK(n == doctest::Approx(5.0));
  CHECK(grad_norm({a, b}) == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(a.grad().item() == doctest::Approx(0.6).epsilon(1e-5));
  b.impl()->grad = Tensor::from_vector({NAN, 0.0}, {2}).impl_ptr();
  CHECK(std::isnan(clip_grad_norm({a, b}, 1.0)));
}

TEST_CASE("learning-rate schedules: warmup, polynomial, cosine") {
  LrSchedule s{.kind = LrSchedule::Kind::polynomial, .peak = 1.0, .end_lr = 0.0, .power = 1.0, .warmup = 10, .total = 110};
  CHECK(s.lr(0) == doctest::Approx(0.1));
  CHECK(s.lr(9) == doctest::Approx(1.0));
  CHECK(s.lr(60) == doctest::Approx(0.5));
  CHECK(s.lr(110) == doctest::Approx(0.0));
  s.kind = LrSchedule::Kind::cosine;
  CHECK(s.lr(60) == doctest::Approx(0.5));
  CHECK(s.lr(35) == doctest::Approx(0.5 * (1 + std::cos(M_PI * 0.25))));
  s.kind = LrSchedule::Kind::constant;
  CHECK(s.lr(1000) == doctest::Approx(1.0));
  test::check_throws_with([] { LrSchedule::parse_kind("exp"); }, {"unknown lr schedule 'exp'"});
}

struct TinyLinear : Module {
  Tensor weight, bias, count;
  TinyLinear(int in, int out, uint64_t seed) {
    Generator g(seed);
    weight = randn({out, in}, g, 0, 0.1);
    bias = zeros({out});
    count = zeros({1});
    register_parameter("weight", weight);
    register_parameter("bias", bias);
    register_buffer("count", count);
  }
};
struct TwoLayer : Module {
  TinyLinear l1{3, 4, 1}, l2{4, 2, 2};
  TwoLayer() {
    register_module("l1", l1);
    register_module("l2", l2);
  }
  Tensor forward(const Tensor& x) { return linear(relu(linear(x, l1.weight, l1.bias)), l2.weight, l2.bias); }
};

TEST_CASE("modules: dotted names, state dicts, strict loading with clear errors") {
  TwoLayer m;
  auto names = m.named_parameters();
  REQUIRE(names.size() == 4);
  CHECK(names[0].first == "l1.weight");
  CHECK(names[3].first == "l2.bias");
  CHECK(m.num_parameters() == 3 * 4 + 4 + 4 * 2 + 2);
  CHECK(m.state_dict().count("l1.count"));
  TwoLayer m2;
  m2.load_state_dict(m.state_dict());
  CHECK(m2.l2.weight.to_vector() == m.l2.weight.to_vector());
  auto sd = m.state_dict();
  sd["l1.weight"] = zeros({5, 3});
  test::check_throws_with([&] { m2.load_state_dict(sd); }, {"l1.weight", "[5, 3]", "[4, 3]"});
  sd.erase("l1.weight");
  test::check_throws_with([&] { m2.load_state_dict(sd); }, {"l1.weight", "missing"});
  sd = m.state_dict();
  sd["extra"] = zeros({1});
  test::check_throws_with([&] { m2.load_state_dict(sd); }, {"extra", "does not have"});
  // A training step through the registry lowers the loss.
  Generator g(5);
  Tensor x = randn({8, 3}, g), y = randn({8, 2}, g);
  AdamW opt({{m.parameters(), 0.0}}, {.lr = 0.05});
  double first = 0, last = 0;
  for (int step = 0; step < 30; ++step) {
    Tensor d = sub(m.forward(x), y);
    Tensor loss = mean(mul(d, d));
    if (step == 0) first = loss.item();
    last = loss.item();
    opt.zero_grad();
    backward(loss);
    opt.step();
  }
  CHECK(last < 0.7 * first);
}

}  // TEST_SUITE
