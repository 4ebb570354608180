// Multi-task schedulers and the task config. Schedulers: empirical task frequencies over 10k draws against each
// scheduler's formula (computed here by hand), within 2 percentage points.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "runtime/error.h"
#include "tasks/config.h"
#include "tasks/scheduler.h"

using namespace mm;

namespace {

// Frequency of each task over the entries of `steps` calls to next_step().
std::vector<double> frequencies(TaskScheduler& s, int steps, int64_t* entries_out = nullptr) {
  std::vector<double> count(size_t(s.num_tasks()), 0);
  int64_t entries = 0;
  for (int i = 0; i < steps; ++i)
    for (int t : s.next_step()) {
      REQUIRE(t >= 0);
      REQUIRE(t < s.num_tasks());
      ++count[t];
      ++entries;
    }
  if (entries_out) *entries_out = entries;
  for (double& c : count) c /= double(entries);
  return count;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 0.02) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(std::fabs(got[i] - want[i]) <= tol);
  }
}

std::vector<TaskStats> three(int64_t a, int64_t b, int64_t c) {
  return {{"a", a, 1.0}, {"b", b, 1.0}, {"c", c, 1.0}};
}

}  // namespace

TEST_SUITE("tasks") {

TEST_CASE("scheduler all_tasks: every task, update_freq micro-batches each") {
  auto s = make_scheduler({.name = "all_tasks", .update_freq = 2}, three(10, 20, 30));
  for (int i = 0; i < 5; ++i) CHECK(s->next_step() == std::vector<int>{0, 0, 1, 1, 2, 2});
  CHECK(s->rates() == std::vector<double>{2, 2, 2});
}

TEST_CASE("scheduler fixed_ratio (UniT): p = ratio / sum") {
  std::vector<TaskStats> t = {{"a", 0, 1.0}, {"b", 0, 2.0}, {"c", 0, 7.0}};
  auto s = make_scheduler({.name = "fixed_ratio", .seed = 3}, t);
  int64_t n = 0;
  auto f = frequencies(*s, 10000, &n);
  CHECK(n == 10000);  // one draw per update by default
  check_close(f, {0.1, 0.2, 0.7});
  check_close(s->rates(), {0.1, 0.2, 0.7}, 1e-12);
}

TEST_CASE("scheduler size_proportional (MT-DNN): p = n / sum n") {
  auto s = make_scheduler({.name = "size_proportional", .seed = 4, .update_freq = 2},
                          three(100, 300, 600));
  int64_t n = 0;
  auto f = frequencies(*s, 5000, &n);
  CHECK(n == 10000);  // update_freq draws per update
  check_close(f, {0.1, 0.3, 0.6});
}

TEST_CASE("scheduler temperature: p = n^(1/T) / sum") {
  // sqrt(100, 400, 1600) = 10, 20, 40 -> 1/7, 2/7, 4/7
  auto s = make_scheduler({.name = "temperature", .seed = 5, .temperature = 2.0},
                          three(100, 400, 1600));
  check_close(frequencies(*s, 10000), {1.0 / 7, 2.0 / 7, 4.0 / 7});
  // T = 1 is size-proportional; T -> large flattens toward uniform.
  auto s1 = make_scheduler({.name = "temperature", .seed = 5, .temperature = 1.0}, three(100, 400, 1600));
  check_close(frequencies(*s1, 10000), {100.0 / 2100, 400.0 / 2100, 1600.0 / 2100});
}

TEST_CASE("scheduler examples_cap (T5): p = min(n, K) / sum") {
  auto s = make_scheduler({.name = "examples_cap", .seed = 6, .cap = 500}, three(100, 400, 1600));
  check_close(frequencies(*s, 10000), {0.1, 0.4, 0.5});
}

TEST_CASE("scheduler uncertainty (CA-MTL): p follows the reported entropies") {
  auto s = make_scheduler({.name = "uncertainty", .seed = 7}, three(1, 1, 1));
  check_close(frequencies(*s, 10000), {1.0 / 3, 1.0 / 3, 1.0 / 3});  // before any report
  s->observe_uncertainty(0, 0.2);
  s->observe_uncertainty(1, 0.6);
  s->observe_uncertainty(2, 0.2);
  check_close(frequencies(*s, 10000), {0.2, 0.6, 0.2});
  s->observe_uncertainty(1, 0.0);  // task 1 became certain: floor 0.01 keeps it alive
  check_close(frequencies(*s, 10000), {0.2 / 0.41, 0.01 / 0.41, 0.2 / 0.41});
  CHECK_THROWS_WITH_AS(s->observe_uncertainty(0, 1.5), doctest::Contains("normalised entropy"), Error);
  CHECK_THROWS_AS(s->observe_uncertainty(3, 0.5), Error);
}

TEST_CASE("scheduler stop_and_go (12-in-1): plateaued tasks are visited every k-th update") {
  auto s = make_scheduler({.name = "stop_and_go", .patience = 2, .stop_every = 4}, three(1, 1, 1));
  // Visits per update before any evaluation: 1 each.
  std::vector<double> visits(3, 0);
  auto run = [&](int updates) {
    std::fill(visits.begin(), visits.end(), 0.0);
    for (int i = 0; i < updates; ++i)
      for (int t : s->next_step()) visits[t] += 1.0 / updates;
  };
  run(10000);
  check_close(visits, {1, 1, 1}, 1e-9);
  // Task 1 plateaus: best 0.5, then two evaluations without improvement -> stopped.
  s->observe_validation(1, 0.5);
  s->observe_validation(1, 0.5);
  run(100);
  CHECK(visits[1] == doctest::Approx(1.0));  // patience not yet exhausted
  s->observe_validation(1, 0.49);
  // Task 0 keeps improving and stays "go".
  for (double sc : {0.1, 0.2, 0.3, 0.4}) s->observe_validation(0, sc);
  run(10000);
  check_close(visits, {1, 0.25, 1});
  check_close(s->rates(), {1, 0.25, 1}, 1e-12);
  // Task 1 regresses below its best: back to every update.
  s->observe_validation(1, 0.3);
  run(10000);
  check_close(visits, {1, 1, 1}, 1e-9);
}

TEST_CASE("scheduler mixed (Gato): one batch, several tasks, per-slot task ids") {
  std::vector<TaskStats> t = {{"text", 0, 1.0}, {"control", 0, 3.0}};
  auto s = make_scheduler({.name = "mixed", .seed = 9, .mixed_slots = 10}, t);
  auto first = s->next_step();
  CHECK(first.size() == 10);
  int64_t n = 0;
  auto f = frequencies(*s, 1000, &n);
  CHECK(n == 10000);
  check_close(f, {0.25, 0.75});
  int both = 0;  // batches really mix tasks
  for (int i = 0; i < 100; ++i) {
    auto b = s->next_step();
    bool has0 = false, has1 = false;
    for (int x : b) (x == 0 ? has0 : has1) = true;
    both += has0 && has1;
  }
  CHECK(both > 80);
}

TEST_CASE("scheduler: deterministic by seed; bad names and values are errors") {
  auto a = make_scheduler({.name = "temperature", .seed = 42}, three(10, 20, 30));
  auto b = make_scheduler({.name = "temperature", .seed = 42}, three(10, 20, 30));
  auto c = make_scheduler({.name = "temperature", .seed = 43}, three(10, 20, 30));
  int diff = 0;
  for (int i = 0; i < 200; ++i) {
    auto x = a->next_step(), y = b->next_step(), z = c->next_step();
    REQUIRE(x == y);
    diff += x != z;
  }
  CHECK(diff > 50);
  CHECK_THROWS_WITH_AS(make_scheduler({.name = "round_robin"}, three(1, 1, 1)),
                       doctest::Contains("unknown name 'round_robin' (expected one of all_tasks"), Error);
  CHECK_THROWS_WITH_AS(make_scheduler({.name = "temperature", .temperature = 0}, three(1, 1, 1)),
                       doctest::Contains("temperature must be > 0"), Error);
  CHECK_THROWS_WITH_AS(make_scheduler({.name = "size_proportional"}, three(1, 0, 1)),
                       doctest::Contains("task b has no training examples"), Error);
  CHECK_THROWS_AS(make_scheduler({.name = "all_tasks"}, {}), Error);
  CHECK(scheduler_names().size() == 8);
}


TEST_CASE("config: defaults, tasks, instructions, and errors with key and line") {
  const std::string ok =
      "seed: 7\n"
      "optimizer: {lr: 2.0e-4, betas: [0.9, 0.98]}\n"
      "scheduler:\n"
      "  name: temperature\n"
      "  temperature: 3\n"
      "tasks:\n"
      "  - name: caption\n"
      "    instruction: \"[IMAGE:img] what does the image describe? -> [TEXT:cap]\"\n"
      "    train: data/cap.tsv\n"
      "    metrics: [bleu, cider]\n"
      "    generator: {beam: 4, max_len: 20}\n"
      "  - name: vqa\n"
      "    instruction:\n"
      "      - \"[IMAGE:image] [TEXT:question] -> [TEXT:answer,closed_set]\"\n"
      "      - \"[IMAGE:image] question: [TEXT:question] -> [TEXT:answer,closed_set]\"\n"
      "    train: [data/vqa1.tsv, data/vqa2.jsonl]\n"
      "    loss: {label_smoothing: 0.0}\n"
      "    on_bad_row: skip\n";
  Config c = parse_config(ok, "ok.yaml");
  CHECK(c.seed == 7);
  CHECK(c.scheduler.seed == 7);
  CHECK(c.scheduler.name == "temperature");
  CHECK(c.scheduler.temperature == 3.0);
  CHECK(c.scheduler.update_freq == 1);        // default
  CHECK(c.optimizer.lr == doctest::Approx(2e-4));
  CHECK(c.optimizer.beta2 == doctest::Approx(0.98));
  CHECK(c.optimizer.weight_decay == doctest::Approx(0.01));  // default
  CHECK(c.model.arch == "ofa");
  CHECK(c.model.size == "tiny");
  CHECK(c.schedule.decay == "polynomial");
  REQUIRE(c.tasks.size() == 2);
  CHECK(c.tasks[0].name == "caption");
  CHECK(c.tasks[0].line == 7);
  CHECK(c.tasks[0].train == std::vector<std::string>{"data/cap.tsv"});
  CHECK(c.tasks[0].metrics == std::vector<std::string>{"bleu", "cider"});
  CHECK(c.tasks[0].generator.beam == 4);
  CHECK(c.tasks[0].generator.no_repeat_ngram == 3);  // default
  CHECK(c.tasks[0].label_smoothing == doctest::Approx(0.1));
  CHECK(c.tasks[0].plan.templates[0].output.slots[0].name == "cap");
  CHECK(c.tasks[1].plan.templates.size() == 2);
  CHECK(c.tasks[1].train.size() == 2);
  CHECK(c.tasks[1].label_smoothing == 0.0);
  CHECK(c.tasks[1].on_bad_row == OnBadRow::skip);
  CHECK(c.tasks[1].metrics == std::vector<std::string>{"accuracy"});
  CHECK(c.model.resnet_blocks.empty());        // default: the size's stages
  CHECK(!c.model.entangle_positions);

  CHECK(c.model.video_frames == 8);
  Config m = parse_config("model: {resnet_blocks: [1, 2, 3], resnet_width: 16, entangle_positions: true, video_frames: 4}\n"
                          "tasks:\n  - {name: t, instruction: \"[TEXT:a] -> [TEXT:b]\"}\n", "m.yaml");
  CHECK(m.model.resnet_blocks == std::vector<int64_t>{1, 2, 3});
  CHECK(m.model.resnet_width == 16);
  CHECK(m.model.entangle_positions);
  CHECK(m.model.video_frames == 4);

  auto err = [](const std::string& y) {
    try {
      parse_config(y, "bad.yaml");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string tasks = "tasks:\n  - {name: t, instruction: \"[TEXT:a] -> [TEXT:b]\"}\n";
  CHECK(err("optimizer:\n  lr: 1.0e-4\n  lr_rate: 3\n" + tasks)
            .find("bad.yaml:3:3: unknown key 'lr_rate' in optimizer (expected one of name, lr,") == 0);
  CHECK(err("seed: 1\nmodle: {}\n" + tasks).find("bad.yaml:2:1: unknown key 'modle' (expected one of seed, model") == 0);
  CHECK(err("tasks:\n  - name: t\n    instruction: \"[TEXT:a] -> [TEXT:b]\"\n    generator:\n      beams: 4\n")
            .find("bad.yaml:5:7: unknown key 'beams' in tasks[0].generator") == 0);
  CHECK(err("optimizer: {lr: fast}\n" + tasks).find("bad.yaml:1:17: optimizer.lr: expected a number, got 'fast'") == 0);
  CHECK(err("scheduler: {name: round_robin}\n" + tasks).find("scheduler.name: unknown value 'round_robin'") != std::string::npos);
  CHECK(err("model: {arch: gato, size: tiny}\n" + tasks).find("model.size (for gato): unknown value 'tiny'") != std::string::npos);
  CHECK(err("seed: 1\n").find("missing key 'tasks'") != std::string::npos);
  CHECK(err("model: {resnet_blocks: [3, 4]}\n" + tasks).find("model.resnet_blocks: expected 3 stage block counts") !=
        std::string::npos);
  CHECK(err("tasks:\n  - name: t\n").find("bad.yaml:2:5: tasks[0] (t): missing key 'instruction'") == 0);
  CHECK(err(tasks + "  - {name: t, instruction: \"-> [TEXT:x]\"}\n").find("task name 't' is already used") != std::string::npos);
  CHECK(err("tasks:\n  - {name: t, metrics: [blue], instruction: \"[TEXT:a] -> [TEXT:b]\"}\n")
            .find("tasks[0].metrics[0]: unknown value 'blue'") != std::string::npos);
  // An instruction error keeps its caret, prefixed by the file position of the instruction.
  std::string ie = err("tasks:\n  - name: t\n    instruction: \"[TXT:a] -> [TEXT:b]\"\n");
  CHECK(ie.find("bad.yaml:3:18: task 't': instruction error at column 2: unknown slot type 'TXT'") == 0);
  CHECK(ie.find("\n  [TXT:a] -> [TEXT:b]\n   ^") != std::string::npos);
  CHECK(err("tasks: [\n").find("bad.yaml:") == 0);  // YAML syntax error with a position
}

}  // TEST_SUITE

TEST_CASE("scheduler state round trip: a restored scheduler draws exactly what the original would") {
  std::vector<mm::TaskStats> ts = {{"a", 100, 1.0}, {"b", 400, 2.0}, {"c", 50, 0.5}};
  for (const std::string name : {"temperature", "uncertainty", "stop_and_go", "mixed"}) {
    CAPTURE(name);
    mm::SchedulerOptions o;
    o.name = name;
    o.seed = 9;
    o.patience = 1;
    auto s1 = mm::make_scheduler(o, ts);
    for (int i = 0; i < 17; ++i) s1->next_step();
    s1->observe_validation(1, 0.5);
    s1->observe_validation(1, 0.4);  // stop_and_go: task 1 stops
    s1->observe_uncertainty(2, 0.3);
    const std::string saved = s1->save_state();
    auto s2 = mm::make_scheduler(o, ts);
    s2->load_state(saved);
    for (int i = 0; i < 50; ++i) CHECK(s1->next_step() == s2->next_step());
    CHECK(s1->rates() == s2->rates());
  }
  mm::SchedulerOptions a;
  a.name = "all_tasks";
  auto s3 = mm::make_scheduler(a, ts);
  mm::SchedulerOptions t;
  t.name = "temperature";
  auto s4 = mm::make_scheduler(t, ts);
  CHECK_THROWS_WITH_AS(s3->load_state(s4->save_state()), doctest::Contains("belongs to scheduler 'temperature'"),
                       mm::Error);
}
