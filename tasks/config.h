// Training configuration (YAML): global sections plus a list of tasks.
//
//   Config c = load_config("configs/caption_vqa.yaml");   // or parse_config(text, name)
//   for (const TaskConfig& t : c.tasks) ... t.plan, t.train, t.micro_batch_size ...
//
// Example:
//   seed: 1
//   model:     {arch: ofa, size: tiny}
//   optimizer: {lr: 1.0e-4, weight_decay: 0.01}
//   schedule:  {warmup_updates: 500, max_updates: 20000, decay: cosine}
//   scheduler: {name: temperature, temperature: 2}
//   tasks:
//     - name: caption
//       instruction: "[IMAGE:img] what does the image describe? -> [TEXT:cap]"
//       train: data/caption_train.tsv
//       valid: data/caption_valid.tsv
//       metrics: [bleu, cider]
//       generator: {beam: 5, max_len: 20}
//
// Every key and its default (a key not listed here is an error naming it and its line):
//
// | key                            | default      | meaning                                       |
// |--------------------------------|--------------|-----------------------------------------------|
// | seed                           | 1            | seeds data order, templates, schedulers       |
// | model.arch                     | ofa          | ofa (encoder-decoder) or gato (decoder-only)  |
// | model.size                     | tiny         | ofa: micro tiny medium base large huge;       |
// |                                |              | gato: 79m 364m 1.18b                          |
// | model.dropout                  | 0.1          | residual/embedding dropout                    |
// | model.attention_dropout        | 0.0          | dropout on attention probabilities            |
// | model.drop_path                | 0.0          | stochastic depth at the last layer (linear)   |
// | model.image_size               | 480          | square input side for IMAGE (OFA)             |
// | model.image_adaptor            | resnet       | resnet (stem + stages 1-3) or patch (Gato-    |
// |                                |              | style 16x16 patch embedder, for small images) |
// | model.resnet_blocks            | (the size's) | resnet: blocks of stages 1-3, e.g. [1, 1, 1]  |
// | model.resnet_width             | (the size's) | resnet: stage-1 width (64 in OFA)             |
// | model.entangle_positions       | false        | positions added to the content too (OFASys)   |
// | model.video_frames             | 8            | VIDEO: frames sampled evenly per clip         |
// | model.max_source_positions     | 1024         | encoder length limit                          |
// | model.max_target_positions     | 1024         | decoder length limit                          |
// | model.text_tokenizer           | ""           | SentencePiece model path ("" = train one)     |
// | model.text_vocab_size          | 32000        | subword count when a tokenizer is trained     |
// | model.phones                   | 0            | size of the phone range of the vocabulary     |
// | optimizer.name                 | adamw        | only adamw for now                            |
// | optimizer.lr                   | 1.0e-4       | peak learning rate                            |
// | optimizer.betas                | [0.9, 0.999] | AdamW betas                                   |
// | optimizer.eps                  | 1.0e-8       | AdamW epsilon                                 |
// | optimizer.weight_decay         | 0.01         | decoupled weight decay                        |
// | optimizer.clip_norm            | 1.0          | global gradient-norm clip (0 = off)           |
// | schedule.decay                 | polynomial   | polynomial, cosine or constant after warmup   |
// | schedule.warmup_updates        | 1000         | linear warmup length                          |
// | schedule.max_updates           | 100000       | total updates (0 = use max_epochs)            |
// | schedule.max_epochs            | 0            | epochs of the largest task (0 = no limit)     |
// | schedule.end_lr                | 0.0          | learning rate at the end of decay             |
// | schedule.power                 | 1.0          | polynomial decay power                        |
// | scheduler.name                 | all_tasks    | see tasks/scheduler.h for the eight names     |
// | scheduler.update_freq          | 1            | micro-batches per task per update             |
// | scheduler.temperature          | 2.0          | temperature scheduler T                       |
// | scheduler.cap                  | 262144       | examples_cap K                                |
// | scheduler.uncertainty_floor    | 0.01         | uncertainty: minimum weight                   |
// | scheduler.patience             | 3            | stop_and_go: evaluations without improvement  |
// | scheduler.stop_every           | 4            | stop_and_go: stopped tasks every k-th update  |
// | scheduler.min_delta            | 0.0          | stop_and_go: improvement threshold            |
// | scheduler.mixed_slots          | 8            | mixed: sequences per batch                    |
// | tasks[].name                   | (required)   | unique task name                              |
// | tasks[].instruction            | (required)   | one instruction or a list (joined by |||)     |
// | tasks[].train / valid / test   | []           | a path or a list of paths (.tsv / .jsonl)     |
// | tasks[].micro_batch_size       | 8            | samples per micro-batch                       |
// | tasks[].weight                 | 1.0          | loss weight                                   |
// | tasks[].sample_ratio           | 1.0          | fixed_ratio / mixed sampling ratio            |
// | tasks[].on_bad_row             | fail         | fail or skip                                  |
// | tasks[].answers                | ""           | closed_set answer list file (one per line)    |
// | tasks[].loss.label_smoothing   | 0.1          | label smoothing of the cross entropy          |
// | tasks[].metrics                | [accuracy]   | accuracy bleu cider rouge_l iou_acc wer       |
// |                                |              | exact_match episode_return                    |
// | tasks[].generator.beam         | 5            | beam size (1 = greedy)                        |
// | tasks[].generator.max_len      | 64           | maximum generated tokens                      |
// | tasks[].generator.min_len      | 1            | minimum generated tokens                      |
// | tasks[].generator.no_repeat_ngram | 3         | block repeated n-grams (0 = off)              |
// | tasks[].generator.length_penalty  | 1.0       | beam score / length^penalty                   |
// | tasks[].generator.sampling     | false        | sample instead of beam search                 |
// | tasks[].generator.top_k        | 0            | sampling: keep the k best (0 = all)           |
// | tasks[].generator.top_p        | 1.0          | sampling: nucleus mass                        |
// | tasks[].generator.temperature  | 1.0          | sampling temperature                          |
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tasks/dataset.h"
#include "tasks/instruction.h"
#include "tasks/scheduler.h"

namespace mm {

struct ModelConfig {
  std::string arch = "ofa";
  std::string size = "tiny";
  double dropout = 0.1;
  double attention_dropout = 0.0;
  double drop_path = 0.0;
  int image_size = 480;
  int video_frames = 8;                // VIDEO: frames sampled evenly from each clip
  std::string image_adaptor = "resnet";
  std::vector<int64_t> resnet_blocks;  // empty: the size's ResNet stages (OfaConfig presets)
  int64_t resnet_width = 0;            // 0: the size's width
  bool entangle_positions = false;     // positions in the content too (OFASys defaults to true; OfaConfig)
  int max_source_positions = 1024;
  int max_target_positions = 1024;
  std::string text_tokenizer = "";
  int64_t text_vocab_size = 32000;
  int64_t phones = 0;
};

struct OptimizerConfig {
  std::string name = "adamw";
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  double clip_norm = 1.0;
};

struct ScheduleConfig {
  std::string decay = "polynomial";
  int64_t warmup_updates = 1000;
  int64_t max_updates = 100000;
  int64_t max_epochs = 0;
  double end_lr = 0.0;
  double power = 1.0;
};

struct GeneratorConfig {
  int beam = 5;
  int max_len = 64;
  int min_len = 1;
  int no_repeat_ngram = 3;
  double length_penalty = 1.0;
  bool sampling = false;
  int top_k = 0;
  double top_p = 1.0;
  double temperature = 1.0;
};

struct TaskConfig {
  std::string name = {};
  std::vector<std::string> instructions = {};  // as written
  Plan plan = {};                              // parsed from the instructions joined by |||
  std::vector<std::string> train = {}, valid = {}, test = {};
  int micro_batch_size = 8;
  double weight = 1.0;
  double sample_ratio = 1.0;
  OnBadRow on_bad_row = OnBadRow::fail;
  std::string answers = "";
  double label_smoothing = 0.1;
  std::vector<std::string> metrics = {"accuracy"};
  GeneratorConfig generator = {};
  int line = 0;  // 1-based line of the task in the file
};

struct Config {
  uint64_t seed = 1;
  ModelConfig model;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  SchedulerOptions scheduler;  // scheduler.seed is set from `seed`
  std::vector<TaskConfig> tasks;
};

// Parses YAML text; `name` (a file name) prefixes every error as NAME:LINE:COLUMN.
Config parse_config(const std::string& yaml, const std::string& name = "config");
// Reads and parses a file.
Config load_config(const std::string& path);

}  // namespace mm
