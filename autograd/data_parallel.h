// Data-parallel training over a dist::Comm: every rank holds the whole model, computes its
// share of the batch, and the gradients are summed over the ranks before the update, so
// N ranks step exactly like one process with N times the batch (up to float rounding).
//
//   dist::Comm& world = dist::world();
//   broadcast_parameters(world, model);                        // identical start everywhere
//   GradSync sync(world, model.parameters(), {.bucket_bytes = 25 << 20});
//   Generator gen = rank_generator(seed, world.rank());        // this rank's dropout stream
//   MetricAverager metrics({"loss"});
//   for (int step = 0; step < steps; ++step) {
//     auto [b, e] = dist::shard_range(global_batch, world.rank(), world.size());  // my samples
//     Tensor loss = cross_entropy(model(x[b:e]), y[b:e], {.reduction = Reduction::sum});
//     autograd::backward(loss);
//     metrics.add("loss", loss.item(), double(e - b));
//     sync.reduce(e - b);        // every grad = (sum over ranks) / (samples over ranks)
//     opt.step(); opt.zero_grad();
//     auto m = metrics.reduce(world);                          // same numbers on every rank
//     on_main_rank(world, [&] { log(step, m["loss"].mean()); });
//   }
//
// Losses are summed per rank (Reduction::sum) and normalised once by the global sample
// count, which is what makes uneven shards (and task placement, where ranks see different
// tasks) exact; for losses already averaged per rank, reduce(1) averages over ranks.
// ZeRO-1 (optimizer state sharded over the ranks) is autograd/zero.h.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "autograd/module.h"
#include "runtime/dist.h"
#include "runtime/philox.h"

namespace mm {

// Copies root's parameters and buffers to every rank (in registration order, which every
// rank shares because it runs the same code).
void broadcast_parameters(dist::Comm& comm, const Module& model, int root = 0);
void broadcast_tensors(dist::Comm& comm, const std::vector<Tensor>& tensors, int root = 0);

// This rank's Philox stream: seed shared, offsets from rank * 2^40, so the streams of
// different ranks never overlap (each may draw 2^40 times) and rank 0 of an N-rank run
// draws what a single process draws.
Generator rank_generator(uint64_t seed, int rank);

struct GradSyncOptions {
  int64_t bucket_bytes = int64_t(25) << 20;  // PyTorch DDP's default; a bigger tensor gets its own bucket
};

// Gradient all-reduce in buckets: the gradients of consecutive parameters (same dtype and
// device) are copied into one flat buffer, all-reduced once, scaled, and left in place:
// afterwards each parameter's .grad is a view of its bucket (no copy back).
// Bucket layout: [gradients][one "defined" flag per parameter][bucket 0: the sample count],
// so the sample count and which gradients exist travel in the same all-reduce.
class GradSync {
 public:
  GradSync(dist::Comm& comm, std::vector<Tensor> params, const GradSyncOptions& o = {});

  // Sums every gradient over the ranks and divides by the sum of local_samples; returns that
  // global count. A gradient undefined on some ranks counts as zero there; undefined on all
  // ranks it stays undefined (the optimizer skips it, as one process would).
  int64_t reduce(int64_t local_samples);

  int num_buckets() const { return int(buckets_.size()); }
  int64_t bucket_numel(int i) const { return buckets_[size_t(i)].numel; }
  // Seconds spent in all-reduce calls (waiting for slower ranks included), since construction.
  double comm_seconds() const { return comm_seconds_; }

 private:
  struct Bucket {
    DType dtype;
    Device device;
    std::vector<size_t> params;    // indices into params_
    std::vector<int64_t> offsets;  // element offset of each parameter in flat
    int64_t numel = 0;             // gradient elements (before the flags)
    Tensor flat;                   // [numel + params.size() + (bucket 0 ? 1 : 0)]
  };
  dist::Comm& comm_;
  std::vector<Tensor> params_;
  std::vector<Bucket> buckets_;
  double comm_seconds_ = 0;
};

// Sums and counts of named metrics, averaged over all ranks in one all-reduce. Every rank
// names the same metrics (a rank that has no value for one adds nothing to it).
class MetricAverager {
 public:
  explicit MetricAverager(std::vector<std::string> names);
  // e.g. add("loss/caption", summed_loss, samples) or add("accuracy", correct, total).
  void add(const std::string& name, double sum, double count = 1.0);
  struct Value {
    double sum = 0, count = 0;
    double mean() const { return count > 0 ? sum / count : 0.0; }
  };
  // Sums over ranks (the same result on every rank) and clears the local values.
  std::map<std::string, Value> reduce(dist::Comm& comm);

 private:
  std::vector<std::string> names_;
  std::vector<double> values_;  // sum, count per name
};

// Runs f on rank 0 only (logs, checkpoint files), then a barrier so the other ranks do not
// read what rank 0 is still writing. An exception in f reaches dist::guarded on rank 0,
// which aborts the job instead of leaving the others in the barrier.
template <typename F>
void on_main_rank(dist::Comm& comm, F&& f) {
  if (comm.is_main()) f();
  comm.barrier();
}

}  // namespace mm
