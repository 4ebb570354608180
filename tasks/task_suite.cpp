#include "tasks/task_suite.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <random>
#include <thread>

#include "runtime/error.h"
#include "tasks/audio.h"
#include "tasks/base64.h"
#include "tasks/canvas.h"
#include "tasks/control_env.h"
#include "tasks/fashion_mnist.h"
#include "tasks/image.h"
#include "tasks/media_write.h"
#include "tasks/metrics.h"
#include "tasks/rng.h"

namespace mm {

namespace fs = std::filesystem;

const std::vector<SuiteTask>& suite_tasks() {
  static const std::vector<SuiteTask> t = {
      {"classify", "[IMAGE:img] what does the image describe? -> [TEXT:label,closed_set]",
       {"uid", "img", "label"}, {"accuracy"}, "Fashion-MNIST classification (10 classes)"},
      {"caption", "[IMAGE:img] what does the image describe? -> [TEXT:cap]",
       {"uid", "img", "cap"}, {"bleu", "cider"}, "captions of canvases with 1-3 items"},
      {"grounding",
       "[IMAGE:img] which region does the text \" [TEXT:cap] \" describe? -> [BOX:region]",
       {"uid", "img", "cap", "region"}, {"iou_acc"}, "the box of the named item on a canvas"},
      {"vqa", "[IMAGE:image] [TEXT:question] -> [TEXT:answer,closed_set]",
       {"uid", "image", "question", "answer"}, {"accuracy"},
       "questions on canvases: how many, which item is left/right/top, what colour"},
      {"speech", "[AUDIO:wav] what is the text corresponding to the voice? -> [TEXT:text]",
       {"uid", "wav", "text"}, {"wer"}, "espeak-ng speaks item names and digits"},
      {"video",
       "[VIDEO:video,preprocess=video_residual] which item moves and where? -> [TEXT:label,closed_set]",
       {"uid", "video", "label"}, {"accuracy"}, "an item moving on a canvas, MPEG-4 in MP4"},
      {"sudoku", "\" [TEXT:src] \" . solve the sudoku . -> [TEXT:tgt]",
       {"uid", "src", "tgt"}, {"exact_match"}, "4x4 sudoku solving (0 = blank)"},
      {"control", "[CONTINUOUS:obs] -> [CONTINUOUS:action]",
       {"uid", "episode", "step", "obs", "action"}, {"episode_return"},
       "2-D point mass to a goal: observation -> expert PD action"},
  };
  return t;
}

const SuiteTask& suite_task(const std::string& name) {
  std::string known;
  for (const SuiteTask& t : suite_tasks()) {
    if (t.name == name) return t;
    known += (known.empty() ? "" : ", ") + t.name;
  }
  throw Error(cat("task suite: unknown task '", name, "' (expected one of ", known, ")"));
}

// ---------------------------------------------------------------- sudoku

bool valid_sudoku4(const Sudoku4& g) {
  for (int i = 0; i < 4; ++i) {
    int row = 0, col = 0, box = 0;
    for (int j = 0; j < 4; ++j) {
      const int r = g[size_t(i * 4 + j)], c = g[size_t(j * 4 + i)];
      const int b = g[size_t((i / 2 * 2 + j / 2) * 4 + i % 2 * 2 + j % 2)];
      if (r < 1 || r > 4 || c < 1 || c > 4 || b < 1 || b > 4) return false;
      row |= 1 << r; col |= 1 << c; box |= 1 << b;
    }
    if (row != 30 || col != 30 || box != 30) return false;
  }
  return true;
}

namespace {
bool sudoku4_fits(const Sudoku4& g, int cell, int d) {
  const int r = cell / 4, c = cell % 4, br = r / 2 * 2, bc = c / 2 * 2;
  for (int k = 0; k < 4; ++k)
    if (g[size_t(r * 4 + k)] == d || g[size_t(k * 4 + c)] == d ||
        g[size_t((br + k / 2) * 4 + bc + k % 2)] == d)
      return false;
  return true;
}
int count_from(Sudoku4& g, int limit) {
  int cell = -1;
  for (int i = 0; i < 16 && cell < 0; ++i)
    if (g[size_t(i)] == 0) cell = i;
  if (cell < 0) return 1;
  int n = 0;
  for (int d = 1; d <= 4 && n < limit; ++d)
    if (sudoku4_fits(g, cell, d)) {
      g[size_t(cell)] = d;
      n += count_from(g, limit - n);
      g[size_t(cell)] = 0;
    }
  return n;
}
}  // namespace

int count_sudoku4_solutions(const Sudoku4& puzzle, int limit) {
  Sudoku4 g = puzzle;
  return count_from(g, limit);
}

namespace {

// ---------------------------------------------------------------- helpers

struct Split {
  const char* name;
  int id;
  int64_t rows;
};

std::mt19937_64 row_rng(uint64_t seed, int task, int split, int64_t i) {
  return std::mt19937_64(mix64(seed ^ mix64(uint64_t(task) * 1000003u + uint64_t(split) * 7919u) ^
                               mix64(uint64_t(i) + 0x5bd1e995u)));
}

double normal(std::mt19937_64& rng) {  // Box-Muller on our portable uniforms
  const double u1 = 1.0 - uniform_unit(rng), u2 = uniform_unit(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

std::string fixed(double x, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, x);
  std::string s = buf;
  if (s == "-0.000" || s == "-0.00" || s == "-0.0") s = s.substr(1);  // one zero only
  return s;
}

std::string png_b64(const std::vector<uint8_t>& rgb, int w, int h) {
  std::vector<uint8_t> png = encode_png(rgb.data(), w, h);
  return base64_encode(png.data(), png.size());
}

// A TSV file in memory: fields must not need quoting (the builders never make such).
class Tsv {
 public:
  explicit Tsv(const std::vector<std::string>& header) : cols_(header.size()) { add(header); }
  void add(const std::vector<std::string>& row) {
    MM_CHECK(row.size() == cols_, "tsv: ", row.size(), " fields, expected ", cols_);
    for (size_t i = 0; i < row.size(); ++i) {
      for (char c : row[i])
        MM_ASSERT(c != '\t' && c != '\n' && c != '\r');
      MM_ASSERT(row[i].empty() || row[i][0] != '"');
      text_ += row[i];
      text_ += i + 1 < row.size() ? '\t' : '\n';
    }
  }
  void write(const std::string& path) const { write_file(path, text_.data(), text_.size()); }

 private:
  size_t cols_;
  std::string text_;
};

// Runs f(i) for i in [0, n) on `workers` threads; rethrows the first error.
void parallel_rows(int64_t n, int workers, const std::function<void(int64_t)>& f) {
  workers = int(std::max<int64_t>(1, std::min<int64_t>(workers, n)));
  if (workers == 1) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::exception_ptr err;
  std::mutex mu;
  std::vector<std::thread> th;
  for (int w = 0; w < workers; ++w)
    th.emplace_back([&, w] {
      for (int64_t i = w; i < n; i += workers) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (err) return;
        }
        try {
          f(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!err) err = std::current_exception();
          return;
        }
      }
    });
  for (auto& t : th) t.join();
  if (err) std::rethrow_exception(err);
}

template <typename T>
T majority(const std::vector<T>& v) {
  MM_CHECK(!v.empty(), "task suite: majority of nothing");
  std::map<T, int64_t> count;
  for (const T& x : v) ++count[x];
  T best = v[0];
  int64_t n = -1;
  for (const auto& [k, c] : count)  // ties: the smallest key (map order), deterministic
    if (c > n) { best = k; n = c; }
  return best;
}

Refs as_refs(const std::vector<std::string>& v) {
  Refs r;
  for (const auto& s : v) r.push_back({s});
  return r;
}

double accuracy_of_constant(const std::string& c, const std::vector<std::string>& truth) {
  return accuracy(std::vector<std::string>(truth.size(), c), as_refs(truth));
}

// ---------------------------------------------------------------- the build context

struct Ctx {
  const SuiteOptions& opt;
  std::ostream* log;
  FashionMnist fm_train, fm_test;
  std::unique_ptr<ItemPool> pools[3];  // train / valid / test
  std::vector<Split> splits;
  const FashionMnist& fm(int split) const { return split == 2 ? fm_test : fm_train; }
  std::string dir(const std::string& task) const { return opt.out_dir + "/" + task; }
  std::string file(const std::string& task, const Split& s) const {
    return dir(task) + "/" + s.name + ".tsv";
  }
};

// Per split, per row: the values of a text column (for baselines).
using Columns = std::map<std::string, std::vector<std::string>>;

// The Fashion-MNIST images of a split, without repetition while the pool lasts.
std::vector<int64_t> split_images(const Ctx& c, int task, const Split& s) {
  int64_t begin = 0, end = c.fm_train.n;
  if (s.id == 0) end = c.fm_train.n - c.fm_train.n / 10;
  if (s.id == 1) begin = c.fm_train.n - c.fm_train.n / 10;
  if (s.id == 2) end = c.fm_test.n;
  std::mt19937_64 rng = row_rng(c.opt.seed, task, s.id, -1);
  std::vector<int64_t> perm = permutation(end - begin, rng);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < s.rows; ++i) out.push_back(begin + perm[size_t(i % int64_t(perm.size()))]);
  return out;
}

nlohmann::json build_classify(const Ctx& c, int task) {
  const SuiteTask& t = suite_tasks()[size_t(task)];
  std::map<int, std::vector<std::string>> labels;
  for (const Split& s : c.splits) {
    const FashionMnist& d = c.fm(s.id);
    std::vector<int64_t> imgs = split_images(c, task, s);
    std::vector<std::vector<std::string>> rows(size_t(s.rows));
    parallel_rows(s.rows, c.opt.workers, [&](int64_t i) {
      const int64_t k = imgs[size_t(i)];
      Image im = image_from_u8(d.image(k), 28, 28, 1);
      std::vector<uint8_t> rgb(im.data.size());
      for (size_t j = 0; j < rgb.size(); ++j) rgb[j] = uint8_t(im.data[j]);
      rows[size_t(i)] = {cat(s.name, "-", i), png_b64(rgb, 28, 28),
                         fashion_mnist_classes()[d.labels[size_t(k)]]};
    });
    Tsv tsv(t.columns);
    for (auto& r : rows) { labels[s.id].push_back(r[2]); tsv.add(r); }
    tsv.write(c.file(t.name, s));
  }
  const std::string maj = majority(labels[0]);
  return {{"metric", "accuracy"}, {"majority_answer", maj},
          {"majority", accuracy_of_constant(maj, labels[2])}};
}

nlohmann::json build_caption(const Ctx& c, int task) {
  const SuiteTask& t = suite_tasks()[size_t(task)];
  std::map<int, std::vector<std::string>> caps;
  for (const Split& s : c.splits) {
    std::vector<std::vector<std::string>> rows(size_t(s.rows));
    parallel_rows(s.rows, c.opt.workers, [&](int64_t i) {
      std::mt19937_64 rng = row_rng(c.opt.seed, task, s.id, i);
      const int n = 1 + int(uniform_index(rng, 3));
      Scene sc = random_scene(n, c.opt.canvas, *c.pools[s.id], rng);
      rows[size_t(i)] = {cat(s.name, "-", i), png_b64(render_scene(sc, c.fm(s.id)), sc.canvas, sc.canvas),
                         caption_of(sc)};
    });
    Tsv tsv(t.columns);
    for (auto& r : rows) { caps[s.id].push_back(r[2]); tsv.add(r); }
    tsv.write(c.file(t.name, s));
  }
  const std::string maj = majority(caps[0]);
  std::vector<std::string> pred(caps[2].size(), maj);
  return {{"metric", "bleu"}, {"majority_answer", maj},
          {"majority_bleu4", bleu4(pred, as_refs(caps[2]))},
          {"majority_cider", cider_d(pred, as_refs(caps[2]))}};
}

nlohmann::json build_grounding(const Ctx& c, int task) {
  const SuiteTask& t = suite_tasks()[size_t(task)];
  std::map<int, std::vector<Box>> boxes;
  for (const Split& s : c.splits) {
    std::vector<std::vector<std::string>> rows(size_t(s.rows));
    std::vector<Box> bx(size_t(s.rows));
    parallel_rows(s.rows, c.opt.workers, [&](int64_t i) {
      std::mt19937_64 rng = row_rng(c.opt.seed, task, s.id, i);
      const int n = 2 + int(uniform_index(rng, 2));
      Scene sc = random_scene(n, c.opt.canvas, *c.pools[s.id], rng);
      const CanvasItem& it = sc.items[uniform_index(rng, sc.items.size())];
      bx[size_t(i)] = {double(it.box[0]), double(it.box[1]), double(it.box[2]), double(it.box[3])};
      rows[size_t(i)] = {cat(s.name, "-", i), png_b64(render_scene(sc, c.fm(s.id)), sc.canvas, sc.canvas),
                         "the " + fashion_mnist_classes()[size_t(it.cls)],
                         cat(it.box[0], " ", it.box[1], " ", it.box[2], " ", it.box[3])};
    });
    Tsv tsv(t.columns);
    for (auto& r : rows) tsv.add(r);
    tsv.write(c.file(t.name, s));
    boxes[s.id] = bx;
  }
  // Random boxes: corners uniform on the canvas, 16 draws per test row.
  std::mt19937_64 rng = row_rng(c.opt.seed, task, 9, 0);
  std::vector<Box> pred, truth;
  const double W = c.opt.canvas;
  for (const Box& b : boxes[2])
    for (int k = 0; k < 16; ++k) {
      double x0 = uniform_unit(rng) * W, x1 = uniform_unit(rng) * W;
      double y0 = uniform_unit(rng) * W, y1 = uniform_unit(rng) * W;
      pred.push_back({std::min(x0, x1), std::min(y0, y1), std::max(x0, x1), std::max(y0, y1)});
      truth.push_back(b);
    }
  Box mean_box = {0, 0, 0, 0};
  for (const Box& b : boxes[0])
    for (int k = 0; k < 4; ++k) mean_box[size_t(k)] += b[size_t(k)] / double(boxes[0].size());
  return {{"metric", "iou_acc"},
          {"random_box", iou_accuracy(pred, truth)},
          {"mean_box", iou_accuracy(std::vector<Box>(boxes[2].size(), mean_box), boxes[2])},
          {"mean_box_coords", mean_box}};
}

nlohmann::json build_vqa(const Ctx& c, int task) {
  const SuiteTask& t = suite_tasks()[size_t(task)];
  const auto& names = fashion_mnist_classes();
  static const char* kCounts[] = {"zero", "one", "two", "three"};
  std::map<int, std::vector<std::string>> answers, qtypes;
  for (const Split& s : c.splits) {
    std::vector<std::vector<std::string>> rows(size_t(s.rows));
    std::vector<std::string> qt(size_t(s.rows));
    parallel_rows(s.rows, c.opt.workers, [&](int64_t i) {
      std::mt19937_64 rng = row_rng(c.opt.seed, task, s.id, i);
      const int n = 1 + int(uniform_index(rng, 3));
      Scene sc = random_scene(n, c.opt.canvas, *c.pools[s.id], rng);
      // The extreme item along an axis, when it is clearly extreme (4+ pixels ahead).
      auto extreme = [&](auto key) -> const CanvasItem* {
        if (sc.items.size() < 2) return nullptr;
        std::vector<const CanvasItem*> v;
        for (const auto& it : sc.items) v.push_back(&it);
        std::sort(v.begin(), v.end(), [&](auto* a, auto* b) { return key(*a) < key(*b); });
        return key(*v[1]) - key(*v[0]) >= 4 ? v[0] : nullptr;
      };
      const CanvasItem* left = extreme([](const CanvasItem& it) { return it.cx(); });
      const CanvasItem* right = extreme([](const CanvasItem& it) { return -it.cx(); });
      const CanvasItem* top = extreme([](const CanvasItem& it) { return it.cy(); });
      std::vector<std::string> kinds = {"count", "colour"};
      if (left) kinds.push_back("left");
      if (right) kinds.push_back("right");
      if (top) kinds.push_back("top");
      const std::string kind = kinds[uniform_index(rng, kinds.size())];
      std::string q, a;
      if (kind == "count") {
        q = "how many items are there?";
        a = kCounts[sc.items.size()];
      } else if (kind == "colour") {
        const CanvasItem& it = sc.items[uniform_index(rng, sc.items.size())];
        q = "what colour is the " + names[size_t(it.cls)] + "?";
        a = canvas_tints()[size_t(it.tint)].name;
      } else {
        const CanvasItem* it = kind == "left" ? left : kind == "right" ? right : top;
        q = kind == "top" ? "which item is at the top?" : "which item is on the " + kind + "?";
        a = names[size_t(it->cls)];
      }
      qt[size_t(i)] = kind;
      rows[size_t(i)] = {cat(s.name, "-", i), png_b64(render_scene(sc, c.fm(s.id)), sc.canvas, sc.canvas), q, a};
    });
    Tsv tsv(t.columns);
    for (auto& r : rows) { answers[s.id].push_back(r[3]); tsv.add(r); }
    tsv.write(c.file(t.name, s));
    qtypes[s.id] = qt;
  }
  // Majority per question type: the best a blind guesser that reads the question does.
  std::map<std::string, std::vector<std::string>> by_type;
  for (size_t i = 0; i < answers[0].size(); ++i) by_type[qtypes[0][i]].push_back(answers[0][i]);
  std::vector<std::string> pred;
  for (size_t i = 0; i < answers[2].size(); ++i) {
    auto it = by_type.find(qtypes[2][i]);
    pred.push_back(it == by_type.end() ? "" : majority(it->second));
  }
  const std::string maj = majority(answers[0]);
  return {{"metric", "accuracy"}, {"majority_answer", maj},
          {"majority", accuracy_of_constant(maj, answers[2])},
          {"majority_per_question_type", accuracy(pred, as_refs(answers[2]))}};
}

// espeak-ng -> WAV bytes on stdout.
std::vector<uint8_t> espeak(const std::string& voice, int speed, int pitch, const std::string& text) {
  for (char ch : text + voice)
    MM_ASSERT(std::isalnum(static_cast<unsigned char>(ch)) || ch == ' ' || ch == '-' || ch == '+');
  const std::string cmd = cat("espeak-ng -v ", voice, " -s ", speed, " -p ", pitch,
                              " --stdout \"", text, "\" 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  MM_CHECK(p != nullptr, "speech: cannot run espeak-ng");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 15];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) out.insert(out.end(), buf, buf + got);
  const int rc = pclose(p);
  MM_CHECK(rc == 0 && out.size() > 44, "speech: '", cmd, "' failed (exit ", rc,
           "; Debian: apt-get install espeak-ng)");
  return out;
}

nlohmann::json build_speech(const Ctx& c, int task) {
  const SuiteTask& t = suite_tasks()[size_t(task)];
  static const char* kDigits[] = {"zero", "one", "two", "three", "four",
                                  "five", "six", "seven", "eight", "nine"};
  static const char* kVoices[] = {"en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp",
                                  "en-gb-x-gbclan"};
  static const char* kVariants[] = {"", "+m3", "+f2", "+f4", "+Annie", "+Alex", "+klatt"};
  fs::create_directories(c.dir(t.name) + "/media");
  std::map<int, std::vector<std::string>> texts;
  for (const Split& s : c.splits) {
    std::vector<std::vector<std::string>> rows(size_t(s.rows));
    parallel_rows(s.rows, c.opt.workers, [&](int64_t i) {
      std::mt19937_64 rng = row_rng(c.opt.seed, task, s.id, i);
      const double u = uniform_unit(rng);
      std::string text;
      if (u < 0.4) text = fashion_mnist_classes()[uniform_index(rng, 10)];
      else if (u < 0.7) text = kDigits[uniform_index(rng, 10)];
      else text = cat(kDigits[uniform_index(rng, 10)], " ", kDigits[uniform_index(rng, 10)]);
      const std::string voice = cat(kVoices[uniform_index(rng, 6)], kVariants[uniform_index(rng, 7)]);
      const int speed = 140 + int(uniform_index(rng, 61));  // words per minute
      const int pitch = 25 + int(uniform_index(rng, 51));
      std::vector<uint8_t> wav = espeak(voice, speed, pitch, text);
      Audio a = decode_audio(wav.data(), wav.size(), cat("espeak-ng '", text, "'"), 16000);
      // Trim the silence espeak-ng leaves around the words (50 ms margin), cap at 1.5 s.
      float peak = 0;
      for (float x : a.samples) peak = std::max(peak, std::fabs(x));
      MM_CHECK(peak > 0, "speech: espeak-ng produced silence for '", text, "' (voice ", voice, ")");
      int64_t first = 0, last = int64_t(a.samples.size()) - 1;
      while (first < last && std::fabs(a.samples[size_t(first)]) < 0.02f * peak) ++first;
      while (last > first && std::fabs(a.samples[size_t(last)]) < 0.02f * peak) --last;
      first = std::max<int64_t>(0, first - 800);
      last = std::min<int64_t>(int64_t(a.samples.size()) - 1, last + 800);
      last = std::min<int64_t>(last, first + 24000 - 1);
      std::vector<float> clip(a.samples.begin() + first, a.samples.begin() + last + 1);
      const std::string rel = cat("media/", s.name, "-", i, ".wav");
      write_wav(c.dir(t.name) + "/" + rel, clip, 16000);
      rows[size_t(i)] = {cat(s.name, "-", i), rel, text};
    });
    Tsv tsv(t.columns);
    for (auto& r : rows) { texts[s.id].push_back(r[2]); tsv.add(r); }
    tsv.write(c.file(t.name, s));
  }
  const std::string maj = majority(texts[0]);
  return {{"metric", "wer"}, {"majority_answer", maj},
          {"majority", wer(std::vector<std::string>(texts[2].size(), maj), as_refs(texts[2]))},
          {"empty", 1.0}};
}

nlohmann::json build_video(const Ctx& c, int task) {
  const SuiteTask& t = suite_tasks()[size_t(task)];
  static const char* kDirs[] = {"left", "right", "up", "down"};
  const int S = c.opt.canvas, N = c.opt.video_frames;
  fs::create_directories(c.dir(t.name) + "/media");
  std::map<int, std::vector<std::string>> labels;
  for (const Split& s : c.splits) {
    std::vector<std::vector<std::string>> rows(size_t(s.rows));
    parallel_rows(s.rows, c.opt.workers, [&](int64_t i) {
      std::mt19937_64 rng = row_rng(c.opt.seed, task, s.id, i);
      const ItemPool& pool = *c.pools[s.id];
      CanvasItem mover;
      mover.cls = int(uniform_index(rng, 10));
      mover.image = pool.draw(mover.cls, rng);
      mover.size = 20 + int(uniform_index(rng, 5));
      mover.tint = int(uniform_index(rng, canvas_tints().size()));
      const int dir = int(uniform_index(rng, 4));
      // Travel 3..4 pixels a frame along the axis; the path stays on the canvas.
      const int step = 3 + int(uniform_index(rng, 2)), travel = step * (N - 1);
      const int room = S - mover.size;
      MM_CHECK(travel <= room, "video: a canvas of ", S, " is too small for ", N, " frames");
      int along = int(uniform_index(rng, uint64_t(room - travel + 1)));
      const int across = int(uniform_index(rng, uint64_t(room + 1)));
      const int sign = dir == 0 || dir == 2 ? -1 : 1;
      if (sign < 0) along += travel;  // moving left/up: start at the far end
      // Half the clips have a static distractor of another class that the path misses.
      std::vector<CanvasItem> still;
      if (uniform_unit(rng) < 0.5) {
        const bool horizontal = dir < 2;
        int px0 = horizontal ? std::min(along, along + sign * travel) : across;
        int py0 = horizontal ? across : std::min(along, along + sign * travel);
        int px1 = (horizontal ? px0 + travel : px0) + mover.size;
        int py1 = (horizontal ? py0 : py0 + travel) + mover.size;
        for (int attempt = 0; attempt < 50; ++attempt) {
          CanvasItem d;
          d.cls = (mover.cls + 1 + int(uniform_index(rng, 9))) % 10;
          d.size = 18 + int(uniform_index(rng, 5));
          d.x = int(uniform_index(rng, uint64_t(S - d.size + 1)));
          d.y = int(uniform_index(rng, uint64_t(S - d.size + 1)));
          if (d.x + d.size + 1 <= px0 || px1 + 1 <= d.x || d.y + d.size + 1 <= py0 || py1 + 1 <= d.y) {
            d.image = pool.draw(d.cls, rng);
            d.tint = int(uniform_index(rng, canvas_tints().size()));
            still.push_back(d);
            break;
          }
        }
      }
      std::vector<std::vector<uint8_t>> frames;
      for (int f = 0; f < N; ++f) {
        std::vector<uint8_t> rgb(size_t(S) * size_t(S) * 3, 0);
        for (const CanvasItem& d : still) draw_item(rgb, S, c.fm(s.id), d);
        CanvasItem m = mover;
        const int pos = along + sign * step * f;
        m.x = dir < 2 ? pos : across;
        m.y = dir < 2 ? across : pos;
        draw_item(rgb, S, c.fm(s.id), m);
        frames.push_back(std::move(rgb));
      }
      const std::string rel = cat("media/", s.name, "-", i, ".mp4");
      write_mp4(c.dir(t.name) + "/" + rel, frames, S, S, /*fps=*/8);
      rows[size_t(i)] = {cat(s.name, "-", i), rel,
                         cat(fashion_mnist_classes()[size_t(mover.cls)], " moves ", kDirs[dir])};
    });
    Tsv tsv(t.columns);
    for (auto& r : rows) { labels[s.id].push_back(r[2]); tsv.add(r); }
    tsv.write(c.file(t.name, s));
  }
  const std::string maj = majority(labels[0]);
  return {{"metric", "accuracy"}, {"majority_answer", maj},
          {"majority", accuracy_of_constant(maj, labels[2])}};
}

Sudoku4 random_sudoku4_solution(std::mt19937_64& rng) {
  Sudoku4 base = {1, 2, 3, 4, 3, 4, 1, 2, 2, 1, 4, 3, 4, 3, 2, 1};
  // Validity-preserving shuffles: digits, rows within bands, bands, columns within
  // stacks, stacks, transpose. Together they reach all 288 4x4 grids.
  std::vector<int64_t> digits = permutation(4, rng);
  int rows[4] = {0, 1, 2, 3}, cols[4] = {0, 1, 2, 3};
  auto shuffle_pairs = [&](int* v) {
    if (uniform_index(rng, 2)) std::swap(v[0], v[1]);
    if (uniform_index(rng, 2)) std::swap(v[2], v[3]);
    if (uniform_index(rng, 2)) { std::swap(v[0], v[2]); std::swap(v[1], v[3]); }
  };
  shuffle_pairs(rows);
  shuffle_pairs(cols);
  const bool transpose = uniform_index(rng, 2) != 0;
  Sudoku4 g{};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      const int v = base[size_t(rows[r] * 4 + cols[c])];
      g[size_t(transpose ? c * 4 + r : r * 4 + c)] = int(digits[size_t(v - 1)]) + 1;
    }
  MM_ASSERT(valid_sudoku4(g));
  return g;
}

std::string sudoku_text(const Sudoku4& g) {
  std::string s;
  for (int i = 0; i < 16; ++i) s += cat(i ? " " : "", g[size_t(i)]);
  return s;
}

nlohmann::json build_sudoku(const Ctx& c, int task) {
  const SuiteTask& t = suite_tasks()[size_t(task)];
  std::map<int, std::vector<std::string>> srcs, tgts;
  std::map<int, int64_t> digit_count;
  for (const Split& s : c.splits) {
    Tsv tsv(t.columns);
    for (int64_t i = 0; i < s.rows; ++i) {
      std::mt19937_64 rng = row_rng(c.opt.seed, task, s.id, i);
      const Sudoku4 sol = random_sudoku4_solution(rng);
      const int blanks = 4 + int(uniform_index(rng, 5));  // 4..8, every puzzle unique
      Sudoku4 puzzle = sol;
      int made = 0;
      for (int64_t cell : permutation(16, rng)) {
        if (made == blanks) break;
        Sudoku4 trial = puzzle;
        trial[size_t(cell)] = 0;
        if (count_sudoku4_solutions(trial) == 1) { puzzle = trial; ++made; }
      }
      for (int v : sol) if (s.id == 0) ++digit_count[v];
      tsv.add({cat(s.name, "-", i), sudoku_text(puzzle), sudoku_text(sol)});
      srcs[s.id].push_back(sudoku_text(puzzle));
      tgts[s.id].push_back(sudoku_text(sol));
    }
    tsv.write(c.file(t.name, s));
  }
  // Copy the puzzle, blanks filled with the most common digit of the training solutions.
  int best = 1;
  for (const auto& [d, n] : digit_count) if (n > digit_count[best]) best = d;
  std::vector<std::string> pred;
  for (std::string p : srcs[2]) {
    std::replace(p.begin(), p.end(), '0', char('0' + best));
    pred.push_back(p);
  }
  return {{"metric", "exact_match"}, {"fill_most_common_digit", exact_match(pred, as_refs(tgts[2]))}};
}

nlohmann::json build_control(const Ctx& c, int task) {
  const SuiteTask& t = suite_tasks()[size_t(task)];
  const PointMassConfig env_cfg;
  std::vector<double> action_sum(kPointMassAction, 0.0);
  int64_t n_train = 0;
  for (const Split& s : c.splits) {
    Tsv tsv(t.columns);
    int64_t row = 0;
    for (int64_t e = 0; row < s.rows; ++e) {
      std::mt19937_64 rng = row_rng(c.opt.seed, task, s.id, e);
      PointMass env(env_cfg);
      std::vector<double> obs = env.reset(rng());
      // DART-style data: the executed action is the expert's plus noise, so the states
      // cover recoveries; the label is always the clean expert action.
      while (!env.done() && row < s.rows) {
        const std::vector<double> act = point_mass_expert(obs);
        std::string o, a;
        for (size_t k = 0; k < obs.size(); ++k) o += (k ? " " : "") + fixed(obs[k], 3);
        for (size_t k = 0; k < act.size(); ++k) a += (k ? " " : "") + fixed(act[k], 3);
        tsv.add({cat(s.name, "-", row), cat(e), cat(env.steps()), o, a});
        if (s.id == 0) {
          for (size_t k = 0; k < act.size(); ++k) action_sum[k] += act[k];
          ++n_train;
        }
        std::vector<double> noisy = act;
        for (double& x : noisy) x += 0.3 * normal(rng);
        obs = env.step(noisy).obs;
        ++row;
      }
    }
    tsv.write(c.file(t.name, s));
  }
  std::vector<double> mean_action = action_sum;
  for (double& x : mean_action) x /= double(std::max<int64_t>(1, n_train));
  const uint64_t eval_seed = mix64(c.opt.seed ^ 0xC0417201u);
  const int eps = c.opt.control_episodes;
  ControlScore sc = evaluate_policy([&](const std::vector<double>&) { return mean_action; }, eps,
                                    eval_seed, env_cfg);
  std::mt19937_64 rng = row_rng(c.opt.seed, task, 9, 0);
  const double random_return = rollout(
      [&](const std::vector<double>&) {
        return std::vector<double>{2 * uniform_unit(rng) - 1, 2 * uniform_unit(rng) - 1};
      },
      eps, eval_seed, env_cfg);
  return {{"metric", "episode_return"}, {"env", "point_mass"}, {"eval_seed", eval_seed},
          {"episodes", eps}, {"horizon", env_cfg.horizon},
          {"mean_action", sc.policy_return}, {"mean_action_values", mean_action},
          {"zero", sc.zero_return}, {"random", random_return}, {"expert", sc.expert_return}};
}

}  // namespace

SuiteResult build_task_suite(const SuiteOptions& opt, std::ostream* log) {
  const auto t0 = std::chrono::steady_clock::now();
  auto since = [](std::chrono::steady_clock::time_point a) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
  };
  MM_CHECK(opt.train >= 1 && opt.valid >= 1 && opt.test >= 1, "task suite: rows per split must be "
           ">= 1 (got train ", opt.train, ", valid ", opt.valid, ", test ", opt.test, ")");
  MM_CHECK(opt.canvas >= 48 && opt.canvas % 2 == 0, "task suite: canvas must be even and >= 48, got ",
           opt.canvas);
  MM_CHECK(opt.video_frames >= 2 && opt.video_frames <= 64, "task suite: video_frames must be in "
           "[2, 64], got ", opt.video_frames);
  MM_CHECK(opt.workers >= 1 && opt.control_episodes >= 1, "task suite: workers and "
           "control_episodes must be >= 1");
  std::vector<int> selected;
  if (opt.tasks.empty())
    for (size_t i = 0; i < suite_tasks().size(); ++i) selected.push_back(int(i));
  for (const std::string& name : opt.tasks) {
    const SuiteTask& t = suite_task(name);
    selected.push_back(int(&t - suite_tasks().data()));
  }
  std::sort(selected.begin(), selected.end());
  selected.erase(std::unique(selected.begin(), selected.end()), selected.end());

  Ctx c{opt, log, {}, {}, {}, {{"train", 0, opt.train}, {"valid", 1, opt.valid}, {"test", 2, opt.test}}};
  bool needs_images = false;
  for (int ti : selected) needs_images |= ti <= 3 || ti == 5;
  if (needs_images) {
    c.fm_train = load_fashion_mnist(opt.fashion_mnist_dir, true);
    c.fm_test = load_fashion_mnist(opt.fashion_mnist_dir, false);
    const int64_t cut = c.fm_train.n - c.fm_train.n / 10;  // last 10% of train: valid
    c.pools[0] = std::make_unique<ItemPool>(c.fm_train, 0, cut);
    c.pools[1] = std::make_unique<ItemPool>(c.fm_train, cut, c.fm_train.n);
    c.pools[2] = std::make_unique<ItemPool>(c.fm_test, 0, c.fm_test.n);
    if (log) *log << "fashion-mnist: " << c.fm_train.n << " train + " << c.fm_test.n
                  << " test images loaded in " << fixed(since(t0), 2) << " s\n" << std::flush;
  }

  using Builder = nlohmann::json (*)(const Ctx&, int);
  static const Builder kBuilders[] = {build_classify, build_caption, build_grounding, build_vqa,
                                      build_speech,   build_video,   build_sudoku,    build_control};
  SuiteResult r;
  r.baselines = nlohmann::json::object();
  nlohmann::json tasks = nlohmann::json::object();
  fs::create_directories(opt.out_dir);
  for (int ti : selected) {
    const SuiteTask& t = suite_tasks()[size_t(ti)];
    const auto t1 = std::chrono::steady_clock::now();
    fs::remove_all(c.dir(t.name));  // no stale media from an earlier, larger build
    fs::create_directories(c.dir(t.name));
    try {
      r.baselines[t.name] = kBuilders[ti](c, ti);
    } catch (const Error& e) {
      throw Error(cat("task suite: task '", t.name, "' (", c.dir(t.name), "): ", e.what()));
    }
    tasks[t.name] = {{"instruction", t.instruction}, {"metrics", t.metrics}, {"columns", t.columns},
                     {"description", t.description},
                     {"files", {{"train", t.name + "/train.tsv"}, {"valid", t.name + "/valid.tsv"},
                                {"test", t.name + "/test.tsv"}}},
                     {"rows", {{"train", opt.train}, {"valid", opt.valid}, {"test", opt.test}}}};
    if (log) *log << t.name << ": " << opt.train << "/" << opt.valid << "/" << opt.test
                  << " rows in " << fixed(since(t1), 2) << " s\n" << std::flush;
  }
  r.summary = {{"format", "mm-task-suite"}, {"version", 1}, {"seed", opt.seed},
               {"canvas", opt.canvas}, {"video_frames", opt.video_frames}, {"tasks", tasks}};
  const std::string b = r.baselines.dump(2) + "\n", s = r.summary.dump(2) + "\n";
  write_file(opt.out_dir + "/baselines.json", b.data(), b.size());
  write_file(opt.out_dir + "/suite.json", s.data(), s.size());
  r.seconds = since(t0);
  return r;
}

}  // namespace mm
