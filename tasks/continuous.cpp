#include "tasks/continuous.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace mm {

double MuLaw::forward(double x) const {
  double y = std::copysign(std::log1p(std::fabs(x) * mu) / std::log1p(M * mu), x);
  return std::clamp(y, -1.0, 1.0);
}

double MuLaw::inverse(double y) const {
  y = std::clamp(y, -1.0, 1.0);
  // |x| = ((M mu + 1)^|y| - 1) / mu, written with expm1 for accuracy near 0.
  return std::copysign(std::expm1(std::fabs(y) * std::log1p(M * mu)) / mu, y);
}

int64_t continuous_to_bin(double x, int64_t n_bins, const MuLaw& law) {
  MM_CHECK(!std::isnan(x), "continuous: value is NaN");
  MM_CHECK(n_bins >= 1, "continuous: need at least 1 bin");
  double u = (law.forward(x) + 1.0) * 0.5;  // [0, 1]
  auto b = int64_t(std::floor(u * double(n_bins)));
  return std::clamp<int64_t>(b, 0, n_bins - 1);  // F = 1 lands on n_bins: fold into the last
}

double bin_to_continuous(int64_t bin, int64_t n_bins, const MuLaw& law) {
  MM_CHECK(bin >= 0 && bin < n_bins, "continuous: bin ", bin, " out of range [0, ", n_bins, ")");
  double y = (double(bin) + 0.5) / double(n_bins) * 2.0 - 1.0;
  return law.inverse(y);
}

std::vector<int64_t> continuous_to_ids(const std::vector<double>& xs, const Vocab& v,
                                       const MuLaw& law) {
  const int64_t n = v.range(TokenKind::continuous).size();
  std::vector<int64_t> ids;
  ids.reserve(xs.size());
  for (double x : xs) ids.push_back(v.to_id(TokenKind::continuous, continuous_to_bin(x, n, law)));
  return ids;
}

std::vector<double> ids_to_continuous(const std::vector<int64_t>& ids, const Vocab& v,
                                      const MuLaw& law) {
  const int64_t n = v.range(TokenKind::continuous).size();
  std::vector<double> xs;
  xs.reserve(ids.size());
  for (int64_t id : ids)
    xs.push_back(bin_to_continuous(v.to_local(TokenKind::continuous, id), n, law));
  return xs;
}

}  // namespace mm
