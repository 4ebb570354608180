// Random regularisers driven by the Philox generator (runtime/philox.h). Each training
// call takes one offset from the generator (gen.advance()); the mask is a pure function
// of (seed, offset, element index), so the backward recomputes it instead of storing it,
// and every backend draws the same mask. Kept values are scaled by 1/(1-p) so the
// expectation is unchanged; p = 1 gives zeros. Identity (x itself, no draw from the
// generator) when !training or p == 0.
//
//   Tensor h = dropout(attn_out, 0.1, gen, model.training());
//   Tensor r = x + drop_path(block(x), 0.1, gen, training);   // stochastic depth
#pragma once
#include "runtime/philox.h"
#include "runtime/tensor.h"

namespace mm {

// x [...] -> [...]: element i kept iff philox_uniform(seed, offset, i) >= p.
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training = true);
// x [B, ...] -> [B, ...]: sample b (all of x[b]) kept iff philox_uniform(seed, offset, b) >= p.
Tensor drop_path(const Tensor& x, double p, Generator& gen, bool training = true);

}  // namespace mm
