// Dynamic loss scaling for f16 training (Micikevicius et al., "Mixed Precision Training";
// the rules of PyTorch's GradScaler). f16 gradients underflow to zero below 2^-24; the
// loss is multiplied by a large scale S before backward so they stay representable, and
// the gradients are divided by S before the optimizer sees them. When S is too large some
// gradient overflows to inf/nan: that step is skipped and S halved; after N good steps in a
// row S doubles again, so it hovers just below the overflow point.
//
//   LossScaler scaler;                                   // S = 2^16, x2 every 2000 good steps
//   autograd::backward(scaler.scale_loss(loss));         // gradients are S times too large
//   scaler.unscale(params);                              // optional, e.g. to clip the true norm
//   clip_grad_norm(params, 1.0);
//   if (!scaler.step(opt, params)) { /* skipped: inf/nan */ }   // unscales if not yet done
//   opt.zero_grad();
//
// bf16 has f32's exponent range and needs no scaling; f32 master weights take the
// unscaled gradients as they are. Scales are powers of two by default, so unscaling is
// exact.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "autograd/optim.h"
#include "runtime/tensor.h"

namespace mm {

struct LossScalerOptions {
  double init_scale = 65536.0;   // 2^16
  double growth_factor = 2.0;    // S *= this after growth_interval good steps in a row
  double backoff_factor = 0.5;   // S *= this on a step with inf/nan gradients
  int64_t growth_interval = 2000;
  double min_scale = 1.0;        // S never drops below this (a loss that is NaN by itself
                                 // would otherwise drive S to 0)
};

class LossScaler {
 public:
  explicit LossScaler(const LossScalerOptions& o = {});

  double scale() const { return scale_; }
  // loss * S, recorded for autograd (any shape; usually a scalar).
  Tensor scale_loss(const Tensor& loss) const;
  // Divides every defined gradient of `params` by S and records whether all of them are
  // finite (returned: true = finite). Once per step; step() calls it if you did not.
  bool unscale(const std::vector<Tensor>& params);
  // Unscales (if not done this step); takes opt.step() when every gradient is finite and
  // skips it otherwise; then adjusts S (update()). Returns whether the step was taken.
  bool step(Optimizer& opt, const std::vector<Tensor>& params);

  int64_t good_steps() const { return good_steps_; }       // in a row, since the last change of S
  int64_t skipped_steps() const { return skipped_steps_; }  // in total

  // S and the step counters, for checkpoints (resume continues with the same S).
  std::map<std::string, double> state() const;
  void load_state(const std::map<std::string, double>& s);

 private:
  void update(bool finite);

  LossScalerOptions o_;
  double scale_;
  int64_t good_steps_ = 0, skipped_steps_ = 0;
  bool unscaled_ = false, finite_ = true;  // this step's unscale() ran / its verdict
};

}  // namespace mm
