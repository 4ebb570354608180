#include "tasks/scheduler.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/error.h"
#include "tasks/rng.h"

namespace mm {

TaskScheduler::TaskScheduler(std::string name, std::vector<TaskStats> tasks,
                             const SchedulerOptions& opt)
    : name_(std::move(name)), tasks_(std::move(tasks)), opt_(opt), rng_(mix64(opt.seed)) {}

void TaskScheduler::check_task(int task) const {
  MM_CHECK(task >= 0 && task < num_tasks(), "scheduler ", name_, ": task index ", task,
           " out of range [0, ", num_tasks(), ")");
}
void TaskScheduler::observe_validation(int task, double) { check_task(task); }

std::string TaskScheduler::save_state() const {
  std::ostringstream rng;
  rng << rng_;
  nlohmann::json j = {{"name", name_}, {"rng", rng.str()}, {"extra", nlohmann::json::parse(extra_state())}};
  return j.dump();
}

void TaskScheduler::load_state(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("scheduler ", name_, ": corrupt saved state (", e.what(), ")"));
  }
  MM_CHECK(j.value("name", "") == name_, "scheduler ", name_, ": the saved state belongs to scheduler '",
           j.value("name", ""), "'");
  std::istringstream rng(j.at("rng").get<std::string>());
  rng >> rng_;
  MM_CHECK(!rng.fail(), "scheduler ", name_, ": corrupt RNG state");
  load_extra_state(j.at("extra").dump());
}
void TaskScheduler::observe_uncertainty(int task, double) { check_task(task); }

namespace {

// Every task, update_freq micro-batches each (OFASys's default step).
class AllTasks : public TaskScheduler {
 public:
  AllTasks(std::vector<TaskStats> tasks, const SchedulerOptions& opt)
      : TaskScheduler("all_tasks", std::move(tasks), opt) {}
  std::vector<int> next_step() override {
    std::vector<int> out;
    for (int t = 0; t < num_tasks(); ++t) out.insert(out.end(), size_t(opt_.update_freq), t);
    return out;
  }
  std::vector<double> rates() const override {
    return std::vector<double>(tasks_.size(), double(opt_.update_freq));
  }
};

// update_freq independent draws per update from fixed weights.
class Weighted : public TaskScheduler {
 public:
  Weighted(std::string name, std::vector<TaskStats> tasks, const SchedulerOptions& opt,
           std::vector<double> weights)
      : TaskScheduler(std::move(name), std::move(tasks), opt), w_(std::move(weights)) {
    double total = 0;
    for (double x : w_) total += x;
    MM_CHECK(total > 0, "scheduler ", name_, ": every task has weight 0");
  }
  std::vector<int> next_step() override {
    std::vector<int> out;
    for (int k = 0; k < draws(); ++k) out.push_back(int(sample_weighted(rng_, weights())));
    return out;
  }
  std::vector<double> rates() const override {
    std::vector<double> p = weights();
    double total = 0;
    for (double x : p) total += x;
    for (double& x : p) x /= total;
    return p;
  }

 protected:
  virtual int draws() const { return opt_.update_freq; }
  virtual std::vector<double> weights() const { return w_; }
  std::vector<double> w_;
};

class Mixed : public Weighted {
 public:
  Mixed(std::vector<TaskStats> tasks, const SchedulerOptions& opt, std::vector<double> w)
      : Weighted("mixed", std::move(tasks), opt, std::move(w)) {}

 protected:
  int draws() const override { return opt_.mixed_slots; }
};

class Uncertainty : public Weighted {
 public:
  Uncertainty(std::vector<TaskStats> tasks, const SchedulerOptions& opt)
      : Weighted("uncertainty", tasks, opt, std::vector<double>(tasks.size(), 1.0)) {}
  void observe_uncertainty(int task, double entropy) override {
    check_task(task);
    MM_CHECK(std::isfinite(entropy) && entropy >= 0 && entropy <= 1 + 1e-9, "scheduler "
             "uncertainty: task ", tasks_[task].name, " reported entropy ", entropy,
             " (expected a normalised entropy in [0, 1])");
    w_[task] = std::min(entropy, 1.0);
  }

 protected:
  std::string extra_state() const override { return nlohmann::json(w_).dump(); }
  void load_extra_state(const std::string& s) override {
    auto w = nlohmann::json::parse(s).get<std::vector<double>>();
    MM_CHECK(w.size() == w_.size(), "scheduler uncertainty: saved state has ", w.size(), " tasks, not ", w_.size());
    w_ = w;
  }
  std::vector<double> weights() const override {
    std::vector<double> w = w_;
    for (double& x : w) x = std::max(x, opt_.uncertainty_floor);
    return w;
  }
};

class StopAndGo : public TaskScheduler {
 public:
  StopAndGo(std::vector<TaskStats> tasks, const SchedulerOptions& opt)
      : TaskScheduler("stop_and_go", std::move(tasks), opt), st_(tasks_.size()) {}
  std::vector<int> next_step() override {
    std::vector<int> out;
    const bool stopped_turn = update_ % opt_.stop_every == 0;
    for (int t = 0; t < num_tasks(); ++t)
      if (!st_[t].stopped || stopped_turn) out.insert(out.end(), size_t(opt_.update_freq), t);
    ++update_;
    return out;
  }
  void observe_validation(int task, double score) override {
    check_task(task);
    MM_CHECK(std::isfinite(score), "scheduler stop_and_go: task ", tasks_[task].name,
             " reported a non-finite score");
    State& s = st_[task];
    if (!s.seen || score > s.best + opt_.min_delta) {
      s.best = score;
      s.stale = 0;
      s.seen = true;
    } else {
      ++s.stale;
    }
    if (s.stopped && score < s.best - opt_.min_delta) {  // regressed: train it fully again
      s.stopped = false;
      s.stale = 0;
    } else if (!s.stopped && s.stale >= opt_.patience) {
      s.stopped = true;
    }
  }
  std::vector<double> rates() const override {
    std::vector<double> r;
    for (const State& s : st_)
      r.push_back(opt_.update_freq * (s.stopped ? 1.0 / opt_.stop_every : 1.0));
    return r;
  }
  bool stopped(int t) const { return st_[t].stopped; }

 protected:
  std::string extra_state() const override {
    nlohmann::json tasks = nlohmann::json::array();
    for (const State& s : st_) tasks.push_back({s.seen, s.stopped, s.best, s.stale});
    return nlohmann::json{{"update", update_}, {"tasks", tasks}}.dump();
  }
  void load_extra_state(const std::string& text) override {
    auto j = nlohmann::json::parse(text);
    MM_CHECK(j.at("tasks").size() == st_.size(), "scheduler stop_and_go: saved state has ", j.at("tasks").size(),
             " tasks, not ", st_.size());
    update_ = j.at("update").get<int64_t>();
    for (size_t i = 0; i < st_.size(); ++i) {
      const auto& t = j.at("tasks")[i];
      st_[i] = {t[0].get<bool>(), t[1].get<bool>(), t[2].get<double>(), t[3].get<int>()};
    }
  }

 private:
  struct State {
    bool seen = false, stopped = false;
    double best = 0;
    int stale = 0;
  };
  std::vector<State> st_;
  int64_t update_ = 0;
};

}  // namespace

const std::vector<std::string>& scheduler_names() {
  static const std::vector<std::string> names = {
      "all_tasks", "fixed_ratio", "size_proportional", "temperature", "examples_cap",
      "uncertainty", "stop_and_go", "mixed"};
  return names;
}

std::unique_ptr<TaskScheduler> make_scheduler(const SchedulerOptions& opt,
                                              const std::vector<TaskStats>& tasks) {
  MM_CHECK(!tasks.empty(), "scheduler: no tasks");
  MM_CHECK(opt.update_freq >= 1, "scheduler: update_freq must be >= 1, got ", opt.update_freq);
  const std::string& n = opt.name;
  auto sizes = [&](const char* why) {
    std::vector<double> w;
    for (const auto& t : tasks) {
      MM_CHECK(t.size >= 0, "scheduler ", n, ": task ", t.name, " has size ", t.size);
      MM_CHECK(t.size > 0, "scheduler ", n, ": task ", t.name, " has no training examples (",
               why, " needs the dataset sizes)");
      w.push_back(double(t.size));
    }
    return w;
  };
  auto ratios = [&]() {
    std::vector<double> w;
    for (const auto& t : tasks) {
      MM_CHECK(std::isfinite(t.ratio) && t.ratio >= 0, "scheduler ", n, ": task ", t.name,
               " has ratio ", t.ratio, " (expected a finite number >= 0)");
      w.push_back(t.ratio);
    }
    return w;
  };
  if (n == "all_tasks") return std::make_unique<AllTasks>(tasks, opt);
  if (n == "fixed_ratio") return std::make_unique<Weighted>(n, tasks, opt, ratios());
  if (n == "size_proportional")
    return std::make_unique<Weighted>(n, tasks, opt, sizes("size_proportional"));
  if (n == "temperature") {
    MM_CHECK(opt.temperature > 0 && std::isfinite(opt.temperature),
             "scheduler temperature: temperature must be > 0, got ", opt.temperature);
    std::vector<double> w = sizes("temperature");
    for (double& x : w) x = std::pow(x, 1.0 / opt.temperature);
    return std::make_unique<Weighted>(n, tasks, opt, w);
  }
  if (n == "examples_cap") {
    MM_CHECK(opt.cap >= 1, "scheduler examples_cap: cap must be >= 1, got ", opt.cap);
    std::vector<double> w = sizes("examples_cap");
    for (double& x : w) x = std::min(x, double(opt.cap));
    return std::make_unique<Weighted>(n, tasks, opt, w);
  }
  if (n == "uncertainty") {
    MM_CHECK(opt.uncertainty_floor > 0 && opt.uncertainty_floor <= 1, "scheduler uncertainty: "
             "uncertainty_floor must be in (0, 1], got ", opt.uncertainty_floor);
    return std::make_unique<Uncertainty>(tasks, opt);
  }
  if (n == "stop_and_go") {
    MM_CHECK(opt.patience >= 1, "scheduler stop_and_go: patience must be >= 1");
    MM_CHECK(opt.stop_every >= 1, "scheduler stop_and_go: stop_every must be >= 1");
    MM_CHECK(opt.min_delta >= 0, "scheduler stop_and_go: min_delta must be >= 0");
    return std::make_unique<StopAndGo>(tasks, opt);
  }
  if (n == "mixed") {
    MM_CHECK(opt.mixed_slots >= 1, "scheduler mixed: mixed_slots must be >= 1");
    return std::make_unique<Mixed>(tasks, opt, ratios());
  }
  std::string all;
  for (const auto& s : scheduler_names()) all += (all.empty() ? "" : ", ") + s;
  throw Error(cat("scheduler: unknown name '", n, "' (expected one of ", all, ")"));
}

}  // namespace mm
