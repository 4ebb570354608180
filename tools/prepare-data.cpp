// build/prepare-data: writes the real-data task suite (tasks/task_suite.h) under a data
// folder, deterministically by seed, from Debian packages only (dataset-fashion-mnist,
// espeak-ng, FFmpeg's libraries).
//
//   build/prepare-data                         # data/, 2000/200/200 rows per task
//   build/prepare-data --out /tmp/d --train 20 --valid 5 --test 5 --tasks speech,video
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>

#include "runtime/error.h"
#include "tasks/task_suite.h"

namespace {

const char* kUsage =
    "usage: prepare-data [options]\n"
    "  --out DIR            data folder (default data); each task's folder DIR/<task> is\n"
    "                       replaced, nothing else is touched\n"
    "  --seed N             seed of every random draw (default 1)\n"
    "  --train N            rows per task in the training split (default 2000)\n"
    "  --valid N            rows per task in the validation split (default 200)\n"
    "  --test N             rows per task in the test split (default 200)\n"
    "  --tasks A,B,...      only these tasks (default: all eight:\n"
    "                       classify caption grounding vqa speech video sudoku control)\n"
    "  --canvas N           canvas side for the image and video tasks (default 64)\n"
    "  --frames N           frames per video clip (default 8)\n"
    "  --workers N          worker threads / espeak-ng processes (default 4)\n"
    "  --episodes N         evaluation episodes for the control baselines (default 50)\n"
    "  --fashion-mnist DIR  Fashion-MNIST idx.gz folder (default /usr/share/datasets/fashion-mnist)\n";

int64_t to_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  MM_CHECK(!v.empty() && end == v.c_str() + v.size(), "prepare-data: ", flag,
           " expects a whole number, got '", v, "'");
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    mm::SuiteOptions o;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        std::cout << kUsage;
        return 0;
      }
      MM_CHECK(i + 1 < argc, "prepare-data: ", a, " needs a value (see --help)");
      const std::string v = argv[++i];
      if (a == "--out") o.out_dir = v;
      else if (a == "--seed") o.seed = uint64_t(to_int(a, v));
      else if (a == "--train") o.train = to_int(a, v);
      else if (a == "--valid") o.valid = to_int(a, v);
      else if (a == "--test") o.test = to_int(a, v);
      else if (a == "--canvas") o.canvas = int(to_int(a, v));
      else if (a == "--frames") o.video_frames = int(to_int(a, v));
      else if (a == "--workers") o.workers = int(to_int(a, v));
      else if (a == "--episodes") o.control_episodes = int(to_int(a, v));
      else if (a == "--fashion-mnist") o.fashion_mnist_dir = v;
      else if (a == "--tasks") {
        std::stringstream ss(v);
        std::string t;
        while (std::getline(ss, t, ','))
          if (!t.empty()) o.tasks.push_back(t);
      } else {
        throw mm::Error("prepare-data: unknown option '" + a + "' (see --help)");
      }
    }
    mm::SuiteResult r = mm::build_task_suite(o, &std::cout);
    std::cout << "trivial baselines (test split), also in " << o.out_dir << "/baselines.json:\n";
    for (const auto& [task, b] : r.baselines.items()) {
      std::cout << "  " << task << " (" << b["metric"].get<std::string>() << "):";
      for (const auto& [k, v] : b.items())
        if (v.is_number() && k != "eval_seed" && k != "episodes" && k != "horizon")
          std::printf(" %s=%.4f", k.c_str(), v.get<double>()), std::fflush(stdout);
      std::cout << "\n";
    }
    std::printf("wrote %s in %.1f s\n", o.out_dir.c_str(), r.seconds);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}
