// Task placement (the OFASys scheduler's intent): bind each task to a group of ranks.
// Every rank still holds the whole model; a rank computes only the micro-batches of its
// tasks, a task's micro-batch is split among the ranks of its group, and one gradient
// all-reduce per update (GradSync / ZeroAdamW) sums everything, normalised by the summed
// sample sizes of all tasks on all ranks. Useful when a modality's preprocessing or memory
// differs (audio decoding on some ranks, images on others).
//
//   TaskPlacement place = TaskPlacement::parse("caption:0-3;vqa:4-7", {"caption", "vqa"}, world.size());
//   for (int task : scheduler->next_step())                 // the same list on every rank
//     if (place.runs(task, rank)) {
//       dist::Range r = place.shard(task, rank, micro_batch);  // my samples of it
//       ... forward + backward on samples [r.begin, r.end) ...; local_samples += r.size();
//     }
//   sync.reduce(local_samples);
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/dist.h"

namespace mm {

class TaskPlacement {
 public:
  // Every task on every rank: plain data parallelism.
  static TaskPlacement everywhere(int num_tasks, int world);
  // "name:ranks;name:ranks", ranks like "0-3,6". Tasks the spec does not name run on every
  // rank; an empty spec is `everywhere`. Unknown tasks, ranks outside [0, world), repeated
  // tasks and ranks left without any task are errors naming the spec.
  static TaskPlacement parse(const std::string& spec, const std::vector<std::string>& tasks, int world);
  // Groups sized by cost (e.g. samples x time per sample) when there are at least as many
  // ranks as tasks (each task >= 1 rank, the spare ranks to the task with the highest cost
  // per rank); otherwise each task gets one rank, the costliest first onto the least loaded.
  static TaskPlacement balanced(const std::vector<double>& cost, int world);

  int num_tasks() const { return int(ranks_.size()); }
  int world() const { return world_; }
  const std::vector<int>& ranks(int task) const;  // ascending
  std::vector<int> tasks_on(int rank) const;      // ascending
  bool runs(int task, int rank) const;
  // This rank's contiguous share of n samples of `task` (empty when it does not run it).
  dist::Range shard(int task, int rank, int64_t n) const;
  // "caption:0-3;vqa:4-7" (parse() reads it back).
  std::string str(const std::vector<std::string>& names) const;

 private:
  TaskPlacement(std::vector<std::vector<int>> ranks, int world);
  std::vector<std::vector<int>> ranks_;
  int world_ = 1;
};

}  // namespace mm
