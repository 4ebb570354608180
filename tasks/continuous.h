// CONTINUOUS preprocessing (Gato): real values -> mu-law -> 1024 uniform bins -> ids.
//
//   auto ids = continuous_to_ids({0.5, -3.2}, vocab);   // ids in the continuous range
//   auto xs  = ids_to_continuous(ids, vocab);           // bin centres through the inverse law
//
// F(x) = sgn(x) ln(|x| mu + 1) / ln(M mu + 1), mu = 100, M = 256; F is clipped to [-1, 1]
// (|x| > M saturates); bin = floor((F + 1) / 2 * n_bins), bin n_bins -> n_bins - 1.
// Decoding takes the bin centre and applies F^-1, so encode(decode(bin)) == bin, and
// decode(encode(x)) lies in the same bin as x.
#pragma once
#include <cstdint>
#include <vector>

#include "tasks/vocab.h"

namespace mm {

struct MuLaw {
  double mu = 100, M = 256;
  double forward(double x) const;  // x -> F(x) in [-1, 1] (clipped)
  double inverse(double y) const;  // y in [-1, 1] -> x
};

// x -> bin in [0, n_bins); throws on NaN.
int64_t continuous_to_bin(double x, int64_t n_bins = 1024, const MuLaw& law = {});
// bin -> x at the bin centre.
double bin_to_continuous(int64_t bin, int64_t n_bins = 1024, const MuLaw& law = {});

// [N] values -> [N] global ids in the vocabulary's continuous range, and back.
std::vector<int64_t> continuous_to_ids(const std::vector<double>& xs, const Vocab& v,
                                       const MuLaw& law = {});
std::vector<double> ids_to_continuous(const std::vector<int64_t>& ids, const Vocab& v,
                                      const MuLaw& law = {});

}  // namespace mm
