#include "ops/loss.h"

#include <cmath>

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/op_util.h"
#include "ops/reduce.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

// The allowed mask as an [M, V] byte view with unit column stride, the layout the kernels
// take: one shared mask (row stride 0) when the mask has no per-row dims, else a
// contiguous [M, V] copy (a per-row mask, or a partial broadcast such as [B, 1, V]).
Tensor allowed_rows(const Tensor& mask, const Tensor& logits, int64_t M, int64_t V) {
  MM_CHECK(mask.dtype() == DType::u8 || mask.dtype() == DType::boolean,
           "cross_entropy: the allowed mask must be u8 or bool, got ", dtype_name(mask.dtype()), " of shape ",
           mask.shape());
  check_same_device("cross_entropy", logits, mask);
  autograd::NoGradGuard ng;  // masks carry no gradient; the views below are internal
  const Shape& ls = logits.shape();
  if (ls.n != 2 && mask.dim() == 2 && mask.size(0) == M && mask.size(1) == V) {
    Tensor c = contiguous(mask);  // per-row mask given flat as [M, V]
    return c.as_strided({M, V}, {V, 1}, c.offset());
  }
  bool fits = mask.dim() <= ls.n;
  for (int i = 0; fits && i < mask.dim(); ++i) {
    const int64_t s = mask.size(i), l = ls[ls.n - mask.dim() + i];
    fits = s == l || s == 1;
  }
  MM_CHECK(fits, "cross_entropy: the allowed mask of shape ", mask.shape(), " cannot be broadcast to logits ", ls,
           " (give one [", V, "] mask, a mask broadcastable to the logits, or a per-row [", M, ", ", V, "] mask)");
  Tensor e = expand(mask, ls);
  bool shared = true;
  for (int i = 0; i + 1 < e.dim(); ++i) shared = shared && (e.stride(i) == 0 || e.size(i) == 1);
  if (shared && (e.stride(-1) == 1 || V == 1)) return e.as_strided({M, V}, {0, 1}, e.offset());
  Tensor c = contiguous(e);
  return c.as_strided({M, V}, {V, 1}, c.offset());
}

}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& o) {
  check_defined("cross_entropy", logits, "logits");
  check_defined("cross_entropy", targets, "targets");
  check_floating("cross_entropy", logits);
  check_same_device("cross_entropy", logits, targets);
  MM_CHECK(logits.dim() >= 1, "cross_entropy: logits must be [..., V], got a scalar");
  MM_CHECK(targets.dtype() == DType::i64, "cross_entropy: targets must be i64, got ", dtype_name(targets.dtype()),
           " of shape ", targets.shape());
  const Shape& ls = logits.shape();
  const Shape rows_shape(ls.begin(), ls.end() - 1);
  MM_CHECK(targets.shape() == rows_shape, "cross_entropy: targets of shape ", targets.shape(),
           " do not match logits ", ls, " (expected targets ", rows_shape, ")");
  MM_CHECK(o.label_smoothing >= 0.0 && o.label_smoothing <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got ",
           o.label_smoothing);
  const int64_t V = ls.back(), M = rows_shape.numel();

  Tensor lc = contiguous(logits);
  Tensor tc = contiguous(targets);
  Tensor l2 = lc.as_strided({M, V}, {V, 1}, lc.offset());
  Tensor t1 = tc.as_strided({M}, {1}, tc.offset());
  Tensor allowed = o.allowed.defined() ? allowed_rows(o.allowed, logits, M, V) : Tensor();
  CrossEntropyArgs args;
  args.ignore_index = o.ignore_index;
  args.label_smoothing = o.label_smoothing;

  Tensor loss = Tensor::empty({M}, logits.dtype(), logits.device());
  Tensor lse = Tensor::empty({M}, logits.dtype(), logits.device());
  if (M > 0) backend_of(logits).cross_entropy(l2, t1, allowed, args, loss, lse);

  autograd::record(loss, "cross_entropy", {lc}, [l2, t1, allowed, args, lse, ls](const Tensor& g, const Node&) {
    // d loss_r / d x_rj = p_rj - q_rj (see loss.h), scaled by the incoming gloss[r].
    Tensor gc = contiguous(g);
    Tensor gl = Tensor::empty(ls, l2.dtype(), l2.device());
    Tensor gl2 = gl.as_strided(l2.shape(), l2.strides(), 0);
    if (gl.numel() > 0) backend_of(gc).cross_entropy_backward(l2, t1, allowed, args, lse, gc, gl2);
    return grads{gl};
  });

  switch (o.reduction) {
    case Reduction::none: return reshape(loss, rows_shape);
    case Reduction::sum: return sum(loss);
    case Reduction::mean: break;
  }
  // Mean over the rows that count: ignored rows contribute 0 to the sum and are left out of
  // the denominator. Counted with ops so the targets never leave their device.
  Tensor ignored;
  {
    autograd::NoGradGuard ng;
    ignored = sum(cast(eq(t1, full({}, double(o.ignore_index), DType::i64, t1.device())), logits.dtype()));
  }
  Tensor counted = maximum(neg(add(ignored, -double(M))), full({}, 1.0, logits.dtype(), logits.device()));
  return div(sum(loss), counted);
}

}  // namespace mm
