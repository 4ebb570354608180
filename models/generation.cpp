#include "models/generation.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/grad_mode.h"
#include "ops/creation.h"
#include "ops/shape.h"
#include "ops/cpu/vec_math.h"
#include "ops/softmax.h"
#include "runtime/parallel.h"

namespace mm {

std::vector<int64_t> Hypothesis::answer() const {
  auto b = tokens.begin() + std::min<int64_t>(prefix_len, int64_t(tokens.size()));
  auto e = tokens.end();
  if (ended_by_eos && e != b) --e;
  return std::vector<int64_t>(b, e);
}

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// One live hypothesis; row i of the decoder.
struct Row {
  int64_t input = 0;          // which of the B inputs it belongs to
  std::vector<int64_t> seq;   // start token, forced prefix, free tokens so far
  double score = 0;           // sum of log-probs of its free tokens
};

// How a row's next token is decided.
enum class Next { prefix, free, eos };

// A candidate extension of a row (beam search).
struct Cand {
  double score;
  int64_t row, tok;
  bool forced;  // a prefix token: never finishes the row, even if it equals EOS
};

class Search {
 public:
  Search(StepDecoder& dec, const GenerationOptions& o) : dec_(dec), o_(o) {
    B_ = dec.num_rows();
    V_ = dec.vocab_size();
    validate();
  }

  int64_t B() const { return B_; }

  int64_t prefix_len(int64_t b) const { return o_.prefix.empty() ? 0 : int64_t(o_.prefix[b].size()); }
  // Free tokens so far; negative while the prefix is being forced.
  int64_t free_len(const Row& r) const { return int64_t(r.seq.size()) - 1 - prefix_len(r.input); }
  Next next_kind(const Row& r) const {
    const int64_t f = free_len(r);
    if (f < 0) return Next::prefix;
    return f >= o_.max_len ? Next::eos : Next::free;
  }
  int64_t prefix_token(const Row& r) const { return o_.prefix[r.input][r.seq.size() - 1]; }
  // Fixed-length decoding ends a row by length alone, with no decoder step.
  bool complete_by_length(const Row& r) const { return !o_.end_with_eos && free_len(r) == o_.max_len; }

  std::vector<Row> initial_rows() const {
    std::vector<Row> rows(B_);
    for (int64_t b = 0; b < B_; ++b) {
      rows[b].input = b;
      rows[b].seq = {o_.start_tokens.empty() ? o_.bos : o_.start_tokens[b]};
    }
    return rows;
  }

  Hypothesis finish(const Row& r, bool by_eos) const {
    Hypothesis h;
    h.ended_by_eos = by_eos;
    h.tokens.assign(r.seq.begin() + 1, r.seq.end());
    h.prefix_len = prefix_len(r.input);
    h.score = r.score;
    const int64_t len = std::max<int64_t>(1, free_len(r));
    h.norm_score = o_.len_penalty == 0.0 ? r.score : r.score / std::pow(double(len), o_.len_penalty);
    return h;
  }

  // Feeds the last token of every row; returns the processed log-probs [N, V] (contiguous
  // f32 on the CPU). Rows forcing a prefix token get unprocessed values (never read).
  Tensor step(const std::vector<Row>& rows) {
    const int64_t N = int64_t(rows.size()), V = V_;
    MM_CHECK(dec_.num_rows() == N, "generate: the decoder has ", dec_.num_rows(), " rows, the search expects ", N,
             " (StepDecoder::reorder must leave num_rows() == rows.size())");
    std::vector<int64_t> last(N);
    for (int64_t i = 0; i < N; ++i) last[i] = rows[i].seq.back();
    Tensor logits = dec_.step(Tensor::from_vector_i(last, {N}));
    MM_CHECK(logits.defined() && logits.dim() == 2 && logits.size(0) == N && logits.size(1) == V,
             "generate: StepDecoder::step returned logits of shape ", logits.defined() ? logits.shape() : Shape{},
             ", expected [", N, ", ", V, "]");
    // Masks are written in place: into our own copy, as the decoder may keep its output.
    const bool masks = o_.temperature != 1.0 || o_.range.active() || o_.allowed_next || !o_.end_with_eos;
    Tensor x = cast(to(logits, Device::cpu()), DType::f32);
    x = masks ? clone(x) : contiguous(x);

    // The callback runs on this thread only (it need not be thread-safe).
    std::vector<std::vector<int64_t>> allowed;
    if (o_.allowed_next) {
      allowed.resize(N);
      for (int64_t i = 0; i < N; ++i) {
        if (next_kind(rows[i]) == Next::prefix) continue;
        const Row& r = rows[i];
        std::vector<int64_t> gen(r.seq.begin() + 1 + prefix_len(r.input), r.seq.end());
        allowed[i] = o_.allowed_next(r.input, gen);
        for (int64_t id : allowed[i])
          MM_CHECK(id >= 0 && id < V, "generate: allowed_next returned id ", id, " for input ", r.input,
                   ", outside the vocabulary [0, ", V, ")");
      }
    }

    float* px = x.data<float>();
    const float inv_t = float(1.0 / o_.temperature);
    parallel_for(N, 4, [&](int64_t r0, int64_t r1) {
      std::vector<float> keep;
      for (int64_t i = r0; i < r1; ++i) {
        if (next_kind(rows[i]) == Next::prefix) continue;
        float* xi = px + i * V;
        if (inv_t != 1.0f)
          for (int64_t j = 0; j < V; ++j) xi[j] *= inv_t;
        const float eos_logit = xi[o_.eos];
        if (o_.range.active()) {
          for (int64_t j = 0; j < o_.range.lo; ++j) xi[j] = kNegInf;
          for (int64_t j = o_.range.hi; j < V; ++j) xi[j] = kNegInf;
          if (o_.end_with_eos) xi[o_.eos] = eos_logit;
        }
        if (!o_.end_with_eos) xi[o_.eos] = kNegInf;
        if (o_.allowed_next) {
          keep.resize(allowed[i].size());
          for (size_t k = 0; k < keep.size(); ++k) keep[k] = xi[allowed[i][k]];
          std::fill(xi, xi + V, kNegInf);
          for (size_t k = 0; k < keep.size(); ++k) xi[allowed[i][k]] = keep[k];
        }
      }
    });

    Tensor lp = contiguous(log_softmax(x, -1));
    float* pl = lp.data<float>();
    // A NaN or +inf logit among the allowed ones turns its whole row into NaN: a model
    // bug that must not pass as a token choice.
    for (int64_t i = 0; i < N; ++i)
      MM_CHECK(!std::isnan(pl[i * V]), "generate: the logits of row ", i, " (input ", rows[i].input,
               ") hold NaN or +inf");
    parallel_for(N, 4, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        if (next_kind(rows[i]) != Next::free) continue;
        float* li = pl + i * V;
        if (free_len(rows[i]) < o_.min_len) li[o_.eos] = kNegInf;
        if (o_.no_repeat_ngram > 0) ban_repeated_ngrams(rows[i].seq, o_.no_repeat_ngram, li);
      }
    });
    return lp;
  }

  // New row i continues old row keep[i]; skipped when nothing changes.
  void reorder(const std::vector<int64_t>& keep, int64_t old_rows) {
    bool identity = int64_t(keep.size()) == old_rows;
    for (size_t i = 0; identity && i < keep.size(); ++i) identity = keep[i] == int64_t(i);
    if (!identity && !keep.empty()) dec_.reorder(keep);
  }

 private:
  // Bans every token that would complete an n-gram already present in seq (fairseq's
  // NGramRepeatBlock): wherever the last n-1 tokens occurred before, the token that
  // followed them there is banned.
  static void ban_repeated_ngrams(const std::vector<int64_t>& seq, int n, float* lp) {
    const int64_t L = int64_t(seq.size()), ctx = n - 1;
    if (L < ctx) return;
    for (int64_t i = 0; i + ctx < L; ++i) {
      bool match = true;
      for (int64_t j = 0; j < ctx && match; ++j) match = seq[i + j] == seq[L - ctx + j];
      if (match) lp[seq[i + ctx]] = kNegInf;
    }
  }

  void validate() const {
    const int64_t V = V_;
    MM_CHECK(V > 0, "generate: the decoder's vocab_size() is ", V);
    auto in_vocab = [&](int64_t id) { return id >= 0 && id < V; };
    MM_CHECK(in_vocab(o_.bos) && in_vocab(o_.eos), "generate: bos ", o_.bos, " / eos ", o_.eos,
             " outside the vocabulary [0, ", V, ")");
    MM_CHECK(o_.start_tokens.empty() || int64_t(o_.start_tokens.size()) == B_, "generate: ",
             o_.start_tokens.size(), " start_tokens for ", B_, " inputs");
    for (int64_t t : o_.start_tokens) MM_CHECK(in_vocab(t), "generate: start token ", t, " outside [0, ", V, ")");
    MM_CHECK(o_.prefix.empty() || int64_t(o_.prefix.size()) == B_, "generate: ", o_.prefix.size(),
             " prefixes for ", B_, " inputs");
    for (const auto& p : o_.prefix)
      for (int64_t t : p) MM_CHECK(in_vocab(t), "generate: prefix token ", t, " outside [0, ", V, ")");
    MM_CHECK(o_.min_len >= 0 && o_.max_len >= o_.min_len, "generate: need 0 <= min_len <= max_len, got min_len ",
             o_.min_len, ", max_len ", o_.max_len);
    if (o_.range.active())
      MM_CHECK(o_.range.lo >= 0 && o_.range.lo < o_.range.hi && o_.range.hi <= V, "generate: token range [",
               o_.range.lo, ", ", o_.range.hi, ") is empty or outside the vocabulary [0, ", V, ")");
    MM_CHECK(o_.no_repeat_ngram >= 0, "generate: no_repeat_ngram ", o_.no_repeat_ngram, " < 0");
    MM_CHECK(o_.temperature > 0 && std::isfinite(o_.temperature), "generate: temperature ", o_.temperature,
             " must be > 0");
    MM_CHECK(o_.beam_size >= 1, "generate: beam_size ", o_.beam_size, " < 1");
    MM_CHECK(o_.nbest >= 1 && o_.nbest <= o_.beam_size, "generate: nbest ", o_.nbest, " outside [1, beam_size ",
             o_.beam_size, "]");
    MM_CHECK(o_.top_k >= 0, "generate: top_k ", o_.top_k, " < 0");
    MM_CHECK(o_.top_p > 0 && o_.top_p <= 1, "generate: top_p ", o_.top_p, " outside (0, 1]");
  }

  StepDecoder& dec_;
  const GenerationOptions& o_;
  int64_t B_ = 0, V_ = 0;
};

// Strict order for token choices: higher value first, then lower id (so every method
// breaks ties the same way as a first-maximum argmax).
struct ByValueDesc {
  const float* v;
  bool operator()(int64_t a, int64_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

// The m best finite entries of v[0, V), best first. idx receives them.
void top_finite(const float* v, int64_t V, int64_t m, std::vector<int64_t>& idx) {
  idx.clear();
  if (m <= 0) return;
  if (m <= 64) {
    // A short sorted list filled in one scan: once full, one comparison with its last
    // entry rejects almost every id. Ids arrive in increasing order, so an id that ties
    // with a listed value goes after it, as ByValueDesc wants.
    float bar = kNegInf;  // what a value must beat to enter: the last one's, once full
    for (int64_t j = 0; j < V; ++j) {
      const float x = v[j];
      if (!(x > bar)) continue;
      if (int64_t(idx.size()) == m) idx.pop_back();
      auto pos = idx.end();
      while (pos != idx.begin() && v[*(pos - 1)] < x) --pos;
      idx.insert(pos, j);
      if (int64_t(idx.size()) == m) bar = v[idx.back()];
    }
    return;
  }
  for (int64_t j = 0; j < V; ++j)
    if (v[j] != kNegInf) idx.push_back(j);
  ByValueDesc cmp{v};
  if (m < int64_t(idx.size())) {
    std::nth_element(idx.begin(), idx.begin() + m, idx.end(), cmp);
    idx.resize(m);
  }
  std::sort(idx.begin(), idx.end(), cmp);
}

int64_t argmax_finite(const float* v, int64_t V) {
  int64_t best = -1;
  for (int64_t j = 0; j < V; ++j)
    if (v[j] != kNegInf && (best < 0 || v[j] > v[best])) best = j;
  return best;
}

// Draws from the log-probs lp[0, V) after top-k / top-p filtering; u uniform in [0, 1).
// The bans left the row unnormalised, so masses are summed here. -1: nothing allowed.
int64_t draw(const float* lp, int64_t V, int64_t top_k, double top_p, double u, std::vector<float>& p,
             std::vector<int64_t>& idx) {
  p.resize(size_t(V));
  float* pv = p.data();
  for (int64_t j = 0; j < V; ++j) pv[j] = cpu::exp_nonpos(lp[j]);  // vectorised; exp(-inf) = 0
  double z_all = 0;
  int64_t nfinite = 0;
  for (int64_t j = 0; j < V; ++j) {
    z_all += pv[j];
    nfinite += lp[j] != kNegInf;
  }
  if (nfinite == 0) return -1;
  const int64_t k = top_k > 0 ? std::min(top_k, nfinite) : nfinite;
  if (k == nfinite && top_p >= 1.0) {  // the whole distribution: no sort needed
    const double target = u * z_all;
    double acc = 0;
    int64_t last = -1;
    for (int64_t j = 0; j < V; ++j) {
      if (lp[j] == kNegInf) continue;
      acc += p[j];
      last = j;
      if (acc > target) return j;
    }
    return last;  // rounding: the mass ran out just short of the target
  }
  // The top-k set, renormalised; then the nucleus, usually small: sort only a head of
  // the candidates, growing it until the kept mass reaches top_p.
  double z_k = z_all;
  if (k < nfinite) {
    top_finite(lp, V, k, idx);
    z_k = 0;
    for (int64_t j : idx) z_k += p[j];
  }
  int64_t m = top_p < 1.0 ? std::min<int64_t>(k, 64) : k;
  int64_t kept = 0;
  double z_kept = 0;
  for (;;) {
    if (k == nfinite) top_finite(lp, V, m, idx);
    kept = 0;
    z_kept = 0;
    // Keep tokens while the mass before them is below top_p (the first always).
    for (int64_t i = 0; i < m; ++i) {
      if (kept > 0 && z_kept >= top_p * z_k) break;
      z_kept += p[idx[i]];
      ++kept;
    }
    if (kept < m || m == k || z_kept >= top_p * z_k) break;
    m = std::min(k, 4 * m);
  }
  const double target = u * z_kept;
  double acc = 0;
  for (int64_t i = 0; i < kept; ++i) {
    acc += p[idx[i]];
    if (acc > target) return idx[i];
  }
  return idx[kept - 1];
}

// Greedy search, or sampling when gen is given: one row per input.
std::vector<Hypothesis> decode_rows(StepDecoder& dec, const GenerationOptions& o, Generator* gen) {
  autograd::NoGradGuard no_grad;
  Search s(dec, o);
  const int64_t V = dec.vocab_size();
  std::vector<Hypothesis> out(s.B());
  std::vector<Row> rows, live;
  std::vector<int64_t> keep;
  for (Row& r : s.initial_rows()) {
    if (s.complete_by_length(r)) out[r.input] = s.finish(r, false);
    else rows.push_back(std::move(r));
  }
  while (!rows.empty()) {
    const int64_t N = int64_t(rows.size());
    Tensor lp = s.step(rows);
    const float* pl = lp.data<float>();
    const uint64_t seed = gen ? gen->seed() : 0, off = gen ? gen->advance() : 0;
    std::vector<int64_t> choice(N, -1);
    parallel_for(N, 4, [&](int64_t r0, int64_t r1) {
      std::vector<int64_t> idx;
      std::vector<float> probs;
      for (int64_t i = r0; i < r1; ++i) {
        const float* li = pl + i * V;
        switch (s.next_kind(rows[i])) {
          case Next::prefix: choice[i] = s.prefix_token(rows[i]); break;
          case Next::eos: choice[i] = li[o.eos] != kNegInf ? o.eos : -1; break;
          case Next::free:
            choice[i] = gen ? draw(li, V, o.top_k, o.top_p, philox_uniform(seed, off, uint64_t(rows[i].input)), probs, idx)
                            : argmax_finite(li, V);
            break;
        }
      }
    });
    live.clear();
    keep.clear();
    for (int64_t i = 0; i < N; ++i) {
      Row& r = rows[i];
      const bool forced = s.next_kind(r) == Next::prefix;
      const int64_t tok = choice[i];
      if (tok < 0) {  // nothing allowed: the row dies where it stands
        r.score = -std::numeric_limits<double>::infinity();
        out[r.input] = s.finish(r, false);
        continue;
      }
      r.seq.push_back(tok);
      if (!forced) r.score += double(pl[i * V + tok]);
      const bool by_eos = !forced && tok == o.eos;
      if (by_eos || s.complete_by_length(r)) {
        out[r.input] = s.finish(r, by_eos);
      } else {
        live.push_back(std::move(r));
        keep.push_back(i);
      }
    }
    s.reorder(keep, N);
    rows.swap(live);
  }
  return out;
}

}  // namespace

std::vector<Hypothesis> greedy_search(StepDecoder& dec, const GenerationOptions& o) {
  return decode_rows(dec, o, nullptr);
}

std::vector<Hypothesis> sample(StepDecoder& dec, const GenerationOptions& o, Generator& gen) {
  return decode_rows(dec, o, &gen);
}

Hypotheses beam_search(StepDecoder& dec, const GenerationOptions& o) {
  autograd::NoGradGuard no_grad;
  Search s(dec, o);
  const int64_t V = dec.vocab_size(), beam = o.beam_size;
  std::vector<std::vector<Hypothesis>> finished(s.B());
  std::vector<Row> rows, next, group;
  std::vector<int64_t> keep, group_keep;
  // Rows stay grouped by input, in input order: each step handles one group at a time.
  for (Row& r : s.initial_rows()) {
    if (s.complete_by_length(r)) finished[r.input].push_back(s.finish(r, false));
    else rows.push_back(std::move(r));
  }
  while (!rows.empty()) {
    const int64_t N = int64_t(rows.size());
    Tensor lp = s.step(rows);
    const float* pl = lp.data<float>();
    // Each row's best extensions: at most 2*beam, as fairseq's top-k over beam x V.
    std::vector<std::vector<Cand>> cands(N);
    parallel_for(N, 2, [&](int64_t r0, int64_t r1) {
      std::vector<int64_t> idx;
      for (int64_t i = r0; i < r1; ++i) {
        const Row& r = rows[i];
        const float* li = pl + i * V;
        switch (s.next_kind(r)) {
          case Next::prefix: cands[i].push_back({r.score, i, s.prefix_token(r), true}); break;
          case Next::eos:
            if (li[o.eos] != kNegInf) cands[i].push_back({r.score + li[o.eos], i, o.eos, false});
            break;
          case Next::free:
            top_finite(li, V, 2 * beam, idx);
            for (int64_t j : idx) cands[i].push_back({r.score + li[j], i, j, false});
            break;
        }
      }
    });
    next.clear();
    keep.clear();
    for (int64_t g0 = 0; g0 < N;) {
      const int64_t b = rows[g0].input;
      int64_t g1 = g0;
      std::vector<Cand> all;
      for (; g1 < N && rows[g1].input == b; ++g1) all.insert(all.end(), cands[g1].begin(), cands[g1].end());
      std::sort(all.begin(), all.end(), [](const Cand& x, const Cand& y) {
        if (x.score != y.score) return x.score > y.score;
        return x.row != y.row ? x.row < y.row : x.tok < y.tok;
      });
      auto& fin = finished[b];
      group.clear();
      group_keep.clear();
      const int64_t n_cand = std::min<int64_t>(int64_t(all.size()), 2 * beam);
      for (int64_t c = 0; c < n_cand; ++c) {
        const Cand& k = all[c];
        Row r{b, rows[k.row].seq, k.score};
        r.seq.push_back(k.tok);
        if (!k.forced && k.tok == o.eos) {  // only an EOS among the best beam ones counts
          if (c < beam && int64_t(fin.size()) < beam) fin.push_back(s.finish(r, true));
          continue;
        }
        if (int64_t(group.size()) >= beam) continue;
        if (s.complete_by_length(r)) {
          if (int64_t(fin.size()) < beam) fin.push_back(s.finish(r, false));
          continue;
        }
        group.push_back(std::move(r));
        group_keep.push_back(k.row);
      }
      if (int64_t(fin.size()) < beam) {  // otherwise the input is done: its rows go
        for (auto& r : group) next.push_back(std::move(r));
        keep.insert(keep.end(), group_keep.begin(), group_keep.end());
      }
      g0 = g1;
    }
    s.reorder(keep, N);
    rows.swap(next);
  }
  Hypotheses out(s.B());
  for (int64_t b = 0; b < s.B(); ++b) {
    auto& fin = finished[b];
    std::stable_sort(fin.begin(), fin.end(),
                     [](const Hypothesis& x, const Hypothesis& y) { return x.norm_score > y.norm_score; });
    if (int64_t(fin.size()) > o.nbest) fin.resize(o.nbest);
    out[b] = std::move(fin);
  }
  return out;
}

Hypotheses generate(StepDecoder& dec, const GenerationOptions& o, Generator* gen) {
  if (o.method == SearchMethod::beam) return beam_search(dec, o);
  MM_CHECK(o.method == SearchMethod::greedy || gen, "generate: sampling needs a Generator");
  std::vector<Hypothesis> one = o.method == SearchMethod::greedy ? greedy_search(dec, o) : sample(dec, o, *gen);
  Hypotheses out(one.size());
  for (size_t b = 0; b < one.size(); ++b) out[b].push_back(std::move(one[b]));
  return out;
}

GenerationOptions fixed_length(GenerationOptions o, int64_t n, TokenRange r) {
  MM_CHECK(n >= 0, "fixed_length: n ", n, " < 0");
  o.min_len = o.max_len = n;
  o.end_with_eos = false;
  o.range = r;
  return o;
}

}  // namespace mm
