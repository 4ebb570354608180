#include "tasks/metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "runtime/error.h"
#include "tasks/text_fields.h"

namespace mm {
namespace {

using Words = std::vector<std::string>;
using Ngram = std::vector<std::string>;

Words words(const std::string& s) {
  std::istringstream is(normalize_text(s, {.uncased = true, .no_punctuation = true}));
  Words w;
  for (std::string t; is >> t;) w.push_back(t);
  return w;
}

// Counts of the n-grams of one length n.
std::map<Ngram, int> ngrams(const Words& w, size_t n) {
  std::map<Ngram, int> c;
  for (size_t i = 0; i + n <= w.size(); ++i) c[Ngram(w.begin() + long(i), w.begin() + long(i + n))]++;
  return c;
}

void check_sizes(const char* metric, size_t a, const Refs& refs) {
  MM_CHECK(a == refs.size(), metric, ": ", a, " predictions but ", refs.size(), " reference sets");
  for (size_t i = 0; i < refs.size(); ++i)
    MM_CHECK(!refs[i].empty(), metric, ": prediction ", i, " has no reference");
}

size_t lcs(const Words& a, const Words& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

size_t edit_distance(const Words& a, const Words& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

double accuracy(const std::vector<std::string>& pred, const Refs& refs) {
  check_sizes("accuracy", pred.size(), refs);
  if (pred.empty()) return 0;
  size_t ok = 0;
  for (size_t i = 0; i < pred.size(); ++i) ok += pred[i] == refs[i][0];
  return double(ok) / double(pred.size());
}

double exact_match(const std::vector<std::string>& pred, const Refs& refs) {
  check_sizes("exact_match", pred.size(), refs);
  if (pred.empty()) return 0;
  size_t ok = 0;
  for (size_t i = 0; i < pred.size(); ++i) {
    const Words p = words(pred[i]);
    ok += std::any_of(refs[i].begin(), refs[i].end(), [&](const std::string& r) { return words(r) == p; });
  }
  return double(ok) / double(pred.size());
}

double bleu4(const std::vector<std::string>& cands, const Refs& refs) {
  check_sizes("bleu4", cands.size(), refs);
  double match[4] = {}, total[4] = {};
  double c_len = 0, r_len = 0;
  for (size_t i = 0; i < cands.size(); ++i) {
    const Words c = words(cands[i]);
    std::vector<Words> rs;
    for (const auto& r : refs[i]) rs.push_back(words(r));
    c_len += double(c.size());
    // Effective reference length: the closest; ties go to the shorter.
    size_t best = rs[0].size();
    for (const auto& r : rs) {
      const long d = std::labs(long(r.size()) - long(c.size())), db = std::labs(long(best) - long(c.size()));
      if (d < db || (d == db && r.size() < best)) best = r.size();
    }
    r_len += double(best);
    for (size_t n = 1; n <= 4; ++n) {
      auto cc = ngrams(c, n);
      std::map<Ngram, int> max_ref;
      for (const auto& r : rs)
        for (auto& [g, k] : ngrams(r, n)) max_ref[g] = std::max(max_ref[g], k);
      for (auto& [g, k] : cc) {
        auto it = max_ref.find(g);
        match[n - 1] += std::min(k, it == max_ref.end() ? 0 : it->second);
        total[n - 1] += k;
      }
    }
  }
  double log_p = 0;
  for (int n = 0; n < 4; ++n) {
    if (total[n] == 0 || match[n] == 0) return 0.0;
    log_p += std::log(match[n] / total[n]) / 4;
  }
  const double bp = c_len < r_len ? std::exp(1.0 - r_len / c_len) : 1.0;
  return bp * std::exp(log_p);
}

double cider_d(const std::vector<std::string>& cands, const Refs& refs) {
  check_sizes("cider_d", cands.size(), refs);
  if (cands.empty()) return 0;
  constexpr int N = 4;
  constexpr double sigma = 6.0;
  // Document frequency: in how many images' reference sets each n-gram occurs.
  std::map<Ngram, double> df;
  std::vector<std::vector<Words>> rws(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    std::set<Ngram> seen;
    for (const auto& r : refs[i]) {
      rws[i].push_back(words(r));
      for (size_t n = 1; n <= N; ++n)
        for (auto& [g, k] : ngrams(rws[i].back(), n)) seen.insert(g);
    }
    for (const auto& g : seen) df[g] += 1;
  }
  const double log_n = std::log(double(refs.size()));
  struct Vec {
    std::map<Ngram, double> v[N];
    double norm[N] = {};
    double len = 0;
  };
  auto vec = [&](const Words& w) {
    Vec out;
    out.len = double(w.size());
    for (size_t n = 1; n <= N; ++n) {
      for (auto& [g, k] : ngrams(w, n)) {
        auto it = df.find(g);
        const double idf = log_n - std::log(std::max(1.0, it == df.end() ? 0.0 : it->second));
        out.v[n - 1][g] = double(k) * idf;
        out.norm[n - 1] += out.v[n - 1][g] * out.v[n - 1][g];
      }
      out.norm[n - 1] = std::sqrt(out.norm[n - 1]);
    }
    return out;
  };
  double total = 0;
  for (size_t i = 0; i < cands.size(); ++i) {
    const Vec c = vec(words(cands[i]));
    double score = 0;
    for (const auto& r : rws[i]) {
      const Vec rv = vec(r);
      const double delta = c.len - rv.len;
      const double penalty = std::exp(-(delta * delta) / (2 * sigma * sigma));
      for (int n = 0; n < N; ++n) {
        double dot = 0;
        for (auto& [g, x] : c.v[n]) {
          auto it = rv.v[n].find(g);
          if (it != rv.v[n].end()) dot += std::min(x, it->second) * it->second;
        }
        if (c.norm[n] != 0 && rv.norm[n] != 0) dot /= c.norm[n] * rv.norm[n];
        score += dot * penalty;
      }
    }
    total += 10.0 * (score / N) / double(rws[i].size());
  }
  return total / double(cands.size());
}

double rouge_l(const std::vector<std::string>& cands, const Refs& refs) {
  check_sizes("rouge_l", cands.size(), refs);
  if (cands.empty()) return 0;
  constexpr double beta = 1.2;
  double total = 0;
  for (size_t i = 0; i < cands.size(); ++i) {
    const Words c = words(cands[i]);
    double best_p = 0, best_r = 0;
    for (const auto& rs : refs[i]) {
      const Words r = words(rs);
      const double l = double(lcs(c, r));
      if (!c.empty()) best_p = std::max(best_p, l / double(c.size()));
      if (!r.empty()) best_r = std::max(best_r, l / double(r.size()));
    }
    if (best_p > 0 && best_r > 0) total += (1 + beta * beta) * best_p * best_r / (best_r + beta * beta * best_p);
  }
  return total / double(cands.size());
}

double wer(const std::vector<std::string>& hyps, const Refs& refs) {
  check_sizes("wer", hyps.size(), refs);
  size_t errors = 0, n = 0;
  for (size_t i = 0; i < hyps.size(); ++i) {
    const Words r = words(refs[i][0]);
    errors += edit_distance(words(hyps[i]), r);
    n += r.size();
  }
  MM_CHECK(n > 0, "wer: the references hold no words");
  return double(errors) / double(n);
}

double iou(const Box& a, const Box& b) {
  const double ix = std::max(0.0, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const double iy = std::max(0.0, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const double inter = ix * iy;
  const double ua = std::max(0.0, a[2] - a[0]) * std::max(0.0, a[3] - a[1]) +
                    std::max(0.0, b[2] - b[0]) * std::max(0.0, b[3] - b[1]) - inter;
  return ua > 0 ? inter / ua : 0.0;
}

double iou_accuracy(const std::vector<Box>& pred, const std::vector<Box>& truth, double threshold) {
  MM_CHECK(pred.size() == truth.size(), "iou_accuracy: ", pred.size(), " predictions but ", truth.size(), " boxes");
  if (pred.empty()) return 0;
  size_t ok = 0;
  for (size_t i = 0; i < pred.size(); ++i) ok += iou(pred[i], truth[i]) >= threshold;
  return double(ok) / double(pred.size());
}

double mean(const std::vector<double>& xs) {
  if (xs.empty()) return 0;
  double s = 0;
  for (double x : xs) s += x;
  return s / double(xs.size());
}

bool metric_higher_is_better(const std::string& name) { return name != "wer"; }

MetricResult compute_metric(const std::string& name, const std::vector<std::string>& pred, const Refs& refs) {
  MetricResult r{name, 0, metric_higher_is_better(name)};
  if (name == "accuracy" || name == "acc") r.value = accuracy(pred, refs);
  else if (name == "exact_match" || name == "em") r.value = exact_match(pred, refs);
  else if (name == "bleu" || name == "bleu4") r.value = bleu4(pred, refs);
  else if (name == "cider" || name == "ciderd" || name == "cider_d") r.value = cider_d(pred, refs);
  else if (name == "rouge_l" || name == "rouge") r.value = rouge_l(pred, refs);
  else if (name == "wer") r.value = wer(pred, refs);
  else
    throw Error(cat("unknown text metric '", name,
                    "' (expected accuracy, exact_match, bleu4, cider, rouge_l or wer; boxes use iou_accuracy)"));
  return r;
}

}  // namespace mm
