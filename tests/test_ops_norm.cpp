// Softmax, log-softmax, LayerNorm (+ fused residual add), GroupNorm and BatchNorm:
// naive double-precision references written here, gradchecks for every differentiable
// input, and the error messages for bad shapes.
#include <cmath>
#include <limits>

#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/norm.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#include "runtime/parallel.h"
#include "test_util.h"

using namespace mm;
using mm::test::check_close;
using mm::test::check_grad;
using mm::test::check_throws_with;
using mm::test::random;
using V = std::vector<Tensor>;
using D = std::vector<double>;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// x viewed as [outer, red, inner] around dim d: element (o, r, i) sits at (o*red + r)*inner + i.
struct Axis {
  int64_t outer, red, inner;
  Axis(const Shape& s, int d) : outer(1), red(s[d]), inner(1) {
    for (int i = 0; i < d; ++i) outer *= s[i];
    for (int i = d + 1; i < s.n; ++i) inner *= s[i];
  }
  size_t at(int64_t o, int64_t r, int64_t i) const { return size_t((o * red + r) * inner + i); }
};

D ref_softmax(const Tensor& x, int dim, bool log) {
  const D xv = x.to_vector();
  Axis a(x.shape(), x.wrap_dim(dim));
  D out(xv.size());
  for (int64_t o = 0; o < a.outer; ++o)
    for (int64_t i = 0; i < a.inner; ++i) {
      double m = -kInf, s = 0;
      for (int64_t r = 0; r < a.red; ++r) m = std::max(m, xv[a.at(o, r, i)]);
      for (int64_t r = 0; r < a.red; ++r) s += std::exp(xv[a.at(o, r, i)] - m);
      for (int64_t r = 0; r < a.red; ++r) {
        const double d = xv[a.at(o, r, i)] - m;
        out[a.at(o, r, i)] = log ? d - std::log(s) : std::exp(d) / s;
      }
    }
  return out;
}

// Normalises sets of values: set_of(k) names the set of element k; w/b index feature_of(k).
template <typename SetOf, typename FeatOf>
D ref_normalise(const D& xv, int64_t nsets, SetOf set_of, FeatOf feature_of, const Tensor& w, const Tensor& b,
                double eps, D* means = nullptr, D* vars = nullptr) {
  D sum(static_cast<size_t>(nsets), 0.0), sq(static_cast<size_t>(nsets), 0.0), cnt(static_cast<size_t>(nsets), 0.0);
  for (size_t k = 0; k < xv.size(); ++k) {
    sum[size_t(set_of(k))] += xv[k];
    cnt[size_t(set_of(k))] += 1;
  }
  for (size_t s = 0; s < sum.size(); ++s) sum[s] /= cnt[s];
  for (size_t k = 0; k < xv.size(); ++k) {
    const double d = xv[k] - sum[size_t(set_of(k))];
    sq[size_t(set_of(k))] += d * d;
  }
  for (size_t s = 0; s < sq.size(); ++s) sq[s] /= cnt[s];
  const D wv = w.defined() ? w.to_vector() : D(), bv = b.defined() ? b.to_vector() : D();
  D out(xv.size());
  for (size_t k = 0; k < xv.size(); ++k) {
    const size_t s = size_t(set_of(k)), f = size_t(feature_of(k));
    double y = (xv[k] - sum[s]) / std::sqrt(sq[s] + eps);
    if (w.defined()) y *= wv[f];
    if (b.defined()) y += bv[f];
    out[k] = y;
  }
  if (means) *means = sum;
  if (vars) *vars = sq;
  return out;
}

D ref_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  const int64_t n = x.size(-1);
  return ref_normalise(x.to_vector(), x.numel() / n, [n](size_t k) { return int64_t(k) / n; },
                       [n](size_t k) { return int64_t(k) % n; }, w, b, eps);
}

D ref_group_norm(const Tensor& x, int64_t groups, const Tensor& w, const Tensor& b, double eps) {
  const int64_t B = x.size(0), C = x.size(1), S = x.numel() / (B * C), cpg = C / groups;
  return ref_normalise(x.to_vector(), B * groups,
                       [=](size_t k) { const int64_t bi = int64_t(k) / (C * S), c = int64_t(k) / S % C;
                                       return bi * groups + c / cpg; },
                       [=](size_t k) { return int64_t(k) / S % C; }, w, b, eps);
}

// Training-mode BatchNorm reference; also returns the biased batch mean and variance.
D ref_batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, D* means, D* vars) {
  const int64_t C = x.size(1), S = x.numel() / (x.size(0) * C);
  auto chan = [=](size_t k) { return int64_t(k) / S % C; };
  return ref_normalise(x.to_vector(), C, chan, chan, w, b, eps, means, vars);
}

Tensor positive(const Shape& s, uint64_t seed, DType dt) { return abs(random(s, seed, dt)) + 0.5; }

// Gradients of sum(f(inputs) * gy) for every input, with the inputs cast to dt.
V grads_in(DType dt, const std::function<Tensor(const V&)>& f, const V& inputs, uint64_t seed) {
  V leaves;
  for (const Tensor& t : inputs) leaves.push_back(cast(t, dt).detach().set_requires_grad(true));
  Tensor out = f(leaves);
  autograd::backward(sum(mul(out, random(out.shape(), seed, dt))));
  V gs;
  for (const Tensor& l : leaves) gs.push_back(l.grad());
  return gs;
}

// gradcheck runs in f64; this covers the f32 backward kernels: their gradients must match
// the f64 ones (same inputs) to f32 accuracy.
void check_f32_backward(const std::function<Tensor(const V&)>& f, const V& inputs, double tol) {
  V g32 = grads_in(DType::f32, f, inputs, 7), g64 = grads_in(DType::f64, f, inputs, 7);
  for (size_t i = 0; i < inputs.size(); ++i) {
    CAPTURE(i);
    REQUIRE(g32[i].defined());
    check_close(g32[i], g64[i], tol, tol, "f32 vs f64 gradient");
  }
}

}  // namespace

TEST_SUITE("ops") {

TEST_CASE("softmax and log_softmax match a naive reference along any dim, f32 and f64") {
  struct Case { Shape shape; int dim; };
  const std::vector<Case> cases = {{{5, 13}, -1}, {{5, 13}, 0}, {{3, 1}, -1}, {{3, 1}, 0}, {{2, 3, 7}, 1},
                                   {{2, 3, 7}, 0}, {{2, 3, 7}, 2}, {{4, 37}, 1}, {{1}, 0}};
  for (DType dt : {DType::f32, DType::f64}) {
    for (const auto& c : cases) {
      for (double scale : {1.0, 30.0}) {  // 30: exp would overflow without the max shift
        CAPTURE(c.shape);
        CAPTURE(c.dim);
        CAPTURE(scale);
        Tensor x = random(c.shape, 11, dt, scale);
        const double tol = dt == DType::f32 ? 2e-6 : 1e-13;
        Tensor p = softmax(x, c.dim), lp = log_softmax(x, c.dim);
        CHECK(p.shape() == x.shape());
        CHECK(p.dtype() == dt);
        CHECK(p.is_contiguous());
        check_close(p, ref_softmax(x, c.dim, false), tol, tol * 10, "softmax");
        check_close(lp, ref_softmax(x, c.dim, true), tol * scale * 4, tol * 10, "log_softmax");
      }
    }
  }
  // A 0-d tensor is a single-element distribution.
  check_close(softmax(Tensor::scalar(3.0)), D{1.0}, 0, 0, "0-d softmax");
  check_close(log_softmax(Tensor::scalar(3.0)), D{0.0}, 0, 0, "0-d log_softmax");
}

TEST_CASE("softmax of masked rows: -inf entries get exactly 0, fully masked rows give 0 / -inf, NaN propagates") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    // row 0: partly masked; row 1: fully masked; row 2: huge spread; row 3: NaN
    const double nan = std::numeric_limits<double>::quiet_NaN();
    Tensor x = Tensor::from_vector({0.5, -kInf, 2.0, -kInf,  -kInf, -kInf, -kInf, -kInf,
                                    1000.0, -1000.0, 999.0, 0.0,  1.0, nan, 2.0, 3.0}, {4, 4}, dt);
    Tensor p = softmax(x), lp = log_softmax(x);
    const double e = std::exp(-1.5), s = 1 + e;
    const double e1 = std::exp(-1.0), s2 = 1 + e1;
    check_close(narrow(p, 0, 0, 1), D{e / s, 0.0, 1 / s, 0.0}, 1e-6, 1e-6, "partly masked");
    CHECK(p.at({0, 1}) == 0.0);  // exactly zero, not 1e-38
    check_close(narrow(p, 0, 1, 1), D{0, 0, 0, 0}, 0, 0, "fully masked softmax");
    for (int j = 0; j < 4; ++j) CHECK(lp.at({1, j}) == -kInf);
    check_close(narrow(p, 0, 2, 1), D{1 / s2, 0.0, e1 / s2, 0.0}, 1e-6, 1e-6, "large spread");
    check_close(narrow(lp, 0, 2, 1), D{-std::log(s2), -2000 - std::log(s2), -1 - std::log(s2), -1000 - std::log(s2)},
                1e-4, 1e-6, "large spread log");
    for (int j = 0; j < 4; ++j) CHECK(std::isnan(p.at({3, j})));
    for (int j = 0; j < 4; ++j) CHECK(std::isnan(lp.at({3, j})));
    Tensor pinf = softmax(Tensor::from_vector({1.0, kInf, 2.0}, {1, 3}, dt));  // +inf: NaN, documented
    for (int j = 0; j < 3; ++j) CHECK(std::isnan(pinf.at({0, j})));
    // Gradients: masked entries and fully masked rows get zero gradient.
    Tensor xr = narrow(x, 0, 0, 2).detach();
    for (bool log : {false, true}) {
      Tensor leaf = clone(xr).set_requires_grad(true);
      Tensor y = log ? log_softmax(leaf) : softmax(leaf);
      Tensor gy = random({2, 4}, 3, dt);
      // log-softmax outputs -inf at masked entries: weight only the finite ones.
      Tensor finite = Tensor::from_vector({1, 0, 1, 0, 0, 0, 0, 0}, {2, 4}, dt);
      autograd::backward(sum(mul(where(gt(finite, zeros({}, dt)), y, zeros({}, dt)), mul(gy, finite))));
      Tensor g = leaf.grad();
      CAPTURE(log);
      CHECK(g.at({0, 1}) == 0.0);
      CHECK(g.at({0, 3}) == 0.0);
      for (int j = 0; j < 4; ++j) CHECK(g.at({1, j}) == 0.0);
      CHECK(std::isfinite(g.at({0, 0})));
    }
  }
}

TEST_CASE("softmax and log_softmax gradcheck along any dim") {
  Tensor x = random({2, 3, 5}, 21, DType::f64);
  for (int dim : {-1, 0, 1}) {
    CAPTURE(dim);
    check_grad([dim](const V& t) { return softmax(t[0], dim); }, {x});
    check_grad([dim](const V& t) { return log_softmax(t[0], dim); }, {x});
  }
  Tensor x1 = random({4, 1}, 22, DType::f64);  // a row of length 1: constant output, zero gradient
  check_grad([](const V& t) { return log_softmax(t[0]); }, {x1});
  check_grad([](const V& t) { return softmax(t[0]); }, {x1});
}

TEST_CASE("layer_norm matches a naive reference, with and without w and b, f32 and f64") {
  for (DType dt : {DType::f32, DType::f64}) {
    for (Shape s : {Shape{6, 13}, Shape{2, 3, 8}, Shape{4, 1}, Shape{3, 771}, Shape{7}}) {
      CAPTURE(s);
      const int64_t n = s[s.n - 1];
      // An offset mean (|mean| >> std) tests that the variance is not E[x^2] - E[x]^2.
      Tensor x = add(random(s, 31, dt), 100.0);
      Tensor w = random({n}, 32, dt), b = random({n}, 33, dt);
      const double tol = dt == DType::f32 ? 5e-5 : 1e-11;
      for (int variant = 0; variant < 4; ++variant) {
        CAPTURE(variant);
        Tensor wv = variant & 1 ? w : Tensor(), bv = variant & 2 ? b : Tensor();
        Tensor y = layer_norm(x, wv, bv);
        CHECK(y.shape() == s);
        check_close(y, ref_layer_norm(x, wv, bv, 1e-5), tol, tol, "layer_norm");
      }
      check_close(layer_norm(x, w, b, 0.1), ref_layer_norm(x, w, b, 0.1), tol, tol, "layer_norm eps 0.1");
    }
  }
  // A non-contiguous input normalises its logical rows.
  Tensor x = random({5, 6}, 34);
  Tensor xt = transpose(x, 0, 1);  // [6, 5]
  check_close(layer_norm(xt), ref_layer_norm(contiguous(xt), Tensor(), Tensor(), 1e-5), 5e-5, 5e-5, "transposed");
}

TEST_CASE("layer_norm gradcheck for x, w and b") {
  Tensor x = random({3, 7}, 41, DType::f64), w = random({7}, 42, DType::f64), b = random({7}, 43, DType::f64);
  check_grad([](const V& t) { return layer_norm(t[0], t[1], t[2]); }, {x, w, b});
  check_grad([](const V& t) { return layer_norm(t[0]); }, {x});
  check_grad([](const V& t) { return layer_norm(t[0], t[1]); }, {x, w});
  check_grad([](const V& t) { return layer_norm(t[0], Tensor(), t[1]); }, {x, b});
  Tensor x3 = random({2, 2, 5}, 44, DType::f64), w5 = random({5}, 45, DType::f64), b5 = random({5}, 46, DType::f64);
  check_grad([](const V& t) { return layer_norm(t[0], t[1], t[2], 0.01); }, {x3, w5, b5});
  // Only w and b need gradients (a frozen input).
  check_grad([x3](const V& t) { return layer_norm(x3, t[0], t[1]); }, {w5, b5});
  // N = 1: xhat is 0, so y = b; the x gradient is 0.
  Tensor x1 = random({4, 1}, 47, DType::f64), w1 = random({1}, 48, DType::f64), b1 = random({1}, 49, DType::f64);
  check_grad([](const V& t) { return layer_norm(t[0], t[1], t[2]); }, {x1, w1, b1});
  // Many rows: gw/gb are folded from several row chunks.
  Tensor xb = random({300, 3}, 50, DType::f64), wb = random({3}, 51, DType::f64), bb = random({3}, 52, DType::f64);
  Tensor xl = xb.detach().set_requires_grad(true), wl = clone(wb).set_requires_grad(true);
  Tensor bl = clone(bb).set_requires_grad(true);
  Tensor gy = random({300, 3}, 53, DType::f64);
  autograd::backward(sum(mul(layer_norm(xl, wl, bl), gy)));
  // gw = sum over rows of gy * xhat, gb = sum gy.
  D xh = ref_layer_norm(xb, Tensor(), Tensor(), 1e-5), gv = gy.to_vector();
  D gw(3, 0.0), gb(3, 0.0);
  for (size_t k = 0; k < gv.size(); ++k) {
    gw[k % 3] += gv[k] * xh[k];
    gb[k % 3] += gv[k];
  }
  check_close(wl.grad(), gw, 1e-10, 1e-10, "gw over many rows");
  check_close(bl.grad(), gb, 1e-10, 1e-10, "gb over many rows");
}

TEST_CASE("add_layer_norm returns the residual sum and its LayerNorm, with gradients through both") {
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = random({2, 3, 9}, 61, dt), r = random({2, 3, 9}, 62, dt);
    Tensor w = random({9}, 63, dt), b = random({9}, 64, dt);
    auto [h, y] = add_layer_norm(x, r, w, b);
    D hv = x.to_vector(), rv = r.to_vector();
    for (size_t i = 0; i < hv.size(); ++i) hv[i] += rv[i];
    const double tol = dt == DType::f32 ? 2e-5 : 1e-12;
    check_close(h, hv, tol, tol, "sum");
    check_close(y, ref_layer_norm(h, w, b, 1e-5), tol, tol, "normalised sum");
  }
  Tensor x = random({3, 6}, 65, DType::f64), r = random({3, 6}, 66, DType::f64);
  Tensor w = random({6}, 67, DType::f64), b = random({6}, 68, DType::f64);
  check_grad([](const V& t) {
    auto [h, y] = add_layer_norm(t[0], t[1], t[2], t[3]);
    return add(mul(h, 0.5), y);  // both outputs reach the loss
  }, {x, r, w, b});
}

TEST_CASE("group_norm matches a naive reference for groups 1, C/2 and C") {
  for (DType dt : {DType::f32, DType::f64}) {
    for (Shape s : {Shape{2, 6, 5}, Shape{3, 4, 2, 3}, Shape{2, 6}, Shape{1, 2, 9, 11}}) {
      const int64_t C = s[1];
      Tensor x = add(random(s, 71, dt), 10.0);
      Tensor w = random({C}, 72, dt), b = random({C}, 73, dt);
      const double tol = dt == DType::f32 ? 3e-5 : 1e-11;
      for (int64_t g : {int64_t(1), C / 2, C}) {
        CAPTURE(s);
        CAPTURE(g);
        if (s.n == 2 && g == C) continue;  // one value per set: well defined (0) but trivial
        Tensor y = group_norm(x, g, w, b);
        CHECK(y.shape() == s);
        check_close(y, ref_group_norm(x, g, w, b, 1e-5), tol, tol, "group_norm");
        check_close(group_norm(x, g), ref_group_norm(x, g, Tensor(), Tensor(), 1e-5), tol, tol, "no affine");
      }
    }
  }
}

TEST_CASE("group_norm gradcheck for x, w and b") {
  Tensor x = random({2, 4, 3}, 81, DType::f64), w = random({4}, 82, DType::f64), b = random({4}, 83, DType::f64);
  for (int64_t g : {1, 2, 4}) {
    CAPTURE(g);
    check_grad([g](const V& t) { return group_norm(t[0], g, t[1], t[2]); }, {x, w, b});
  }
  Tensor x4 = random({2, 6, 2, 2}, 84, DType::f64);
  Tensor w6 = random({6}, 85, DType::f64), b6 = random({6}, 86, DType::f64);
  check_grad([](const V& t) { return group_norm(t[0], 3, t[1], t[2]); }, {x4, w6, b6});
  check_grad([](const V& t) { return group_norm(t[0], 2); }, {x4});
}

TEST_CASE("batch_norm2d training: batch statistics, running statistics updated in place (unbiased variance)") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const Shape s{3, 4, 2, 5};
    const int64_t C = 4, n = 3 * 2 * 5;
    Tensor x = add(random(s, 91, dt), 3.0);
    Tensor w = random({C}, 92, dt), b = random({C}, 93, dt);
    Tensor rm = random({C}, 94, dt), rv = positive({C}, 95, dt);
    const D rm0 = rm.to_vector(), rv0 = rv.to_vector();
    const double mom = 0.25;
    Tensor y = batch_norm2d(x, w, b, rm, rv, /*training=*/true, mom, 1e-5);
    D means, vars;
    const D ref = ref_batch_norm(x, w, b, 1e-5, &means, &vars);
    const double tol = dt == DType::f32 ? 3e-5 : 1e-11;
    check_close(y, ref, tol, tol, "training output");
    D rm1(static_cast<size_t>(C)), rv1(static_cast<size_t>(C));
    for (size_t c = 0; c < size_t(C); ++c) {
      rm1[c] = (1 - mom) * rm0[c] + mom * means[c];
      rv1[c] = (1 - mom) * rv0[c] + mom * vars[c] * double(n) / double(n - 1);
    }
    check_close(rm, rm1, tol, tol, "running_mean");
    check_close(rv, rv1, tol, tol, "running_var");
    // Without w, b and without running statistics.
    Tensor none_m, none_v;
    check_close(batch_norm2d(x, Tensor(), Tensor(), none_m, none_v, true),
                ref_batch_norm(x, Tensor(), Tensor(), 1e-5, nullptr, nullptr), tol, tol, "no affine, untracked");
    // The general form takes any number of spatial dims, here none: x [B, C].
    Tensor x2 = random({6, 3}, 96, dt);
    check_close(batch_norm(x2, Tensor(), Tensor(), none_m, none_v, true),
                ref_batch_norm(x2, Tensor(), Tensor(), 1e-5, nullptr, nullptr), tol, tol, "[B, C]");
  }
}

TEST_CASE("batch_norm2d eval: running statistics normalise, nothing is updated") {
  for (DType dt : {DType::f32, DType::f64}) {
    CAPTURE(dtype_name(dt));
    const Shape s{2, 3, 3, 4};
    const int64_t C = 3, S = 12;
    Tensor x = random(s, 101, dt);
    Tensor w = random({C}, 102, dt), b = random({C}, 103, dt);
    Tensor rm = random({C}, 104, dt), rv = positive({C}, 105, dt);
    const D rm0 = rm.to_vector(), rv0 = rv.to_vector(), xv = x.to_vector(), wv = w.to_vector(), bv = b.to_vector();
    Tensor y = batch_norm2d(x, w, b, rm, rv, /*training=*/false, 0.1, 1e-3);
    D ref(xv.size());
    for (size_t k = 0; k < xv.size(); ++k) {
      const size_t c = size_t(int64_t(k) / S % C);
      ref[k] = (xv[k] - rm0[c]) / std::sqrt(rv0[c] + 1e-3) * wv[c] + bv[c];
    }
    const double tol = dt == DType::f32 ? 2e-5 : 1e-12;
    check_close(y, ref, tol, tol, "eval output");
    check_close(rm, rm0, 0, 0, "running_mean unchanged");
    check_close(rv, rv0, 0, 0, "running_var unchanged");
    // A batch of one is fine in eval mode.
    check_close(batch_norm2d(narrow(x, 0, 0, 1), w, b, rm, rv, false, 0.1, 1e-3),
                D(ref.begin(), ref.begin() + 3 * S), tol, tol, "eval batch of one");
  }
}

TEST_CASE("batch_norm2d gradcheck for x, w and b, training and eval") {
  Tensor x = random({3, 2, 2, 3}, 111, DType::f64), w = random({2}, 112, DType::f64), b = random({2}, 113, DType::f64);
  Tensor rm = random({2}, 114, DType::f64), rv = positive({2}, 115, DType::f64);
  for (bool training : {true, false}) {
    CAPTURE(training);
    check_grad([&](const V& t) { return batch_norm2d(t[0], t[1], t[2], rm, rv, training); }, {x, w, b});
    check_grad([&](const V& t) { return batch_norm2d(t[0], Tensor(), Tensor(), rm, rv, training); }, {x});
  }
}

TEST_CASE("f32 backward kernels agree with f64 (gradcheck only runs f64)") {
  Tensor x = random({6, 37}, 131, DType::f64), w = random({37}, 132, DType::f64), b = random({37}, 133, DType::f64);
  check_f32_backward([](const V& t) { return softmax(t[0]); }, {x}, 1e-5);
  check_f32_backward([](const V& t) { return log_softmax(t[0]); }, {x}, 1e-5);
  check_f32_backward([](const V& t) { return softmax(t[0], 0); }, {x}, 1e-5);
  check_f32_backward([](const V& t) { return layer_norm(t[0], t[1], t[2]); }, {x, w, b}, 1e-4);
  check_f32_backward([](const V& t) { return layer_norm(t[0]); }, {x}, 1e-4);
  Tensor x4 = random({3, 6, 5, 7}, 134, DType::f64), w6 = random({6}, 135, DType::f64), b6 = random({6}, 136, DType::f64);
  check_f32_backward([](const V& t) { return group_norm(t[0], 3, t[1], t[2]); }, {x4, w6, b6}, 1e-4);
  for (bool training : {true, false}) {
    CAPTURE(training);
    check_f32_backward([training](const V& t) {
      Tensor rm = zeros({6}, t[0].dtype()), rv = ones({6}, t[0].dtype());
      return batch_norm2d(t[0], t[1], t[2], rm, rv, training);
    }, {x4, w6, b6}, 1e-4);
  }
}

TEST_CASE("layer_norm gw and gb do not depend on the thread count") {
  Tensor x = random({2000, 40}, 141), w = random({40}, 142), b = random({40}, 143);  // several row chunks
  auto f = [](const V& t) { return layer_norm(t[0], t[1], t[2]); };
  const int keep = num_threads();
  set_num_threads(1);
  V g1 = grads_in(DType::f32, f, {x, w, b}, 9);
  set_num_threads(2);
  V g2 = grads_in(DType::f32, f, {x, w, b}, 9);
  set_num_threads(keep);
  for (size_t i = 0; i < 3; ++i) check_close(g1[i], g2[i], 0, 0, "bitwise identical");
}

TEST_CASE("norm and softmax ops name themselves and the shapes in their errors") {
  Tensor x = random({2, 3, 4}, 121);
  check_throws_with([&] { layer_norm(x, random({5}, 1)); }, {"layer_norm", "weight w", "[5]", "[4]", "[2, 3, 4]"});
  check_throws_with([&] { layer_norm(x, Tensor(), random({4, 1}, 1)); }, {"layer_norm", "bias b", "[4, 1]"});
  check_throws_with([&] { layer_norm(x, random({4}, 1, DType::f64)); }, {"layer_norm", "dtypes differ"});
  check_throws_with([&] { add_layer_norm(x, random({2, 3, 5}, 1)); }, {"add_layer_norm", "[2, 3, 4]", "[2, 3, 5]"});
  check_throws_with([&] { add_layer_norm(x, x, random({3}, 1)); }, {"add_layer_norm", "weight w", "[3]"});
  check_throws_with([&] { group_norm(x, 2); }, {"group_norm", "groups (2)", "3 channels", "[2, 3, 4]"});
  check_throws_with([&] { group_norm(x, 3, random({4}, 1)); }, {"group_norm", "weight w", "[4]", "[3]"});
  check_throws_with([&] { group_norm(random({5}, 1), 1); }, {"group_norm", "[5]"});
  Tensor rm = zeros({3}), rv = ones({3}), bad = zeros({4}), none;
  check_throws_with([&] { batch_norm2d(x, Tensor(), Tensor(), rm, rv, true); }, {"batch_norm2d", "4-D", "[2, 3, 4]"});
  Tensor x4 = random({2, 3, 2, 2}, 122);
  check_throws_with([&] { batch_norm2d(x4, Tensor(), Tensor(), bad, rv, true); },
                    {"batch_norm2d", "running_mean", "[4]", "[3]"});
  check_throws_with([&] { batch_norm2d(x4, Tensor(), Tensor(), none, none, false); },
                    {"batch_norm2d", "eval", "running_mean"});
  check_throws_with([&] { batch_norm2d(random({1, 3, 1, 1}, 1), Tensor(), Tensor(), rm, rv, true); },
                    {"batch_norm2d", "more than one value per channel", "[1, 3, 1, 1]"});
  check_throws_with([&] { softmax(Tensor::arange(4)); }, {"softmax", "floating", "i64"});
  check_throws_with([&] { log_softmax(x, 3); }, {"log_softmax", "dimension 3", "[2, 3, 4]"});
  check_throws_with([&] { softmax(Tensor()); }, {"softmax", "undefined"});
}

}  // TEST_SUITE
