// End to end: the real-data suite at a tiny size (image captioning, text and control), a micro
// OFA trained through the public pieces the train binary uses; losses fall, a checkpoint
// resumes bit-exactly, and the checkpoint answers an instruction.
#include <unistd.h>

#include <filesystem>

#include "tasks/experiment.h"
#include "tasks/task_suite.h"
#include "test_util.h"

using namespace mm;
namespace fs = std::filesystem;

namespace {

std::string suite_dir() {
  static std::string dir = [] {
    char tmpl[] = "/tmp/mm_e2e_XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    SuiteOptions o;
    o.out_dir = tmpl;
    o.train = 48;
    o.valid = 8;
    o.test = 8;
    o.canvas = 64;
    o.workers = 2;
    o.control_episodes = 2;
    o.tasks = {"caption", "sudoku", "control"};
    build_task_suite(o);
    return std::string(tmpl);
  }();
  return dir;
}

std::string config_yaml(const std::string& data) {
  std::string y = R"(seed: 3
model: {arch: ofa, size: micro, image_size: 64, image_adaptor: patch, text_vocab_size: 300, dropout: 0.1}
optimizer: {lr: 1.5e-3, weight_decay: 0.01, clip_norm: 1.0}
schedule: {decay: constant, warmup_updates: 5, max_updates: 40}
scheduler: {name: all_tasks, update_freq: 1}
tasks:
)";
  for (const char* t : {"caption", "sudoku", "control"}) {
    const SuiteTask& st = suite_task(t);
    std::string instr = st.instruction;
    std::string esc;
    for (char c : instr) esc += c == '"' ? std::string("\\\"") : std::string(1, c);
    y += cat("  - name: ", t, "\n    instruction: \"", esc, "\"\n    train: ", data, "/", t, "/train.tsv\n",
             "    valid: ", data, "/", t, "/valid.tsv\n    test: ", data, "/", t, "/test.tsv\n",
             "    micro_batch_size: 8\n    metrics: [", st.metrics[0], "]\n",
             "    generator: {beam: 1, max_len: ", std::string(t) == "control" ? 2 : 40, ", no_repeat_ngram: 0}\n");
  }
  return y;
}

struct Run {
  std::unique_ptr<Experiment> ex;
  std::vector<std::unique_ptr<OfaTrainTask>> tasks;
  std::unique_ptr<Trainer> trainer;
  explicit Run(const std::string& save_dir) {
    ex = Experiment::from_config_text(config_yaml(suite_dir()), "e2e.yaml");
    tasks = make_train_tasks(*ex);
    std::vector<TrainTask*> ptrs;
    for (auto& t : tasks) ptrs.push_back(t.get());
    TrainOptions o = ex->train_options(save_dir);
    o.log_every = 0;
    trainer = std::make_unique<Trainer>(*ex->model, ptrs, o, AdamWOptions{1.5e-3, 0.9, 0.999, 1e-8}, 0.01,
                                        &ex->model->dropout_generator());
  }
};

}  // namespace

TEST_SUITE("e2e") {

TEST_CASE("train three modalities, resume bit-exactly, answer from the checkpoint") {
  char tmpl[] = "/tmp/mm_e2e_run_XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;

  Run full(dir + "/full");
  full.trainer->train();
  const auto& h = full.trainer->history();
  REQUIRE(h.size() == 40);
  for (const std::string t : {"caption", "sudoku", "control"}) {
    CAPTURE(t);
    double first = 0, last = 0;
    for (int i = 0; i < 4; ++i) first += h[size_t(i)].task_loss.at(t), last += h[h.size() - 1 - size_t(i)].task_loss.at(t);
    CHECK(last < 0.9 * first);
  }

  // Interrupted after 12 updates, resumed in a fresh process state: the same losses.
  {
    Run a(dir + "/resumed");
    for (int i = 0; i < 12; ++i) a.trainer->update();
    a.trainer->save_checkpoint();
  }
  Run b(dir + "/resumed");
  REQUIRE(b.trainer->resume());
  b.trainer->train();
  const auto& hb = b.trainer->history();
  REQUIRE(hb.size() == 28);
  for (size_t i = 0; i < hb.size(); ++i) {
    CAPTURE(i);
    CHECK(hb[i].task_loss == h[12 + i].task_loss);
  }

  // The checkpoint answers: a typed output of the right kind for each task.
  auto ex = Experiment::from_checkpoint(dir + "/resumed/checkpoint_40", /*open_data=*/true);
  for (const char* t : {"caption", "sudoku", "control"}) {
    CAPTURE(t);
    TaskData& td = ex->task(t);
    std::vector<Sample> s = build_samples(td, *td.test, {0, 1}, 0);
    auto p = predict(*ex, *td.builder, td.cfg.generator, s);
    REQUIRE(p.size() == 2);
    if (std::string(t) == "control") CHECK(p[0].output.values.size() == 2);
    if (std::string(t) == "caption") CHECK_FALSE(p[0].output.text.empty());
  }
  EvalResult r = evaluate(*ex, ex->task("caption"), Split::test);
  CHECK(r.metrics.count("bleu"));
  fs::remove_all(dir);
}

TEST_CASE("bad input: unknown config key, missing field, missing checkpoint") {
  test::check_throws_with([] { Experiment::from_config_text("seed: 1\nmodle: {}\ntasks: []\n", "bad.yaml"); },
                          {"bad.yaml", "modle"});
  std::string y = config_yaml(suite_dir());
  const size_t p = y.find("[IMAGE:img]");
  REQUIRE(p != std::string::npos);
  y.replace(p, 11, "[IMAGE:picture]");
  test::check_throws_with([&] { Experiment::from_config_text(y, "fields.yaml"); }, {"picture"});
  test::check_throws_with([] { Experiment::from_checkpoint("/tmp/definitely/not/here"); }, {"not/here", "not found"});
}

}  // TEST_SUITE
