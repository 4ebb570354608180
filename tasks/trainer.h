// The multi-task training loop, OFASys's step by default:
//
//   for each update:
//     for each task index the scheduler returns (all tasks x update_freq by default):
//       r = task.next_micro_batch()            // data + forward: summed loss, sample size
//       backward(r.loss)                        // gradients accumulate
//     gradients *= 1 / (summed sample sizes)    // once, over every task (and every rank:
//                                               //  the sync_gradients hook all-reduces)
//     clip the global norm, AdamW at lr(step), zero gradients
//
// The trainer knows nothing of models or data formats: a TrainTask (tasks/ glue over a
// model and a dataset) produces the loss of its next micro-batch and can save and restore
// its data position. Checkpoints hold the model, the optimizer, the scheduler and every
// RNG and data position, so `resume` continues bit-exactly: the same losses as a run that
// was never interrupted.
//
// Checkpoint layout (save_dir/):
//   checkpoint_<step>/model.safetensors      model.state_dict(), metadata from options
//   checkpoint_<step>/optimizer.safetensors  optimizer state
//   checkpoint_<step>/trainer.json           step, RNG, scheduler and per-task data state
//   checkpoint_best/                         the best evaluation so far (same files)
//   latest                                   the name of the newest complete checkpoint
// A checkpoint is written into a temporary folder and renamed into place, then `latest`
// is replaced atomically: an interrupted save never leaves a half-written checkpoint.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/loss_scaler.h"
#include "autograd/module.h"
#include "autograd/optim.h"
#include "runtime/philox.h"
#include "tasks/scheduler.h"

namespace mm {

struct MicroBatchResult {
  Tensor loss;               // scalar: the loss summed over the micro-batch (weighted)
  double sample_size = 0;    // what the update's gradient is normalised by (e.g. tokens)
  int64_t ntokens = 0;       // tokens processed, for tokens/s
  double data_seconds = 0;   // time spent preparing the batch (data loading share)
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;
  virtual std::string name() const = 0;
  virtual int64_t num_examples() const = 0;
  virtual double ratio() const { return 1.0; }  // for fixed_ratio / mixed schedulers
  // The loss of the task's next micro-batch (advances its data position).
  virtual MicroBatchResult next_micro_batch() = 0;
  // Data position and any RNG the task owns, for exact resume.
  virtual nlohmann::json state() const = 0;
  virtual void load_state(const nlohmann::json& s) = 0;
};

struct TrainOptions {
  int64_t max_updates = 1000;
  double clip_norm = 1.0;            // 0 = no clipping
  LrSchedule schedule;               // peak lr, warmup, decay
  SchedulerOptions scheduler;        // which tasks each update visits
  std::string save_dir;              // "" = no checkpoints
  int64_t save_every = 0;            // updates between checkpoints (0 = only at the end)
  int keep_last = 2;                 // checkpoint_<step> folders kept
  int64_t eval_every = 0;            // updates between evaluations (0 = only at the end)
  int max_bad_updates = 5;           // non-finite losses/gradients in a row before stopping
  int64_t log_every = 10;            // progress line every N updates (0 = never)
  std::string metrics_log;           // JSONL file, one record per logged update ("" = none)
  bool is_main = true;               // only the main rank prints and writes files
  std::map<std::string, std::string> model_metadata;  // stored in model.safetensors
  DType autocast = DType::f32;       // bf16 / f16: forwards under AutocastGuard (ops/autocast.h);
                                     // f16 also scales the loss (autograd/loss_scaler.h)
  LossScalerOptions loss_scaler;     // with autocast f16
};

// Hooks through which a distributed run joins the loop (runtime/dist provides them).
struct TrainHooks {
  // Sums gradients over the ranks and divides them by the global sample size, which it
  // returns (autograd/data_parallel.h GradSync::reduce). Unset: normalise locally.
  std::function<double(double local_sample_size)> sync_gradients;
  // The maximum of a scalar over the ranks: a non-finite loss on any rank skips the
  // update on every rank.
  std::function<double(double)> all_reduce_max;
  // Per-task validation scores (higher is better), called every eval_every updates.
  std::function<std::map<std::string, double>(int64_t update)> evaluate;
};

struct UpdateLog {
  int64_t update = 0;
  double lr = 0, grad_norm = 0, seconds = 0, data_seconds = 0;
  int64_t ntokens = 0;
  bool skipped = false;                    // non-finite loss or gradient: no step taken
  double loss_scale = 0;                   // f16: the scale this update used (0: none)
  std::map<std::string, double> task_loss;  // per task: loss sum / sample size this update
};

class Trainer {
 public:
  Trainer(Module& model, std::vector<TrainTask*> tasks, const TrainOptions& opt, const AdamWOptions& adamw,
          double weight_decay, Generator* model_rng, TrainHooks hooks = {});

  // Trains until max_updates (or until stop() / SIGINT, which save a checkpoint first).
  // Returns the number of updates done in this call.
  int64_t train();
  // One update; returns what happened.
  UpdateLog update();
  void stop() { stop_requested_ = true; }

  // Writes checkpoint_<update> (and `latest`); best = also checkpoint_best.
  std::string save_checkpoint(bool best = false);
  // Loads save_dir/latest (or the given checkpoint folder); false when there is none.
  bool resume(const std::string& checkpoint_dir = "");

  int64_t updates_done() const { return update_; }
  const std::vector<UpdateLog>& history() const { return history_; }
  Optimizer& optimizer() { return *optim_; }
  // Installs a SIGINT handler that asks the running train() to save and stop.
  static void install_sigint_handler();

 private:
  void log(const UpdateLog& u);
  void maybe_evaluate(bool force);
  nlohmann::json trainer_state() const;

  Module& model_;
  std::vector<TrainTask*> tasks_;
  TrainOptions opt_;
  Generator* model_rng_;
  TrainHooks hooks_;
  std::unique_ptr<AdamW> optim_;
  std::unique_ptr<LossScaler> scaler_;  // autocast f16 only
  std::unique_ptr<TaskScheduler> scheduler_;
  std::vector<Tensor> params_;
  int64_t update_ = 0;
  int bad_in_a_row_ = 0;
  double best_score_ = -1e300;
  std::vector<UpdateLog> history_;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace mm
