// Whether ops record the autograd graph. Off inside backward() and under NoGradGuard.
//
//   { NoGradGuard g; logits = model.forward(x); }   // inference: no graph, no saved tensors
#pragma once

namespace mm::autograd {

struct GradMode {
  static bool enabled();
  static void set_enabled(bool on);
};

class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace mm::autograd
