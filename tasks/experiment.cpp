#include "tasks/experiment.h"

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "autograd/grad_mode.h"
#include "models/checkpoint.h"
#include "models/loss.h"
#include "models/ofa_step_decoder.h"
#include "ops/shape.h"
#include "runtime/parallel.h"
#include "runtime/safetensors.h"
#include "tasks/base64.h"
#include "tasks/control_env.h"
#include "tasks/discrete.h"
#include "tasks/metrics.h"
#include "tasks/rng.h"

namespace mm {
namespace fs = std::filesystem;

// ---- config overrides ---------------------------------------------------------------
std::string apply_overrides(const std::string& yaml, const std::vector<std::string>& overrides) {
  if (overrides.empty()) return yaml;
  YAML::Node root = YAML::Load(yaml);
  for (const std::string& ov : overrides) {
    const size_t eq = ov.find('=');
    MM_CHECK(eq != std::string::npos && eq > 0, "--set '", ov, "': expected key=value");
    const std::string key = ov.substr(0, eq), value = ov.substr(eq + 1);
    std::vector<std::string> parts;
    std::stringstream ss(key);
    for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
    // Walk with fresh handles: yaml-cpp's operator= on a node rebinds it.
    std::function<void(YAML::Node, size_t)> set = [&](YAML::Node node, size_t i) {
      const std::string& p = parts[i];
      const bool last = i + 1 == parts.size();
      if (node.IsSequence()) {
        size_t idx = 0;
        try {
          idx = std::stoul(p);
        } catch (...) {
          throw Error(cat("--set '", ov, "': '", p, "' must be a list index"));
        }
        MM_CHECK(idx < node.size(), "--set '", ov, "': index ", idx, " out of range (", node.size(), " items)");
        if (last) node[idx] = YAML::Load(value);
        else set(node[idx], i + 1);
      } else {
        if (last) node[p] = YAML::Load(value);
        else set(node[p], i + 1);
      }
    };
    set(root, 0);
  }
  YAML::Emitter out;
  out << root;
  return out.c_str();
}

const char* split_name(Split s) { return s == Split::train ? "train" : s == Split::valid ? "valid" : "test"; }

const Dataset* TaskData::split(Split s) const {
  return (s == Split::train ? train : s == Split::valid ? valid : test).get();
}

// ---- building ---------------------------------------------------------------------
namespace {

std::unique_ptr<Dataset> open_split(const TaskConfig& t, const std::vector<std::string>& paths, const char* split) {
  if (paths.empty()) return nullptr;
  MM_CHECK(paths.size() == 1, "task '", t.name, "': ", paths.size(), " ", split,
           " files; one file per split is supported (concatenate them)");
  DatasetOptions o;
  o.on_bad_row = t.on_bad_row;
  return std::make_unique<Dataset>(Dataset::open(paths[0], o));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  MM_CHECK(f, "cannot read '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream is(read_file(path));
  for (std::string l; std::getline(is, l);)
    if (!l.empty()) out.push_back(l);
  return out;
}

// Whether any slot of any task embeds its continuous values (adaptor continuous_embed,
// the default for CONTINUOUS; continuous_token keeps Gato's plain bin tokens).
bool uses_continuous_embed(const Config& c) {
  for (const TaskConfig& t : c.tasks)
    for (const Template& tpl : t.plan.templates)
      for (const Side* side : {&tpl.input, &tpl.output})
        for (const Slot& s : side->slots)
          if (s.adaptor == "continuous_embed") return true;
  return false;
}

// What every task's SampleBuilder is given from the config.
SampleOptions sample_options(const Config& c) {
  SampleOptions so;
  so.image_size = c.model.image_size;
  so.video_frames = c.model.video_frames;
  so.seed = c.seed;
  return so;
}

OfaConfig model_config(const Config& c, const Vocab& vocab) {
  OfaConfig m = OfaConfig::preset(c.model.size);
  m.vocab_size = vocab.size();
  if (uses_continuous_embed(c)) {
    m.continuous_begin = vocab.range(TokenKind::continuous).begin;
    m.continuous_bins = vocab.range(TokenKind::continuous).size();
  }
  m.dropout = c.model.dropout;
  m.attention_dropout = c.model.attention_dropout;
  m.drop_path_rate = c.model.drop_path;
  m.image_adaptor = c.model.image_adaptor;
  if (!c.model.resnet_blocks.empty()) m.resnet_blocks = c.model.resnet_blocks;
  if (c.model.resnet_width > 0) m.resnet_width = c.model.resnet_width;
  m.entangle_positions = c.model.entangle_positions;
  m.max_frames = std::max<int64_t>(m.max_frames, c.model.video_frames);  // the frame-position table
  m.seed = c.seed;
  m.validate();
  return m;
}

}  // namespace

std::unique_ptr<Experiment> Experiment::from_config(const std::string& path, const std::vector<std::string>& overrides) {
  return from_config_text(apply_overrides(read_file(path), overrides), path);
}

std::unique_ptr<Experiment> Experiment::from_config_text(const std::string& yaml, const std::string& name) {
  auto ex = std::make_unique<Experiment>();
  ex->config_yaml = yaml;
  ex->config_name = name;
  ex->config = parse_config(yaml, name);
  MM_CHECK(ex->config.model.arch == "ofa", name, ": model.arch '", ex->config.model.arch,
           "': the trainer drives the OFA model (Gato training is not wired into the trainer yet)");
  ex->build(/*open_data=*/true, /*train_tokenizer=*/true, nlohmann::json::object());
  return ex;
}

void Experiment::build(bool open_data, bool train_tokenizer, const nlohmann::json& saved_answers) {
  tasks.clear();
  tasks.resize(config.tasks.size());
  for (size_t i = 0; i < config.tasks.size(); ++i) {
    TaskData& t = tasks[i];
    t.cfg = config.tasks[i];
    if (!open_data) continue;
    t.train = open_split(t.cfg, t.cfg.train, "train");
    t.valid = open_split(t.cfg, t.cfg.valid, "valid");
    t.test = open_split(t.cfg, t.cfg.test, "test");
    for (const Dataset* d : {t.train.get(), t.valid.get(), t.test.get()})
      if (d) validate(t.cfg.plan, d->columns());
  }
  if (train_tokenizer) {
    if (!config.model.text_tokenizer.empty()) {
      tokenizer = TextTokenizer::load(config.model.text_tokenizer);
    } else {
      std::vector<std::string> corpus;
      for (TaskData& t : tasks) {
        std::vector<const Dataset*> ds;
        if (t.train) ds.push_back(t.train.get());
        auto c = tokenizer_corpus(t.cfg.plan, ds);
        corpus.insert(corpus.end(), c.begin(), c.end());
      }
      // No text anywhere (e.g. a control-only task): no tokenizer and an empty text range.
      if (!corpus.empty()) {
        TextTokenizerOptions o;
        o.vocab_size = int(config.model.text_vocab_size);
        o.split_digits = true;  // numbers and sudoku grids: one piece per digit
        tokenizer = TextTokenizer::train(corpus, o);
      }
    }
    VocabSizes vs;
    vs.n_text = tokenizer.loaded() ? tokenizer.size() : 0;
    vs.n_phone = config.model.phones;
    vocab = Vocab(vs);
    model = std::make_unique<OfaModel>(model_config(config, vocab));
  }
  for (TaskData& t : tasks) {
    t.builder = std::make_unique<SampleBuilder>(t.cfg.plan, vocab, tokenizer.loaded() ? &tokenizer : nullptr,
                                                sample_options(config));
    const Template& tpl = t.cfg.plan.templates[0];
    if (tpl.target < 0 || !tpl.output.slots[size_t(tpl.target)].attrs.closed_set) continue;
    if (saved_answers.contains(t.cfg.name)) {
      t.answers = saved_answers[t.cfg.name].get<std::vector<std::string>>();
    } else {
      if (!t.cfg.answers.empty()) {
        t.answers = read_lines(t.cfg.answers);
      } else {
        std::vector<const Dataset*> ds;
        for (const Dataset* d : {t.train.get(), t.valid.get(), t.test.get()})
          if (d) ds.push_back(d);
        t.answers = closed_set_answers(t.cfg.plan, ds);
      }
    }
    t.builder->set_answers(t.answers);
  }
}

TaskData& Experiment::task(const std::string& name) {
  for (TaskData& t : tasks)
    if (t.cfg.name == name) return t;
  std::string names;
  for (TaskData& t : tasks) names += (names.empty() ? "" : ", ") + t.cfg.name;
  throw Error(cat("no task named '", name, "' (the experiment has: ", names, ")"));
}

std::map<std::string, std::string> Experiment::checkpoint_metadata() const {
  nlohmann::json answers = nlohmann::json::object();
  for (const TaskData& t : tasks)
    if (!t.answers.empty()) answers[t.cfg.name] = t.answers;
  return {{"format", "mm-checkpoint"},
          {"version", "1"},
          {"model", "ofa"},
          {"config", model->config().to_json()},
          {"vocab", vocab.to_json()},
          {"experiment", config_yaml},
          {"tokenizer", base64_encode(reinterpret_cast<const uint8_t*>(tokenizer.serialized().data()),
                                      tokenizer.serialized().size())},
          {"answers", answers.dump()}};
}

std::unique_ptr<Experiment> Experiment::from_checkpoint(const std::string& path, bool open_data,
                                                        const std::vector<std::string>& overrides,
                                                        const std::string& config_path) {
  std::string file = path;
  if (fs::is_directory(path)) file = (fs::path(path) / "model.safetensors").string();
  MM_CHECK(fs::exists(file), "checkpoint '", path, "' not found (expected a checkpoint folder holding "
                             "model.safetensors, or the file itself)");
  Checkpoint ck = read_checkpoint(file);
  for (const char* key : {"experiment", "tokenizer", "answers"})
    MM_CHECK(ck.extra.count(key), "checkpoint '", file, "' has no '", key,
             "' metadata: it was not written by the trainer (use load_ofa for bare model files)");
  auto ex = std::make_unique<Experiment>();
  ex->config_yaml = apply_overrides(config_path.empty() ? ck.extra.at("experiment") : read_file(config_path), overrides);
  ex->config_name = config_path.empty() ? file + " (experiment)" : config_path;
  ex->config = parse_config(ex->config_yaml, ex->config_name);
  const std::vector<uint8_t> tok = base64_decode(ck.extra.at("tokenizer"));
  if (!tok.empty()) ex->tokenizer = TextTokenizer::from_bytes(std::string(tok.begin(), tok.end()));
  ex->vocab = Vocab::from_json(ck.vocab_json);
  ex->model = std::make_unique<OfaModel>(OfaConfig::from_json(ck.config_json));
  load_weights(*ex->model, ck, file);
  // The closed sets the model was trained with, not recomputed from (possibly other) data.
  ex->build(open_data, /*train_tokenizer=*/false, nlohmann::json::parse(ck.extra.at("answers")));
  return ex;
}

TrainOptions Experiment::train_options(const std::string& save_dir) const {
  TrainOptions o;
  o.max_updates = config.schedule.max_updates;
  o.clip_norm = config.optimizer.clip_norm;
  o.schedule.kind = LrSchedule::parse_kind(config.schedule.decay);
  o.schedule.peak = config.optimizer.lr;
  o.schedule.end_lr = config.schedule.end_lr;
  o.schedule.power = config.schedule.power;
  o.schedule.warmup = config.schedule.warmup_updates;
  o.schedule.total = config.schedule.max_updates;
  o.scheduler = config.scheduler;
  o.save_dir = save_dir;
  o.model_metadata = checkpoint_metadata();
  return o;
}

OfaInputs Experiment::inputs(const SampleBatch& b) const {
  OfaInputs in;
  in.src_tokens = b.encoder.tokens;
  in.src_mask = b.encoder.padding_mask;
  in.images = b.images;
  in.image_present = b.image_present;
  in.audio = b.audio;
  in.audio_mask = b.audio_mask;
  in.video = b.video;
  in.video_present = b.video_present;
  in.prev_tokens = b.decoder.prev_tokens;
  return in;
}

std::unique_ptr<SampleBuilder> Experiment::builder_for(const std::string& instruction,
                                                       const std::vector<std::string>& answers) const {
  auto b = std::make_unique<SampleBuilder>(parse_instruction(instruction), vocab,
                                           tokenizer.loaded() ? &tokenizer : nullptr, sample_options(config));
  if (!answers.empty()) b->set_answers(answers);
  return b;
}

// ---- training ---------------------------------------------------------------------
std::vector<Sample> build_samples(const TaskData& task, const Dataset& d, const std::vector<int64_t>& rows,
                                  uint64_t epoch, int64_t* skipped) {
  std::vector<Sample> out(rows.size());
  std::vector<std::string> errors(rows.size());
  // Never throw inside parallel_for: collect, then report the first in row order.
  parallel_for(int64_t(rows.size()), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      try {
        out[size_t(i)] = task.builder->build(d, rows[size_t(i)], epoch);
      } catch (const std::exception& ex) {
        errors[size_t(i)] = ex.what();
      }
    }
  });
  std::vector<Sample> good;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (errors[i].empty()) {
      good.push_back(std::move(out[i]));
      continue;
    }
    if (task.cfg.on_bad_row == OnBadRow::fail) throw Error(errors[i]);
    if (skipped) ++*skipped;
  }
  return good;
}

OfaTrainTask::OfaTrainTask(Experiment& ex, TaskData& task, int rank, int world)
    : ex_(ex), task_(task), rank_(rank), world_(world) {
  MM_CHECK(task_.train && task_.train->size() > 0, "task '", task_.cfg.name, "' has no training rows");
}

void OfaTrainTask::load_state(const nlohmann::json& s) {
  epoch_ = s.at("epoch").get<int64_t>();
  pos_ = s.at("pos").get<int64_t>();
  order_.clear();
}

MicroBatchResult OfaTrainTask::next_micro_batch() {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Sample> samples;
  for (int tries = 0; samples.empty(); ++tries) {
    MM_CHECK(tries < 100, "task '", task_.cfg.name, "': every row of 100 micro-batches in a row was bad");
    if (order_.empty()) order_ = task_.train->epoch_order(ex_.config.seed, epoch_, rank_, world_);
    std::vector<int64_t> rows;
    while (int64_t(rows.size()) < task_.cfg.micro_batch_size) {
      if (pos_ >= int64_t(order_.size())) {  // next epoch
        ++epoch_;
        pos_ = 0;
        order_ = task_.train->epoch_order(ex_.config.seed, epoch_, rank_, world_);
        if (!rows.empty()) break;
      }
      rows.push_back(order_[size_t(pos_++)]);
    }
    samples = build_samples(task_, *task_.train, rows, uint64_t(epoch_), &skipped_);
  }
  SampleBatch b = collate_samples(samples, ex_.vocab);
  const double data_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Tensor logits = ex_.model->forward(ex_.inputs(b));
  LossOptions lo;
  lo.label_smoothing = task_.cfg.label_smoothing;
  lo.weight = task_.cfg.weight;
  lo.allowed = b.allowed;
  LossResult r = sequence_loss(logits, b.decoder.target, b.decoder.loss_mask, lo);
  return {r.loss, double(r.sample_size), b.decoder.ntokens + b.encoder.tokens.numel(), data_s};
}

std::vector<std::unique_ptr<OfaTrainTask>> make_train_tasks(Experiment& ex, int rank, int world) {
  std::vector<std::unique_ptr<OfaTrainTask>> out;
  for (TaskData& t : ex.tasks) out.push_back(std::make_unique<OfaTrainTask>(ex, t, rank, world));
  return out;
}

// ---- generation and evaluation ----------------------------------------------------
namespace {

GenerationOptions generation_options(const Experiment& ex, const GeneratorConfig& g, SlotType target,
                                     const std::vector<Sample>& samples) {
  GenerationOptions o;
  o.bos = Vocab::bos;
  o.eos = Vocab::eos;
  o.min_len = g.min_len;
  o.max_len = g.max_len;
  o.no_repeat_ngram = g.no_repeat_ngram;
  o.len_penalty = g.length_penalty;
  o.beam_size = std::max(1, g.beam);
  o.temperature = g.temperature;
  o.top_k = g.top_k;
  o.top_p = g.top_p;
  o.method = g.sampling ? SearchMethod::sample : (g.beam > 1 ? SearchMethod::beam : SearchMethod::greedy);
  for (const Sample& s : samples)
    o.prefix.push_back(std::vector<int64_t>(s.target.ids.begin(), s.target.ids.begin() + s.target_begin));
  if (target == SlotType::BOX) {
    const IdRange r = ex.vocab.range(TokenKind::location);
    o = fixed_length(o, 4, {r.begin, r.end});
    o.method = SearchMethod::greedy;
  } else if (target == SlotType::CONTINUOUS || target == SlotType::DISCRETE) {
    const IdRange r = ex.vocab.range(target == SlotType::CONTINUOUS ? TokenKind::continuous : TokenKind::discrete);
    o = fixed_length(o, g.max_len, {r.begin, r.end});
    if (o.method == SearchMethod::beam) o.method = SearchMethod::greedy;
  } else if (!samples.empty() && samples[0].closed_set && samples[0].answers) {
    std::vector<std::shared_ptr<const Trie>> tries;
    for (const Sample& s : samples) tries.push_back(s.answers);
    o.allowed_next = [tries](int64_t input, const std::vector<int64_t>& gen) {
      return tries[size_t(input)]->allowed_next(gen);
    };
    o.no_repeat_ngram = 0;  // answers may repeat words; the trie already constrains them
  }
  return o;
}

std::vector<double> parse_box(const std::string& s) { return parse_number_list(s); }

}  // namespace

std::vector<Prediction> predict(Experiment& ex, const SampleBuilder& builder, const GeneratorConfig& gen,
                                const std::vector<Sample>& samples) {
  std::vector<Prediction> out;
  if (samples.empty()) return out;
  autograd::NoGradGuard ng;
  ex.model->eval();
  constexpr size_t kBatch = 16;
  for (size_t b0 = 0; b0 < samples.size(); b0 += kBatch) {
    std::vector<Sample> chunk(samples.begin() + long(b0), samples.begin() + long(std::min(samples.size(), b0 + kBatch)));
    SampleBatch b = collate_samples(chunk, ex.vocab);
    OfaStepDecoder dec(*ex.model, ex.model->encode(ex.inputs(b)));
    GenerationOptions o = generation_options(ex, gen, chunk[0].target_type, chunk);
    Generator g(ex.config.seed);
    Hypotheses hs = generate(dec, o, &g);
    for (size_t i = 0; i < chunk.size(); ++i) {
      Prediction p;
      p.reference = chunk[i].target_value;
      if (!hs[i].empty()) p.tokens = hs[i][0].tokens;
      p.output = builder.decode(p.tokens, chunk[i]);
      out.push_back(std::move(p));
    }
  }
  return out;
}

EvalResult evaluate(Experiment& ex, TaskData& task, Split split, int64_t max_examples) {
  const Dataset* d = task.split(split);
  MM_CHECK(d, "evaluate: task '", task.cfg.name, "' has no ", split_name(split), " split");
  EvalResult r;
  int64_t n = d->size();
  if (max_examples > 0) n = std::min(n, max_examples);
  std::vector<int64_t> rows(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) rows[size_t(i)] = i;
  const bool wants_rollout = std::find(task.cfg.metrics.begin(), task.cfg.metrics.end(), "episode_return") !=
                             task.cfg.metrics.end();
  std::vector<Sample> samples = build_samples(task, *d, rows, 0);
  r.examples = int64_t(samples.size());
  r.predictions = predict(ex, *task.builder, task.cfg.generator, samples);
  std::vector<std::string> preds;
  Refs refs;
  std::vector<Box> pb, tb;
  for (const Prediction& p : r.predictions) {
    preds.push_back(p.output.text);
    refs.push_back({p.reference});
    if (p.output.type == SlotType::BOX) {
      auto t = parse_box(p.reference);
      MM_CHECK(t.size() == 4, "evaluate: task '", task.cfg.name, "': reference box '", p.reference, "' is not 4 numbers");
      pb.push_back(p.output.box);
      tb.push_back({t[0], t[1], t[2], t[3]});
    }
  }
  for (const std::string& m : task.cfg.metrics) {
    if (m == "iou_acc") {
      r.metrics[m] = iou_accuracy(pb, tb);
    } else if (m == "episode_return") {
      continue;  // below
    } else {
      r.metrics[m] = compute_metric(m, preds, refs).value;
    }
  }
  if (wants_rollout) {
    // The learned policy drives `episodes` point-mass simulations in lock step: each
    // step, every observation becomes a one-row sample and one batched, fixed-length
    // decoding gives all actions.
    constexpr int kEpisodes = 10;
    constexpr uint64_t kSeed = 7;
    const std::vector<std::string> cols = d->columns();
    const Template& tpl = task.cfg.plan.templates[0];
    const std::string obs_field = tpl.input.slots.empty() ? "obs" : tpl.input.slots[0].field();
    const std::string act_field = tpl.output.slots[size_t(tpl.target)].field();
    std::vector<PointMass> envs(kEpisodes);
    std::vector<std::vector<double>> obs(kEpisodes);
    std::vector<double> returns(kEpisodes, 0.0);
    for (int e = 0; e < kEpisodes; ++e) obs[size_t(e)] = envs[size_t(e)].reset(mix64(kSeed) + uint64_t(e));
    while (!envs[0].done()) {
      std::vector<Sample> batch;
      for (int e = 0; e < kEpisodes; ++e) {
        Row row;
        row.line = e + 1;
        for (const std::string& c : cols) {
          std::string v;
          if (c == obs_field)
            for (double x : obs[size_t(e)]) v += (v.empty() ? "" : " ") + cat(x);
          else if (c == act_field)
            v = "0 0";  // the target is generated, not read
          row.values.push_back(v);
        }
        batch.push_back(task.builder->build(row, cols, "rollout"));
      }
      std::vector<Prediction> acts = predict(ex, *task.builder, task.cfg.generator, batch);
      for (int e = 0; e < kEpisodes; ++e) {
        std::vector<double> a = acts[size_t(e)].output.values;
        a.resize(kPointMassAction, 0.0);
        StepResult st = envs[size_t(e)].step(a);
        returns[size_t(e)] += st.reward;
        obs[size_t(e)] = st.obs;
      }
    }
    r.metrics["episode_return"] = mean(returns);
    r.metrics["expert_return"] = rollout(point_mass_expert, kEpisodes, kSeed);
  }
  return r;
}

}  // namespace mm
