// Elementwise, reductions, views and matmul: naive references and gradchecks.
#include <cmath>

#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "test_util.h"

using namespace mm;
using mm::test::check_close;
using mm::test::check_grad;
using mm::test::random;
using V = std::vector<Tensor>;

TEST_SUITE("ops") {

TEST_CASE("binary ops broadcast like numpy, including non-contiguous views") {
  Tensor a = random({2, 3, 4}, 1), b = random({3, 1}, 2);
  auto av = a.to_vector(), bv = b.to_vector();
  std::vector<double> ref_add, ref_mul, ref_div, ref_max;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        double x = av[size_t(i * 12 + j * 4 + k)], y = bv[size_t(j)];
        ref_add.push_back(x + y);
        ref_mul.push_back(x * y);
        ref_div.push_back(x / y);
        ref_max.push_back(std::max(x, y));
      }
  check_close(add(a, b), ref_add, 1e-6, 1e-6, "add");
  check_close(mul(a, b), ref_mul, 1e-6, 1e-6, "mul");
  check_close(div(a, b), ref_div, 1e-5, 1e-5, "div");
  check_close(maximum(a, b), ref_max, 0, 0, "maximum");
  std::vector<double> ref_sub;
  for (int i = 0; i < 24; ++i) ref_sub.push_back(bv[size_t((i / 4) % 3)] - av[size_t(i)]);
  check_close(sub(b, a), ref_sub, 1e-6, 1e-6, "sub (broadcast on the left)");
  // A transposed (non-contiguous) operand.
  Tensor m = random({4, 3}, 3);
  Tensor mt = transpose(m, 0, 1);  // [3, 4] view
  CHECK_FALSE(mt.is_contiguous());
  Tensor s = add(mt, random({4}, 4));
  auto mv = m.to_vector();
  Tensor r4 = random({4}, 4);
  auto rv = r4.to_vector();
  std::vector<double> ref;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) ref.push_back(mv[size_t(j * 3 + i)] + rv[size_t(j)]);
  check_close(s, ref, 1e-6, 1e-6, "transposed add");
}

TEST_CASE("binary ops: gradients fold broadcast dims") {
  Tensor a = random({2, 3, 4}, 5, DType::f64), b = random({3, 1}, 6, DType::f64);
  check_grad([](const V& x) { return add(x[0], x[1]); }, {a, b});
  check_grad([](const V& x) { return sub(x[0], x[1]); }, {a, b});
  check_grad([](const V& x) { return mul(x[0], x[1]); }, {a, b});
  check_grad([](const V& x) { return div(x[0], x[1]); }, {a, b});
  check_grad([](const V& x) { return maximum(x[0], x[1]); }, {a, b});
  check_grad([](const V& x) { return minimum(x[0], x[1]); }, {a, b});
}

TEST_CASE("unary ops match std:: references and gradcheck") {
  Tensor x = random({5, 7}, 7);
  Tensor pos = abs(x) + 0.1;
  auto xv = x.to_vector(), pv = pos.to_vector();
  struct U { const char* name; std::function<Tensor(const Tensor&)> op; std::function<double(double)> ref; bool positive; };
  const double k = std::sqrt(2.0 / M_PI);
  std::vector<U> us = {
      {"neg", [](const Tensor& t) { return neg(t); }, [](double v) { return -v; }, false},
      {"exp", [](const Tensor& t) { return exp(t); }, [](double v) { return std::exp(v); }, false},
      {"log", [](const Tensor& t) { return log(t); }, [](double v) { return std::log(v); }, true},
      {"tanh", [](const Tensor& t) { return tanh(t); }, [](double v) { return std::tanh(v); }, false},
      {"sqrt", [](const Tensor& t) { return sqrt(t); }, [](double v) { return std::sqrt(v); }, true},
      {"rsqrt", [](const Tensor& t) { return rsqrt(t); }, [](double v) { return 1 / std::sqrt(v); }, true},
      {"abs", [](const Tensor& t) { return abs(t); }, [](double v) { return std::fabs(v); }, false},
      {"sigmoid", [](const Tensor& t) { return sigmoid(t); }, [](double v) { return 1 / (1 + std::exp(-v)); }, false},
      {"pow", [](const Tensor& t) { return pow(t, 2.5); }, [](double v) { return std::pow(v, 2.5); }, true},
      {"relu", [](const Tensor& t) { return relu(t); }, [](double v) { return v > 0 ? v : 0; }, false},
      {"gelu_tanh", [](const Tensor& t) { return gelu(t, true); },
       [k](double v) { return 0.5 * v * (1 + std::tanh(k * (v + 0.044715 * v * v * v))); }, false},
      {"gelu_erf", [](const Tensor& t) { return gelu(t, false); },
       [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, false},
      {"silu", [](const Tensor& t) { return silu(t); }, [](double v) { return v / (1 + std::exp(-v)); }, false},
      {"add_scalar", [](const Tensor& t) { return t + 1.5; }, [](double v) { return v + 1.5; }, false},
      {"mul_scalar", [](const Tensor& t) { return t * -0.75; }, [](double v) { return v * -0.75; }, false},
  };
  for (auto& u : us) {
    CAPTURE(u.name);
    const Tensor& in = u.positive ? pos : x;
    const auto& iv = u.positive ? pv : xv;
    std::vector<double> ref;
    for (double v : iv) ref.push_back(u.ref(v));
    check_close(u.op(in), ref, 2e-6, 2e-6, u.name);                 // f32 kernel
    check_close(u.op(cast(in, DType::f64)), ref, 1e-12, 1e-12, u.name);  // f64 kernel
    check_grad([&](const V& t) { return u.op(t[0]); }, {in});
  }
}

TEST_CASE("where and masked_fill select and route gradients") {
  Tensor a = random({3, 4}, 8, DType::f64), b = random({4}, 9, DType::f64);
  Tensor cond = gt(a, zeros({}, DType::f64));
  auto av = a.to_vector(), bv = b.to_vector();
  std::vector<double> ref;
  for (int i = 0; i < 12; ++i) ref.push_back(av[size_t(i)] > 0 ? av[size_t(i)] : bv[size_t(i % 4)]);
  check_close(where(cond, a, b), ref, 0, 0, "where");
  check_grad([cond](const V& x) { return where(cond, x[0], x[1]); }, {a, b});
  Tensor mf = masked_fill(a, cond, -7.0);
  std::vector<double> ref2;
  for (double v : av) ref2.push_back(v > 0 ? -7.0 : v);
  check_close(mf, ref2, 0, 0, "masked_fill");
}

TEST_CASE("sum, mean and max over axes") {
  Tensor x = random({3, 4, 5}, 10);
  auto xv = x.to_vector();
  auto at = [&](int i, int j, int k) { return xv[size_t(i * 20 + j * 5 + k)]; };
  std::vector<double> s1, s02, m2;
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 5; ++k) { double s = 0; for (int j = 0; j < 4; ++j) s += at(i, j, k); s1.push_back(s); }
  for (int j = 0; j < 4; ++j) { double s = 0; for (int i = 0; i < 3; ++i) for (int k = 0; k < 5; ++k) s += at(i, j, k); s02.push_back(s); }
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) { double m = -1e30; for (int k = 0; k < 5; ++k) m = std::max(m, at(i, j, k)); m2.push_back(m); }
  Tensor r1 = sum(x, {1});
  CHECK(r1.shape() == Shape{3, 5});
  check_close(r1, s1, 1e-5, 1e-5, "sum dim 1");
  Tensor r02 = sum(x, {0, 2}, true);
  CHECK(r02.shape() == Shape{1, 4, 1});
  check_close(r02, s02, 1e-5, 1e-5, "sum dims 0,2");
  double total = 0;
  for (double v : xv) total += v;
  check_close(sum(x), {total}, 1e-4, 1e-5, "sum all");
  check_close(mean(x), {total / 60}, 1e-6, 1e-5, "mean all");
  check_close(max(x, -1), m2, 0, 0, "max last");
  Tensor xd = cast(x, DType::f64);
  check_grad([](const V& t) { return sum(t[0], {1}); }, {xd});
  check_grad([](const V& t) { return sum(t[0], {0, 2}, true); }, {xd});
  check_grad([](const V& t) { return mean(t[0], {-1}); }, {xd});
  check_grad([](const V& t) { return max(t[0], 1); }, {xd});
  check_grad([](const V& t) { return max(t[0], 2, true); }, {xd});
}

TEST_CASE("views: reshape, transpose, permute, narrow, expand, concat, split") {
  Tensor x = random({2, 3, 4}, 11, DType::f64);
  auto xv = x.to_vector();
  Tensor p = permute(x, {2, 0, 1});
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.impl()->storage == x.impl()->storage);  // a view, no copy
  CHECK(p.at({3, 1, 2}) == xv[size_t(1 * 12 + 2 * 4 + 3)]);
  Tensor n = narrow(x, 2, 1, 2);
  CHECK(n.at({1, 2, 0}) == xv[size_t(1 * 12 + 2 * 4 + 1)]);
  Tensor c = concat({x, narrow(x, 1, 0, 1)}, 1);
  CHECK(c.shape() == Shape{2, 4, 4});
  CHECK(c.at({1, 3, 2}) == xv[size_t(1 * 12 + 0 * 4 + 2)]);
  auto parts = split(x, {1, 2}, 1);
  CHECK(parts[1].at({0, 1, 3}) == xv[size_t(2 * 4 + 3)]);
  Tensor e = expand(random({3, 1}, 12, DType::f64), {2, 3, 4});
  CHECK(e.stride(0) == 0);
  check_grad([](const V& t) { return reshape(permute(t[0], {2, 0, 1}), {8, -1}); }, {x});
  check_grad([](const V& t) { return mul(narrow(t[0], 2, 1, 2), narrow(t[0], 2, 0, 2)); }, {x});
  check_grad([](const V& t) { return concat({t[0], t[1]}, 0); }, {x, random({1, 3, 4}, 13, DType::f64)});
  check_grad([](const V& t) { auto s = split(t[0], {2, 2}, 2); return mul(s[0], s[1]); }, {x});
  check_grad([](const V& t) { return expand(t[0], {2, 3, 4}); }, {random({3, 1}, 14, DType::f64)});
  check_grad([](const V& t) { return squeeze(unsqueeze(transpose(t[0], 0, 2), 1), 1); }, {x});
  mm::test::check_throws_with([&] { reshape(x, {5, -1}); }, {"reshape", "[5, -1]", "24"});
  mm::test::check_throws_with([&] { narrow(x, 1, 2, 2); }, {"narrow", "out of bounds", "[2, 3, 4]"});
  mm::test::check_throws_with([&] { concat({x, random({2, 2, 5}, 1, DType::f64)}, 1); }, {"concat", "[2, 2, 5]"});
}

static std::vector<double> naive_matmul(const std::vector<double>& a, const std::vector<double>& b, int B, int M,
                                        int K, int N, bool bcast_b) {
  std::vector<double> c(size_t(B * M * N));
  for (int z = 0; z < B; ++z)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        double s = 0;
        for (int k = 0; k < K; ++k)
          s += a[size_t(z * M * K + i * K + k)] * b[size_t((bcast_b ? 0 : z * K * N) + k * N + j)];
        c[size_t(z * M * N + i * N + j)] = s;
      }
  return c;
}

TEST_CASE("matmul: 2-D, batched, broadcast and transposed operands") {
  for (int M : {1, 7, 33})
    for (int K : {1, 5, 17})
      for (int N : {1, 9}) {
        CAPTURE(M); CAPTURE(K); CAPTURE(N);
        Tensor a = random({M, K}, 20), b = random({K, N}, 21);
        check_close(matmul(a, b), naive_matmul(a.to_vector(), b.to_vector(), 1, M, K, N, false), 1e-5, 1e-5, "2d");
      }
  Tensor a = random({3, 6, 5}, 22), b = random({3, 5, 4}, 23);
  check_close(matmul(a, b), naive_matmul(a.to_vector(), b.to_vector(), 3, 6, 5, 4, false), 1e-5, 1e-5, "batched");
  Tensor b2 = random({5, 4}, 24);
  check_close(matmul(a, b2), naive_matmul(a.to_vector(), b2.to_vector(), 3, 6, 5, 4, true), 1e-5, 1e-5, "bcast");
  // Transposed views go to BLAS as transposes.
  Tensor at = transpose(random({3, 5, 6}, 25), 1, 2);
  Tensor atc = contiguous(at);
  check_close(matmul(at, b), naive_matmul(atc.to_vector(), b.to_vector(), 3, 6, 5, 4, false), 1e-5, 1e-5, "trans");
  // Large enough to be split across threads.
  Tensor big_a = random({130, 70}, 26), big_b = random({70, 90}, 27);
  check_close(matmul(big_a, big_b), naive_matmul(big_a.to_vector(), big_b.to_vector(), 1, 130, 70, 90, false), 1e-4,
              1e-5, "threaded");
  Tensor ad = cast(a, DType::f64), bd = cast(b, DType::f64);
  check_grad([](const V& t) { return matmul(t[0], t[1]); }, {ad, bd});
  check_grad([](const V& t) { return matmul(t[0], t[1]); }, {ad, cast(b2, DType::f64)});
  check_grad([](const V& t) { return matmul(t[0], t[1]); }, {random({2, 1, 3, 4}, 28, DType::f64), random({5, 4, 2}, 29, DType::f64)});
  mm::test::check_throws_with([&] { matmul(a, a); }, {"matmul", "[3, 6, 5]"});
}

TEST_CASE("linear equals x W^T + b and gradchecks") {
  Tensor x = random({2, 3, 5}, 30), w = random({4, 5}, 31), b = random({4}, 32);
  auto xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  std::vector<double> ref;
  for (int r = 0; r < 6; ++r)
    for (int o = 0; o < 4; ++o) {
      double s = bv[size_t(o)];
      for (int i = 0; i < 5; ++i) s += xv[size_t(r * 5 + i)] * wv[size_t(o * 5 + i)];
      ref.push_back(s);
    }
  check_close(linear(x, w, b), ref, 1e-5, 1e-5, "linear");
  check_grad([](const V& t) { return linear(t[0], t[1], t[2]); },
             {cast(x, DType::f64), cast(w, DType::f64), cast(b, DType::f64)});
  check_grad([](const V& t) { return linear(t[0], t[1]); }, {cast(x, DType::f64), cast(w, DType::f64)});
  mm::test::check_throws_with([&] { linear(x, random({4, 6}, 1)); }, {"linear", "[2, 3, 5]", "[4, 6]"});
}

TEST_CASE("dtype and device mismatches are clear errors") {
  Tensor a = random({2, 2}, 40), b = random({2, 2}, 41, DType::f64);
  mm::test::check_throws_with([&] { add(a, b); }, {"add", "f32", "f64"});
  mm::test::check_throws_with([&] { add(a, random({3}, 1)); }, {"add", "[2, 2]", "[3]", "broadcast"});
  mm::test::check_throws_with([&] { exp(Tensor::arange(3)); }, {"exp", "i64"});
  mm::test::check_throws_with([&] { zeros({2}, DType::f32, Device::cuda(0)); }, {"cuda:0", "not available"});
}

}  // TEST_SUITE
