#include "tasks/rng.h"

#include <cmath>

#include "runtime/error.h"

namespace mm {

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t uniform_index(std::mt19937_64& rng, uint64_t n) {
  MM_ASSERT(n > 0);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = rng(); while (x >= limit);
  return x % n;
}

double uniform_unit(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

int64_t poisson(std::mt19937_64& rng, double lambda) {
  MM_CHECK(lambda > 0 && lambda < 30, "poisson: lambda must be in (0, 30), got ", lambda);
  const double limit = std::exp(-lambda);
  int64_t k = 0;
  double p = uniform_unit(rng);
  while (p > limit) { ++k; p *= uniform_unit(rng); }
  return k;
}

size_t sample_weighted(std::mt19937_64& rng, const std::vector<double>& w) {
  double total = 0;
  for (double x : w) {
    MM_CHECK(x >= 0 && std::isfinite(x), "sample_weighted: weights must be finite and >= 0");
    total += x;
  }
  MM_CHECK(total > 0, "sample_weighted: all weights are zero");
  double u = uniform_unit(rng) * total, acc = 0;
  size_t last = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    if (w[i] <= 0) continue;
    acc += w[i];
    last = i;
    if (u < acc) return i;
  }
  return last;  // u landed on the rounding gap at the very top
}

std::vector<int64_t> permutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[i], p[uniform_index(rng, uint64_t(i) + 1)]);
  return p;
}

}  // namespace mm
