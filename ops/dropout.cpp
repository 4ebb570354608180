#include "ops/dropout.h"

#include "autograd/node.h"
#include "ops/op_util.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

// out = x * mask(seed, offset) / (1 - p). The mask is linear in x and fixed by
// (seed, offset), so the backward is the same call on the gradient, and that call
// records itself again: higher derivatives work too.
Tensor apply_mask(bool per_sample, const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  Tensor xc = contiguous(x);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  Backend& be = backend_of(x);
  if (per_sample) {
    const int64_t B = x.size(0), R = B ? x.numel() / B : 0;
    Tensor x2 = xc.as_strided({B, R}, {R, 1}, xc.offset());
    Tensor o2 = out.as_strided({B, R}, {R, 1}, 0);
    be.drop_path(x2, p, seed, offset, o2);
  } else {
    be.dropout(xc, p, seed, offset, out);
  }
  autograd::record(out, per_sample ? "drop_path" : "dropout", {xc},
                   [per_sample, p, seed, offset](const Tensor& g, const Node&) {
    return grads{apply_mask(per_sample, g, p, seed, offset)};
  });
  return out;
}

Tensor dropout_op(const char* op, bool per_sample, const Tensor& x, double p, Generator& gen, bool training) {
  check_defined(op, x, "x");
  check_floating(op, x);
  MM_CHECK(p >= 0.0 && p <= 1.0, op, ": probability p must be in [0, 1], got ", p);
  if (per_sample) MM_CHECK(x.dim() >= 1, op, ": expected x [B, ...] with a batch dimension, got a scalar");
  if (!training || p == 0.0) return x;
  const uint64_t offset = gen.advance();
  return apply_mask(per_sample, x, p, gen.seed(), offset);
}

}  // namespace

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  return dropout_op("dropout", false, x, p, gen, training);
}

Tensor drop_path(const Tensor& x, double p, Generator& gen, bool training) {
  return dropout_op("drop_path", true, x, p, gen, training);
}

}  // namespace mm
