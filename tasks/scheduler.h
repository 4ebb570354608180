// Multi-task schedulers: which tasks one update visits (SPEC.md section 4).
//
//   auto s = make_scheduler({.name = "temperature", .temperature = 2}, tasks);
//   for (int step = 0; step < max_updates; ++step)
//     for (int task : s->next_step()) accumulate(task);   // one micro-batch per entry
//   s->observe_validation(task, score);                   // after each evaluation
//
// Names (config `scheduler.name`), with n_i the size of task i's training set:
//   all_tasks          every task each update, each update_freq micro-batches (OFASys)
//   fixed_ratio        update_freq draws per update, p_i ∝ ratio_i (UniT)
//   size_proportional  p_i ∝ n_i (MT-DNN)
//   temperature        p_i ∝ n_i^(1/T)
//   examples_cap       p_i ∝ min(n_i, K) (T5)
//   uncertainty        p_i ∝ max(u_i, floor), u_i the task's latest normalised entropy
//                      (entropy / log(#choices), in [0, 1]) from observe_uncertainty;
//                      1 before any report (CA-MTL)
//   stop_and_go        like all_tasks, but a task whose validation score has not improved
//                      (by > min_delta) for `patience` evaluations is visited only every
//                      stop_every-th update, until its score falls more than min_delta
//                      below its best (12-in-1); higher scores are better
//   mixed              one batch holds sequences of several tasks: next_step() returns
//                      mixed_slots task ids, one per sequence, p_i ∝ ratio_i (Gato)
// Every draw comes from one std::mt19937_64 seeded with `seed`: same seed, same schedule.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace mm {

struct TaskStats {
  std::string name = {};
  int64_t size = 0;    // training examples (size_proportional, temperature, examples_cap)
  double ratio = 1.0;  // sampling ratio (fixed_ratio, mixed)
};

struct SchedulerOptions {
  std::string name = "all_tasks";
  uint64_t seed = 1;
  int update_freq = 1;             // micro-batches per task per update / draws per update
  double temperature = 2.0;        // temperature: T > 0
  int64_t cap = 262144;            // examples_cap: K (T5 tried 2^16 .. 2^21)
  double uncertainty_floor = 0.01; // uncertainty: no task's weight drops below this
  int patience = 3;                // stop_and_go: evaluations without improvement
  int stop_every = 4;              // stop_and_go: a stopped task is visited every k-th update
  double min_delta = 0.0;          // stop_and_go: improvement / regression threshold
  int mixed_slots = 8;             // mixed: sequences per batch
};

class TaskScheduler {
 public:
  virtual ~TaskScheduler() = default;
  // Task indices to visit in the next update, one entry per micro-batch (or per sequence
  // slot for `mixed`).
  virtual std::vector<int> next_step() = 0;
  // A task's validation score (higher is better). Used by stop_and_go.
  virtual void observe_validation(int task, double score);
  // A task's normalised prediction entropy in [0, 1]. Used by uncertainty.
  virtual void observe_uncertainty(int task, double entropy);
  // Current probability of each task per draw (sampling schedulers) or expected visits
  // per update (all_tasks, stop_and_go), for logging.
  virtual std::vector<double> rates() const = 0;
  const std::string& name() const { return name_; }
  int num_tasks() const { return int(tasks_.size()); }
  // Everything that decides future draws (RNG state, observed scores), as JSON text, so a
  // resumed run schedules exactly as the uninterrupted one would.
  std::string save_state() const;
  void load_state(const std::string& json);

 protected:
  // Scheduler-specific state beyond the RNG (default: none), as a JSON value's text.
  virtual std::string extra_state() const { return "null"; }
  virtual void load_extra_state(const std::string&) {}
  TaskScheduler(std::string name, std::vector<TaskStats> tasks, const SchedulerOptions& opt);
  void check_task(int task) const;
  std::string name_;
  std::vector<TaskStats> tasks_;
  SchedulerOptions opt_;
  std::mt19937_64 rng_;
};

// Builds the scheduler `opt.name`; throws naming the valid names when unknown, or the
// offending option/task when a value is out of range.
std::unique_ptr<TaskScheduler> make_scheduler(const SchedulerOptions& opt,
                                              const std::vector<TaskStats>& tasks);
const std::vector<std::string>& scheduler_names();

}  // namespace mm
