#include "autograd/optim.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "ops/backend.h"
#include "ops/creation.h"
#include "ops/elementwise.h"

namespace mm {

void Optimizer::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.zero_grad();
}

// ---- SGD ----------------------------------------------------------------------------
SGD::SGD(std::vector<ParamGroup> groups, const SgdOptions& o) : Optimizer(std::move(groups), o.lr), o_(o) {
  for (auto& g : groups_) buf_.resize(buf_.size() + g.params.size());
}

void SGD::step() {
  autograd::NoGradGuard ng;
  size_t k = 0;
  for (auto& grp : groups_) {
    for (auto& p : grp.params) {
      Tensor g = p.grad();
      Tensor& buf = buf_[k++];
      if (!g.defined()) continue;
      if (grp.weight_decay != 0) g = add(g, mul(p, grp.weight_decay));
      if (o_.momentum != 0) {
        buf = buf.defined() ? add(mul(buf, o_.momentum), mul(g, 1.0 - o_.dampening)) : clone(g);
        g = o_.nesterov ? add(g, mul(buf, o_.momentum)) : buf;
      }
      Tensor np = add(p, mul(g, -lr_));
      backend_for(p.device()).copy(np, p);  // in place: the parameter keeps its identity
    }
  }
  ++steps_;
}

std::map<std::string, Tensor> SGD::state() const {
  std::map<std::string, Tensor> s;
  s["step"] = Tensor::scalar(double(steps_), DType::i64);
  for (size_t i = 0; i < buf_.size(); ++i)
    if (buf_[i].defined()) s["momentum." + std::to_string(i)] = buf_[i];
  return s;
}
void SGD::load_state(const std::map<std::string, Tensor>& s) {
  MM_CHECK(s.count("step"), "SGD::load_state: no 'step' in the optimizer state");
  steps_ = int64_t(s.at("step").item());
  for (size_t i = 0; i < buf_.size(); ++i) {
    auto it = s.find("momentum." + std::to_string(i));
    buf_[i] = it == s.end() ? Tensor() : clone(it->second);
  }
}

// ---- AdamW --------------------------------------------------------------------------
AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o) : Optimizer(std::move(groups), o.lr), o_(o) {
  for (auto& g : groups_)
    for (auto& p : g.params) {
      m_.push_back(zeros_like(p));
      v_.push_back(zeros_like(p));
    }
}

void AdamW::step() {
  autograd::NoGradGuard ng;
  ++steps_;
  const double c1 = 1.0 - std::pow(o_.beta1, double(steps_)), c2 = 1.0 - std::pow(o_.beta2, double(steps_));
  size_t k = 0;
  for (auto& grp : groups_) {
    for (auto& p : grp.params) {
      Tensor g = p.grad();
      const size_t i = k++;
      if (!g.defined()) continue;
      MM_CHECK(g.shape() == p.shape() && g.is_contiguous() && p.is_contiguous(),
               "AdamW: parameter ", i, " ", p.shape(), " has gradient ", g.shape());
      Tensor pp = p;
      backend_for(p.device()).adamw(pp, g, m_[i], v_[i], lr_, o_.beta1, o_.beta2, o_.eps, grp.weight_decay, c1, c2);
    }
  }
}

std::map<std::string, Tensor> AdamW::state() const {
  std::map<std::string, Tensor> s;
  s["step"] = Tensor::scalar(double(steps_), DType::i64);
  for (size_t i = 0; i < m_.size(); ++i) {
    s["exp_avg." + std::to_string(i)] = m_[i];
    s["exp_avg_sq." + std::to_string(i)] = v_[i];
  }
  return s;
}
void AdamW::load_state(const std::map<std::string, Tensor>& s) {
  MM_CHECK(s.count("step"), "AdamW::load_state: no 'step' in the optimizer state");
  steps_ = int64_t(s.at("step").item());
  for (size_t i = 0; i < m_.size(); ++i) {
    for (auto [key, dst] : {std::pair{"exp_avg.", &m_[i]}, std::pair{"exp_avg_sq.", &v_[i]}}) {
      auto it = s.find(key + std::to_string(i));
      MM_CHECK(it != s.end(), "AdamW::load_state: missing '", key, i, "'");
      MM_CHECK(it->second.shape() == dst->shape(), "AdamW::load_state: '", key, i, "' has shape ",
               it->second.shape(), ", the parameter ", dst->shape());
      backend_for(dst->device().is_cpu() ? it->second.device() : dst->device()).copy(it->second, *dst);
    }
  }
}

// ---- clipping -----------------------------------------------------------------------
double grad_norm(const std::vector<Tensor>& params) {
  double ss = 0;
  for (const auto& p : params) {
    Tensor g = p.grad();
    if (g.defined()) ss += backend_for(g.device()).sum_squares(g);
  }
  return std::sqrt(ss);
}

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  const double norm = grad_norm(params);
  if (!std::isfinite(norm) || norm <= max_norm) return norm;
  const double s = max_norm / (norm + 1e-6);
  autograd::NoGradGuard ng;
  for (const auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    Tensor scaled = Tensor::empty(g.shape(), g.dtype(), g.device());
    backend_for(g.device()).unary(UnaryOp::scale, g, scaled, s);
    p.impl()->grad = scaled.impl_ptr();
  }
  return norm;
}

// ---- schedules ----------------------------------------------------------------------
double LrSchedule::lr(int64_t step) const {
  if (kind == Kind::constant) return step < warmup ? peak * double(step + 1) / double(warmup) : peak;
  if (step < warmup) return peak * double(step + 1) / double(warmup);
  if (step >= total) return end_lr;
  const double progress = double(step - warmup) / double(total - warmup > 0 ? total - warmup : 1);
  if (kind == Kind::cosine) return end_lr + (peak - end_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  return end_lr + (peak - end_lr) * std::pow(1.0 - progress, power);
}

LrSchedule::Kind LrSchedule::parse_kind(const std::string& s) {
  if (s == "constant") return Kind::constant;
  if (s == "polynomial" || s == "linear") return Kind::polynomial;
  if (s == "cosine") return Kind::cosine;
  throw Error(cat("unknown lr schedule '", s, "' (expected constant, polynomial, linear or cosine)"));
}

}  // namespace mm
