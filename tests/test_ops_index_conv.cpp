// Indexing (embedding, index_select, gather), dropout / drop path, conv2d and max_pool2d:
// each against a naive loop written here, gradchecked, and their error messages.
#include <cmath>
#include <limits>

#include "ops/conv.h"
#include "ops/creation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "runtime/parallel.h"
#include "test_util.h"

using namespace mm;
using mm::test::check_close;
using mm::test::check_grad;
using mm::test::check_throws_with;
using mm::test::random;
using V = std::vector<Tensor>;

namespace {

// Runs body with 1, 2 and 4 threads, so both parallel strategies of the conv
// kernels (whole samples per thread, with per-thread weight-gradient partials; one sample
// split across threads) are exercised.
template <typename F>
void with_threads(F&& body) {
  const int keep = num_threads();
  for (int nt : {1, 2, 4}) {
    CAPTURE(nt);
    set_num_threads(nt);
    body();
  }
  set_num_threads(keep);
}

// ---- naive convolution (7 loops) and its backward -------------------------------------

struct ConvCase {
  int64_t B, Cin, H, W, Cout, KH, KW, sh, sw, ph, pw, groups;
  bool bias;
  int64_t OH() const { return (H + 2 * ph - KH) / sh + 1; }
  int64_t OW() const { return (W + 2 * pw - KW) / sw + 1; }
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) {
  return os << "x [" << c.B << ", " << c.Cin << ", " << c.H << ", " << c.W << "] Cout " << c.Cout << " k " << c.KH
            << "x" << c.KW << " s " << c.sh << "x" << c.sw << " p " << c.ph << "x" << c.pw << " g " << c.groups
            << (c.bias ? " bias" : "");
}

// Calls f(b, o, oh, ow, ci, kh, kw, ih, iw) for every product term x[b, ci, ih, iw] * w[o, ci % Cg, kh, kw]
// that lands in y[b, o, oh, ow] (padding terms skipped).
template <typename F>
void for_each_term(const ConvCase& c, F&& f) {
  const int64_t Cg = c.Cin / c.groups, Og = c.Cout / c.groups;
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t o = 0; o < c.Cout; ++o)
      for (int64_t oh = 0; oh < c.OH(); ++oh)
        for (int64_t ow = 0; ow < c.OW(); ++ow)
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t kh = 0; kh < c.KH; ++kh)
              for (int64_t kw = 0; kw < c.KW; ++kw) {
                const int64_t ih = oh * c.sh - c.ph + kh, iw = ow * c.sw - c.pw + kw;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                f(b, o, oh, ow, (o / Og) * Cg + cg, cg, kh, kw, ih, iw);
              }
}

std::vector<double> naive_conv(const ConvCase& c, const std::vector<double>& x, const std::vector<double>& w,
                               const std::vector<double>& bias) {
  const int64_t OH = c.OH(), OW = c.OW(), Cg = c.Cin / c.groups;
  std::vector<double> y(size_t(c.B * c.Cout * OH * OW), 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t o = 0; o < c.Cout; ++o)
      for (int64_t p = 0; p < OH * OW; ++p) y[size_t((b * c.Cout + o) * OH * OW + p)] = c.bias ? bias[size_t(o)] : 0.0;
  for_each_term(c, [&](int64_t b, int64_t o, int64_t oh, int64_t ow, int64_t ci, int64_t cg, int64_t kh, int64_t kw,
                       int64_t ih, int64_t iw) {
    y[size_t(((b * c.Cout + o) * OH + oh) * OW + ow)] +=
        x[size_t(((b * c.Cin + ci) * c.H + ih) * c.W + iw)] * w[size_t(((o * Cg + cg) * c.KH + kh) * c.KW + kw)];
  });
  return y;
}

struct ConvGrads { std::vector<double> gx, gw, gb; };

ConvGrads naive_conv_backward(const ConvCase& c, const std::vector<double>& x, const std::vector<double>& w,
                              const std::vector<double>& gy) {
  const int64_t OH = c.OH(), OW = c.OW(), Cg = c.Cin / c.groups;
  ConvGrads g{std::vector<double>(x.size(), 0.0), std::vector<double>(w.size(), 0.0),
              std::vector<double>(size_t(c.Cout), 0.0)};
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t o = 0; o < c.Cout; ++o)
      for (int64_t p = 0; p < OH * OW; ++p) g.gb[size_t(o)] += gy[size_t((b * c.Cout + o) * OH * OW + p)];
  for_each_term(c, [&](int64_t b, int64_t o, int64_t oh, int64_t ow, int64_t ci, int64_t cg, int64_t kh, int64_t kw,
                       int64_t ih, int64_t iw) {
    const double gv = gy[size_t(((b * c.Cout + o) * OH + oh) * OW + ow)];
    const size_t xi = size_t(((b * c.Cin + ci) * c.H + ih) * c.W + iw);
    const size_t wi = size_t(((o * Cg + cg) * c.KH + kh) * c.KW + kw);
    g.gx[xi] += gv * w[wi];
    g.gw[wi] += gv * x[xi];
  });
  return g;
}

Tensor run_conv(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor& b) {
  return conv2d(x, w, c.bias ? b : Tensor(), Size2(c.sh, c.sw), Size2(c.ph, c.pw), c.groups);
}

// ---- naive max pooling ----------------------------------------------------------------

struct PoolCase {
  int64_t B, C, H, W, kh, kw, sh, sw, ph, pw;
  int64_t OH() const { return (H + 2 * ph - kh) / sh + 1; }
  int64_t OW() const { return (W + 2 * pw - kw) / sw + 1; }
};

// Output values and, per output, the flat input index of the first maximum.
void naive_pool(const PoolCase& c, const std::vector<double>& x, std::vector<double>& y, std::vector<int64_t>& arg) {
  y.clear();
  arg.clear();
  for (int64_t pl = 0; pl < c.B * c.C; ++pl)
    for (int64_t oh = 0; oh < c.OH(); ++oh)
      for (int64_t ow = 0; ow < c.OW(); ++ow) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t bi = -1;
        for (int64_t i = 0; i < c.kh; ++i)
          for (int64_t j = 0; j < c.kw; ++j) {
            const int64_t ih = oh * c.sh - c.ph + i, iw = ow * c.sw - c.pw + j;
            if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;  // padding: -inf, never chosen
            const int64_t at = (pl * c.H + ih) * c.W + iw;
            if (x[size_t(at)] > best) { best = x[size_t(at)]; bi = at; }
          }
        y.push_back(best);
        arg.push_back(bi);
      }
}

}  // namespace

TEST_SUITE("ops") {

// ---- indexing -----------------------------------------------------------------------

TEST_CASE("embedding picks rows by id and adds gradients of repeated ids") {
  const int64_t Vn = 7, C = 5;
  Tensor w = random({Vn, C}, 101);
  std::vector<int64_t> idv = {3, 0, 6, 3, 3, 1};  // id 3 three times
  for (DType it : {DType::i64, DType::i32}) {
    CAPTURE(dtype_name(it));
    Tensor ids = Tensor::from_vector_i(idv, {2, 3}, it);
    Tensor e = embedding(w, ids);
    REQUIRE(e.shape() == Shape{2, 3, C});
    auto wv = w.to_vector();
    std::vector<double> ref;
    for (int64_t id : idv)
      for (int64_t c = 0; c < C; ++c) ref.push_back(wv[size_t(id * C + c)]);
    check_close(e, ref, 0, 0, "embedding");

    // Backward: gw[v] = sum of upstream rows whose id is v (rows never used stay 0).
    Tensor wl = cast(w, DType::f64).detach().set_requires_grad();
    Tensor gy = random({2, 3, C}, 102, DType::f64);
    autograd::backward(embedding(wl, ids), gy);
    auto gv = gy.to_vector();
    std::vector<double> gref(size_t(Vn * C), 0.0);
    for (size_t k = 0; k < idv.size(); ++k)
      for (int64_t c = 0; c < C; ++c) gref[size_t(idv[k] * C + c)] += gv[k * size_t(C) + size_t(c)];
    check_close(wl.grad(), gref, 1e-14, 1e-14, "embedding grad");
    check_grad([ids](const V& t) { return embedding(t[0], ids); }, {w});
  }
  // A 0-d id gives one row.
  CHECK(embedding(w, Tensor::from_vector_i({4}, {})).shape() == Shape{C});

  // Many repeats of few ids, wide rows (split across threads): the f32 gradient is the
  // same bit for bit on every run.
  std::vector<int64_t> many;
  for (int64_t i = 0; i < 4000; ++i) many.push_back(int64_t(philox_u32(9, 0, uint64_t(i)) % 5u));
  Tensor mids = Tensor::from_vector_i(many, {40, 100});
  Tensor big = random({5, 300}, 104), gbig = random({40, 100, 300}, 105);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    Tensor wl = big.detach().set_requires_grad();
    autograd::backward(embedding(wl, mids), gbig);
    if (run == 0) first = wl.grad().to_vector_f();
    else CHECK(wl.grad().to_vector_f() == first);
  }
}

TEST_CASE("embedding: an out-of-range id names the op, the id, the range and the shapes") {
  Tensor w = random({10, 4}, 103);
  Tensor ids = Tensor::from_vector_i({1, 17, 2}, {3});
  check_throws_with([&] { embedding(w, ids); }, {"embedding", "17", "[0, 10)", "[10, 4]", "[3]"});
  check_throws_with([&] { embedding(w, Tensor::from_vector_i({-1}, {1})); }, {"embedding", "-1", "[0, 10)"});
  check_throws_with([&] { embedding(w, random({3}, 1)); }, {"embedding", "i64 or i32", "f32"});
  check_throws_with([&] { embedding(random({10}, 1), ids); }, {"embedding", "[V, C]", "[10]"});
}

TEST_CASE("index_select along each dim, with repeats, and its gradient") {
  Tensor x = random({4, 5, 3}, 104);
  auto xv = x.to_vector();
  std::vector<int64_t> iv = {2, 0, 2, 1};
  Tensor idx = Tensor::from_vector_i(iv, {4});
  const int64_t S[3] = {4, 5, 3};
  for (int d = 0; d < 3; ++d) {
    CAPTURE(d);
    Tensor out = index_select(x, d, idx);
    Shape es = x.shape();
    es[d] = 4;
    REQUIRE(out.shape() == es);
    std::vector<double> ref;
    for (int64_t i = 0; i < es[0]; ++i)
      for (int64_t j = 0; j < es[1]; ++j)
        for (int64_t k = 0; k < es[2]; ++k) {
          int64_t a[3] = {i, j, k};
          a[d] = iv[size_t(a[d])];
          ref.push_back(xv[size_t((a[0] * S[1] + a[1]) * S[2] + a[2])]);
        }
    check_close(out, ref, 0, 0, "index_select");
    check_grad([idx, d](const V& t) { return index_select(t[0], d, idx); }, {x});
  }
  check_close(index_select(x, -1, idx), index_select(x, 2, idx), 0, 0, "negative dim");
  // A non-contiguous input.
  Tensor xt = transpose(x, 0, 2);  // [3, 5, 4]
  check_close(index_select(xt, 2, idx), index_select(contiguous(xt), 2, idx), 0, 0, "transposed input");
  check_throws_with([&] { index_select(x, 1, Tensor::from_vector_i({0, 5}, {2})); },
                    {"index_select", "5", "[0, 5)", "[4, 5, 3]"});
  check_throws_with([&] { index_select(x, 1, Tensor::from_vector_i({0, 1}, {1, 2})); }, {"index_select", "1-D"});
}

TEST_CASE("gather follows torch.gather, including indices smaller than the input") {
  Tensor x = random({3, 4, 5}, 105);
  auto xv = x.to_vector();
  for (int d = 0; d < 3; ++d) {
    CAPTURE(d);
    // idx [2, 3, 4] (smaller than x off dim), values in [0, x.size(d)).
    const int64_t I[3] = {2, 3, 4};
    std::vector<int64_t> iv;
    for (int64_t i = 0; i < I[0] * I[1] * I[2]; ++i)
      iv.push_back(int64_t(philox_u32(106, uint64_t(d), uint64_t(i)) % uint32_t(x.size(d))));
    Tensor idx = Tensor::from_vector_i(iv, {I[0], I[1], I[2]});
    Tensor out = gather(x, d, idx);
    REQUIRE(out.shape() == idx.shape());
    std::vector<double> ref;
    for (int64_t i = 0; i < I[0]; ++i)
      for (int64_t j = 0; j < I[1]; ++j)
        for (int64_t k = 0; k < I[2]; ++k) {
          int64_t a[3] = {i, j, k};
          a[d] = iv[size_t((i * I[1] + j) * I[2] + k)];
          ref.push_back(xv[size_t((a[0] * 4 + a[1]) * 5 + a[2])]);
        }
    check_close(out, ref, 0, 0, "gather");
    check_grad([idx, d](const V& t) { return gather(t[0], d, idx); }, {x});
  }
  // Picking target log-probabilities: [M, V] at [M, 1]; i32 indices work too.
  Tensor lp = random({4, 6}, 107);
  Tensor tg = Tensor::from_vector_i({5, 0, 3, 3}, {4, 1}, DType::i32);
  check_close(gather(lp, 1, tg), {lp.at({0, 5}), lp.at({1, 0}), lp.at({2, 3}), lp.at({3, 3})}, 0, 0, "targets");
  check_throws_with([&] { gather(lp, 1, Tensor::from_vector_i({6, 0, 0, 0}, {4, 1})); },
                    {"gather", "6", "[0, 6)", "[4, 6]", "[4, 1]"});
  check_throws_with([&] { gather(lp, 1, Tensor::from_vector_i({0}, {1})); }, {"gather", "rank"});
  check_throws_with([&] { gather(lp, 1, Tensor::from_vector_i(std::vector<int64_t>(10, 0), {5, 2})); },
                    {"gather", "exceed", "[4, 6]"});
}

// ---- dropout / drop path ------------------------------------------------------------

TEST_CASE("dropout: mask from Philox, kept fraction, exact scaling, reproducible") {
  const int64_t n = 100000;
  Tensor x = random({n}, 110);
  auto xv = x.to_vector_f();
  for (double p : {0.1, 0.5, 0.9}) {
    CAPTURE(p);
    Generator gen(77);
    gen.advance();  // a non-zero offset
    const uint64_t off = gen.offset();
    Tensor y = dropout(x, p, gen, true);
    CHECK(gen.offset() == off + 1);  // one offset per call
    auto yv = y.to_vector_f();
    const float scale = float(1.0 / (1.0 - p));
    int64_t kept = 0;
    bool exact = true, mask_ok = true;
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = double(philox_uniform(77, off, uint64_t(i))) >= p;
      kept += keep;
      if (keep != (yv[size_t(i)] != 0.0f)) mask_ok = false;
      if (keep && yv[size_t(i)] != xv[size_t(i)] * scale) exact = false;
    }
    CHECK(mask_ok);
    CHECK(exact);
    CHECK(std::fabs(double(kept) / double(n) - (1.0 - p)) < 0.01);
    // Same (seed, offset): the same mask; the next offset: a different one.
    Generator again(77);
    again.advance();
    check_close(dropout(x, p, again, true), y, 0, 0, "same seed and offset");
    Tensor y2 = dropout(x, p, again, true);
    auto y2v = y2.to_vector_f();
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += (yv[size_t(i)] != 0.0f) != (y2v[size_t(i)] != 0.0f);
    CHECK(differ > n / 100);
  }
  // f64 goes through the same mask.
  Generator ga(5), gb(5);
  Tensor a32 = dropout(x, 0.3, ga, true), a64 = dropout(cast(x, DType::f64), 0.3, gb, true);
  auto v32 = a32.to_vector(), v64 = a64.to_vector();
  bool same_mask = true;
  for (int64_t i = 0; i < n; ++i) same_mask = same_mask && ((v32[size_t(i)] == 0) == (v64[size_t(i)] == 0));
  CHECK(same_mask);
}

TEST_CASE("dropout: backward reuses the mask; p = 0, eval and p = 1") {
  Tensor x = random({64, 33}, 111).set_requires_grad();
  Generator gen(9);
  Tensor y = dropout(x, 0.4, gen, true);
  Tensor gy = random({64, 33}, 112);
  autograd::backward(y, gy);
  auto yv = y.to_vector_f(), gv = x.grad().to_vector_f(), gyv = gy.to_vector_f();
  const float scale = float(1.0 / 0.6);
  bool ok = true;
  for (size_t i = 0; i < yv.size(); ++i) {
    const bool dropped = yv[i] == 0.0f;
    if (dropped ? gv[i] != 0.0f : gv[i] != gyv[i] * scale) ok = false;
  }
  CHECK(ok);

  // Identity: the same tensor back, and no draw from the generator.
  Generator g2(9);
  Tensor xi = random({3, 4}, 113);
  CHECK(dropout(xi, 0.5, g2, false).impl() == xi.impl());
  CHECK(dropout(xi, 0.0, g2, true).impl() == xi.impl());
  CHECK(drop_path(xi, 0.5, g2, false).impl() == xi.impl());
  CHECK(g2.offset() == 0);

  // p = 1: everything dropped, no inf/NaN from 1/(1-p), zero gradient.
  Tensor xa = random({1000}, 114).set_requires_grad();
  Tensor z = dropout(xa, 1.0, g2, true);
  check_close(z, std::vector<double>(1000, 0.0), 0, 0, "p = 1");
  autograd::backward(sum(z));
  check_close(xa.grad(), std::vector<double>(1000, 0.0), 0, 0, "p = 1 grad");
  check_close(drop_path(random({6, 5}, 115), 1.0, g2, true), std::vector<double>(30, 0.0), 0, 0, "drop_path p = 1");

  check_throws_with([&] { dropout(xi, 1.5, g2, true); }, {"dropout", "[0, 1]", "1.5"});
  check_throws_with([&] { drop_path(xi, -0.1, g2, true); }, {"drop_path", "[0, 1]"});
}

TEST_CASE("dropout and drop_path gradcheck with a fixed generator state") {
  Tensor x = random({5, 7}, 116, DType::f64);
  // Every call re-creates the generator: the same mask in each finite-difference step.
  check_grad([](const V& t) { Generator g(31); return dropout(t[0], 0.3, g, true); }, {x});
  check_grad([](const V& t) { Generator g(32); return drop_path(t[0], 0.5, g, true); },
             {random({6, 2, 3}, 117, DType::f64)});
  // Chained: two calls take consecutive offsets, each with its own mask.
  check_grad([](const V& t) {
    Generator g(33);
    return dropout(mul(dropout(t[0], 0.2, g, true), 2.0), 0.2, g, true);
  }, {x});
}

TEST_CASE("drop_path drops whole samples with probability p") {
  const int64_t B = 20000, R = 6;
  Tensor x = random({B, 2, 3}, 118);
  Generator gen(12);
  const double p = 0.25;
  Tensor y = drop_path(x, p, gen, true);
  REQUIRE(y.shape() == x.shape());
  auto xv = x.to_vector_f(), yv = y.to_vector_f();
  const float scale = float(1.0 / (1.0 - p));
  int64_t kept = 0;
  bool consistent = true;
  for (int64_t b = 0; b < B; ++b) {
    const bool keep = double(philox_uniform(12, 0, uint64_t(b))) >= p;
    kept += keep;
    for (int64_t j = 0; j < R; ++j) {
      const size_t i = size_t(b * R + j);
      if (yv[i] != (keep ? xv[i] * scale : 0.0f)) consistent = false;
    }
  }
  CHECK(consistent);
  CHECK(std::fabs(double(kept) / double(B) - (1.0 - p)) < 0.01);
  // A dropped sample is exactly zero even when it holds inf.
  Tensor inf = full({8, 3}, std::numeric_limits<double>::infinity());
  Generator g2(3);
  auto iv = drop_path(inf, 0.5, g2, true).to_vector();
  int zeros_seen = 0;
  for (double v : iv) { CHECK(!std::isnan(v)); zeros_seen += v == 0.0; }
  CHECK(zeros_seen > 0);
}

// ---- conv2d -----------------------------------------------------------------------------

static const ConvCase kConvCases[] = {
    // B  Cin H   W  Cout KH KW sh sw ph pw  g  bias
    {2, 3, 9, 7, 4, 3, 3, 1, 1, 1, 1, 1, true},     // 3x3 same padding, odd sizes
    {2, 4, 11, 10, 6, 3, 3, 2, 2, 1, 1, 2, true},   // stride 2, groups 2
    {1, 3, 15, 13, 5, 7, 7, 2, 2, 3, 3, 1, false},  // ResNet stem: 7x7 stride 2 pad 3
    {3, 6, 8, 9, 6, 3, 3, 1, 1, 1, 1, 6, true},     // depthwise (groups = Cin)
    {2, 8, 7, 5, 4, 1, 1, 1, 1, 0, 0, 1, true},     // 1x1: the direct GEMM path
    {2, 8, 7, 5, 6, 1, 1, 2, 2, 0, 0, 2, false},    // 1x1 stride 2 (downsample), groups 2
    {2, 4, 6, 8, 4, 3, 2, 2, 1, 0, 1, 2, true},     // per-axis kernel, stride, padding
    {1, 2, 5, 5, 3, 5, 5, 1, 1, 0, 0, 1, true},     // kernel = input: one output
    {2, 3, 6, 7, 3, 3, 3, 3, 2, 2, 0, 3, true},     // stride 3x2, pad 2 > stride-1
};

TEST_CASE("conv2d forward matches a 7-loop reference (f32 and f64, both thread strategies)") {
  uint64_t seed = 200;
  for (const ConvCase& c : kConvCases) {
    CAPTURE(c);
    Tensor x = random({c.B, c.Cin, c.H, c.W}, seed++), w = random({c.Cout, c.Cin / c.groups, c.KH, c.KW}, seed++);
    Tensor b = random({c.Cout}, seed++);
    const auto ref = naive_conv(c, x.to_vector(), w.to_vector(), b.to_vector());
    with_threads([&] {
      Tensor y = run_conv(c, x, w, b);
      REQUIRE(y.shape() == Shape{c.B, c.Cout, c.OH(), c.OW()});
      check_close(y, ref, 1e-4, 1e-4, "conv2d f32");
      check_close(run_conv(c, cast(x, DType::f64), cast(w, DType::f64), cast(b, DType::f64)), ref, 1e-12, 1e-12,
                  "conv2d f64");
    });
  }
  // A non-contiguous input is handled (made contiguous by the op).
  const ConvCase& c = kConvCases[0];
  Tensor xt = transpose(random({c.B, c.Cin, c.W, c.H}, 290), 2, 3);
  Tensor w = random({c.Cout, c.Cin, c.KH, c.KW}, 291), b = random({c.Cout}, 292);
  check_close(run_conv(c, xt, w, b), naive_conv(c, contiguous(xt).to_vector(), w.to_vector(), b.to_vector()), 1e-4,
              1e-4, "transposed input");
}

TEST_CASE("conv2d backward matches the reference gradients (both thread strategies)") {
  uint64_t seed = 300;
  for (const ConvCase& c : kConvCases) {
    CAPTURE(c);
    Tensor x0 = random({c.B, c.Cin, c.H, c.W}, seed++), w0 = random({c.Cout, c.Cin / c.groups, c.KH, c.KW}, seed++);
    Tensor b0 = random({c.Cout}, seed++), gy = random({c.B, c.Cout, c.OH(), c.OW()}, seed++);
    const ConvGrads ref = naive_conv_backward(c, x0.to_vector(), w0.to_vector(), gy.to_vector());
    with_threads([&] {
      for (DType dt : {DType::f32, DType::f64}) {
        CAPTURE(dtype_name(dt));
        const double tol = dt == DType::f32 ? 1e-4 : 1e-11;
        Tensor x = cast(x0, dt).detach().set_requires_grad(), w = cast(w0, dt).detach().set_requires_grad();
        Tensor b = cast(b0, dt).detach().set_requires_grad();
        autograd::backward(run_conv(c, x, w, b), cast(gy, dt));
        check_close(x.grad(), ref.gx, tol, tol, "gx");
        check_close(w.grad(), ref.gw, tol, tol, "gw");
        if (c.bias) check_close(b.grad(), ref.gb, tol, tol, "gb");
        else CHECK_FALSE(b.grad().defined());
      }
      // Only the weight needs a gradient (a frozen input): gx is not computed.
      Tensor w = cast(w0, DType::f64).detach().set_requires_grad();
      autograd::backward(run_conv(c, cast(x0, DType::f64), w, cast(b0, DType::f64)), cast(gy, DType::f64));
      check_close(w.grad(), ref.gw, 1e-11, 1e-11, "gw alone");
    });
  }
}

TEST_CASE("conv2d gradcheck for x, w and b") {
  // Small versions of the cases (gradcheck runs two forwards per input element).
  const ConvCase cases[] = {
      {2, 2, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1, true},
      {2, 4, 6, 5, 4, 3, 3, 2, 2, 1, 1, 2, true},
      {1, 2, 7, 6, 2, 7, 7, 2, 2, 3, 3, 1, true},
      {2, 3, 5, 5, 3, 3, 3, 1, 1, 1, 1, 3, false},
      {2, 4, 3, 5, 2, 1, 1, 1, 1, 0, 0, 1, true},
      {1, 4, 5, 4, 4, 1, 1, 2, 2, 0, 0, 2, true},
  };
  uint64_t seed = 400;
  for (const ConvCase& c : cases) {
    CAPTURE(c);
    Tensor x = random({c.B, c.Cin, c.H, c.W}, seed++, DType::f64);
    Tensor w = random({c.Cout, c.Cin / c.groups, c.KH, c.KW}, seed++, DType::f64);
    if (c.bias)
      check_grad([c](const V& t) { return run_conv(c, t[0], t[1], t[2]); },
                 {x, w, random({c.Cout}, seed++, DType::f64)});
    else
      check_grad([c](const V& t) { return run_conv(c, t[0], t[1], Tensor()); }, {x, w});
  }
}

TEST_CASE("conv2d: argument errors name conv2d and the shapes") {
  Tensor x = random({2, 3, 8, 8}, 500), w = random({4, 2, 3, 3}, 501);
  check_throws_with([&] { conv2d(x, w); }, {"conv2d", "[2, 3, 8, 8]", "[4, 2, 3, 3]", "channels"});
  check_throws_with([&] { conv2d(x, random({4, 3, 3, 3}, 1), Tensor(), 1, 0, 2); }, {"conv2d", "divisible", "groups"});
  check_throws_with([&] { conv2d(x, random({4, 3, 3, 3}, 1), random({5}, 2)); }, {"conv2d", "bias", "[5]"});
  check_throws_with([&] { conv2d(x, random({4, 3, 9, 9}, 1)); }, {"conv2d", "does not fit", "[2, 3, 8, 8]"});
  check_throws_with([&] { conv2d(random({3, 8, 8}, 1), w); }, {"conv2d", "[B, Cin, H, W]", "[3, 8, 8]"});
  check_throws_with([&] { conv2d(x, random({4, 3, 3, 3}, 1), Tensor(), 0); }, {"conv2d", "stride"});
  check_throws_with([&] { conv2d(x, random({4, 3, 3, 3}, 1, DType::f64)); }, {"conv2d", "f32", "f64"});
}

// ---- max_pool2d ---------------------------------------------------------------------

TEST_CASE("max_pool2d matches a naive reference; padding is -inf; gradient goes to the argmax") {
  const PoolCase cases[] = {
      {2, 3, 9, 8, 3, 3, 2, 2, 1, 1},  // ResNet's 3x3 stride 2 pad 1, odd/even sizes
      {1, 2, 8, 7, 2, 2, 2, 2, 0, 0},  // 2x2 stride 2, odd width (last column dropped)
      {2, 2, 5, 6, 3, 3, 1, 1, 1, 1},  // overlapping windows: gradients add up
      {1, 3, 7, 9, 3, 2, 2, 1, 1, 0},  // per-axis kernel, stride, padding
      {1, 1, 4, 4, 4, 4, 4, 4, 2, 2},  // padding = kernel / 2
  };
  uint64_t seed = 600;
  for (const PoolCase& c : cases) {
    CAPTURE(c.H); CAPTURE(c.W); CAPTURE(c.kh); CAPTURE(c.kw); CAPTURE(c.sh); CAPTURE(c.ph);
    // All negative: if padding counted as 0 instead of -inf, border outputs would be 0.
    Tensor x = add(neg(abs(random({c.B, c.C, c.H, c.W}, seed++))), -0.5);
    std::vector<double> ref;
    std::vector<int64_t> arg;
    naive_pool(c, x.to_vector(), ref, arg);
    with_threads([&] {
      for (DType dt : {DType::f32, DType::f64}) {
        Tensor xl = cast(x, dt).detach().set_requires_grad();
        Tensor y = max_pool2d(xl, Size2(c.kh, c.kw), Size2(c.sh, c.sw), Size2(c.ph, c.pw));
        REQUIRE(y.shape() == Shape{c.B, c.C, c.OH(), c.OW()});
        check_close(y, ref, 0, 0, "max_pool2d");
        Tensor gy = random(y.shape(), seed + 50, dt);
        autograd::backward(y, gy);
        std::vector<double> gref(size_t(x.numel()), 0.0);
        auto gv = gy.to_vector();
        for (size_t i = 0; i < arg.size(); ++i) gref[size_t(arg[i])] += gv[i];
        check_close(xl.grad(), gref, 1e-6, 1e-6, "max_pool2d grad");
      }
    });
    check_grad([c](const V& t) { return max_pool2d(t[0], Size2(c.kh, c.kw), Size2(c.sh, c.sw), Size2(c.ph, c.pw)); },
               {cast(x, DType::f64)});
  }
  // stride 0 (default) = kernel; ties take the first element.
  Tensor ones4 = ones({1, 1, 4, 4});
  Tensor o = ones4.detach().set_requires_grad();
  Tensor y = max_pool2d(o, 2);
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  autograd::backward(sum(y));
  check_close(o.grad(), {1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0}, 0, 0, "ties: first element");
  check_throws_with([&] { max_pool2d(ones4, 3, 1, 2); }, {"max_pool2d", "half the kernel"});
  check_throws_with([&] { max_pool2d(ones({4, 4}), 2); }, {"max_pool2d", "[B, C, H, W]", "[4, 4]"});
  check_throws_with([&] { max_pool2d(ones4, 5); }, {"max_pool2d", "does not fit", "[1, 1, 4, 4]"});
}

}  // TEST_SUITE
