// A simulated control task for Gato-style CONTINUOUS -> CONTINUOUS training: a 2-D point
// mass that must reach a goal, an expert PD controller, and the rollout evaluator that
// scores a learned policy by its episode return next to the expert's.
//
//   PointMass env;                              // defaults below
//   std::vector<double> obs = env.reset(seed);  // [4]: goal - position, velocity
//   while (!env.done()) obs = env.step(point_mass_expert(obs)).obs;
//   ControlScore sc = evaluate_policy(my_policy, /*episodes=*/20, /*seed=*/7);
//   // sc.policy_return vs sc.expert_return (and sc.zero_return, the do-nothing policy)
//
// Dynamics (semi-implicit Euler, dt = 0.1 s): v += dt * accel * clip(a, -1, 1);
// p += dt * v. Start: p and goal uniform in [-1, 1]^2, v = 0. Reward per step: minus the
// distance to the goal after the step, so a return is 0 at best and about -50 for a
// policy that never moves. Episodes last `horizon` steps.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

namespace mm {

struct PointMassConfig {
  int horizon = 50;      // steps per episode
  double dt = 0.1;       // seconds per step
  double accel = 2.0;    // acceleration at |action| = 1, per axis
};

inline constexpr int kPointMassObs = 4;     // goal - position (2), velocity (2)
inline constexpr int kPointMassAction = 2;  // force per axis, in [-1, 1]

struct StepResult {
  std::vector<double> obs;  // [4]
  double reward = 0;
  bool done = false;
};

class PointMass {
 public:
  explicit PointMass(PointMassConfig cfg = {}) : cfg_(cfg) {}
  // Starts an episode drawn from `seed`; returns the first observation [4].
  std::vector<double> reset(uint64_t seed);
  // action [2] (clipped to [-1, 1]; a wrong size is an mm::Error) -> next obs, reward.
  StepResult step(const std::vector<double>& action);
  std::vector<double> observation() const;  // [4]
  bool done() const { return t_ >= cfg_.horizon; }
  int steps() const { return t_; }
  const PointMassConfig& config() const { return cfg_; }

 private:
  PointMassConfig cfg_;
  double p_[2] = {0, 0}, v_[2] = {0, 0}, g_[2] = {0, 0};
  int t_ = 0;
};

// The expert: a critically damped PD controller, a = clip(kp (g - p) - kd v, -1, 1),
// kp = kd = 2 (natural frequency 2 rad/s at accel = 2). obs [4] -> action [2].
std::vector<double> point_mass_expert(const std::vector<double>& obs);

// A policy maps an observation [4] to an action [2].
using Policy = std::function<std::vector<double>(const std::vector<double>& obs)>;

// Runs `episodes` episodes (episode e starts from mix64(seed) + e) and returns each
// episode's return.
std::vector<double> rollout_returns(const Policy& policy, int episodes, uint64_t seed,
                                    const PointMassConfig& cfg = {});
// Mean episode return of `policy` over `episodes` episodes.
double rollout(const Policy& policy, int episodes, uint64_t seed, const PointMassConfig& cfg = {});

struct ControlScore {
  double policy_return = 0;  // mean return of the policy
  double expert_return = 0;  // the expert on the same start states
  double zero_return = 0;    // a policy that never pushes, on the same start states
};
ControlScore evaluate_policy(const Policy& policy, int episodes, uint64_t seed,
                             const PointMassConfig& cfg = {});

}  // namespace mm
