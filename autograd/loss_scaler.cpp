#include "autograd/loss_scaler.h"

#include <algorithm>
#include <cmath>

#include "autograd/grad_mode.h"
#include "ops/backend.h"
#include "ops/elementwise.h"

namespace mm {

LossScaler::LossScaler(const LossScalerOptions& o) : o_(o), scale_(o.init_scale) {
  MM_CHECK(std::isfinite(o.init_scale) && o.init_scale > 0, "LossScaler: init_scale must be positive and finite, got ",
           o.init_scale);
  MM_CHECK(o.growth_factor > 1.0, "LossScaler: growth_factor must be > 1, got ", o.growth_factor);
  MM_CHECK(o.backoff_factor > 0.0 && o.backoff_factor < 1.0, "LossScaler: backoff_factor must be in (0, 1), got ",
           o.backoff_factor);
  MM_CHECK(o.growth_interval >= 1, "LossScaler: growth_interval must be >= 1, got ", o.growth_interval);
  MM_CHECK(o.min_scale > 0 && o.min_scale <= o.init_scale, "LossScaler: min_scale must be in (0, init_scale = ",
           o.init_scale, "], got ", o.min_scale);
}

Tensor LossScaler::scale_loss(const Tensor& loss) const { return mul(loss, scale_); }

bool LossScaler::unscale(const std::vector<Tensor>& params) {
  MM_CHECK(!unscaled_, "LossScaler::unscale: already called for this step (step() ends a step)");
  autograd::NoGradGuard ng;
  const double inv = 1.0 / scale_;
  double ss = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Backend& be = backend_for(g.device());
    Tensor unscaled = Tensor::empty(g.shape(), g.dtype(), g.device());
    be.unary(UnaryOp::scale, g, unscaled, inv);
    p.impl()->grad = unscaled.impl_ptr();
    ss += be.sum_squares(unscaled);  // inf/nan anywhere makes the sum inf/nan
  }
  unscaled_ = true;
  finite_ = std::isfinite(ss);
  return finite_;
}

bool LossScaler::step(Optimizer& opt, const std::vector<Tensor>& params) {
  if (!unscaled_) unscale(params);
  const bool finite = finite_;
  if (finite) opt.step();
  update(finite);
  return finite;
}

void LossScaler::update(bool finite) {
  unscaled_ = false;
  finite_ = true;
  if (!finite) {
    scale_ = std::max(scale_ * o_.backoff_factor, o_.min_scale);
    good_steps_ = 0;
    ++skipped_steps_;
    return;
  }
  if (++good_steps_ < o_.growth_interval) return;
  good_steps_ = 0;
  const double grown = scale_ * o_.growth_factor;
  if (std::isfinite(grown)) scale_ = grown;
}

std::map<std::string, double> LossScaler::state() const {
  return {{"scale", scale_}, {"good_steps", double(good_steps_)}, {"skipped_steps", double(skipped_steps_)}};
}

void LossScaler::load_state(const std::map<std::string, double>& s) {
  for (const char* key : {"scale", "good_steps", "skipped_steps"})
    MM_CHECK(s.count(key), "LossScaler::load_state: missing '", key, "'");
  const double scale = s.at("scale");
  MM_CHECK(std::isfinite(scale) && scale > 0, "LossScaler::load_state: scale must be positive and finite, got ", scale);
  scale_ = scale;
  good_steps_ = int64_t(s.at("good_steps"));
  skipped_steps_ = int64_t(s.at("skipped_steps"));
  unscaled_ = false;
  finite_ = true;
}

}  // namespace mm
