// The real-data task suite (SPEC.md section 7): eight tasks built from Debian packages
// only (Fashion-MNIST, espeak-ng, FFmpeg), deterministic by seed. build/prepare-data is
// the command-line front end.
//
//   SuiteOptions o;  o.out_dir = "data";  o.train = 2000;
//   SuiteResult r = build_task_suite(o);   // data/<task>/{train,valid,test}.tsv + media
//
// Layout under out_dir:
//   <task>/train.tsv valid.tsv test.tsv   one header line, one row per sample; images
//                                         inline as base64 PNG (OFA's TSV style); audio and
//                                         video as files under <task>/media/, referenced by
//                                         paths relative to the TSV's folder
//   baselines.json                        trivial-baseline scores per task (test split)
//   suite.json                            options, instructions, metrics, row counts
//
// Every row's content is drawn from its own seed (task, split, row), so the output does
// not depend on the number of worker threads, and the same options give the same bytes.
#pragma once
#include <array>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mm {

struct SuiteTask {
  std::string name;          // folder under out_dir
  std::string instruction;   // the task's instruction line
  std::vector<std::string> columns;  // TSV header
  std::vector<std::string> metrics;  // config metric names (tasks/config.h)
  std::string description;
};
// The eight tasks, in a fixed order: classify caption grounding vqa speech video sudoku
// control.
const std::vector<SuiteTask>& suite_tasks();
const SuiteTask& suite_task(const std::string& name);  // throws naming the known tasks

struct SuiteOptions {
  std::string out_dir = "data";
  std::string fashion_mnist_dir = "/usr/share/datasets/fashion-mnist";
  uint64_t seed = 1;
  int64_t train = 2000, valid = 200, test = 200;  // rows per task and split
  int canvas = 64;            // canvas side for the image and video tasks
  int video_frames = 8;       // frames per clip (8 fps: one second)
  int workers = 4;            // threads (each may run an espeak-ng process)
  int control_episodes = 50;  // evaluation episodes for the control baselines
  std::vector<std::string> tasks;  // subset by name; empty = all eight
};

struct SuiteResult {
  nlohmann::json baselines;  // what baselines.json holds
  nlohmann::json summary;    // what suite.json holds
  double seconds = 0;
};

// Builds the selected tasks; progress lines go to `log` when given. Throws mm::Error
// naming the task and file on failure (missing Fashion-MNIST, espeak-ng, write errors).
SuiteResult build_task_suite(const SuiteOptions& opt, std::ostream* log = nullptr);

// ---- pieces the tests use ------------------------------------------------------------
// A 4x4 sudoku: 16 digits (0 = blank), row-major.
using Sudoku4 = std::array<int, 16>;
// Number of solutions of a 4x4 puzzle, counting up to `limit`.
int count_sudoku4_solutions(const Sudoku4& puzzle, int limit = 2);
// True when `grid` is a complete valid 4x4 sudoku (rows, columns, 2x2 boxes).
bool valid_sudoku4(const Sudoku4& grid);

}  // namespace mm
