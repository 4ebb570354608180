#include "models/loss.h"

#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/loss.h"

namespace mm {

LossResult sequence_loss(const Tensor& logits, const Tensor& target, const Tensor& loss_mask, const LossOptions& o) {
  MM_CHECK(logits.dim() == 3, "sequence_loss: logits must be [B, T, V], got ", logits.shape());
  MM_CHECK(target.dim() == 2 && target.size(0) == logits.size(0) && target.size(1) == logits.size(1),
           "sequence_loss: target ", target.shape(), " does not match logits ", logits.shape());
  MM_CHECK(target.dtype() == DType::i64, "sequence_loss: target must be i64, got ", dtype_name(target.dtype()));
  if (loss_mask.defined())
    MM_CHECK(loss_mask.shape() == target.shape(), "sequence_loss: loss_mask ", loss_mask.shape(),
             " does not match target ", target.shape());
  constexpr int64_t kIgnore = -100;
  const int64_t n = target.numel();
  std::vector<int64_t> t(static_cast<size_t>(n));
  // The ignore pattern is built on the host (target and mask may be on the device).
  const std::vector<double> tv = to(target, Device::cpu()).to_vector();
  const std::vector<double> mv =
      loss_mask.defined() ? to(loss_mask, Device::cpu()).to_vector() : std::vector<double>();
  LossResult r;
  for (int64_t i = 0; i < n; ++i) {
    const auto id = int64_t(tv[size_t(i)]);
    const bool scored = id != 0 && (mv.empty() || mv[size_t(i)] != 0.0);
    t[size_t(i)] = scored ? id : kIgnore;
    r.sample_size += scored;
  }
  CrossEntropyOptions ce;
  ce.ignore_index = kIgnore;
  ce.label_smoothing = o.label_smoothing;
  ce.allowed = o.allowed.defined() ? to(o.allowed, logits.device()) : o.allowed;
  ce.reduction = Reduction::sum;
  r.loss = cross_entropy(logits, to(Tensor::from_vector_i(t, target.shape()), logits.device()), ce);
  if (o.weight != 1.0) r.loss = mul(r.loss, o.weight);
  return r;
}

}  // namespace mm
