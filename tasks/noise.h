// Noising of token id sequences for denoising objectives (seeded, deterministic).
//
//   std::mt19937_64 rng(seed);
//   auto masked = span_mask(ids, 0.3, Vocab::mask, rng);          // BART text infilling
//   auto noisy  = random_replace(ids, 0.1, vocab.range(TokenKind::text), rng);
//
// Apply them to the content ids, before BOS/EOS are added, so those stay intact.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "tasks/rng.h"
#include "tasks/vocab.h"

namespace mm {

// BART span masking: round(n * ratio) tokens are covered by spans whose lengths are
// drawn from Poisson(lambda) (the last one cut to fit); each span becomes one `mask_id`;
// a zero-length span inserts a `mask_id`. Spans never overlap. Returns the new sequence.
std::vector<int64_t> span_mask(const std::vector<int64_t>& ids, double ratio, int64_t mask_id,
                               std::mt19937_64& rng, double lambda = 3.0);

// Replaces round(n * ratio) distinct positions with ids drawn uniformly from `range`.
// Returns the new sequence (same length); `positions` (optional) receives the positions.
std::vector<int64_t> random_replace(const std::vector<int64_t>& ids, double ratio, IdRange range,
                                    std::mt19937_64& rng, std::vector<int64_t>* positions = nullptr);

}  // namespace mm
