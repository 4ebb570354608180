// An experiment: what the train, eval and infer binaries share. From a YAML config (or a
// checkpoint) to the text tokenizer, the shared vocabulary, the OFA model and, per task,
// its datasets and sample builder; plus the TrainTask the trainer drives and the
// evaluation that generates answers and scores them with each task's metrics.
//
//   auto ex = Experiment::from_config("configs/demo.yaml", {"schedule.max_updates=50"});
//   std::vector<std::unique_ptr<OfaTrainTask>> tt = ex->train_tasks();
//   Trainer t(*ex->model, ptrs(tt), ex->train_options(), ...);  t.train();
//   EvalResult r = evaluate(*ex, ex->tasks[0], Split::test);    // r.metrics["accuracy"]
//
//   auto ex2 = Experiment::from_checkpoint("runs/demo/checkpoint_best");   // inference
//
// A checkpoint's model.safetensors carries everything needed to rebuild the experiment
// without the training data: the config YAML, the vocabulary, the tokenizer model and
// each closed-set task's answer list (metadata keys below).
#pragma once
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/generation.h"
#include "models/ofa.h"
#include "tasks/config.h"
#include "tasks/dataset.h"
#include "tasks/sample.h"
#include "tasks/text_tokenizer.h"
#include "tasks/trainer.h"
#include "tasks/vocab.h"

namespace mm {

// Applies `key=value` overrides (dotted paths; list items by index, e.g.
// "tasks.0.micro_batch_size=4") to YAML text; values are parsed as YAML scalars.
std::string apply_overrides(const std::string& yaml, const std::vector<std::string>& overrides);

enum class Split { train, valid, test };
const char* split_name(Split s);

struct TaskData {
  TaskConfig cfg;
  std::unique_ptr<Dataset> train, valid, test;  // null when absent or not opened
  std::unique_ptr<SampleBuilder> builder;
  std::vector<std::string> answers;             // closed-set answers (empty otherwise)
  const Dataset* split(Split s) const;
};

class Experiment {
 public:
  // Opens every dataset, trains the tokenizer (unless model.text_tokenizer names one),
  // builds the vocabulary, sample builders and a freshly initialised model.
  static std::unique_ptr<Experiment> from_config(const std::string& path,
                                                 const std::vector<std::string>& overrides = {});
  static std::unique_ptr<Experiment> from_config_text(const std::string& yaml, const std::string& name);
  // Rebuilds the experiment saved in a checkpoint folder (or a model.safetensors path)
  // and loads its weights. Datasets are opened only when open_data (e.g. for eval).
  // config_path (optional): take the tasks and data paths from this config instead of
  // the one saved in the checkpoint (the model, vocabulary and tokenizer stay the saved ones).
  static std::unique_ptr<Experiment> from_checkpoint(const std::string& path, bool open_data = false,
                                                     const std::vector<std::string>& overrides = {},
                                                     const std::string& config_path = "");

  Config config;
  std::string config_yaml;  // after overrides: what the checkpoint stores
  std::string config_name;  // the file it came from (messages)
  TextTokenizer tokenizer;
  Vocab vocab;
  std::unique_ptr<OfaModel> model;
  std::vector<TaskData> tasks;

  TaskData& task(const std::string& name);
  // Metadata for model.safetensors (models/checkpoint.h format + experiment entries).
  std::map<std::string, std::string> checkpoint_metadata() const;
  TrainOptions train_options(const std::string& save_dir) const;
  // The model's inputs for a collated batch.
  OfaInputs inputs(const SampleBatch& b) const;
  // A sample builder for an instruction that is not in the config (infer).
  std::unique_ptr<SampleBuilder> builder_for(const std::string& instruction,
                                             const std::vector<std::string>& answers = {}) const;

 private:
  // saved_answers: task -> closed-set answers (from a checkpoint); others are computed.
  void build(bool open_data, bool train_tokenizer, const nlohmann::json& saved_answers);
};

// Drives one task of an experiment for the trainer: micro-batches in a shuffled order
// per epoch (this rank's shard), samples built in parallel, the model's summed loss.
class OfaTrainTask : public TrainTask {
 public:
  OfaTrainTask(Experiment& ex, TaskData& task, int rank = 0, int world = 1);
  std::string name() const override { return task_.cfg.name; }
  int64_t num_examples() const override { return task_.train->size(); }
  double ratio() const override { return task_.cfg.sample_ratio; }
  MicroBatchResult next_micro_batch() override;
  nlohmann::json state() const override { return {{"epoch", epoch_}, {"pos", pos_}}; }
  void load_state(const nlohmann::json& s) override;
  int64_t skipped_rows() const { return skipped_; }

 private:
  Experiment& ex_;
  TaskData& task_;
  int rank_, world_;
  int64_t epoch_ = 0, pos_ = 0, skipped_ = 0;
  std::vector<int64_t> order_;
};
std::vector<std::unique_ptr<OfaTrainTask>> make_train_tasks(Experiment& ex, int rank = 0, int world = 1);

// Builds samples for dataset rows in parallel; rows that fail are rethrown (fail) or
// skipped and counted (skip), per the task's on_bad_row.
std::vector<Sample> build_samples(const TaskData& task, const Dataset& d, const std::vector<int64_t>& rows,
                                  uint64_t epoch, int64_t* skipped = nullptr);

struct Prediction {
  std::string reference;  // the target field as given
  TypedOutput output;
  std::vector<int64_t> tokens;
};
// Generates answers for samples of one task (batched, with the task's generator
// options: closed-set through the trie, BOX as four location bins, CONTINUOUS/DISCRETE
// as fixed-length range-restricted decoding, text by beam search).
std::vector<Prediction> predict(Experiment& ex, const SampleBuilder& builder, const GeneratorConfig& gen,
                                const std::vector<Sample>& samples);

struct EvalResult {
  std::map<std::string, double> metrics;
  std::vector<Prediction> predictions;
  int64_t examples = 0;
};
// Scores a split with the task's metrics (episode_return rolls the model out in the
// point-mass simulator). max_examples = 0: the whole split.
EvalResult evaluate(Experiment& ex, TaskData& task, Split split, int64_t max_examples = 0);

}  // namespace mm
