// build/train CONFIG.yaml [options]: trains one model on every task of the config.
//
//   build/train configs/demo.yaml                           # runs/demo/, resumes if present
//   build/train configs/demo.yaml --set schedule.max_updates=50 --save-dir /tmp/run
//   build/train configs/demo.yaml --check                   # validate config and data only
//   mpirun -np 2 build/train configs/demo.yaml              # data parallel over MPI
//
// Options:
//   --set KEY=VALUE   override a config key (dotted path, e.g. tasks.0.micro_batch_size=4)
//   --save-dir DIR    checkpoints and logs (default runs/<config name>)
//   --no-resume       start fresh even when DIR holds a checkpoint
//   --check           parse the config, open every file, build one micro-batch per task
//   --eval-examples N examples per task for the periodic validation (default 100)
//   --eval-every N    updates between validations (default: 4 times per run; 0 = at the end)
//   --device cpu|cuda where to train (cuda needs a build with the CUDA backend and a GPU)
//   --bf16            with --device cuda: bf16 matrix products, f32 weights (ops/autocast.h)
//   --fp16            the same in f16, with dynamic loss scaling (autograd/loss_scaler.h)
// Ctrl-C saves a checkpoint and exits; running the same command again resumes from it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tools/tool_main.h"
#include "autograd/data_parallel.h"
#include "cuda/cuda_backend.h"
#include "runtime/dist.h"
#include "runtime/parallel.h"
#include "tasks/experiment.h"
#include "tasks/metrics.h"

using namespace mm;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "%s\nusage: build/train CONFIG.yaml [--set KEY=VALUE ...] [--save-dir DIR] [--no-resume] "
               "[--check] [--eval-examples N] [--device cpu|cuda] [--bf16|--fp16]\n",
               why);
  std::exit(2);
}

// " | video [8, 8, 3, 64, 64] 8 present, range [-1, 1]" for each medium in the batch: a
// glance at what the model will see (all padding or all zeros would show here).
std::string media_summary(const SampleBatch& b) {
  std::string out;
  auto add = [&](const char* name, const Tensor& x, const Tensor& present) {
    if (!x.defined()) return;
    const std::vector<double> v = x.to_vector();
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    int64_t n = x.size(0);
    if (present.defined()) {
      n = 0;
      for (double p : present.to_vector()) n += p != 0.0;
    }
    out += cat(" | ", name, " ", x.shape(), " ", n, " present, range [", *lo, ", ", *hi, "]");
  };
  add("image", b.images, b.image_present);
  add("audio", b.audio, Tensor());
  add("video", b.video, b.video_present);
  return out;
}

int check(Experiment& ex) {
  for (TaskData& t : ex.tasks) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < std::min<int64_t>(t.train->size(), t.cfg.micro_batch_size); ++i) rows.push_back(i);
    std::vector<Sample> s = build_samples(t, *t.train, rows, 0);
    SampleBatch b = collate_samples(s, ex.vocab);
    std::printf("task %-10s train %6lld valid %5lld test %5lld | micro-batch %d: encoder %s decoder %s%s\n",
                t.cfg.name.c_str(), (long long)t.train->size(), (long long)(t.valid ? t.valid->size() : 0),
                (long long)(t.test ? t.test->size() : 0), t.cfg.micro_batch_size, cat(b.encoder.tokens.shape()).c_str(),
                cat(b.decoder.target.shape()).c_str(), t.answers.empty() ? "" : cat(", ", t.answers.size(), " answers").c_str());
    const std::string media = media_summary(b);
    if (!media.empty()) std::printf("  %s\n", media.c_str() + 3);  // without the leading " | "
  }
  std::printf("vocabulary %lld ids (text %d) | model %s, %lld parameters | config OK\n", (long long)ex.vocab.size(),
              int(ex.vocab.range(TokenKind::text).size()), ex.config.model.size.c_str(), (long long)ex.model->num_parameters());
  return 0;
}

int run(int argc, char** argv) {
  std::string config, save_dir, device = "cpu";
  std::vector<std::string> sets;
  bool do_check = false, resume = true;
  DType half = DType::f32;  // autocast: f32 = off
  int64_t eval_examples = 100, eval_every = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--set") sets.push_back(next());
    else if (a == "--save-dir") save_dir = next();
    else if (a == "--check") do_check = true;
    else if (a == "--no-resume") resume = false;
    else if (a == "--eval-examples") eval_examples = std::stoll(next());
    else if (a == "--eval-every") eval_every = std::stoll(next());
    else if (a == "--device") device = next();
    else if (a == "--bf16") half = DType::bf16;
    else if (a == "--fp16") half = DType::f16;
    else if (a == "-h" || a == "--help") usage("build/train: train a model on the tasks of a config");
    else if (!a.empty() && a[0] == '-') usage(("unknown option " + a).c_str());
    else if (config.empty()) config = a;
    else usage("more than one config file given");
  }
  if (config.empty()) usage("no config file given");
  Device dev = Device::parse(device);  // a clear error for names that are no device
  if (dev.is_cuda()) {
    // The default build runs the CUDA kernels in the CPU emulator (for tests), never for training.
    MM_CHECK(!cuda::emulated(), "--device ", device, ": this binary was built without the GPU backend; build it "
             "with `make CUDA=1` (binaries in build-cuda/)");
    dev = cuda::select_device(device);  // one line saying why when there is no usable GPU
  }

  dist::Session session;  // MPI when launched by mpirun; a world of one otherwise
  dist::Comm& comm = dist::world();
  MM_CHECK(half == DType::f32 || dev.is_cuda(), "--bf16 / --fp16: autocast runs on a GPU (--device cuda); the "
           "CPU trains in f32");
  MM_CHECK(dev.is_cpu() || comm.size() == 1, "--device ", device, ": data-parallel training on GPUs (NCCL "
           "all-reduce in the trainer) is not wired in yet; run one process per GPU job");
  auto ex = Experiment::from_config(config, sets);
  if (do_check) return check(*ex);
  // Parameters move before the trainer builds its optimizer; batches stay on the host
  // and the model moves each input to its device (models/ofa.cpp).
  ex->model->to(dev);

  if (save_dir.empty()) save_dir = (fs::path("runs") / fs::path(config).stem()).string();
  auto tasks = make_train_tasks(*ex, comm.rank(), comm.size());
  std::vector<TrainTask*> ptrs;
  for (auto& t : tasks) ptrs.push_back(t.get());

  TrainOptions opt = ex->train_options(save_dir);
  opt.is_main = comm.is_main();
  opt.autocast = half;
  opt.metrics_log = (fs::path(save_dir) / "metrics.jsonl").string();
  opt.log_every = std::clamp<int64_t>(opt.max_updates / 50, 1, 10);
  opt.eval_every = eval_every >= 0 ? eval_every : std::max<int64_t>(opt.max_updates / 4, 1);
  if (comm.is_main()) fs::create_directories(save_dir);

  TrainHooks hooks;
  std::unique_ptr<GradSync> sync;
  if (comm.size() > 1) {
    broadcast_parameters(comm, *ex->model);
    sync = std::make_unique<GradSync>(comm, ex->model->parameters());
    hooks.sync_gradients = [&](double local) { return double(sync->reduce(int64_t(local))); };
    hooks.all_reduce_max = [&](double x) { return comm.all_reduce(x, dist::Op::max); };
  }
  hooks.evaluate = [&](int64_t update) {
    std::map<std::string, double> scores;
    if (!comm.is_main()) return scores;
    for (TaskData& t : ex->tasks) {
      if (!t.valid) continue;
      EvalResult r = evaluate(*ex, t, Split::valid, eval_examples);
      const std::string& m = t.cfg.metrics.at(0);
      const double v = r.metrics.count(m) ? r.metrics.at(m) : 0.0;
      scores[t.cfg.name] = metric_higher_is_better(m) ? v : -v;
      std::fprintf(stderr, "  eval update %lld | %-10s %s %.4f\n", (long long)update, t.cfg.name.c_str(), m.c_str(), v);
    }
    return scores;
  };
  const AdamWOptions adamw{ex->config.optimizer.lr, ex->config.optimizer.beta1, ex->config.optimizer.beta2,
                           ex->config.optimizer.eps};
  Trainer trainer(*ex->model, ptrs, opt, adamw, ex->config.optimizer.weight_decay, &ex->model->dropout_generator(),
                  hooks);
  if (resume && trainer.resume() && comm.is_main())
    std::fprintf(stderr, "resumed from %s at update %lld\n", save_dir.c_str(), (long long)trainer.updates_done());
  if (comm.is_main())
    std::fprintf(stderr, "training %s: %zu tasks, %lld parameters, %d threads, %d rank(s), checkpoints in %s\n",
                 config.c_str(), ptrs.size(), (long long)ex->model->num_parameters(), num_threads(), comm.size(),
                 save_dir.c_str());
  Trainer::install_sigint_handler();
  trainer.train();
  for (auto& t : tasks)
    if (t->skipped_rows() > 0 && comm.is_main())
      std::fprintf(stderr, "task %s: %lld bad rows skipped\n", t->name().c_str(), (long long)t->skipped_rows());
  return trainer.updates_done() < opt.max_updates ? 130 : 0;  // 130: interrupted (saved)
}

}  // namespace

int main(int argc, char** argv) { return mm::tool_main("train", argc, argv, run); }
