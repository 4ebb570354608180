#include "tasks/noise.h"

#include <cmath>

#include "runtime/error.h"

namespace mm {

std::vector<int64_t> span_mask(const std::vector<int64_t>& ids, double ratio, int64_t mask_id,
                               std::mt19937_64& rng, double lambda) {
  MM_CHECK(ratio >= 0 && ratio <= 1, "span_mask: ratio must be in [0, 1], got ", ratio);
  const int64_t n = int64_t(ids.size());
  const int64_t target = int64_t(std::llround(double(n) * ratio));
  if (target == 0) return ids;
  // Span lengths until they cover `target` tokens; zero lengths are insertions, capped so
  // that a run of zeros cannot loop for long.
  std::vector<int64_t> lengths;
  int64_t covered = 0, zeros = 0;
  while (covered < target) {
    int64_t l = poisson(rng, lambda);
    if (l == 0) {
      if (zeros++ < n) lengths.push_back(0);
      continue;
    }
    l = std::min(l, target - covered);
    lengths.push_back(l);
    covered += l;
  }
  // Place spans without overlap: span_of[i] = span index covering token i, or -1.
  std::vector<int64_t> span_of(size_t(n), -1), insert_before(size_t(n) + 1, 0);
  int64_t free_tokens = n;
  for (size_t s = 0; s < lengths.size(); ++s) {
    int64_t l = lengths[s];
    if (l == 0) { ++insert_before[uniform_index(rng, uint64_t(n) + 1)]; continue; }
    // Try random starts; fall back to the first free run that fits, then to splitting
    // the span over free tokens in order (only when the sequence is nearly full).
    bool placed = false;
    for (int attempt = 0; attempt < 32 && !placed; ++attempt) {
      int64_t st = int64_t(uniform_index(rng, uint64_t(n - l + 1)));
      bool ok = true;
      for (int64_t i = st; i < st + l && ok; ++i) ok = span_of[i] < 0;
      if (ok) {
        for (int64_t i = st; i < st + l; ++i) span_of[i] = int64_t(s);
        placed = true;
      }
    }
    for (int64_t st = 0; st + l <= n && !placed; ++st) {
      bool ok = true;
      for (int64_t i = st; i < st + l && ok; ++i) ok = span_of[i] < 0;
      if (ok) {
        for (int64_t i = st; i < st + l; ++i) span_of[i] = int64_t(s);
        placed = true;
      }
    }
    for (int64_t i = 0, left = l; i < n && left > 0 && !placed; ++i)
      if (span_of[i] < 0) span_of[i] = int64_t(s), --left;
    free_tokens -= l;
  }
  MM_ASSERT(free_tokens == n - target);
  std::vector<int64_t> out;
  out.reserve(ids.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < insert_before[i]; ++k) out.push_back(mask_id);
    if (span_of[i] < 0) out.push_back(ids[i]);
    else if (i == 0 || span_of[i - 1] != span_of[i]) out.push_back(mask_id);  // span start
  }
  for (int64_t k = 0; k < insert_before[n]; ++k) out.push_back(mask_id);
  return out;
}

std::vector<int64_t> random_replace(const std::vector<int64_t>& ids, double ratio, IdRange range,
                                    std::mt19937_64& rng, std::vector<int64_t>* positions) {
  MM_CHECK(ratio >= 0 && ratio <= 1, "random_replace: ratio must be in [0, 1], got ", ratio);
  MM_CHECK(range.size() > 0, "random_replace: empty id range");
  const int64_t n = int64_t(ids.size());
  const int64_t k = int64_t(std::llround(double(n) * ratio));
  // Partial Fisher-Yates over positions picks k distinct ones.
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[i] = i;
  std::vector<int64_t> out = ids;
  for (int64_t i = 0; i < k; ++i) {
    int64_t j = i + int64_t(uniform_index(rng, uint64_t(n - i)));
    std::swap(pos[i], pos[j]);
    out[pos[i]] = range.begin + int64_t(uniform_index(rng, uint64_t(range.size())));
  }
  if (positions) positions->assign(pos.begin(), pos.begin() + k);
  return out;
}

}  // namespace mm
