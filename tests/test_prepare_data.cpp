// The real-data task suite (tasks/task_suite.h, build/prepare-data) on a tiny size: the
// same seed gives the same bytes, every file parses and validates against its task's
// instruction, the media decode with the project's own decoders, every row becomes a
// model input through SampleBuilder, the configs match the suite, and the control
// task's expert is a real expert.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>

#include <unistd.h>

#include "runtime/error.h"
#include "tasks/audio.h"
#include "tasks/canvas.h"
#include "tasks/config.h"
#include "tasks/continuous.h"
#include "tasks/control_env.h"
#include "tasks/dataset.h"
#include "tasks/discrete.h"
#include "tasks/image.h"
#include "tasks/sample.h"
#include "tasks/task_suite.h"
#include "tasks/video.h"

using namespace mm;
namespace fs = std::filesystem;

namespace {

std::string make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/mm-suite-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  REQUIRE(mkdtemp(buf.data()) != nullptr);
  return buf.data();
}

// Every regular file under dir -> its bytes, keyed by relative path.
std::map<std::string, std::string> tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    out[fs::relative(e.path(), dir).string()] =
        std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  }
  return out;
}

// Two tiny builds with the same seed (and different worker counts), one with another seed.
struct TinySuite {
  std::string a, b, c;
  std::string error;
  TinySuite() {
    a = make_temp_dir();
    b = make_temp_dir();
    c = make_temp_dir();
    SuiteOptions o;
    o.train = 4;
    o.valid = 3;
    o.test = 3;
    o.control_episodes = 4;
    try {
      o.out_dir = a;
      o.workers = 3;
      build_task_suite(o);
      o.out_dir = b;
      o.workers = 1;
      build_task_suite(o);
      o.out_dir = c;
      o.seed = 2;
      o.tasks = {"caption", "sudoku"};
      build_task_suite(o);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  ~TinySuite() {
    std::error_code ec;
    for (const auto& d : {a, b, c}) fs::remove_all(d, ec);
  }
};
const TinySuite& tiny() {
  static const TinySuite t;
  return t;
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("prepare-data: deterministic by seed, independent of the worker count") {
  const TinySuite& t = tiny();
  REQUIRE_MESSAGE(t.error.empty(), t.error);
  auto ta = tree(t.a), tb = tree(t.b), tc = tree(t.c);
  CHECK(ta.size() == tb.size());
  for (const auto& [path, bytes] : ta) {
    REQUIRE_MESSAGE(tb.count(path), path);
    CHECK_MESSAGE(tb[path] == bytes, path, " differs between two builds with seed 1");
  }
  // 8 tasks x 3 splits, media (4+3+3 wav, 4+3+3 mp4), baselines.json, suite.json.
  CHECK(ta.size() == 8 * 3 + 10 + 10 + 2);
  CHECK(tc["caption/train.tsv"] != ta["caption/train.tsv"]);  // another seed, other data
  CHECK(tc["sudoku/train.tsv"] != ta["sudoku/train.tsv"]);
  CHECK_FALSE(tc.count("speech/train.tsv"));  // only the selected tasks
}

TEST_CASE("prepare-data: every file parses, validates, decodes and builds samples") {
  const TinySuite& t = tiny();
  REQUIRE_MESSAGE(t.error.empty(), t.error);
  for (const SuiteTask& task : suite_tasks()) {
    CAPTURE(task.name);
    Plan plan = parse_instruction(task.instruction);
    std::vector<Dataset> splits;
    for (const char* split : {"train", "valid", "test"}) {
      splits.push_back(Dataset::open(t.a + "/" + task.name + "/" + split + ".tsv"));
      const Dataset& d = splits.back();
      CHECK(d.columns() == task.columns);
      CHECK(d.size() == (std::string(split) == "train" ? 4 : 3));
      validate(plan, d.columns());
    }
    std::vector<const Dataset*> all = {&splits[0], &splits[1], &splits[2]};
    // The row -> model input glue on the real files.
    std::vector<std::string> corpus = tokenizer_corpus(plan, all);
    TextTokenizer tok;
    Vocab vocab;
    if (!corpus.empty()) {
      tok = TextTokenizer::train(corpus, {.vocab_size = 400});
      vocab = Vocab({.n_text = tok.size()});
    }
    SampleBuilder sb(plan, vocab, corpus.empty() ? nullptr : &tok, {.image_size = 32});
    if (plan.templates[0].output.slots.back().attrs.closed_set) sb.set_answers(closed_set_answers(plan, all));
    std::vector<Sample> samples;
    for (const Dataset* d : all)
      for (int64_t i = 0; i < d->size(); ++i) samples.push_back(sb.build(*d, i));
    SampleBatch b = collate_samples(samples, vocab);
    CHECK(b.B == 10);
    // Decoding the target gives the field back (boxes and numbers within a bin).
    for (const Sample& s : samples) {
      TypedOutput y = sb.decode(s.target.ids, s);
      if (s.target_type == SlotType::TEXT) CHECK(y.text == s.target_value);
      if (s.target_type == SlotType::BOX) {
        std::array<double, 4> want = parse_box(s.target_value);
        for (int k = 0; k < 4; ++k) CHECK(std::fabs(y.box[size_t(k)] - want[size_t(k)]) <= 0.05);
      }
      if (s.target_type == SlotType::CONTINUOUS) {
        std::vector<double> want = parse_number_list(s.target_value);
        REQUIRE(y.values.size() == want.size());
        for (size_t k = 0; k < want.size(); ++k) CHECK(continuous_to_bin(y.values[k]) == continuous_to_bin(want[k]));
      }
    }
  }
}

TEST_CASE("prepare-data: media decode with the project's decoders") {
  const TinySuite& t = tiny();
  REQUIRE_MESSAGE(t.error.empty(), t.error);
  Dataset cls = Dataset::open(t.a + "/classify/test.tsv");
  Image im = decode_image_base64(cls.row(0).values[1], "img");
  CHECK(im.W == 28);
  CHECK(im.H == 28);
  const auto& names = fashion_mnist_classes();
  CHECK(std::find(names.begin(), names.end(), cls.row(0).values[2]) != names.end());
  for (const char* task : {"caption", "grounding"}) {
    Dataset d = Dataset::open(t.a + "/" + task + "/train.tsv");
    for (int64_t i = 0; i < d.size(); ++i) {
      Image c = decode_image_base64(d.row(i).values[1], "img");
      CHECK(c.W == 64);
      CHECK(c.H == 64);
      if (std::string(task) == "grounding") {
        // The box holds bright pixels and lies on the canvas.
        std::array<double, 4> bx = parse_box(d.row(i).values[3]);
        CHECK(bx[0] >= 0);
        CHECK(bx[3] <= 64);
        float peak = 0;
        for (int y = int(bx[1]); y < int(bx[3]); ++y)
          for (int x = int(bx[0]); x < int(bx[2]); ++x) peak = std::max(peak, c.at(y, x, 0) + c.at(y, x, 1) + c.at(y, x, 2));
        CHECK(peak > 100);
      }
    }
  }
  Dataset sp = Dataset::open(t.a + "/speech/train.tsv");
  for (int64_t i = 0; i < sp.size(); ++i) {
    Audio a = load_audio(t.a + "/speech/" + sp.row(i).values[1]);
    CHECK(a.seconds() > 0.15);
    CHECK(a.seconds() <= 1.5);
  }
  Dataset vd = Dataset::open(t.a + "/video/train.tsv");
  for (int64_t i = 0; i < vd.size(); ++i) {
    VideoClip v = load_video(t.a + "/video/" + vd.row(i).values[1], 8);
    CHECK(v.total_frames == 8);
    REQUIRE(v.frames.size() == 8);
    CHECK(v.frames[0].W == 64);
    // The item moves: first and last frames differ clearly.
    double diff = 0;
    for (size_t k = 0; k < v.frames[0].data.size(); ++k) diff += std::fabs(v.frames[0].data[k] - v.frames[7].data[k]);
    CHECK(diff / double(v.frames[0].data.size()) > 2.0);
  }
}

TEST_CASE("prepare-data: sudoku puzzles are unique and solved by their targets") {
  const TinySuite& t = tiny();
  REQUIRE_MESSAGE(t.error.empty(), t.error);
  Dataset d = Dataset::open(t.a + "/sudoku/train.tsv");
  for (int64_t i = 0; i < d.size(); ++i) {
    std::vector<int64_t> p = parse_int_list(d.row(i).values[1]), s = parse_int_list(d.row(i).values[2]);
    REQUIRE(p.size() == 16);
    REQUIRE(s.size() == 16);
    Sudoku4 pz{}, sol{};
    int blanks = 0;
    for (int k = 0; k < 16; ++k) {
      pz[size_t(k)] = int(p[size_t(k)]);
      sol[size_t(k)] = int(s[size_t(k)]);
      blanks += p[size_t(k)] == 0;
      if (p[size_t(k)] != 0) CHECK(p[size_t(k)] == s[size_t(k)]);
    }
    CHECK(blanks >= 4);
    CHECK(valid_sudoku4(sol));
    CHECK(count_sudoku4_solutions(pz) == 1);
  }
  CHECK_FALSE(valid_sudoku4({1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 1, 2}));
  CHECK(count_sudoku4_solutions(Sudoku4{}, 1000) == 288);  // all 4x4 grids
}

TEST_CASE("prepare-data: baselines.json and the demo configs match the suite") {
  const TinySuite& t = tiny();
  REQUIRE_MESSAGE(t.error.empty(), t.error);
  std::ifstream f(t.a + "/baselines.json");
  nlohmann::json b = nlohmann::json::parse(f);
  for (const SuiteTask& task : suite_tasks()) {
    REQUIRE_MESSAGE(b.contains(task.name), task.name);
    CHECK(b[task.name]["metric"].get<std::string>() == task.metrics[0]);
  }
  CHECK(b["control"]["expert"].get<double>() > b["control"]["zero"].get<double>());

  Config demo = load_config("configs/demo.yaml");
  REQUIRE(demo.tasks.size() == suite_tasks().size());
  for (const SuiteTask& task : suite_tasks()) {
    std::vector<const TaskConfig*> found;
    for (const TaskConfig& tc : demo.tasks)
      if (tc.name == task.name) found.push_back(&tc);
    REQUIRE_MESSAGE(found.size() == 1, task.name);
    const TaskConfig& tc = *found[0];
    CHECK(tc.plan.instruction == task.instruction);
    CHECK(tc.metrics == task.metrics);
    CHECK(tc.train == std::vector<std::string>{"data/" + task.name + "/train.tsv"});
    CHECK(tc.test == std::vector<std::string>{"data/" + task.name + "/test.tsv"});
    Config spec = load_config("configs/specialist_" + task.name + ".yaml");
    REQUIRE(spec.tasks.size() == 1);
    CHECK(spec.tasks[0].plan.instruction == task.instruction);
    CHECK(spec.schedule.max_updates == demo.schedule.max_updates);  // the same budget per task
  }
}

TEST_CASE("control: the point-mass expert beats a zero policy by a wide margin") {
  ControlScore sc = evaluate_policy(point_mass_expert, 20, 3);
  CHECK(sc.policy_return == sc.expert_return);
  CHECK(sc.expert_return > -15.0);
  CHECK(sc.zero_return < -35.0);
  CHECK(sc.expert_return - sc.zero_return > 25.0);
  // A policy pushing away from the goal does worse than doing nothing.
  double away = rollout([](const std::vector<double>& o) {
    std::vector<double> a = point_mass_expert(o);
    return std::vector<double>{-a[0], -a[1]};
  }, 20, 3);
  CHECK(away < sc.zero_return);
  // Same seed, same episodes.
  CHECK(rollout_returns(point_mass_expert, 5, 9) == rollout_returns(point_mass_expert, 5, 9));
  PointMass env;
  env.reset(1);
  CHECK_THROWS_AS(env.step({1.0}), Error);
  for (int i = 0; i < env.config().horizon; ++i) env.step({0.0, 0.0});
  CHECK(env.done());
  CHECK_THROWS_AS(env.step({0.0, 0.0}), Error);
}

TEST_CASE("canvas: captions follow the geometry; missing Fashion-MNIST is a clear error") {
  FashionMnist d = load_fashion_mnist(kFashionMnistDir, false, 200);
  CHECK(d.n == 200);
  ItemPool pool(d, 0, d.n);
  Scene sc;
  sc.canvas = 64;
  CanvasItem a, b;
  std::mt19937_64 r1(1), r2(2);
  a.cls = 5; a.image = pool.draw(5, r1); a.x = 2; a.y = 20; a.size = 24;
  b.cls = 2; b.image = pool.draw(2, r2); b.x = 36; b.y = 18; b.size = 24;
  a.box = item_box(d, a.image, a.x, a.y, a.size);
  b.box = item_box(d, b.image, b.x, b.y, b.size);
  sc.items = {b, a};
  CHECK(caption_of(sc) == "a sandal to the left of a pullover");
  sc.items[0].x = 2; sc.items[0].y = 38;  // the pullover moves below the sandal
  sc.items[0].box = item_box(d, b.image, 2, 38, 24);
  sc.items[1].y = 2;
  sc.items[1].box = item_box(d, a.image, 2, 2, 24);
  CHECK(caption_of(sc) == "a sandal above a pullover");
  CHECK(with_article("ankle boot") == "an ankle boot");
  std::string e;
  try {
    load_fashion_mnist("/nonexistent", true);
  } catch (const Error& err) {
    e = err.what();
  }
  CHECK(e.find("/nonexistent/train-labels-idx1-ubyte.gz") != std::string::npos);
  CHECK(e.find("dataset-fashion-mnist") != std::string::npos);
}

}  // TEST_SUITE
