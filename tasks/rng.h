// Portable random draws for the data pipeline. std:: distributions (and std::shuffle)
// differ between standard libraries, which would make data order depend on the compiler;
// these depend only on std::mt19937_64, whose output the standard fixes.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace mm {

// A 64-bit mix (splitmix64 finaliser): hash seeds together, e.g. mix64(seed ^ mix64(epoch)).
uint64_t mix64(uint64_t x);
// Uniform integer in [0, n), n > 0 (rejection sampling: no modulo bias).
uint64_t uniform_index(std::mt19937_64& rng, uint64_t n);
// Uniform double in [0, 1) with 53 random bits.
double uniform_unit(std::mt19937_64& rng);
// Poisson(lambda) by Knuth's product of uniforms; lambda in (0, 30).
int64_t poisson(std::mt19937_64& rng, double lambda);
// Index drawn with probability proportional to weights[i] (>= 0, sum > 0).
size_t sample_weighted(std::mt19937_64& rng, const std::vector<double>& weights);
// Fisher-Yates permutation of [0, n).
std::vector<int64_t> permutation(int64_t n, std::mt19937_64& rng);

}  // namespace mm
