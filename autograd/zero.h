// ZeRO stage 1 (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion
// Parameter Models", SC'20): AdamW whose moments are sharded over the ranks.
//
//   broadcast_parameters(world, model);       // ranks must start from the same weights
//   ZeroAdamW opt(world, {{model.parameters(), 0.01}}, {.lr = 3e-4}, {.max_grad_norm = 1.0});
//   autograd::backward(summed_loss);          // local gradients, not reduced
//   opt.step(local_samples);                  // reduce-scatter, update my shard, all-gather
//   opt.zero_grad();
//
// All parameters (one dtype, one device) are laid end to end in a flat index space of T
// elements, padded to W * S (S = ceil(T / W)); rank r owns elements [r S, (r+1) S). A step:
//   1. one small all-reduce of [sample count, gradient-defined flag per parameter];
//   2. reduce-scatter of the flat local gradients: rank r receives the sum of its shard;
//   3. divide by the global sample count; clip by the global norm (an all-reduce of the
//      shards' sums of squares) when max_grad_norm > 0;
//   4. AdamW on the owned shard only (per parameter segment, with its group's decay);
//   5. all-gather of the updated shards into every rank's parameters.
// The arithmetic is AdamW's on the same reduced gradients, so the result equals GradSync +
// AdamW + clip_grad_norm. Each rank keeps 2 S moment elements instead of 2 T.
//
// Checkpoints: state() gathers the shards to rank 0 in AdamW's own format ("step",
// "exp_avg.i", "exp_avg_sq.i" per parameter), so a state saved with N ranks loads with M
// ranks, with or without ZeRO; load_state() takes that full state on every rank and keeps
// its shard.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "autograd/optim.h"
#include "runtime/dist.h"

namespace mm {

struct ZeroOptions {
  double max_grad_norm = 0.0;  // > 0: clip the global gradient norm to this (clip_grad_norm's rule)
};

class ZeroAdamW final : public Optimizer {
 public:
  ZeroAdamW(dist::Comm& comm, std::vector<ParamGroup> groups, const AdamWOptions& o, const ZeroOptions& z = {});

  // One update from local (summed, unreduced) gradients; returns the global sample count.
  int64_t step(int64_t local_samples);
  // Gradients already averaged per rank: each rank counts as one sample.
  void step() override { step(1); }
  // The gradient norm of the last step, before clipping (only computed when clipping).
  double last_grad_norm() const { return last_norm_; }

  // Collective (every rank calls it): the full state on rank 0, only "step" elsewhere.
  std::map<std::string, Tensor> state() const override;
  // The full state (as state() returns on rank 0, or AdamW::state()), on every rank.
  void load_state(const std::map<std::string, Tensor>& s) override;

  // Bytes this rank holds for training, to report the saving.
  struct Memory {
    int64_t params = 0;            // replicated parameters
    int64_t grads = 0;             // local gradients
    int64_t optimizer_state = 0;   // this rank's moments (2 S elements)
    int64_t unsharded_state = 0;   // what AdamW would hold (2 T elements)
    int64_t buffers = 0;           // flat gradient/parameter buffer + shard buffers
  };
  Memory memory() const;
  int64_t shard_begin() const { return begin_; }  // this rank's elements of the flat space
  int64_t shard_end() const { return end_; }
  double comm_seconds() const { return comm_seconds_; }

 private:
  struct Slot {
    Tensor param;
    int64_t offset;  // in the flat space
    double weight_decay;
  };
  dist::Comm& comm_;
  AdamWOptions o_;
  ZeroOptions z_;
  std::vector<Slot> slots_;
  int64_t total_ = 0, shard_ = 0, begin_ = 0, end_ = 0;
  DType dtype_ = DType::f32;
  Device device_;
  Tensor flat_;          // [W * S]: local gradients in, gathered parameters out
  Tensor shard_g_;       // [S] reduced gradients of the owned shard
  Tensor shard_p_;       // [S] owned parameter values being updated
  Tensor m_, v_;         // [S] moments of the owned shard
  double last_norm_ = 0;
  double comm_seconds_ = 0;
};

}  // namespace mm
