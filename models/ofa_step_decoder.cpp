#include "models/ofa_step_decoder.h"

#include "autograd/grad_mode.h"
#include "ops/shape.h"

namespace mm {

OfaStepDecoder::OfaStepDecoder(OfaModel& model, EncoderOut enc) : model_(model), enc_(std::move(enc)) {}

Tensor OfaStepDecoder::step(const Tensor& last) {
  autograd::NoGradGuard ng;
  MM_CHECK(last.dim() == 1 && last.size(0) == num_rows(), "OfaStepDecoder::step: expected [", num_rows(),
           "] tokens, got ", last.shape());
  Tensor logits = model_.decode(enc_, reshape(last, {last.size(0), 1}), &cache_);  // [N, 1, V]
  return reshape(logits, {logits.size(0), logits.size(2)});
}

void OfaStepDecoder::reorder(const std::vector<int64_t>& rows) {
  autograd::NoGradGuard ng;
  cache_.reorder(rows);
  enc_ = select_rows(enc_, rows);
}

}  // namespace mm
