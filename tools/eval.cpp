// build/eval --ckpt DIR [CONFIG.yaml] [options]: scores every task of a trained model on
// its test split with the metrics the task names; prints a table and writes JSON.
//
//   build/eval --ckpt runs/demo/checkpoint_best                   # the run's own config
//   build/eval --ckpt runs/demo/checkpoint_best configs/demo.yaml --split valid --out r.json
//
// Options: --split train|valid|test (default test), --max-examples N (default all),
// --task NAME (only that task; repeatable), --out FILE (default: <ckpt>/eval_<split>.json),
// --set KEY=VALUE (config overrides, e.g. generator settings), --baselines FILE (the
// trivial-baseline scores build/prepare-data writes: adds a column and a verdict).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tools/tool_main.h"
#include "runtime/safetensors.h"
#include "tasks/experiment.h"

using namespace mm;
namespace fs = std::filesystem;

namespace {

// The best trivial baseline for a metric in one task's baselines.json entry: entries whose
// key names the metric (majority_bleu4, majority_cider) when there are any, else the
// plain baselines (majority, random, zero, mean_action, ...). Expert scores, episode
// counts and seeds are not baselines.
bool best_baseline(const nlohmann::json& b, const std::string& metric, double* out) {
  const bool higher = metric != "wer";
  auto usable = [](const std::string& k, const nlohmann::json& v) {
    return v.is_number() && k != "expert" && k != "episodes" && k != "horizon" && k != "eval_seed";
  };
  auto metric_specific = [](const std::string& k) {
    return k.find("bleu") != std::string::npos || k.find("cider") != std::string::npos;
  };
  const std::string m = metric == "bleu" || metric == "cider" ? metric : "";
  bool any_specific = false;
  for (auto& [k, v] : b.items())
    if (usable(k, v) && !m.empty() && k.find(m) != std::string::npos) any_specific = true;
  bool found = false;
  for (auto& [k, v] : b.items()) {
    if (!usable(k, v)) continue;
    if (any_specific ? k.find(m) == std::string::npos : metric_specific(k)) continue;
    const double x = v.get<double>();
    if (!found || (higher ? x > *out : x < *out)) *out = x;
    found = true;
  }
  return found;
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "%s\nusage: build/eval --ckpt DIR [CONFIG.yaml] [--split test] [--max-examples N] "
                       "[--task NAME] [--out FILE] [--set KEY=VALUE] [--baselines FILE]\n", why.c_str());
  std::exit(2);
}

int run(int argc, char** argv) {
  std::string ckpt, config, out, baselines_path, split_s = "test";
  std::vector<std::string> sets, only;
  int64_t max_examples = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value after " + a);
      return argv[++i];
    };
    if (a == "--ckpt") ckpt = next();
    else if (a == "--split") split_s = next();
    else if (a == "--max-examples") max_examples = std::stoll(next());
    else if (a == "--task") only.push_back(next());
    else if (a == "--out") out = next();
    else if (a == "--set") sets.push_back(next());
    else if (a == "--baselines") baselines_path = next();
    else if (!a.empty() && a[0] == '-') usage("unknown option " + a);
    else if (config.empty()) config = a;
    else usage("more than one config given");
  }
  if (ckpt.empty()) usage("--ckpt is required");
  const Split split = split_s == "train" ? Split::train : split_s == "valid" ? Split::valid : Split::test;
  MM_CHECK(split_s == "train" || split_s == "valid" || split_s == "test", "--split ", split_s,
           ": expected train, valid or test");
  auto ex = Experiment::from_checkpoint(ckpt, /*open_data=*/true, sets, config);
  nlohmann::json results = nlohmann::json::object();
  nlohmann::json baselines;
  if (!baselines_path.empty()) {
    std::ifstream bf(baselines_path);
    MM_CHECK(bf, "cannot read baselines '", baselines_path, "'");
    try {
      baselines = nlohmann::json::parse(bf);
    } catch (const nlohmann::json::exception& e) {
      throw Error(cat("baselines '", baselines_path, "': ", e.what()));
    }
  }
  std::printf("%-12s %-16s %10s %8s %10s\n", "task", "metric", "value", "examples", "baseline");
  for (TaskData& t : ex->tasks) {
    if (!only.empty() && std::find(only.begin(), only.end(), t.cfg.name) == only.end()) continue;
    if (!t.split(split)) {
      std::printf("%-12s (no %s split)\n", t.cfg.name.c_str(), split_s.c_str());
      continue;
    }
    EvalResult r = evaluate(*ex, t, split, max_examples);
    for (auto& [m, v] : r.metrics) {
      double base = 0;
      std::string col;
      const bool named = std::find(t.cfg.metrics.begin(), t.cfg.metrics.end(), m) != t.cfg.metrics.end();
      if (named && baselines.contains(t.cfg.name) && best_baseline(baselines[t.cfg.name], m, &base)) {
        const bool beats = m == "wer" ? v < base : v > base;
        col = cat(base, beats ? "  beats it" : "  does NOT beat it");
        results["baseline_" + t.cfg.name + "_" + m] = {{"baseline", base}, {"beats", beats}};
      }
      std::printf("%-12s %-16s %10.4f %8lld %s\n", t.cfg.name.c_str(), m.c_str(), v, (long long)r.examples, col.c_str());
    }
    nlohmann::json preds = nlohmann::json::array();
    for (size_t i = 0; i < std::min<size_t>(r.predictions.size(), 20); ++i)
      preds.push_back({{"reference", r.predictions[i].reference}, {"prediction", r.predictions[i].output.text}});
    results[t.cfg.name] = {{"metrics", r.metrics}, {"examples", r.examples}, {"samples", preds}};
  }
  if (out.empty()) out = ((fs::is_directory(ckpt) ? fs::path(ckpt) : fs::path(ckpt).parent_path()) /
                          ("eval_" + split_s + ".json")).string();
  write_file_atomic(out, results.dump(2) + "\n");
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return mm::tool_main("eval", argc, argv, run); }
