#include "tasks/config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "runtime/error.h"

namespace mm {

namespace {

// Reads one YAML mapping: every key must be consumed by a handler, so an unknown or
// misspelt key is reported with its line instead of silently ignored.
class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  std::string where(const YAML::Node& n) const {
    const YAML::Mark m = n.Mark();
    if (m.line < 0) return file_;
    return cat(file_, ":", m.line + 1, ":", m.column + 1);
  }
  [[noreturn]] void fail(const YAML::Node& n, const std::string& what) const {
    throw Error(cat(where(n), ": ", what));
  }

  using Handler = std::function<void(const YAML::Node&)>;
  // Calls handlers[key] for each key of map `n` (path names it in messages).
  void map(const YAML::Node& n, const std::string& path,
           const std::vector<std::pair<std::string, Handler>>& handlers) const {
    if (!n.IsMap()) fail(n, cat(path.empty() ? "the file" : path, " must be a mapping of keys"));
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node& key = it->first;
      if (!key.IsScalar()) fail(key, cat("keys of ", path, " must be plain names"));
      std::string k = key.Scalar();
      const Handler* h = nullptr;
      for (const auto& [name, fn] : handlers)
        if (name == k) h = &fn;
      if (!h) {
        std::string all;
        for (const auto& [name, fn] : handlers) all += (all.empty() ? "" : ", ") + name;
        fail(key, cat("unknown key '", k, "'", path.empty() ? "" : cat(" in ", path),
                      " (expected one of ", all, ")"));
      }
      (*h)(it->second);
    }
  }

  template <typename T>
  T scalar(const YAML::Node& n, const std::string& path, const char* expected) const {
    if (!n.IsScalar()) fail(n, cat(path, ": expected ", expected));
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      fail(n, cat(path, ": expected ", expected, ", got '", n.Scalar(), "'"));
    }
  }
  double number(const YAML::Node& n, const std::string& path, double lo, double hi) const {
    double v = scalar<double>(n, path, "a number");
    if (!std::isfinite(v) || v < lo || v > hi)
      fail(n, cat(path, ": ", v, " is out of range [", lo, ", ", hi, "]"));
    return v;
  }
  int64_t integer(const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi) const {
    int64_t v = scalar<int64_t>(n, path, "a whole number");
    if (v < lo || v > hi) fail(n, cat(path, ": ", v, " is out of range [", lo, ", ", hi, "]"));
    return v;
  }
  std::string choice(const YAML::Node& n, const std::string& path,
                     const std::vector<std::string>& allowed) const {
    std::string v = scalar<std::string>(n, path, "a name");
    for (const auto& a : allowed)
      if (a == v) return v;
    std::string all;
    for (const auto& a : allowed) all += (all.empty() ? "" : ", ") + a;
    fail(n, cat(path, ": unknown value '", v, "' (expected one of ", all, ")"));
  }
  // A string or a list of strings.
  std::vector<std::string> strings(const YAML::Node& n, const std::string& path) const {
    std::vector<std::string> out;
    if (n.IsScalar()) {
      out.push_back(n.Scalar());
    } else if (n.IsSequence()) {
      for (size_t i = 0; i < n.size(); ++i)
        out.push_back(scalar<std::string>(n[i], cat(path, "[", i, "]"), "a string"));
    } else if (!n.IsNull()) {
      fail(n, cat(path, ": expected a string or a list of strings"));
    }
    return out;
  }

 private:
  std::string file_;
};

const std::vector<std::string> kMetrics = {"accuracy", "bleu",  "cider",       "rouge_l",
                                           "iou_acc",  "wer",   "exact_match", "episode_return"};

TaskConfig read_task(const Reader& r, const YAML::Node& n, size_t index) {
  TaskConfig t;
  t.line = n.Mark().line + 1;
  const std::string p = cat("tasks[", index, "]");
  YAML::Node instruction_node;
  bool has_instruction = false, has_name = false;
  r.map(n, p, {
    {"name", [&](const YAML::Node& v) { t.name = r.scalar<std::string>(v, p + ".name", "a name"); has_name = true; }},
    {"instruction", [&](const YAML::Node& v) {
       t.instructions = r.strings(v, p + ".instruction");
       instruction_node = v;
       has_instruction = true;
     }},
    {"train", [&](const YAML::Node& v) { t.train = r.strings(v, p + ".train"); }},
    {"valid", [&](const YAML::Node& v) { t.valid = r.strings(v, p + ".valid"); }},
    {"test", [&](const YAML::Node& v) { t.test = r.strings(v, p + ".test"); }},
    {"micro_batch_size", [&](const YAML::Node& v) { t.micro_batch_size = int(r.integer(v, p + ".micro_batch_size", 1, 1 << 20)); }},
    {"weight", [&](const YAML::Node& v) { t.weight = r.number(v, p + ".weight", 0, 1e6); }},
    {"sample_ratio", [&](const YAML::Node& v) { t.sample_ratio = r.number(v, p + ".sample_ratio", 0, 1e12); }},
    {"on_bad_row", [&](const YAML::Node& v) {
       t.on_bad_row = parse_on_bad_row(r.choice(v, p + ".on_bad_row", {"fail", "skip"}));
     }},
    {"answers", [&](const YAML::Node& v) { t.answers = r.scalar<std::string>(v, p + ".answers", "a path"); }},
    {"loss", [&](const YAML::Node& v) {
       r.map(v, p + ".loss", {
         {"label_smoothing", [&](const YAML::Node& x) { t.label_smoothing = r.number(x, p + ".loss.label_smoothing", 0, 1); }},
       });
     }},
    {"metrics", [&](const YAML::Node& v) {
       t.metrics.clear();
       std::vector<std::string> names = r.strings(v, p + ".metrics");
       for (size_t i = 0; i < names.size(); ++i) {
         YAML::Node item = v.IsSequence() ? v[i] : v;
         t.metrics.push_back(r.choice(item, cat(p, ".metrics[", i, "]"), kMetrics));
       }
     }},
    {"generator", [&](const YAML::Node& v) {
       GeneratorConfig& g = t.generator;
       const std::string q = p + ".generator";
       r.map(v, q, {
         {"beam", [&](const YAML::Node& x) { g.beam = int(r.integer(x, q + ".beam", 1, 1024)); }},
         {"max_len", [&](const YAML::Node& x) { g.max_len = int(r.integer(x, q + ".max_len", 1, 1 << 20)); }},
         {"min_len", [&](const YAML::Node& x) { g.min_len = int(r.integer(x, q + ".min_len", 0, 1 << 20)); }},
         {"no_repeat_ngram", [&](const YAML::Node& x) { g.no_repeat_ngram = int(r.integer(x, q + ".no_repeat_ngram", 0, 64)); }},
         {"length_penalty", [&](const YAML::Node& x) { g.length_penalty = r.number(x, q + ".length_penalty", -10, 10); }},
         {"sampling", [&](const YAML::Node& x) { g.sampling = r.scalar<bool>(x, q + ".sampling", "true or false"); }},
         {"top_k", [&](const YAML::Node& x) { g.top_k = int(r.integer(x, q + ".top_k", 0, 1 << 24)); }},
         {"top_p", [&](const YAML::Node& x) { g.top_p = r.number(x, q + ".top_p", 0, 1); }},
         {"temperature", [&](const YAML::Node& x) { g.temperature = r.number(x, q + ".temperature", 1e-6, 1e6); }},
       });
       if (g.min_len > g.max_len) r.fail(v, cat(q, ": min_len ", g.min_len, " > max_len ", g.max_len));
     }},
  });
  if (!has_name) r.fail(n, cat(p, ": missing key 'name'"));
  if (!has_instruction || t.instructions.empty())
    r.fail(n, cat(p, " (", t.name, "): missing key 'instruction'"));
  std::string joined;
  for (size_t i = 0; i < t.instructions.size(); ++i) joined += (i ? " ||| " : "") + t.instructions[i];
  try {
    t.plan = parse_instruction(joined);
  } catch (const Error& e) {
    r.fail(instruction_node, cat("task '", t.name, "': ", e.what()));
  }
  return t;
}

}  // namespace

Config parse_config(const std::string& yaml, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    throw Error(cat(name, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
  Reader r(name);
  Config c;
  bool has_tasks = false;
  r.map(root, "", {
    {"seed", [&](const YAML::Node& v) { c.seed = uint64_t(r.integer(v, "seed", 0, INT64_MAX)); }},
    {"model", [&](const YAML::Node& v) {
       ModelConfig& m = c.model;
       r.map(v, "model", {
         {"arch", [&](const YAML::Node& x) { m.arch = r.choice(x, "model.arch", {"ofa", "gato"}); }},
         {"size", [&](const YAML::Node& x) { m.size = r.scalar<std::string>(x, "model.size", "a size name"); }},
         {"dropout", [&](const YAML::Node& x) { m.dropout = r.number(x, "model.dropout", 0, 1); }},
         {"attention_dropout", [&](const YAML::Node& x) { m.attention_dropout = r.number(x, "model.attention_dropout", 0, 1); }},
         {"drop_path", [&](const YAML::Node& x) { m.drop_path = r.number(x, "model.drop_path", 0, 1); }},
         {"image_size", [&](const YAML::Node& x) { m.image_size = int(r.integer(x, "model.image_size", 16, 4096)); }},
         {"video_frames", [&](const YAML::Node& x) { m.video_frames = int(r.integer(x, "model.video_frames", 1, 256)); }},
         {"image_adaptor", [&](const YAML::Node& x) { m.image_adaptor = r.choice(x, "model.image_adaptor", {"resnet", "patch"}); }},
         {"resnet_blocks", [&](const YAML::Node& x) {
            if (!x.IsSequence() || x.size() != 3) r.fail(x, "model.resnet_blocks: expected 3 stage block counts, e.g. [1, 1, 1]");
            m.resnet_blocks.clear();
            for (size_t i = 0; i < 3; ++i) m.resnet_blocks.push_back(r.integer(x[i], "model.resnet_blocks[" + std::to_string(i) + "]", 1, 64));
          }},
         {"entangle_positions", [&](const YAML::Node& x) { m.entangle_positions = r.scalar<bool>(x, "model.entangle_positions", "true or false"); }},
         {"resnet_width", [&](const YAML::Node& x) { m.resnet_width = r.integer(x, "model.resnet_width", 1, 1024); }},
         {"max_source_positions", [&](const YAML::Node& x) { m.max_source_positions = int(r.integer(x, "model.max_source_positions", 1, 1 << 20)); }},
         {"max_target_positions", [&](const YAML::Node& x) { m.max_target_positions = int(r.integer(x, "model.max_target_positions", 1, 1 << 20)); }},
         {"text_tokenizer", [&](const YAML::Node& x) { m.text_tokenizer = r.scalar<std::string>(x, "model.text_tokenizer", "a path"); }},
         {"text_vocab_size", [&](const YAML::Node& x) { m.text_vocab_size = r.integer(x, "model.text_vocab_size", 1, 1 << 24); }},
         {"phones", [&](const YAML::Node& x) { m.phones = r.integer(x, "model.phones", 0, 1 << 16); }},
       });
       const std::vector<std::string> sizes = m.arch == "ofa"
           ? std::vector<std::string>{"micro", "tiny", "medium", "base", "large", "huge"}
           : std::vector<std::string>{"79m", "364m", "1.18b"};
       if (v["size"]) r.choice(v["size"], "model.size (for " + m.arch + ")", sizes);
       else if (m.arch == "gato") m.size = "79m";
     }},
    {"optimizer", [&](const YAML::Node& v) {
       OptimizerConfig& o = c.optimizer;
       r.map(v, "optimizer", {
         {"name", [&](const YAML::Node& x) { o.name = r.choice(x, "optimizer.name", {"adamw"}); }},
         {"lr", [&](const YAML::Node& x) { o.lr = r.number(x, "optimizer.lr", 0, 10); }},
         {"betas", [&](const YAML::Node& x) {
            if (!x.IsSequence() || x.size() != 2) r.fail(x, "optimizer.betas: expected [beta1, beta2]");
            o.beta1 = r.number(x[0], "optimizer.betas[0]", 0, 0.999999);
            o.beta2 = r.number(x[1], "optimizer.betas[1]", 0, 0.999999999);
          }},
         {"eps", [&](const YAML::Node& x) { o.eps = r.number(x, "optimizer.eps", 0, 1); }},
         {"weight_decay", [&](const YAML::Node& x) { o.weight_decay = r.number(x, "optimizer.weight_decay", 0, 10); }},
         {"clip_norm", [&](const YAML::Node& x) { o.clip_norm = r.number(x, "optimizer.clip_norm", 0, 1e9); }},
       });
     }},
    {"schedule", [&](const YAML::Node& v) {
       ScheduleConfig& s = c.schedule;
       r.map(v, "schedule", {
         {"decay", [&](const YAML::Node& x) { s.decay = r.choice(x, "schedule.decay", {"polynomial", "cosine", "constant"}); }},
         {"warmup_updates", [&](const YAML::Node& x) { s.warmup_updates = r.integer(x, "schedule.warmup_updates", 0, INT64_MAX); }},
         {"max_updates", [&](const YAML::Node& x) { s.max_updates = r.integer(x, "schedule.max_updates", 0, INT64_MAX); }},
         {"max_epochs", [&](const YAML::Node& x) { s.max_epochs = r.integer(x, "schedule.max_epochs", 0, INT64_MAX); }},
         {"end_lr", [&](const YAML::Node& x) { s.end_lr = r.number(x, "schedule.end_lr", 0, 10); }},
         {"power", [&](const YAML::Node& x) { s.power = r.number(x, "schedule.power", 0, 100); }},
       });
       if (s.max_updates == 0 && s.max_epochs == 0)
         r.fail(v, "schedule: set max_updates or max_epochs (both are 0)");
     }},
    {"scheduler", [&](const YAML::Node& v) {
       SchedulerOptions& s = c.scheduler;
       r.map(v, "scheduler", {
         {"name", [&](const YAML::Node& x) { s.name = r.choice(x, "scheduler.name", scheduler_names()); }},
         {"update_freq", [&](const YAML::Node& x) { s.update_freq = int(r.integer(x, "scheduler.update_freq", 1, 1 << 16)); }},
         {"temperature", [&](const YAML::Node& x) { s.temperature = r.number(x, "scheduler.temperature", 1e-6, 1e6); }},
         {"cap", [&](const YAML::Node& x) { s.cap = r.integer(x, "scheduler.cap", 1, INT64_MAX); }},
         {"uncertainty_floor", [&](const YAML::Node& x) { s.uncertainty_floor = r.number(x, "scheduler.uncertainty_floor", 1e-9, 1); }},
         {"patience", [&](const YAML::Node& x) { s.patience = int(r.integer(x, "scheduler.patience", 1, 1 << 20)); }},
         {"stop_every", [&](const YAML::Node& x) { s.stop_every = int(r.integer(x, "scheduler.stop_every", 1, 1 << 20)); }},
         {"min_delta", [&](const YAML::Node& x) { s.min_delta = r.number(x, "scheduler.min_delta", 0, 1e9); }},
         {"mixed_slots", [&](const YAML::Node& x) { s.mixed_slots = int(r.integer(x, "scheduler.mixed_slots", 1, 1 << 20)); }},
       });
     }},
    {"tasks", [&](const YAML::Node& v) {
       if (!v.IsSequence() || v.size() == 0) r.fail(v, "tasks: expected a non-empty list of tasks");
       for (size_t i = 0; i < v.size(); ++i) {
         c.tasks.push_back(read_task(r, v[i], i));
         for (size_t k = 0; k + 1 < c.tasks.size(); ++k)
           if (c.tasks[k].name == c.tasks.back().name)
             r.fail(v[i], cat("tasks[", i, "]: task name '", c.tasks.back().name,
                              "' is already used by tasks[", k, "]"));
       }
       has_tasks = true;
     }},
  });
  if (!has_tasks) throw Error(cat(name, ": missing key 'tasks' (expected a list of tasks)"));
  c.scheduler.seed = c.seed;
  return c;
}

Config load_config(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MM_CHECK(f.is_open(), path, ": cannot open the config file");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace mm
