// Optimizers over parameter groups, gradient-norm clipping and learning-rate schedules.
//
//   AdamW opt({{model.decayed(), 0.01}, {model.no_decay(), 0.0}}, {.lr = 3e-4});
//   double norm = clip_grad_norm(model.parameters(), 1.0);
//   opt.set_lr(sched.lr(step)); opt.step(); opt.zero_grad();
//
// Parameters whose .grad is undefined are skipped (they took no part in this step).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace mm {

struct ParamGroup {
  std::vector<Tensor> params;
  double weight_decay = 0.0;
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamGroup> groups, double lr) : groups_(std::move(groups)), lr_(lr) {}
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  int64_t steps() const { return steps_; }
  // Everything needed to resume bit-exactly: per-parameter buffers and the step count.
  virtual std::map<std::string, Tensor> state() const = 0;
  virtual void load_state(const std::map<std::string, Tensor>& s) = 0;

 protected:
  std::vector<ParamGroup> groups_;
  double lr_;
  int64_t steps_ = 0;
};

struct SgdOptions {
  double lr = 0.01, momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
};
// PyTorch's SGD: g += wd p; buf = momentum buf + (1 - dampening) g (buf = g at first);
// g = nesterov ? g + momentum buf : buf; p -= lr g.
class SGD final : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SgdOptions& o);
  void step() override;
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& s) override;

 private:
  SgdOptions o_;
  std::vector<Tensor> buf_;  // momentum buffers, flat over groups
};

struct AdamWOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};
// Loshchilov & Hutter: decoupled weight decay p -= lr wd p, then Adam with bias correction.
class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o);
  void step() override;
  std::map<std::string, Tensor> state() const override;
  void load_state(const std::map<std::string, Tensor>& s) override;

 private:
  AdamWOptions o_;
  std::vector<Tensor> m_, v_;
};

// Scales all gradients so their global L2 norm is at most max_norm; returns the norm
// before clipping (inf/nan when a gradient is not finite: then nothing is scaled).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);
// The global L2 norm of the gradients.
double grad_norm(const std::vector<Tensor>& params);

// Learning rate at an update: linear warmup from 0 to peak over warmup steps, then
// polynomial decay ((1 - progress)^power, power 1 = linear) or cosine decay to end_lr at
// total steps; constant after total.
struct LrSchedule {
  enum class Kind { constant, polynomial, cosine } kind = Kind::polynomial;
  double peak = 1e-3, end_lr = 0.0, power = 1.0;
  int64_t warmup = 0, total = 1;
  double lr(int64_t step) const;
  // "constant" | "polynomial" | "linear" | "cosine"; throws on anything else.
  static Kind parse_kind(const std::string& s);
};

}  // namespace mm
