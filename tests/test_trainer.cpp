// The training loop on small synthetic tasks: losses fall, resume is bit-exact, a NaN
// loss skips the update, checkpoints are atomic and pruned.
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cmath>
#include <filesystem>
#include <random>

#include "ops/creation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "tasks/trainer.h"
#include "test_util.h"

using namespace mm;
namespace fs = std::filesystem;

namespace {

// A shared trunk with a head per task; dropout draws from the model's generator.
struct ToyModel : Module {
  Tensor w1, b1, heads;
  Generator rng{77};
  ToyModel() {
    Generator g(3);
    w1 = randn({8, 4}, g, 0, 0.5);
    b1 = zeros({8});
    heads = randn({3, 2, 8}, g, 0, 0.3);
    register_parameter("trunk.weight", w1);
    register_parameter("trunk.bias", b1);
    register_parameter("heads", heads);
  }
  Tensor forward(const Tensor& x, int task) {
    Tensor h = dropout(gelu(linear(x, w1, b1)), 0.1, rng, training());
    Tensor head = reshape(narrow(heads, 0, task, 1), {2, 8});
    return linear(h, head);
  }
};

// y = A_task x, 64 examples, micro-batches of 8 in a per-epoch shuffled order.
struct ToyTask : TrainTask {
  ToyModel& m;
  int id;
  std::vector<float> xs, ys;
  int64_t epoch = 0, pos = 0;
  bool nan_at_next = false;
  ToyTask(ToyModel& model, int task) : m(model), id(task) {
    std::mt19937 r(uint32_t(100 + task));
    std::normal_distribution<float> n;
    std::vector<float> a(8);
    for (auto& v : a) v = n(r);
    for (int i = 0; i < 64; ++i) {
      float x[4];
      for (auto& v : x) { v = n(r); xs.push_back(v); }
      for (int o = 0; o < 2; ++o) ys.push_back(a[size_t(o * 4)] * x[0] + a[size_t(o * 4 + 1)] * x[1] - x[2] * x[3] * a[size_t(o * 4 + 2)]);
    }
  }
  std::string name() const override { return cat("task", id); }
  int64_t num_examples() const override { return 64; }
  std::vector<int> order() const {
    std::vector<int> o(64);
    for (int i = 0; i < 64; ++i) o[size_t(i)] = i;
    std::shuffle(o.begin(), o.end(), std::mt19937(uint32_t(epoch * 31 + id)));
    return o;
  }
  MicroBatchResult next_micro_batch() override {
    auto o = order();
    std::vector<float> bx, by;
    for (int k = 0; k < 8; ++k) {
      int i = o[size_t(pos + k)];
      bx.insert(bx.end(), xs.begin() + i * 4, xs.begin() + i * 4 + 4);
      by.insert(by.end(), ys.begin() + i * 2, ys.begin() + i * 2 + 2);
    }
    pos += 8;
    if (pos >= 64) { pos = 0; ++epoch; }
    Tensor d = sub(m.forward(Tensor::from_vector_f(bx, {8, 4}), id), Tensor::from_vector_f(by, {8, 2}));
    Tensor loss = sum(mul(d, d));
    if (nan_at_next) { loss = mul(loss, std::nan("")); nan_at_next = false; }
    return {loss, 8.0, 8, 0.0};
  }
  nlohmann::json state() const override { return {{"epoch", epoch}, {"pos", pos}}; }
  void load_state(const nlohmann::json& s) override { epoch = s["epoch"]; pos = s["pos"]; }
};

struct Setup {
  ToyModel model;
  ToyTask t0{model, 0}, t1{model, 1}, t2{model, 2};
  std::unique_ptr<Trainer> trainer;
  Setup(const std::string& dir, int64_t max_updates, const std::string& sched = "temperature") {
    TrainOptions o;
    o.max_updates = max_updates;
    o.schedule = {.kind = LrSchedule::Kind::cosine, .peak = 0.02, .end_lr = 0.0, .power = 1.0, .warmup = 5, .total = 60};
    o.scheduler.name = sched;
    o.scheduler.update_freq = 2;
    o.save_dir = dir;
    o.log_every = 0;
    o.keep_last = 2;
    trainer = std::make_unique<Trainer>(model, std::vector<TrainTask*>{&t0, &t1, &t2}, o, AdamWOptions{}, 0.01, &model.rng);
  }
};

std::string temp_dir() {
  char tmpl[] = "/tmp/mm_trainer_XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  return tmpl;
}

std::vector<std::map<std::string, double>> losses(const Trainer& t) {
  std::vector<std::map<std::string, double>> out;
  for (auto& u : t.history()) out.push_back(u.task_loss);
  return out;
}

}  // namespace

TEST_SUITE("trainer") {

TEST_CASE("multi-task training lowers every task's loss") {
  Setup s("", 60, "all_tasks");
  s.trainer->train();
  auto h = losses(*s.trainer);
  for (auto name : {"task0", "task1", "task2"}) {
    CAPTURE(name);
    double first = 0, last = 0;
    for (int i = 0; i < 5; ++i) first += h[size_t(i)].at(name), last += h[h.size() - 1 - size_t(i)].at(name);
    CHECK(last < 0.5 * first);
  }
}

TEST_CASE("resume continues bit-exactly: same losses as an uninterrupted run") {
  const std::string dir = temp_dir();
  Setup full("", 24);
  full.trainer->train();
  Setup first(dir, 24);
  for (int i = 0; i < 10; ++i) first.trainer->update();
  first.trainer->save_checkpoint();
  Setup second(dir, 24);
  REQUIRE(second.trainer->resume());
  CHECK(second.trainer->updates_done() == 10);
  second.trainer->train();
  auto a = losses(*full.trainer), b = losses(*second.trainer);
  REQUIRE(b.size() >= 14);
  for (size_t i = 0; i < 14; ++i) {
    CAPTURE(i);
    CHECK(a[10 + i] == b[i]);  // exact equality: data order, dropout masks, scheduler draws
  }
  fs::remove_all(dir);
}

TEST_CASE("a NaN loss skips the update, names the task, and stops after too many") {
  Setup s("", 20, "all_tasks");
  s.trainer->update();
  Tensor before = clone(s.model.w1);
  s.t1.nan_at_next = true;
  UpdateLog u = s.trainer->update();
  CHECK(u.skipped);
  CHECK(s.model.w1.to_vector() == before.to_vector());  // no step was taken
  CHECK_FALSE(s.trainer->update().skipped);
  std::string msg;
  try {
    for (int i = 0; i < 10; ++i) {
      s.t2.nan_at_next = true;
      s.trainer->update();
    }
  } catch (const Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("task2") != std::string::npos);
  CHECK(msg.find("in a row") != std::string::npos);
}

TEST_CASE("checkpoints: latest, pruning, atomic writes, clear errors") {
  const std::string dir = temp_dir();
  Setup s(dir, 30);
  for (int i = 0; i < 3; ++i) {
    for (int k = 0; k < 2; ++k) s.trainer->update();
    s.trainer->save_checkpoint();
  }
  CHECK(fs::exists(fs::path(dir) / "checkpoint_6"));
  CHECK(fs::exists(fs::path(dir) / "checkpoint_4"));
  CHECK_FALSE(fs::exists(fs::path(dir) / "checkpoint_2"));  // keep_last = 2
  // A save that fails midway (file size limit = disk full) leaves `latest` and the last
  // checkpoint untouched and no temporary folder behind.
  s.trainer->update();
  struct rlimit old, small;
  getrlimit(RLIMIT_FSIZE, &old);
  small = old;
  small.rlim_cur = 4096;
  auto handler = signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &small);
  CHECK_THROWS_AS(s.trainer->save_checkpoint(), Error);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, handler);
  for (auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().rfind(".tmp", 0) != 0);
  Setup r(dir, 30);
  REQUIRE(r.trainer->resume());
  CHECK(r.trainer->updates_done() == 6);
  test::check_throws_with([&] { r.trainer->resume(dir + "/nope"); }, {"nope", "does not exist"});
  Setup empty(temp_dir(), 30);
  CHECK_FALSE(empty.trainer->resume());
  fs::remove_all(dir);
}

}  // TEST_SUITE
