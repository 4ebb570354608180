// OFA behind the generation interface (models/generation.h): the encoder runs once, the
// decoder one token per step with its key/value cache; reorder() moves cache rows and
// encoder rows together (beam search, finished rows leaving the batch).
//
//   EncoderOut enc = model.encode(inputs);
//   OfaStepDecoder dec(model, enc);
//   Hypotheses h = generate(dec, options);
#pragma once
#include "models/generation.h"
#include "models/ofa.h"

namespace mm {

class OfaStepDecoder final : public StepDecoder {
 public:
  OfaStepDecoder(OfaModel& model, EncoderOut enc);
  int64_t num_rows() const override { return enc_.x.size(0); }
  int64_t vocab_size() const override { return model_.config().vocab_size; }
  // last [N] i64 -> logits [N, V] for the next position.
  Tensor step(const Tensor& last) override;
  void reorder(const std::vector<int64_t>& rows) override;

 private:
  OfaModel& model_;
  EncoderOut enc_;
  DecoderCache cache_;
};

}  // namespace mm
