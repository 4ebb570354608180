// Fused cross-entropy and attention against naive double-precision references written
// here (log-softmax and attention loops), plus gradchecks of every variant.
#include <cmath>
#include <limits>

#include "ops/attention.h"
#include "ops/backend.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "test_util.h"

using namespace mm;
using mm::test::check_close;
using mm::test::check_grad;
using mm::test::check_throws_with;
using mm::test::random;
using V = std::vector<Tensor>;

namespace {

// ---- cross-entropy reference -------------------------------------------------------

struct CeCase {
  const char* name;
  bool ignore = false;        // some rows use ignore_index
  double eps = 0.0;           // label smoothing
  int mask = 0;               // 0 none, 1 one [V] mask, 2 per-row [M, V] mask
};

// Targets for M rows over V classes: rows 1 and 4 ignored when asked; every other
// target allowed by the mask built by make_mask.
std::vector<int64_t> make_targets(int64_t M, int64_t V, bool ignore, int64_t ignore_index) {
  std::vector<int64_t> t;
  for (int64_t r = 0; r < M; ++r) t.push_back(ignore && (r == 1 || r == 4) ? ignore_index : (r * 5 + 2) % V);
  return t;
}

// The mask as [M, V] bytes (a shared mask repeated), plus the tensor handed to the op.
// Allowed: j % 3 != 1 (shared), or (j + r) % 3 != 0 (per row), and always the target.
std::vector<uint8_t> make_mask(int kind, int64_t M, int64_t V, const std::vector<int64_t>& tg, Tensor* t,
                               const Shape& rows_shape) {
  std::vector<uint8_t> m(size_t(M * V), 1);
  if (kind == 0) return m;
  std::vector<double> vals;
  if (kind == 1) {
    std::vector<double> row(static_cast<size_t>(V));
    for (int64_t j = 0; j < V; ++j) row[size_t(j)] = j % 3 != 1;
    for (int64_t r = 0; r < M; ++r)
      if (tg[size_t(r)] >= 0) row[size_t(tg[size_t(r)])] = 1;
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < V; ++j) m[size_t(r * V + j)] = uint8_t(row[size_t(j)]);
    *t = Tensor::from_vector(row, {V}, DType::u8);
    return m;
  }
  for (int64_t r = 0; r < M; ++r)
    for (int64_t j = 0; j < V; ++j) {
      const bool a = (j + r) % 3 != 0 || j == tg[size_t(r)];
      m[size_t(r * V + j)] = a;
      vals.push_back(a);
    }
  Shape s = rows_shape;
  s.push_back(V);
  *t = Tensor::from_vector(vals, s, DType::boolean);
  return m;
}

// Per-row losses and d(sum of per-row losses * w)/dlogits, in double.
void naive_ce(const std::vector<double>& x, int64_t M, int64_t V, const std::vector<int64_t>& tg,
              const std::vector<uint8_t>& mask, double eps, int64_t ignore, std::vector<double>* loss,
              std::vector<double>* grad, const std::vector<double>& w) {
  loss->assign(size_t(M), 0.0);
  grad->assign(size_t(M * V), 0.0);
  for (int64_t r = 0; r < M; ++r) {
    if (tg[size_t(r)] == ignore) continue;
    const double* xr = &x[size_t(r * V)];
    const uint8_t* a = &mask[size_t(r * V)];
    double mx = -1e300;
    int64_t K = 0;
    for (int64_t j = 0; j < V; ++j)
      if (a[j]) { mx = std::max(mx, xr[j]); ++K; }
    double s = 0;
    for (int64_t j = 0; j < V; ++j)
      if (a[j]) s += std::exp(xr[j] - mx);
    const double lse = mx + std::log(s);
    double smooth = 0;  // mean over allowed of -log p_j
    for (int64_t j = 0; j < V; ++j)
      if (a[j]) smooth += (lse - xr[j]) / double(K);
    const int64_t t = tg[size_t(r)];
    (*loss)[size_t(r)] = (1 - eps) * (lse - xr[t]) + eps * smooth;
    for (int64_t j = 0; j < V; ++j) {
      if (!a[j]) continue;
      const double q = (j == t ? 1 - eps : 0.0) + eps / double(K);
      (*grad)[size_t(r * V + j)] = w[size_t(r)] * (std::exp(xr[j] - lse) - q);
    }
  }
}

const CeCase kCeCases[] = {
    {"plain", false, 0.0, 0},
    {"ignore_index rows", true, 0.0, 0},
    {"label smoothing 0.1", false, 0.1, 0},
    {"[V] allowed mask", false, 0.0, 1},
    {"per-row [M, V] mask", false, 0.0, 2},
    {"mask + smoothing + ignore", true, 0.1, 2},
    {"[V] mask + smoothing", true, 0.1, 1},
};

}  // namespace

TEST_SUITE("ops") {

TEST_CASE("cross_entropy matches a naive log-softmax reference (f32, f64, every reduction)") {
  const int64_t ignore = -100;
  // Small odd rows, and long rows (> one 1024-wide block, maximum in a late block) that
  // exercise the streaming logsumexp's rescaling.
  for (int64_t Vn : {11, 2500}) {
    const Shape rows_shape{2, 3};
    const int64_t M = 6;
    Tensor base = random({2, 3, Vn}, 100 + uint64_t(Vn), DType::f64, 2.0);
    if (Vn > 1024) {  // a ramp: later blocks hold larger logits
      Tensor ramp = reshape(cast(Tensor::arange(Vn), DType::f64), {Vn});
      base = add(base, mul(ramp, 0.01));
    }
    for (const CeCase& c : kCeCases) {
      CAPTURE(c.name);
      CAPTURE(Vn);
      auto tg = make_targets(M, Vn, c.ignore, ignore);
      Tensor targets = Tensor::from_vector_i(tg, rows_shape);
      Tensor mask_t;
      auto mask = make_mask(c.mask, M, Vn, tg, &mask_t, rows_shape);
      std::vector<double> ref_loss, ref_grad, ones(size_t(M), 1.0);
      naive_ce(base.to_vector(), M, Vn, tg, mask, c.eps, ignore, &ref_loss, &ref_grad, ones);
      double total = 0;
      int64_t counted = 0;
      for (int64_t r = 0; r < M; ++r) {
        total += ref_loss[size_t(r)];
        counted += tg[size_t(r)] != ignore;
      }
      for (DType dt : {DType::f32, DType::f64}) {
        CAPTURE(dtype_name(dt));
        const double tol = dt == DType::f32 ? 2e-5 : 1e-11;
        Tensor logits = cast(base, dt);
        CrossEntropyOptions o;
        o.ignore_index = ignore;
        o.label_smoothing = c.eps;
        o.allowed = mask_t;
        o.reduction = Reduction::none;
        Tensor none = cross_entropy(logits, targets, o);
        CHECK(none.shape() == rows_shape);
        check_close(none, ref_loss, tol, tol, "none");
        o.reduction = Reduction::sum;
        Tensor s = cross_entropy(logits, targets, o);
        CHECK(s.dim() == 0);
        check_close(s, {total}, tol * 10, tol, "sum");
        o.reduction = Reduction::mean;
        check_close(cross_entropy(logits, targets, o), {total / double(counted)}, tol, tol, "mean");
        // The backward kernel (fast_exp in f32) against the analytic p - q of the reference.
        Tensor leaf = logits.detach();
        leaf.set_requires_grad(true);
        o.reduction = Reduction::sum;
        autograd::backward(cross_entropy(leaf, targets, o));
        check_close(leaf.grad(), ref_grad, tol, tol, "grad of sum");
      }
    }
  }
}

TEST_CASE("cross_entropy: gradcheck on logits for every variant and reduction") {
  const int64_t ignore = -7;  // a non-default ignore_index
  const Shape rows_shape{2, 3};
  const int64_t M = 6, Vn = 7;
  Tensor logits = random({2, 3, Vn}, 200, DType::f64);
  for (const CeCase& c : kCeCases) {
    CAPTURE(c.name);
    auto tg = make_targets(M, Vn, c.ignore, ignore);
    Tensor targets = Tensor::from_vector_i(tg, rows_shape);
    Tensor mask_t;
    make_mask(c.mask, M, Vn, tg, &mask_t, rows_shape);
    for (Reduction red : {Reduction::none, Reduction::sum, Reduction::mean}) {
      CAPTURE(int(red));
      CrossEntropyOptions o;
      o.ignore_index = ignore;
      o.label_smoothing = c.eps;
      o.reduction = red;
      check_grad([o](const V& x) {
        CrossEntropyOptions oo = o;
        oo.allowed = x[2];
        return cross_entropy(x[0], x[1], oo);
      }, {logits, targets, mask_t});
    }
  }
  // Non-contiguous logits ([V, M] transposed) and a per-row mask given flat as [M, V].
  Tensor lt = random({Vn, M}, 201, DType::f64);
  auto tg = make_targets(M, Vn, true, ignore);
  Tensor targets = Tensor::from_vector_i(tg, {M});
  Tensor mask_t;
  auto mask = make_mask(2, M, Vn, tg, &mask_t, {M});
  check_grad([&](const V& x) {
    CrossEntropyOptions o;
    o.ignore_index = ignore;
    o.label_smoothing = 0.2;
    o.allowed = x[2];
    return cross_entropy(transpose(x[0], 0, 1), x[1], o);
  }, {lt, targets, mask_t});
}

TEST_CASE("cross_entropy: masks broadcast from [B, 1, V] and [M, V] for [B, T, V] logits") {
  Tensor logits = random({2, 3, 5}, 300, DType::f64);
  Tensor targets = Tensor::from_vector_i({0, 2, 4, 1, 3, 1}, {2, 3});
  // [2, 1, 5]: batch 0 allows {0, 2, 4}, batch 1 allows {1, 3}.
  Tensor m = Tensor::from_vector({1, 0, 1, 0, 1, 0, 1, 0, 1, 0}, {2, 1, 5}, DType::u8);
  std::vector<uint8_t> full;
  for (int b = 0; b < 2; ++b)
    for (int t = 0; t < 3; ++t)
      for (int j = 0; j < 5; ++j) full.push_back(uint8_t((j % 2) == b ? 1 : 0));
  std::vector<double> ref, g, w(6, 1.0);
  naive_ce(logits.to_vector(), 6, 5, {0, 2, 4, 1, 3, 1}, full, 0.1, -100, &ref, &g, w);
  CrossEntropyOptions o;
  o.allowed = m;
  o.label_smoothing = 0.1;
  o.reduction = Reduction::none;
  check_close(cross_entropy(logits, targets, o), ref, 1e-12, 1e-12, "[B, 1, V] mask");
  std::vector<double> flat(full.begin(), full.end());
  o.allowed = Tensor::from_vector(flat, {6, 5}, DType::u8);
  check_close(cross_entropy(logits, targets, o), ref, 1e-12, 1e-12, "[M, V] mask");
}

TEST_CASE("cross_entropy kernels: a mask view with a non-unit column stride") {
  // The op always hands the kernels unit column strides; the kernel contract allows any.
  const int64_t M = 4, Vn = 6;
  Tensor logits = random({M, Vn}, 310, DType::f64);
  Tensor targets = Tensor::from_vector_i({0, 5, 2, 3}, {M});
  std::vector<double> mt(size_t(Vn * M));  // stored [V, M], viewed as [M, V]
  std::vector<uint8_t> mask(size_t(M * Vn));
  for (int64_t r = 0; r < M; ++r)
    for (int64_t j = 0; j < Vn; ++j) {
      const bool a = (j + r) % 2 == 0 || j == (std::vector<int64_t>{0, 5, 2, 3})[size_t(r)];
      mt[size_t(j * M + r)] = a;
      mask[size_t(r * Vn + j)] = a;
    }
  Tensor stored = Tensor::from_vector(mt, {Vn, M}, DType::u8);
  Tensor view = stored.as_strided({M, Vn}, {1, M}, 0);
  CrossEntropyArgs a;
  a.label_smoothing = 0.2;
  Tensor loss = Tensor::empty({M}, DType::f64), lse = Tensor::empty({M}, DType::f64);
  Backend& be = backend_for(Device::cpu());
  be.cross_entropy(logits, targets, view, a, loss, lse);
  std::vector<double> ref, g, w(size_t(M), 1.0);
  naive_ce(logits.to_vector(), M, Vn, {0, 5, 2, 3}, mask, 0.2, -100, &ref, &g, w);
  check_close(loss, ref, 1e-12, 1e-12, "loss");
  Tensor gx = Tensor::empty({M, Vn}, DType::f64);
  be.cross_entropy_backward(logits, targets, view, a, lse, Tensor::ones({M}, DType::f64), gx);
  check_close(gx, g, 1e-12, 1e-12, "grad");
}

TEST_CASE("cross_entropy: every row ignored gives mean 0 and zero gradients, never NaN") {
  Tensor logits = random({3, 4}, 301, DType::f64);
  logits.set_requires_grad(true);
  Tensor targets = Tensor::from_vector_i({-100, -100, -100}, {3});
  Tensor l = cross_entropy(logits, targets);
  check_close(l, {0.0}, 0, 0, "mean");
  autograd::backward(l);
  check_close(logits.grad(), std::vector<double>(12, 0.0), 0, 0, "grad");
}

TEST_CASE("cross_entropy: errors name the row, the id and the shapes") {
  Tensor logits = random({2, 3, 5}, 302);
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector_i({0, 1, 2, 3, 5, 0}, {2, 3})); },
                    {"cross_entropy", "row 4", "target id 5", "[0, 5)"});
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector_i({0, -1, 2, 3, 4, 0}, {2, 3})); },
                    {"row 1", "target id -1"});
  CrossEntropyOptions o;
  o.allowed = Tensor::from_vector({1, 1, 0, 1, 1}, {5}, DType::u8);
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector_i({0, 1, 1, 2, 4, 0}, {2, 3}), o); },
                    {"row 3", "target id 2", "not in the allowed set"});
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector_i({0, 1, 2, 3}, {2, 2})); },
                    {"cross_entropy", "[2, 2]", "[2, 3, 5]"});
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector({0, 1, 2, 3, 4, 0}, {2, 3}, DType::f32)); },
                    {"cross_entropy", "i64"});
  // Enough rows to be split across threads: the first bad row is reported, whichever
  // thread found it, and nothing is thrown inside the pool.
  Tensor big = random({64, 2048}, 303);
  std::vector<int64_t> tv;
  for (int64_t r = 0; r < 64; ++r) tv.push_back(r * 31 % 2048);
  tv[50] = 2048;
  tv[40] = -3;
  check_throws_with([&] { cross_entropy(big, Tensor::from_vector_i(tv, {64})); }, {"row 40", "target id -3"});
  tv[50] = 7;
  tv[40] = 9;
  std::vector<double> ref, g, w(64, 1.0);
  naive_ce(big.to_vector(), 64, 2048, tv, std::vector<uint8_t>(64 * 2048, 1), 0.0, -100, &ref, &g, w);
  double total = 0;
  for (double l : ref) total += l;
  check_close(cross_entropy(big, Tensor::from_vector_i(tv, {64})), {total / 64}, 1e-5, 1e-5, "64 rows");
  o.allowed = Tensor::from_vector({1, 1, 1, 1}, {4}, DType::u8);
  check_throws_with([&] { cross_entropy(logits, Tensor::from_vector_i({0, 1, 2, 3, 4, 0}, {2, 3}), o); },
                    {"allowed mask", "[4]", "[2, 3, 5]"});
}

}  // TEST_SUITE

// ---- attention reference -------------------------------------------------------------

namespace {

// Naive attention in double. bias_shape is the bias's own shape (broadcast by hand);
// pad [B * Tk] bytes or empty.
std::vector<double> naive_attention(const std::vector<double>& q, const std::vector<double>& k,
                                    const std::vector<double>& v, int64_t B, int64_t H, int64_t Tq, int64_t Tk,
                                    int64_t D, const std::vector<double>& bias, const Shape& bias_shape,
                                    const std::vector<uint8_t>& pad, bool causal, double scale) {
  std::vector<double> out(size_t(B * H * Tq * D), 0.0);
  // Bias index with broadcasting: right-align the bias shape with [B, H, Tq, Tk].
  auto bias_at = [&](int64_t b, int64_t h, int64_t i, int64_t j) {
    if (bias.empty()) return 0.0;
    const int64_t idx4[4] = {b, h, i, j};
    int64_t off = 0;
    for (int d = 0; d < bias_shape.n; ++d) {
      const int64_t sz = bias_shape[d];
      const int64_t id = idx4[4 - bias_shape.n + d];
      off = off * sz + (sz == 1 ? 0 : id);
    }
    return bias[size_t(off)];
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        std::vector<double> s(size_t(Tk), 0.0);
        std::vector<bool> vis(size_t(Tk), true);
        double mx = -1e300;
        bool any = false;
        for (int64_t j = 0; j < Tk; ++j) {
          if ((!pad.empty() && pad[size_t(b * Tk + j)]) || (causal && j > i + (Tk - Tq))) { vis[size_t(j)] = false; continue; }
          double d = 0;
          for (int64_t c = 0; c < D; ++c)
            d += q[size_t(((b * H + h) * Tq + i) * D + c)] * k[size_t(((b * H + h) * Tk + j) * D + c)];
          s[size_t(j)] = scale * d + bias_at(b, h, i, j);
          mx = std::max(mx, s[size_t(j)]);
          any = true;
        }
        if (!any) continue;  // zeros
        double z = 0;
        for (int64_t j = 0; j < Tk; ++j)
          if (vis[size_t(j)]) z += std::exp(s[size_t(j)] - mx);
        for (int64_t j = 0; j < Tk; ++j) {
          if (!vis[size_t(j)]) continue;
          const double p = std::exp(s[size_t(j)] - mx) / z;
          for (int64_t c = 0; c < D; ++c)
            out[size_t(((b * H + h) * Tq + i) * D + c)] += p * v[size_t(((b * H + h) * Tk + j) * D + c)];
        }
      }
  return out;
}

std::vector<uint8_t> make_pad(int64_t B, int64_t Tk) {
  // Batch b pads its last b + 1 keys.
  std::vector<uint8_t> p(size_t(B * Tk), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = Tk - 1 - b; j < Tk; ++j)
      if (j >= 0) p[size_t(b * Tk + j)] = 1;
  return p;
}

Tensor pad_tensor(const std::vector<uint8_t>& p, int64_t B, int64_t Tk, DType dt = DType::u8) {
  return Tensor::from_vector(std::vector<double>(p.begin(), p.end()), {B, Tk}, dt);
}

}  // namespace

TEST_SUITE("ops") {

TEST_CASE("attention matches a naive reference: bias, padding, causal, Tq != Tk") {
  const int64_t B = 2, H = 3, D = 5;
  struct C { const char* name; int64_t Tq, Tk; int bias; bool pad, causal; double scale; };
  // bias: 0 none, 1 [1, H, Tq, Tk], 2 full [B, H, Tq, Tk], 3 [Tq, Tk], 4 a transposed
  // [1, H, Tk, Tq] (strided along keys), 5 [B, 1, Tq, 1] (stride 0 along keys)
  const C cases[] = {
      {"plain square", 7, 7, 0, false, false, 0},
      {"plain Tq < Tk", 3, 9, 0, false, false, 0},
      {"relative bias [1, H, Tq, Tk]", 5, 7, 1, false, false, 0},
      {"full bias", 6, 4, 2, false, false, 0},
      {"2-D bias + padding", 5, 6, 3, true, false, 0},
      {"causal square", 7, 7, 0, false, true, 0},
      {"causal Tq < Tk + pad + bias", 3, 8, 1, true, true, 0},
      {"causal Tq > Tk (first rows see nothing)", 6, 3, 1, false, true, 0.3},
      {"transposed (strided) bias view + pad", 4, 5, 4, true, false, 0},
      {"bias broadcast along keys [B, 1, Tq, 1]", 4, 5, 5, false, true, 0},
  };
  for (const C& c : cases) {
    CAPTURE(c.name);
    Tensor q = random({B, H, c.Tq, D}, 400, DType::f64), k = random({B, H, c.Tk, D}, 401, DType::f64),
           v = random({B, H, c.Tk, D}, 402, DType::f64);
    Shape bs;
    if (c.bias == 1) bs = {1, H, c.Tq, c.Tk};
    if (c.bias == 2) bs = {B, H, c.Tq, c.Tk};
    if (c.bias == 3) bs = {c.Tq, c.Tk};
    if (c.bias == 4) bs = {1, H, c.Tq, c.Tk};
    if (c.bias == 5) bs = {B, 1, c.Tq, 1};
    Tensor bias = c.bias ? random(bs, 403, DType::f64) : Tensor();
    if (c.bias == 4) bias = transpose(random({1, H, c.Tk, c.Tq}, 404, DType::f64), 2, 3);
    auto pad = c.pad ? make_pad(B, c.Tk) : std::vector<uint8_t>();
    const double scale = c.scale > 0 ? c.scale : 1.0 / std::sqrt(double(D));
    auto ref = naive_attention(q.to_vector(), k.to_vector(), v.to_vector(), B, H, c.Tq, c.Tk, D,
                               bias.defined() ? bias.to_vector() : std::vector<double>(), bs, pad, c.causal, scale);
    for (DType dt : {DType::f32, DType::f64}) {
      CAPTURE(dtype_name(dt));
      AttentionOptions o;
      if (bias.defined()) o.bias = cast(bias, dt);
      if (c.pad) o.key_padding_mask = pad_tensor(pad, B, c.Tk, dt == DType::f32 ? DType::u8 : DType::boolean);
      o.causal = c.causal;
      if (c.scale > 0) o.scale = c.scale;
      Tensor y = attention(cast(q, dt), cast(k, dt), cast(v, dt), o);
      CHECK(y.shape() == Shape{B, H, c.Tq, D});
      const double tol = dt == DType::f32 ? 1e-5 : 1e-12;
      check_close(y, ref, tol, tol, c.name);
    }
  }
}

TEST_CASE("attention: rows with no visible key give zeros and zero gradients, never NaN") {
  const int64_t B = 2, H = 2, Tq = 3, Tk = 4, D = 3;
  Tensor q = random({B, H, Tq, D}, 410, DType::f64), k = random({B, H, Tk, D}, 411, DType::f64),
         v = random({B, H, Tk, D}, 412, DType::f64);
  q.set_requires_grad(true);
  k.set_requires_grad(true);
  v.set_requires_grad(true);
  std::vector<uint8_t> pad(size_t(B * Tk), 0);
  for (int64_t j = 0; j < Tk; ++j) pad[size_t(Tk + j)] = 1;  // batch 1: every key is padding
  AttentionOptions o;
  o.key_padding_mask = pad_tensor(pad, B, Tk);
  Tensor y = attention(q, k, v, o);
  auto yv = y.to_vector();
  for (size_t i = 0; i < yv.size(); ++i) REQUIRE(std::isfinite(yv[i]));
  for (int64_t i = B * H * Tq * D / 2; i < B * H * Tq * D; ++i) CHECK(yv[size_t(i)] == 0.0);
  autograd::backward(sum(mul(y, y)));
  auto gq = q.grad().to_vector(), gk = k.grad().to_vector(), gv = v.grad().to_vector();
  for (size_t i = gq.size() / 2; i < gq.size(); ++i) CHECK(gq[i] == 0.0);
  for (size_t i = gk.size() / 2; i < gk.size(); ++i) CHECK(gk[i] == 0.0);
  for (size_t i = 0; i < gk.size(); ++i) CHECK(std::isfinite(gk[i]));
  for (size_t i = gv.size() / 2; i < gv.size(); ++i) CHECK(gv[i] == 0.0);
  // f32 too: the -inf scores must not leak through fast_exp.
  Tensor y32 = attention(cast(q.detach(), DType::f32), cast(k.detach(), DType::f32), cast(v.detach(), DType::f32), o);
  check_close(y32, yv, 1e-5, 1e-5, "f32");
}

TEST_CASE("attention: gradcheck on q, k, v and a learned bias") {
  const int64_t B = 2, H = 2, D = 3;
  struct C { const char* name; int64_t Tq, Tk; int bias; bool pad, causal; };
  const C cases[] = {
      {"plain", 3, 5, 0, false, false},
      {"[1, H, Tq, Tk] bias + pad + causal", 3, 5, 1, true, true},
      {"full bias + causal Tq > Tk", 4, 3, 2, false, true},
      {"[Tq, Tk] bias + pad", 3, 4, 3, true, false},
      {"transposed bias view", 3, 4, 4, false, true},
  };
  for (const C& c : cases) {
    CAPTURE(c.name);
    Tensor q = random({B, H, c.Tq, D}, 420, DType::f64), k = random({B, H, c.Tk, D}, 421, DType::f64),
           v = random({B, H, c.Tk, D}, 422, DType::f64);
    Shape bs{1, 1};
    if (c.bias == 1) bs = {1, H, c.Tq, c.Tk};
    if (c.bias == 2) bs = {B, H, c.Tq, c.Tk};
    if (c.bias == 3) bs = {c.Tq, c.Tk};
    Tensor bias = c.bias ? random(bs, 423, DType::f64) : Tensor();
    // Stored [H, Tk, Tq] and transposed inside f (gradcheck hands f contiguous copies).
    const bool tr = c.bias == 4;
    if (tr) bias = random({H, c.Tk, c.Tq}, 424, DType::f64);
    Tensor pad = c.pad ? pad_tensor(make_pad(B, c.Tk), B, c.Tk) : Tensor();
    const bool causal = c.causal;
    check_grad([causal, tr](const V& x) {
      AttentionOptions o;
      o.bias = tr ? transpose(x[3], 1, 2) : x[3];
      o.key_padding_mask = x[4];
      o.causal = causal;
      return attention(x[0], x[1], x[2], o);
    }, {q, k, v, bias, pad});
  }
}

TEST_CASE("attention: permuted (non-contiguous) q, k, v from [B, T, H, D] projections") {
  const int64_t B = 2, T = 5, H = 3, D = 4;
  Tensor qb = random({B, T, H, D}, 430, DType::f64), kb = random({B, T, H, D}, 431, DType::f64),
         vb = random({B, T, H, D}, 432, DType::f64);
  Tensor q = permute(qb, {0, 2, 1, 3}), k = permute(kb, {0, 2, 1, 3}), v = permute(vb, {0, 2, 1, 3});
  CHECK_FALSE(q.is_contiguous());
  AttentionOptions o;
  o.causal = true;
  Tensor ref = attention(contiguous(q), contiguous(k), contiguous(v), o);
  check_close(attention(q, k, v, o), ref, 0, 0, "permuted");
  check_grad([](const V& x) {
    AttentionOptions oo;
    oo.causal = true;
    oo.bias = x[3];
    return attention(permute(x[0], {0, 2, 1, 3}), permute(x[1], {0, 2, 1, 3}), permute(x[2], {0, 2, 1, 3}), oo);
  }, {qb, kb, vb, random({H, 1, T}, 433, DType::f64)});
}

TEST_CASE("attention: errors name the shapes") {
  Tensor q = random({2, 3, 4, 5}, 440), k = random({2, 3, 6, 5}, 441);
  check_throws_with([&] { attention(q, random({2, 3, 6, 4}, 442), k); }, {"attention", "[2, 3, 6, 4]", "[2, 3, 4, 5]"});
  check_throws_with([&] { attention(q, k, random({2, 3, 5, 5}, 443)); }, {"attention", "[2, 3, 5, 5]", "[2, 3, 6, 5]"});
  check_throws_with([&] { attention(random({3, 4, 5}, 444), k, k); }, {"attention", "[3, 4, 5]"});
  AttentionOptions o;
  o.bias = random({3, 5, 6}, 445);
  check_throws_with([&] { attention(q, k, k, o); }, {"attention", "bias", "[3, 5, 6]", "[2, 3, 4, 6]"});
  AttentionOptions p;
  p.key_padding_mask = Tensor::zeros({2, 5}, DType::u8);
  check_throws_with([&] { attention(q, k, k, p); }, {"key_padding_mask", "[2, 5]", "[2, 6]"});
}

}  // TEST_SUITE
