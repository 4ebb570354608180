// The micro model, synthetic data and training loop of the distribution self-test, shared by
// tools/dist_selftest.cpp (correctness) and tools/bench_dist.cpp (time spent communicating).
//
// Model: an MLP trunk (depth x [Linear(hidden) + GELU]) with one Linear head per task.
// Data: sample i of task t has x_j = Philox normal(seed_t, i, j) and label = argmax_c (T x)_c
// for a fixed random teacher T: any rank can make any sample, so a global batch can be split
// among ranks in any way. Step s (1-based) of task t uses samples
// [((s-1) accum + k) G, +G) for micro-batch k < accum, G the global micro-batch per task.
// Losses are summed (Reduction::sum) and normalised by the global sample count at the sync.
#pragma once
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "autograd/data_parallel.h"
#include "autograd/module.h"
#include "autograd/node.h"
#include "autograd/optim.h"
#include "autograd/zero.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "runtime/dist.h"
#include "runtime/philox.h"
#include "runtime/safetensors.h"
#include "tasks/placement.h"

namespace mm::distmlp {

struct Config {
  int in = 16, hidden = 32, depth = 2, classes = 5, tasks = 1;
  int64_t global_batch = 16;  // samples per task per micro-batch, over all ranks of its group
  int accum = 1;              // micro-batches per task per update
  int steps = 20;
  double lr = 1e-2, weight_decay = 0.01, clip = 1.0;  // clip <= 0: none
  bool zero = false;
  int64_t bucket_bytes = int64_t(25) << 20;
  std::string placement;  // TaskPlacement::parse spec; empty: every task on every rank
  uint64_t seed = 1234;
  int save_at = 0;        // > 0: checkpoint after this step into ckpt
  std::string ckpt, resume;
  // Failure injection (tests): at step fail_step, rank fail_rank throws / exits / is
  // killed / hangs instead of computing.
  int fail_rank = -1, fail_step = 0;
  std::string fail_mode = "throw";
};

inline const char* task_name(int t) { return t == 0 ? "A" : t == 1 ? "B" : t == 2 ? "C" : "D"; }

struct Mlp : Module {
  std::vector<Tensor> w, b, hw, hb;  // reserved up front: Module keeps pointers to them

  // Rank-dependent init on purpose: broadcast_parameters must make the ranks agree.
  Mlp(const Config& c, Generator& g) {
    w.reserve(size_t(c.depth));
    b.reserve(size_t(c.depth));
    hw.reserve(size_t(c.tasks));
    hb.reserve(size_t(c.tasks));
    int fan_in = c.in;
    for (int l = 0; l < c.depth; ++l) {
      w.push_back(randn({c.hidden, fan_in}, g, 0.0, 1.0 / std::sqrt(double(fan_in))));
      b.push_back(zeros({c.hidden}));
      register_parameter("trunk." + std::to_string(l) + ".weight", w.back());
      register_parameter("trunk." + std::to_string(l) + ".bias", b.back());
      fan_in = c.hidden;
    }
    for (int t = 0; t < c.tasks; ++t) {
      hw.push_back(randn({c.classes, fan_in}, g, 0.0, 1.0 / std::sqrt(double(fan_in))));
      hb.push_back(zeros({c.classes}));
      register_parameter(std::string("head.") + task_name(t) + ".weight", hw.back());
      register_parameter(std::string("head.") + task_name(t) + ".bias", hb.back());
    }
  }

  // x [B, in] -> logits [B, classes] of task t.
  Tensor forward(const Tensor& x, int t) const {
    Tensor h = x;
    for (size_t l = 0; l < w.size(); ++l) h = gelu(linear(h, w[l], b[l]));
    return linear(h, hw[size_t(t)], hb[size_t(t)]);
  }
};

// Samples [first, first + n) of task t: x [n, in] f32, y [n] i64.
inline void make_batch(const Config& c, int t, int64_t first, int64_t n, Tensor& x, Tensor& y) {
  const uint64_t seed = c.seed * 1000003u + uint64_t(t) * 7919u;
  std::vector<float> xs(size_t(n * c.in));
  std::vector<int64_t> ys(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float* xi = xs.data() + i * c.in;
    for (int j = 0; j < c.in; ++j) xi[j] = philox_normal(seed, uint64_t(first + i), uint64_t(j));
    int best = 0;
    double best_v = -1e300;
    for (int k = 0; k < c.classes; ++k) {
      double v = 0;  // the teacher's row k, drawn at offset 2^63 (never a sample index)
      for (int j = 0; j < c.in; ++j) v += double(philox_normal(seed, uint64_t(1) << 63, uint64_t(k * c.in + j))) * xi[j];
      if (v > best_v) best_v = v, best = k;
    }
    ys[size_t(i)] = best;
  }
  x = Tensor::from_vector_f(xs, {n, c.in});
  y = Tensor::from_vector_i(ys, {n});
}

struct StepLog {
  int step = 0;
  double loss = 0;
  std::vector<double> task_loss;
};

struct Timing {
  int steps = 0;
  double total_s = 0, comm_s = 0;
};

// Trains on this rank's share; on_step gets the global losses (every rank). Returns timing.
inline Timing train(dist::Comm& world, const Config& c, const std::function<void(const StepLog&)>& on_step,
                    const std::function<void(const std::string&)>& say) {
  std::vector<std::string> names;
  for (int t = 0; t < c.tasks; ++t) names.push_back(task_name(t));
  const TaskPlacement place = TaskPlacement::parse(c.placement, names, world.size());

  Generator init_gen = rank_generator(c.seed, world.rank());
  Mlp model(c, init_gen);
  broadcast_parameters(world, model);

  ParamGroup decayed{{}, c.weight_decay}, plain{{}, 0.0};
  for (auto& [name, p] : model.named_parameters()) (p.dim() >= 2 ? decayed : plain).params.push_back(p);
  const AdamWOptions ao{.lr = c.lr};
  std::unique_ptr<Optimizer> opt;
  ZeroAdamW* zopt = nullptr;
  if (c.zero) {
    auto z = std::make_unique<ZeroAdamW>(world, std::vector<ParamGroup>{decayed, plain}, ao,
                                         ZeroOptions{.max_grad_norm = c.clip});
    zopt = z.get();
    opt = std::move(z);
  } else {
    opt = std::make_unique<AdamW>(std::vector<ParamGroup>{decayed, plain}, ao);
  }
  std::unique_ptr<GradSync> sync;
  if (!c.zero) sync = std::make_unique<GradSync>(world, model.parameters(), GradSyncOptions{.bucket_bytes = c.bucket_bytes});

  int start = 0;
  if (!c.resume.empty()) {
    SafeTensors st = load_safetensors(c.resume);
    std::map<std::string, Tensor> ms, os;
    for (auto& [k, v] : st.tensors) {
      if (k.rfind("model.", 0) == 0) ms[k.substr(6)] = v;
      else if (k.rfind("optim.", 0) == 0) os[k.substr(6)] = v;
    }
    model.load_state_dict(ms);
    opt->load_state(os);
    start = std::stoi(st.metadata.at("step"));
    say(cat("resumed ", c.resume, " at step ", start, " (saved by ", st.metadata.at("world"), " ranks)"));
  }

  say(cat("world ", world.size(), ", placement ", place.str(names), ", ", model.num_parameters(), " parameters, ",
          c.zero ? "ZeRO-1" : cat("data parallel, ", sync->num_buckets(), " gradient buckets")));
  if (zopt) {
    const auto m = zopt->memory();
    say(cat("zero-1 memory on rank 0: optimizer state ", m.optimizer_state, " B (unsharded ", m.unsharded_state,
            " B), params ", m.params, " B, grads ", m.grads, " B, buffers ", m.buffers, " B"));
  }

  std::vector<std::string> metric_names{"loss"};
  for (auto& n : names) metric_names.push_back("loss/" + n);
  MetricAverager metrics(metric_names);
  const std::vector<Tensor> params = model.parameters();
  Timing timing;
  const auto t_begin = std::chrono::steady_clock::now();
  for (int step = start + 1; step <= c.steps; ++step) {
    if (world.rank() == c.fail_rank && step == c.fail_step) {
      if (c.fail_mode == "throw") throw Error(cat("injected failure at step ", step));
      if (c.fail_mode == "exit") std::_Exit(7);
      if (c.fail_mode == "kill") std::raise(SIGKILL);
      if (c.fail_mode == "hang") std::this_thread::sleep_for(std::chrono::seconds(600));
      throw Error(cat("unknown --fail-mode '", c.fail_mode, "' (throw, exit, kill, hang)"));
    }
    opt->zero_grad();
    int64_t local = 0;
    for (int t : place.tasks_on(world.rank())) {
      for (int k = 0; k < c.accum; ++k) {
        const dist::Range r = place.shard(t, world.rank(), c.global_batch);
        if (r.size() == 0) continue;
        Tensor x, y;
        make_batch(c, t, ((int64_t(step) - 1) * c.accum + k) * c.global_batch + r.begin, r.size(), x, y);
        CrossEntropyOptions ce;
        ce.reduction = Reduction::sum;
        Tensor loss = cross_entropy(model.forward(x, t), y, ce);
        autograd::backward(loss);
        local += r.size();
        metrics.add("loss", loss.item(), double(r.size()));
        metrics.add("loss/" + names[size_t(t)], loss.item(), double(r.size()));
      }
    }
    if (zopt) {
      zopt->step(local);
    } else {
      sync->reduce(local);
      if (c.clip > 0) clip_grad_norm(params, c.clip);
      opt->step();
    }
    auto m = metrics.reduce(world);
    StepLog log{step, m["loss"].mean(), {}};
    for (auto& n : names) log.task_loss.push_back(m["loss/" + n].mean());
    on_step(log);

    if (step == c.save_at) {
      std::map<std::string, Tensor> all;
      for (auto& [k, v] : opt->state()) all["optim." + k] = v;  // collective under ZeRO
      for (auto& [k, v] : model.state_dict()) all["model." + k] = v;
      on_main_rank(world, [&] {
        save_safetensors(c.ckpt, all, {{"step", std::to_string(step)}, {"world", std::to_string(world.size())}});
        say(cat("saved ", c.ckpt, " at step ", step));
      });
    }
    ++timing.steps;
  }
  timing.total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_begin).count();
  timing.comm_s = zopt ? zopt->comm_seconds() : sync->comm_seconds();
  return timing;
}

}  // namespace mm::distmlp
