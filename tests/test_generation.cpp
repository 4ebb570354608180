// Generation (models/generation.h) against references written here: a hand-worked
// probability table, brute-force enumeration of every sequence up to a length, a greedy
// loop over a table, and a tiny transformer decoder run both with a KV cache and by
// recomputing the whole prefix each step (which exercises reorder).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "models/generation.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/matmul.h"
#include "ops/shape.h"
#include "tasks/trie.h"
#include "tasks/vocab.h"
#include "test_util.h"

using namespace mm;
using mm::test::check_throws_with;

namespace {

constexpr int64_t kBos = 1, kEos = 2;
constexpr double kInf = std::numeric_limits<double>::infinity();

// log_softmax in double, -inf entries allowed (the reference for scores).
std::vector<double> log_softmax_ref(const std::vector<float>& x) {
  double m = -kInf;
  for (float v : x) m = std::max(m, double(v));
  double s = 0;
  for (float v : x) s += std::exp(double(v) - m);
  std::vector<double> out(x.size());
  for (size_t j = 0; j < x.size(); ++j) out[j] = double(x[j]) - m - std::log(s);
  return out;
}

// ---- test decoders ------------------------------------------------------------------

// Logits as a function of each row's fed history (start token onwards).
class TableDecoder : public StepDecoder {
 public:
  using Fn = std::function<std::vector<float>(const std::vector<int64_t>& history)>;
  TableDecoder(int64_t B, int64_t V, Fn fn) : hist_(size_t(B)), V_(V), fn_(std::move(fn)) {}
  int64_t num_rows() const override { return int64_t(hist_.size()); }
  int64_t vocab_size() const override { return V_; }
  Tensor step(const Tensor& last) override {
    const int64_t N = num_rows();
    REQUIRE(last.dim() == 1);
    REQUIRE(last.size(0) == N);
    REQUIRE(last.dtype() == DType::i64);
    std::vector<float> out;
    for (int64_t i = 0; i < N; ++i) {
      hist_[size_t(i)].push_back(last.data<int64_t>()[i]);
      std::vector<float> l = fn_(hist_[size_t(i)]);
      out.insert(out.end(), l.begin(), l.end());
    }
    ++steps;
    rows_fed += N;
    return Tensor::from_vector_f(out, {N, V_});
  }
  void reorder(const std::vector<int64_t>& rows) override {
    std::vector<std::vector<int64_t>> h;
    for (int64_t r : rows) h.push_back(hist_.at(size_t(r)));
    hist_ = std::move(h);
  }
  int64_t steps = 0, rows_fed = 0;

 private:
  std::vector<std::vector<int64_t>> hist_;
  int64_t V_;
  Fn fn_;
};

// Pseudo-random logits keyed by a hash of the whole history.
TableDecoder::Fn hashed_logits(int64_t V, uint64_t seed, double scale) {
  return [=](const std::vector<int64_t>& h) {
    uint64_t x = 1469598103934665603ull;
    for (int64_t t : h) x = (x ^ uint64_t(t + 1)) * 1099511628211ull;
    std::vector<float> l(static_cast<size_t>(V));
    for (int64_t j = 0; j < V; ++j) l[size_t(j)] = float(scale * philox_normal(seed, x, uint64_t(j)));
    return l;
  };
}

// Fresh random logits every call (no dependence on the prefix); eos_bias shifts EOS.
class RandomDecoder : public StepDecoder {
 public:
  RandomDecoder(int64_t B, int64_t V, uint64_t seed, double eos_bias = 0.0) : n_(B), V_(V), seed_(seed), eos_bias_(eos_bias) {}
  int64_t num_rows() const override { return n_; }
  int64_t vocab_size() const override { return V_; }
  Tensor step(const Tensor& last) override {
    REQUIRE(last.size(0) == n_);
    std::vector<float> l(size_t(n_ * V_));
    for (int64_t i = 0; i < n_ * V_; ++i)
      l[size_t(i)] = float(3.0 * philox_normal(seed_, uint64_t(steps), uint64_t(i)) + (i % V_ == kEos ? eos_bias_ : 0.0));
    ++steps;
    logits.push_back(l);
    return Tensor::from_vector_f(l, {n_, V_});
  }
  void reorder(const std::vector<int64_t>& rows) override {
    for (int64_t r : rows) REQUIRE(r < n_);
    n_ = int64_t(rows.size());
  }
  int64_t steps = 0;
  std::vector<std::vector<float>> logits;  // per step, [n_, V] row-major

 private:
  int64_t n_, V_;
  uint64_t seed_;
  double eos_bias_;
};

// A one-layer transformer language model from ops: token + position embeddings, causal
// self-attention, a GELU MLP, tied output projection.
struct TinyLM {
  static constexpr int64_t V = 24, C = 16, H = 2, D = 8, Tmax = 40;
  Tensor wte, wpe, wqkv, wo, w1, w2;
  explicit TinyLM(uint64_t seed)
      : wte(test::random({V, C}, seed, DType::f32, 1.0)),
        wpe(test::random({Tmax, C}, seed + 1, DType::f32, 0.5)),
        wqkv(test::random({3 * C, C}, seed + 2, DType::f32, 0.4)),
        wo(test::random({C, C}, seed + 3, DType::f32, 0.3)),
        w1(test::random({4 * C, C}, seed + 4, DType::f32, 0.3)),
        w2(test::random({C, 4 * C}, seed + 5, DType::f32, 0.2)) {}

  // ids [N, T] at positions pos0.. -> logits [N, T, V]. With a cache (k, v [N, H, Tpast, D],
  // undefined when empty) the new keys and values are appended to it.
  Tensor forward(const Tensor& ids, int64_t pos0, Tensor* kc, Tensor* vc) const {
    const int64_t N = ids.size(0), T = ids.size(1);
    Tensor x = embedding(wte, ids) + unsqueeze(narrow(wpe, 0, pos0, T), 0);
    std::vector<Tensor> p = split(linear(x, wqkv), {C, C, C}, 2);
    auto heads = [&](const Tensor& t) { return permute(reshape(contiguous(t), {N, T, H, D}), {0, 2, 1, 3}); };
    Tensor q = heads(p[0]), k = heads(p[1]), v = heads(p[2]);
    if (kc) {
      if (kc->defined()) { k = concat({*kc, k}, 2); v = concat({*vc, v}, 2); }
      *kc = contiguous(k);
      *vc = contiguous(v);
    }
    AttentionOptions ao;
    ao.causal = true;
    Tensor a = attention(q, k, v, ao);
    Tensor h = x + linear(reshape(contiguous(permute(a, {0, 2, 1, 3})), {N, T, C}), wo);
    h = h + linear(gelu(linear(h, w1)), w2);
    return linear(h, wte);
  }
};

class CachedLM : public StepDecoder {
 public:
  CachedLM(const TinyLM& m, int64_t B) : m_(m), n_(B) {}
  int64_t num_rows() const override { return n_; }
  int64_t vocab_size() const override { return TinyLM::V; }
  Tensor step(const Tensor& last) override {
    Tensor logits = m_.forward(reshape(last, {n_, 1}), pos_++, &k_, &v_);
    return reshape(logits, {n_, TinyLM::V});
  }
  void reorder(const std::vector<int64_t>& rows) override {
    Tensor idx = Tensor::from_vector_i(rows, {int64_t(rows.size())});
    k_ = index_select(k_, 0, idx);
    v_ = index_select(v_, 0, idx);
    n_ = int64_t(rows.size());
  }

 private:
  const TinyLM& m_;
  int64_t n_, pos_ = 0;
  Tensor k_, v_;
};

class RecomputeLM : public StepDecoder {
 public:
  RecomputeLM(const TinyLM& m, int64_t B) : m_(m), hist_(size_t(B)) {}
  int64_t num_rows() const override { return int64_t(hist_.size()); }
  int64_t vocab_size() const override { return TinyLM::V; }
  Tensor step(const Tensor& last) override {
    const int64_t N = num_rows();
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < N; ++i) {
      hist_[size_t(i)].push_back(last.data<int64_t>()[i]);
      ids.insert(ids.end(), hist_[size_t(i)].begin(), hist_[size_t(i)].end());
    }
    const int64_t T = int64_t(hist_[0].size());
    Tensor logits = m_.forward(Tensor::from_vector_i(ids, {N, T}), 0, nullptr, nullptr);
    return reshape(contiguous(narrow(logits, 1, T - 1, 1)), {N, TinyLM::V});
  }
  void reorder(const std::vector<int64_t>& rows) override {
    std::vector<std::vector<int64_t>> h;
    for (int64_t r : rows) h.push_back(hist_.at(size_t(r)));
    hist_ = std::move(h);
  }

 private:
  const TinyLM& m_;
  std::vector<std::vector<int64_t>> hist_;
};

// Sum of the model's log-probs of tokens[skip..] after start + tokens[..i), by a fresh
// one-row recomputation: what a hypothesis' score must be when nothing is masked.
double rescore(const TinyLM& m, int64_t start, const std::vector<int64_t>& tokens, size_t skip) {
  std::vector<int64_t> h{start};
  double s = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    Tensor logits = m.forward(Tensor::from_vector_i(h, {1, int64_t(h.size())}), 0, nullptr, nullptr);
    std::vector<float> last = contiguous(narrow(logits, 1, int64_t(h.size()) - 1, 1)).to_vector_f();
    if (i >= skip) s += log_softmax_ref(last)[size_t(tokens[i])];
    h.push_back(tokens[i]);
  }
  return s;
}

// Every complete sequence (free tokens ending with EOS, EOS forced after max_len free
// tokens, none before min_len) of a table decoder, with its score.
void enumerate(const TableDecoder::Fn& fn, std::vector<int64_t>& hist, int64_t min_len, int64_t max_len,
               double score, std::map<std::vector<int64_t>, double>& out) {
  const std::vector<double> lp = log_softmax_ref(fn(hist));
  const int64_t len = int64_t(hist.size()) - 1;
  if (len >= min_len) {
    std::vector<int64_t> seq(hist.begin() + 1, hist.end());
    seq.push_back(kEos);
    out[seq] = score + lp[kEos];
  }
  if (len == max_len) return;
  for (size_t j = 0; j < lp.size(); ++j) {
    if (int64_t(j) == kEos) continue;
    hist.push_back(int64_t(j));
    enumerate(fn, hist, min_len, max_len, score + lp[j], out);
    hist.pop_back();
  }
}

bool repeats_ngram(const std::vector<int64_t>& s, int n) {
  std::set<std::vector<int64_t>> seen;
  for (size_t i = 0; i + size_t(n) <= s.size(); ++i)
    if (!seen.insert(std::vector<int64_t>(s.begin() + long(i), s.begin() + long(i) + n)).second) return true;
  return false;
}

std::vector<int64_t> with_start(int64_t start, const std::vector<int64_t>& t) {
  std::vector<int64_t> s{start};
  s.insert(s.end(), t.begin(), t.end());
  return s;
}

}  // namespace

TEST_SUITE("generation") {

TEST_CASE("greedy and beam search on a hand-worked table") {
  // Tokens: 2 = EOS, 3 = a, 4 = b. Greedy takes a (0.5) then EOS (0.4): p = 0.20.
  // Beam 2 keeps b (0.4) too, whose EOS has 0.9: p = 0.36, the better answer.
  auto table = [](const std::vector<int64_t>& h) {
    std::vector<float> p{0, 0, 0.6f, 0.2f, 0.2f};
    if (h.size() == 1) p = {0, 0, 0.1f, 0.5f, 0.4f};
    else if (h.size() == 2 && h[1] == 3) p = {0, 0, 0.4f, 0.3f, 0.3f};
    else if (h.size() == 2 && h[1] == 4) p = {0, 0, 0.9f, 0.05f, 0.05f};
    std::vector<float> l;
    for (float x : p) l.push_back(std::log(x));  // log 0 = -inf: never chosen
    return l;
  };
  GenerationOptions o;
  TableDecoder g(1, 5, table);
  std::vector<Hypothesis> gr = greedy_search(g, o);
  CHECK(gr[0].tokens == std::vector<int64_t>{3, 2});
  CHECK(gr[0].answer() == std::vector<int64_t>{3});
  CHECK(gr[0].ended_by_eos);
  CHECK(gr[0].score == doctest::Approx(std::log(0.2)).epsilon(1e-6));
  CHECK(gr[0].norm_score == doctest::Approx(std::log(0.2) / 2).epsilon(1e-6));

  o.beam_size = 2;
  o.nbest = 2;
  TableDecoder d(1, 5, table);
  Hypotheses h = beam_search(d, o);
  REQUIRE(h[0].size() == 2);
  CHECK(h[0][0].tokens == std::vector<int64_t>{4, 2});
  CHECK(h[0][0].score == doctest::Approx(std::log(0.36)).epsilon(1e-6));
  CHECK(h[0][1].tokens == std::vector<int64_t>{3, 2});
  CHECK(d.steps == 2);  // both finished at step 2: beam_size hypotheses end the search

  // A negative length penalty favours short answers (score / len^lp = score * len^3):
  // EOS alone, log 0.1 = -2.30, beats b EOS, log 0.36 * 8 = -8.17.
  o.beam_size = 3;
  o.nbest = 1;
  o.len_penalty = -3;
  TableDecoder d3(1, 5, table);
  CHECK(beam_search(d3, o)[0][0].tokens == std::vector<int64_t>{2});
}

TEST_CASE("beam search with a beam covering every sequence finds the brute-force best") {
  const int64_t V = 5, max_len = 3;
  const std::vector<int64_t> starts{1, 3, 4};  // three inputs, three different tables
  for (double lp : {0.0, 0.5, 1.0, 2.0}) {
    for (int64_t min_len : {0, 2}) {
      CAPTURE(lp);
      CAPTURE(min_len);
      auto fn = hashed_logits(V, 7, 1.5);
      GenerationOptions o;
      o.start_tokens = starts;
      o.min_len = min_len;
      o.max_len = max_len;
      o.len_penalty = lp;
      o.beam_size = 85;  // 1 + 4 + 16 + 64 complete sequences
      o.nbest = 10;
      TableDecoder d(3, V, fn);
      Hypotheses h = beam_search(d, o);
      TableDecoder g(3, V, fn);
      std::vector<Hypothesis> gr = greedy_search(g, o);
      for (size_t b = 0; b < starts.size(); ++b) {
        std::map<std::vector<int64_t>, double> all;
        std::vector<int64_t> hist{starts[b]};
        enumerate(fn, hist, min_len, max_len, 0.0, all);
        std::vector<std::pair<double, std::vector<int64_t>>> ranked;
        for (const auto& [seq, s] : all) ranked.push_back({s / std::pow(double(seq.size()), lp), seq});
        std::sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
        REQUIRE(h[b].size() == 10);
        for (size_t k = 0; k < 10; ++k) {
          CHECK(h[b][k].tokens == ranked[k].second);
          CHECK(h[b][k].norm_score == doctest::Approx(ranked[k].first).epsilon(1e-5));
          CHECK(h[b][k].score == doctest::Approx(all[ranked[k].second]).epsilon(1e-5));
        }
        // The greedy answer is one of the sequences, scored as the enumeration scores it.
        REQUIRE(all.count(gr[b].tokens) == 1);
        CHECK(gr[b].score == doctest::Approx(all[gr[b].tokens]).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("beam search with beam 1 equals greedy") {
  for (uint64_t seed = 0; seed < 6; ++seed) {
    GenerationOptions o;
    o.beam_size = 1;
    o.max_len = 8;
    o.min_len = seed % 3;
    o.len_penalty = 0.5 * double(seed);
    o.no_repeat_ngram = seed % 2 ? 2 : 0;
    auto fn = hashed_logits(7, 100 + seed, 2.0);
    TableDecoder a(4, 7, fn), b(4, 7, fn);
    std::vector<Hypothesis> gr = greedy_search(a, o);
    Hypotheses bm = beam_search(b, o);
    for (size_t i = 0; i < gr.size(); ++i) {
      REQUIRE(bm[i].size() == 1);
      CHECK(bm[i][0].tokens == gr[i].tokens);
      CHECK(bm[i][0].score == doctest::Approx(gr[i].score).epsilon(1e-9));
    }
  }
  TinyLM m(11);
  GenerationOptions o;
  o.beam_size = 1;
  o.max_len = 12;
  o.prefix = {{}, {5, 6}, {7}};
  CachedLM a(m, 3), b(m, 3);
  std::vector<Hypothesis> gr = greedy_search(a, o);
  Hypotheses bm = beam_search(b, o);
  for (size_t i = 0; i < 3; ++i) CHECK(bm[i][0].tokens == gr[i].tokens);
}

TEST_CASE("kv-cache decoding equals recomputation") {
  TinyLM m(3);
  {  // logits step by step, across reorders that drop, repeat and permute rows
    CachedLM c(m, 3);
    RecomputeLM r(m, 3);
    std::vector<std::vector<int64_t>> feeds{{1, 1, 1}, {5, 9, 3}, {7, 7, 2, 4}, {8, 2}, {3, 3, 3}};
    std::vector<std::vector<int64_t>> reorders{{}, {2, 0, 0, 1}, {3, 1}, {0, 0, 1}, {}};
    for (size_t s = 0; s < feeds.size(); ++s) {
      Tensor t = Tensor::from_vector_i(feeds[s], {int64_t(feeds[s].size())});
      test::check_close(c.step(t), r.step(t), 1e-5, 1e-4, "step " + std::to_string(s));
      if (!reorders[s].empty()) { c.reorder(reorders[s]); r.reorder(reorders[s]); }
    }
  }
  GenerationOptions o;
  o.max_len = 10;
  o.beam_size = 4;
  o.nbest = 3;
  o.no_repeat_ngram = 2;
  o.prefix = {{6}, {}, {9, 9, 2}, {}};
  for (SearchMethod method : {SearchMethod::greedy, SearchMethod::beam, SearchMethod::sample}) {
    o.method = method;
    o.top_p = 0.9;
    o.temperature = 1.3;
    CachedLM c(m, 4);
    RecomputeLM r(m, 4);
    Generator g1(5), g2(5);
    Hypotheses hc = generate(c, o, &g1), hr = generate(r, o, &g2);
    for (size_t b = 0; b < 4; ++b) {
      REQUIRE(hc[b].size() == hr[b].size());
      for (size_t k = 0; k < hc[b].size(); ++k) {
        CHECK(hc[b][k].tokens == hr[b][k].tokens);
        CHECK(hc[b][k].score == doctest::Approx(hr[b][k].score).epsilon(1e-4));
      }
    }
  }
}

TEST_CASE("beam hypotheses score exactly what a fresh decoder scores") {
  // A wrong row mapping in reorder would continue one hypothesis from another's cache:
  // its score would then disagree with a one-row recomputation of its own tokens.
  TinyLM m(21);
  GenerationOptions o;
  o.beam_size = 4;
  o.nbest = 4;
  o.max_len = 9;
  o.len_penalty = 1.0;
  o.prefix = {{}, {4, 2, 8}, {}};  // a prefix holding EOS does not end the row
  o.start_tokens = {1, 1, 6};
  CachedLM c(m, 3);
  Hypotheses h = beam_search(c, o);
  for (size_t b = 0; b < 3; ++b) {
    REQUIRE(h[b].size() == 4);
    for (size_t k = 0; k < h[b].size(); ++k) {
      const Hypothesis& x = h[b][k];
      CHECK(x.ended_by_eos);
      CHECK(x.tokens.back() == kEos);
      CHECK(x.prefix_len == int64_t(o.prefix[b].size()));
      CHECK(std::equal(o.prefix[b].begin(), o.prefix[b].end(), x.tokens.begin()));
      CHECK(x.score == doctest::Approx(rescore(m, o.start_tokens[b], x.tokens, o.prefix[b].size())).epsilon(1e-4));
      const double len = double(x.tokens.size()) - double(x.prefix_len);
      CHECK(x.norm_score == doctest::Approx(x.score / len).epsilon(1e-9));
      if (k > 0) CHECK(x.norm_score <= h[b][k - 1].norm_score);
    }
  }
}

TEST_CASE("closed-set decoding only emits answers from the set") {
  const int64_t V = 12;
  // Answers share prefixes and one is a prefix of another; input 1 has its own set.
  Trie shared({{5, 6, kEos}, {5, 6, 7, kEos}, {5, kEos}, {9, 3, 3, 10, kEos}, {11, kEos}});
  Trie own({{4, 4, 4, kEos}, {8, kEos}});
  GenerationOptions o;
  o.max_len = 10;
  o.allowed_next = [&](int64_t input, const std::vector<int64_t>& g) {
    return (input == 1 ? own : shared).allowed_next(g);
  };
  std::set<std::vector<int64_t>> seen;
  for (uint64_t trial = 0; trial < 40; ++trial) {
    for (SearchMethod method : {SearchMethod::greedy, SearchMethod::beam, SearchMethod::sample}) {
      o.method = method;
      o.beam_size = 3;
      o.nbest = 3;
      o.no_repeat_ngram = trial % 2 ? 0 : 3;  // 3,3,10 and 4,4,4 stay possible
      RandomDecoder d(4, V, trial);
      Generator gen(trial);
      Hypotheses h = generate(d, o, &gen);
      for (size_t b = 0; b < 4; ++b) {
        REQUIRE(!h[b].empty());
        for (const Hypothesis& x : h[b]) {
          CHECK_MESSAGE((b == 1 ? own : shared).contains(x.tokens), "input ", b, " trial ", trial);
          CHECK(x.score > -kInf);
          seen.insert(x.tokens);
        }
      }
    }
  }
  CHECK(seen.size() == 7);  // random logits reach every answer of both sets
}

TEST_CASE("BOX decoding gives exactly four location bins") {
  Vocab vocab(VocabSizes{.n_text = 50});
  const IdRange loc = vocab.range(TokenKind::location);
  for (SearchMethod method : {SearchMethod::greedy, SearchMethod::beam, SearchMethod::sample}) {
    GenerationOptions base;
    base.method = method;
    base.nbest = 5;
    GenerationOptions o = fixed_length(base, 4, {loc.begin, loc.end});
    RandomDecoder d(6, vocab.size(), 77, /*eos_bias=*/20.0);  // EOS would win if allowed
    Generator gen(1);
    Hypotheses h = generate(d, o, &gen);
    CHECK(d.steps == 4);  // no extra step for an EOS
    for (const auto& hs : h) {
      REQUIRE(!hs.empty());
      for (const Hypothesis& x : hs) {
        CHECK(!x.ended_by_eos);
        REQUIRE(x.answer().size() == 4);
        for (int64_t t : x.answer()) CHECK(loc.contains(t));
      }
    }
  }
}

TEST_CASE("action decoding: a fixed number of tokens from one range, argmax or sampled") {
  Vocab vocab(VocabSizes{.n_text = 20});
  for (TokenKind kind : {TokenKind::continuous, TokenKind::discrete}) {
    const IdRange r = vocab.range(kind);
    GenerationOptions o = fixed_length({}, 6, {r.begin, r.end});
    o.method = SearchMethod::greedy;
    RandomDecoder d(3, vocab.size(), 5);
    std::vector<Hypothesis> g = greedy_search(d, o);
    REQUIRE(d.logits.size() == 6);
    for (size_t b = 0; b < 3; ++b) {
      REQUIRE(g[b].answer().size() == 6);
      for (size_t t = 0; t < 6; ++t) {  // argmax over the range of that step's logits
        const float* l = d.logits[t].data() + b * size_t(vocab.size());
        const int64_t best = std::max_element(l + r.begin, l + r.end) - l;
        CHECK(g[b].answer()[t] == best);
      }
    }
    o.top_p = 0.95;
    o.temperature = 2.0;
    RandomDecoder s(3, vocab.size(), 6);
    Generator gen(3);
    for (const Hypothesis& x : sample(s, o, gen)) {
      REQUIRE(x.tokens.size() == 6);
      for (int64_t t : x.tokens) CHECK(r.contains(t));
    }
  }
}

TEST_CASE("no-repeat-ngram never repeats an n-gram") {
  // The decoder loves the cycle 3 4 5 3 4 5 ...: without the ban it repeats n-grams.
  auto cyclic = [](const std::vector<int64_t>& h) {
    std::vector<float> l(8, 0.0f);
    const int64_t last = h.back();
    l[size_t(last >= 3 && last <= 5 ? 3 + (last - 2) % 3 : 3)] = 5.0f;
    l[kEos] = -5.0f;
    return l;
  };
  for (int n : {2, 3}) {
    for (SearchMethod method : {SearchMethod::greedy, SearchMethod::beam, SearchMethod::sample}) {
      GenerationOptions o;
      o.method = method;
      o.max_len = 14;
      o.beam_size = 3;
      o.nbest = 3;
      o.start_tokens = {1, 4};
      TableDecoder free_run(2, 8, cyclic);
      Generator g0(9);
      CHECK(repeats_ngram(with_start(1, generate(free_run, o, &g0)[0][0].tokens), n));
      o.no_repeat_ngram = n;
      TableDecoder d(2, 8, cyclic);
      Generator g1(9);
      Hypotheses h = generate(d, o, &g1);
      for (size_t b = 0; b < 2; ++b)
        for (const Hypothesis& x : h[b]) CHECK_MESSAGE(!repeats_ngram(with_start(o.start_tokens[b], x.tokens), n), "n=", n);
    }
  }
}

TEST_CASE("sampling: top_k = 1 equals greedy, and the seed decides the draw") {
  TinyLM m(5);
  GenerationOptions o;
  o.max_len = 12;
  o.prefix = {{}, {3}, {}, {7, 8}, {}, {}, {}, {}};
  CachedLM a(m, 8), b(m, 8);
  std::vector<Hypothesis> gr = greedy_search(a, o);
  o.top_k = 1;
  Generator gen(123);
  std::vector<Hypothesis> s1 = sample(b, o, gen);
  for (size_t i = 0; i < 8; ++i) CHECK(s1[i].tokens == gr[i].tokens);

  o.top_k = 0;
  o.temperature = 2.0;
  auto draw = [&](uint64_t seed) {
    CachedLM d(m, 8);
    Generator g(seed);
    std::vector<std::vector<int64_t>> out;
    for (const Hypothesis& x : sample(d, o, g)) out.push_back(x.tokens);
    return out;
  };
  CHECK(draw(1) == draw(1));
  CHECK(draw(1) != draw(2));
}

TEST_CASE("sampling frequencies follow the top-k / top-p renormalised distribution") {
  // One free token per row from a fixed distribution over 8 ids (EOS = 2 included).
  const std::vector<double> p{0.02, 0.03, 0.05, 0.30, 0.25, 0.15, 0.12, 0.08};
  auto fixed = [&](const std::vector<int64_t>&) {
    std::vector<float> l;
    for (double x : p) l.push_back(float(std::log(x)));
    return l;
  };
  struct Case { int64_t top_k; double top_p, temperature; std::vector<double> expect; };
  auto renorm = [](std::vector<double> q) {
    double s = 0;
    for (double x : q) s += x;
    for (double& x : q) x /= s;
    return q;
  };
  std::vector<double> tempered;
  for (double x : p) tempered.push_back(std::sqrt(x));
  const std::vector<Case> cases{
      {0, 1.0, 1.0, p},
      {0, 0.6, 1.0, renorm({0, 0, 0, 0.30, 0.25, 0.15, 0, 0})},  // 0.30 + 0.25 < 0.6: 0.15 joins
      {2, 1.0, 1.0, renorm({0, 0, 0, 0.30, 0.25, 0, 0, 0})},
      {4, 0.8, 1.0, renorm({0, 0, 0, 0.30, 0.25, 0.15, 0, 0})},   // of the top 4 (0.82): 0.671 < 0.8
      {0, 1.0, 2.0, renorm(tempered)},
  };
  const int64_t B = 20000;
  for (const Case& c : cases) {
    CAPTURE(c.top_k);
    CAPTURE(c.top_p);
    GenerationOptions o;
    o.max_len = 1;
    o.top_k = c.top_k;
    o.top_p = c.top_p;
    o.temperature = c.temperature;
    TableDecoder d(B, 8, fixed);
    Generator gen(42);
    std::vector<double> freq(8, 0.0);
    for (const Hypothesis& x : sample(d, o, gen)) freq[size_t(x.tokens.at(0))] += 1.0 / double(B);
    for (size_t j = 0; j < 8; ++j) {
      if (c.expect[j] == 0) CHECK(freq[j] == 0);  // outside the nucleus: never drawn
      else CHECK_MESSAGE(std::fabs(freq[j] - c.expect[j]) < 0.015, "id ", j, ": ", freq[j], " vs ", c.expect[j]);
    }
  }
}

TEST_CASE("a forced prefix appears verbatim and conditions what follows") {
  // Next-token preference depends on the whole history, so a prefix not fed (or fed
  // wrongly) changes the continuation; the reference greedy loop is written here.
  const int64_t V = 9;
  auto fn = [](const std::vector<int64_t>& h) {
    int64_t s = 0;
    for (int64_t t : h) s += t;
    std::vector<float> l(size_t(V), 0.0f);
    l[size_t(3 + s % 6)] = 3.0f;
    l[kEos] = h.size() > 5 ? 4.0f : -1.0f;
    l[size_t((s * 7) % V)] += 1.0f;
    return l;
  };
  const std::vector<std::vector<int64_t>> prefix{{}, {4, 7}, {2, 5, 5, 6}};
  GenerationOptions o;
  o.prefix = prefix;
  o.beam_size = 1;  // beam 1 = greedy: the reference below
  o.min_len = 1;
  o.max_len = 12;
  for (SearchMethod method : {SearchMethod::greedy, SearchMethod::beam, SearchMethod::sample}) {
    o.method = method;
    o.top_k = 1;  // sampling = greedy here
    TableDecoder d(3, V, fn);
    Generator gen(0);
    Hypotheses h = generate(d, o, &gen);
    for (size_t b = 0; b < 3; ++b) {
      std::vector<int64_t> hist{kBos};
      hist.insert(hist.end(), prefix[b].begin(), prefix[b].end());
      std::vector<int64_t> expect = prefix[b];
      double score = 0;
      for (int64_t len = 0; len <= o.max_len; ++len) {
        std::vector<double> lp = log_softmax_ref(fn(hist));
        if (len < o.min_len) lp[kEos] = -kInf;
        const int64_t t = len == o.max_len ? kEos : int64_t(std::max_element(lp.begin(), lp.end()) - lp.begin());
        score += lp[size_t(t)];
        expect.push_back(t);
        hist.push_back(t);
        if (t == kEos) break;
      }
      CHECK(h[b][0].tokens == expect);
      CHECK(h[b][0].prefix_len == int64_t(prefix[b].size()));
      CHECK(h[b][0].score == doctest::Approx(score).epsilon(1e-5));
    }
  }
}

TEST_CASE("min and max length are respected") {
  for (SearchMethod method : {SearchMethod::greedy, SearchMethod::beam, SearchMethod::sample}) {
    GenerationOptions o;
    o.method = method;
    o.beam_size = 3;
    o.nbest = 3;
    o.min_len = 3;
    o.max_len = 6;
    RandomDecoder eager(5, 10, 1, /*eos_bias=*/40.0);  // would stop at once
    Generator g1(1);
    for (const auto& hs : generate(eager, o, &g1))
      for (const Hypothesis& x : hs) {
        CHECK(x.ended_by_eos);
        CHECK(int64_t(x.answer().size()) == o.min_len);
      }
    RandomDecoder reluctant(5, 10, 2, /*eos_bias=*/-30.0);  // would never stop
    Generator g2(2);
    for (const auto& hs : generate(reluctant, o, &g2))
      for (const Hypothesis& x : hs) {
        CHECK(x.ended_by_eos);  // forced after max_len
        CHECK(int64_t(x.answer().size()) == o.max_len);
      }
    RandomDecoder mixed(16, 10, 3);
    Generator g3(3);
    for (const auto& hs : generate(mixed, o, &g3))
      for (const Hypothesis& x : hs) {
        CHECK(int64_t(x.answer().size()) >= o.min_len);
        CHECK(int64_t(x.answer().size()) <= o.max_len);
      }
  }
  // Finished rows leave the batch: the decoder is fed fewer rows than B x steps.
  GenerationOptions o;
  o.max_len = 20;
  TableDecoder d(8, 6, hashed_logits(6, 3, 2.0));
  std::vector<Hypothesis> g = greedy_search(d, o);
  size_t longest = 0, total = 0;
  for (const Hypothesis& x : g) { longest = std::max(longest, x.tokens.size()); total += x.tokens.size(); }
  CHECK(d.steps == int64_t(longest));
  CHECK(d.rows_fed == int64_t(total));
}

TEST_CASE("dead ends and bad input") {
  GenerationOptions o;
  o.allowed_next = [](int64_t, const std::vector<int64_t>& g) {
    return g.empty() ? std::vector<int64_t>{3} : std::vector<int64_t>{};  // 3, then nothing
  };
  RandomDecoder a(2, 6, 0), b(2, 6, 0);
  std::vector<Hypothesis> g = greedy_search(a, o);
  CHECK(g[0].score == -kInf);
  CHECK(g[0].tokens == std::vector<int64_t>{3});
  CHECK(!g[0].ended_by_eos);
  Hypotheses h = beam_search(b, o);
  CHECK(h[0].empty());

  auto run = [](GenerationOptions opt, int64_t B = 2) {
    RandomDecoder d(B, 6, 0);
    Generator gen(0);
    generate(d, opt, &gen);
  };
  GenerationOptions bad;
  bad.nbest = 6;
  check_throws_with([&] { run(bad); }, {"nbest 6", "beam_size 5"});
  bad = {};
  bad.method = SearchMethod::sample;
  bad.top_p = 0;
  check_throws_with([&] { run(bad); }, {"top_p 0"});
  bad = {};
  bad.range = {3, 9};
  check_throws_with([&] { run(bad); }, {"range [3, 9)", "[0, 6)"});
  bad = {};
  bad.prefix = {{3}};
  check_throws_with([&] { run(bad); }, {"1 prefixes for 2 inputs"});
  bad = {};
  bad.min_len = 4;
  bad.max_len = 3;
  check_throws_with([&] { run(bad); }, {"min_len 4", "max_len 3"});
  bad = {};
  bad.allowed_next = [](int64_t, const std::vector<int64_t>&) { return std::vector<int64_t>{40}; };
  check_throws_with([&] { run(bad); }, {"allowed_next returned id 40"});

  bad = {};
  bad.method = SearchMethod::sample;
  check_throws_with([&] { RandomDecoder d(2, 6, 0); generate(d, bad); }, {"sampling needs a Generator"});

  struct WrongShape : RandomDecoder {
    using RandomDecoder::RandomDecoder;
    Tensor step(const Tensor&) override { return Tensor::zeros({2, 5}); }
  } w(2, 6, 0);
  check_throws_with([&] { greedy_search(w, {}); }, {"logits of shape [2, 5]", "expected [2, 6]"});
  struct NanLogits : RandomDecoder {
    using RandomDecoder::RandomDecoder;
    Tensor step(const Tensor& last) override {
      Tensor l = RandomDecoder::step(last);
      l.data<float>()[6 + 4] = std::nanf("");
      return l;
    }
  } nan(2, 6, 0);
  check_throws_with([&] { greedy_search(nan, {}); }, {"row 1 (input 1)", "NaN"});
  struct NoShrink : RandomDecoder {
    using RandomDecoder::RandomDecoder;
    void reorder(const std::vector<int64_t>&) override {}
  } ns(4, 6, 0);
  GenerationOptions beam;
  beam.beam_size = 2;
  check_throws_with([&] { beam_search(ns, beam); }, {"rows", "reorder"});
}

}  // TEST_SUITE
