#include "tasks/control_env.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"
#include "tasks/rng.h"

namespace mm {

std::vector<double> PointMass::reset(uint64_t seed) {
  std::mt19937_64 rng(mix64(seed));
  for (int i = 0; i < 2; ++i) p_[i] = 2 * uniform_unit(rng) - 1;
  for (int i = 0; i < 2; ++i) g_[i] = 2 * uniform_unit(rng) - 1;
  v_[0] = v_[1] = 0;
  t_ = 0;
  return observation();
}

std::vector<double> PointMass::observation() const {
  return {g_[0] - p_[0], g_[1] - p_[1], v_[0], v_[1]};
}

StepResult PointMass::step(const std::vector<double>& action) {
  MM_CHECK(action.size() == size_t(kPointMassAction), "point mass: expected an action of ",
           kPointMassAction, " values, got ", action.size());
  MM_CHECK(!done(), "point mass: step after the episode ended (", cfg_.horizon, " steps)");
  for (int i = 0; i < 2; ++i) {
    // A NaN action (a broken policy) counts as no push rather than poisoning the state.
    const double a = std::isfinite(action[size_t(i)]) ? std::clamp(action[size_t(i)], -1.0, 1.0) : 0.0;
    v_[i] += cfg_.dt * cfg_.accel * a;
    p_[i] += cfg_.dt * v_[i];
  }
  ++t_;
  StepResult r;
  r.obs = observation();
  r.reward = -std::hypot(g_[0] - p_[0], g_[1] - p_[1]);
  r.done = done();
  return r;
}

std::vector<double> point_mass_expert(const std::vector<double>& obs) {
  MM_CHECK(obs.size() == size_t(kPointMassObs), "point mass expert: expected ", kPointMassObs,
           " observation values, got ", obs.size());
  constexpr double kp = 2.0, kd = 2.0;
  return {std::clamp(kp * obs[0] - kd * obs[2], -1.0, 1.0),
          std::clamp(kp * obs[1] - kd * obs[3], -1.0, 1.0)};
}

std::vector<double> rollout_returns(const Policy& policy, int episodes, uint64_t seed,
                                    const PointMassConfig& cfg) {
  MM_CHECK(episodes > 0, "rollout: episodes must be > 0, got ", episodes);
  std::vector<double> returns;
  for (int e = 0; e < episodes; ++e) {
    PointMass env(cfg);
    std::vector<double> obs = env.reset(mix64(seed) + uint64_t(e));
    double ret = 0;
    while (!env.done()) {
      StepResult r = env.step(policy(obs));
      ret += r.reward;
      obs = std::move(r.obs);
    }
    returns.push_back(ret);
  }
  return returns;
}

double rollout(const Policy& policy, int episodes, uint64_t seed, const PointMassConfig& cfg) {
  std::vector<double> r = rollout_returns(policy, episodes, seed, cfg);
  double s = 0;
  for (double x : r) s += x;
  return s / double(r.size());
}

ControlScore evaluate_policy(const Policy& policy, int episodes, uint64_t seed,
                             const PointMassConfig& cfg) {
  ControlScore sc;
  sc.policy_return = rollout(policy, episodes, seed, cfg);
  sc.expert_return = rollout(point_mass_expert, episodes, seed, cfg);
  sc.zero_return = rollout([](const std::vector<double>&) { return std::vector<double>(2, 0.0); },
                           episodes, seed, cfg);
  return sc;
}

}  // namespace mm
