#include "tasks/trainer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "models/checkpoint.h"
#include "ops/autocast.h"
#include "ops/backend.h"
#include "ops/creation.h"
#include "runtime/safetensors.h"

namespace mm {
namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_sigint{false};
extern "C" void on_sigint(int) { g_sigint = true; }

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  MM_CHECK(f, "cannot read '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string format_duration(double s) {
  char buf[32];
  const long t = long(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

}  // namespace

void Trainer::install_sigint_handler() { std::signal(SIGINT, on_sigint); }

Trainer::Trainer(Module& model, std::vector<TrainTask*> tasks, const TrainOptions& opt, const AdamWOptions& adamw,
                 double weight_decay, Generator* model_rng, TrainHooks hooks)
    : model_(model), tasks_(std::move(tasks)), opt_(opt), model_rng_(model_rng), hooks_(std::move(hooks)) {
  MM_CHECK(!tasks_.empty(), "trainer: no tasks");
  // Decay matrices and embeddings; not biases and normalisation gains (dim < 2).
  ParamGroup decay{{}, weight_decay}, no_decay{{}, 0.0};
  for (auto& [name, p] : model_.named_parameters()) (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  params_ = model_.parameters();
  optim_ = std::make_unique<AdamW>(std::vector<ParamGroup>{decay, no_decay}, adamw);
  std::vector<TaskStats> stats;
  for (TrainTask* t : tasks_) stats.push_back({t->name(), t->num_examples(), t->ratio()});
  scheduler_ = make_scheduler(opt_.scheduler, stats);
  if (opt_.autocast == DType::f16) scaler_ = std::make_unique<LossScaler>(opt_.loss_scaler);
}

UpdateLog Trainer::update() {
  const auto t0 = std::chrono::steady_clock::now();
  UpdateLog u;
  u.update = update_;
  u.lr = opt_.schedule.lr(update_);
  model_.train(true);
  std::map<std::string, std::pair<double, double>> per_task;  // loss sum, sample size
  double sample_size = 0;
  bool bad = false;
  std::string bad_task;
  for (int ti : scheduler_->next_step()) {
    TrainTask& task = *tasks_[size_t(ti)];
    MicroBatchResult r;
    {
      AutocastGuard amp(opt_.autocast);  // the forward only: backward replays the graph's casts
      r = task.next_micro_batch();
    }
    MM_CHECK(r.loss.defined() && r.loss.numel() == 1, "trainer: task '", task.name(),
             "' returned a loss of shape ", r.loss.defined() ? cat(r.loss.shape()) : std::string("(undefined)"));
    const double l = to(r.loss, Device::cpu()).item();  // the loss may live on the device
    u.data_seconds += r.data_seconds;
    u.ntokens += r.ntokens;
    if (!std::isfinite(l)) {
      bad = true;
      bad_task = task.name();
      continue;  // no backward through a non-finite loss; the update is skipped below
    }
    auto& acc = per_task[task.name()];
    acc.first += l;
    acc.second += r.sample_size;
    sample_size += r.sample_size;
    autograd::backward(scaler_ ? scaler_->scale_loss(r.loss) : r.loss);  // f16: S times the loss
  }
  if (hooks_.all_reduce_max && hooks_.all_reduce_max(bad ? 1.0 : 0.0) > 0 && !bad) {
    bad = true;
    bad_task = "(on another rank)";
  }
  if (!bad) {
    autograd::NoGradGuard ng;
    if (hooks_.sync_gradients) {
      sample_size = hooks_.sync_gradients(sample_size);  // all-reduced and normalised
    } else if (sample_size > 0) {
      // Normalise the summed gradient once by the total sample size of every task.
      const double inv = 1.0 / sample_size;
      for (Tensor& p : params_) {
        Tensor g = p.grad();
        if (!g.defined()) continue;
        Tensor scaled = Tensor::empty(g.shape(), g.dtype(), g.device());
        backend_for(g.device()).unary(UnaryOp::scale, g, scaled, inv);
        p.impl()->grad = scaled.impl_ptr();
      }
    }
    if (scaler_) {
      u.loss_scale = scaler_->scale();
      // An f16 overflow at this scale is expected now and then: no step, the scale halves
      // (LossScaler::step), and it does not count towards max_bad_updates.
      if (!scaler_->unscale(params_)) {
        scaler_->step(*optim_, params_);
        u.skipped = true;
      }
    }
    if (!u.skipped) {
      u.grad_norm = opt_.clip_norm > 0 ? clip_grad_norm(params_, opt_.clip_norm) : grad_norm(params_);
      if (!std::isfinite(u.grad_norm)) {
        bad = true;
        bad_task = "(gradient norm)";
      }
    }
  }
  if (bad) {
    u.skipped = true;
    ++bad_in_a_row_;
    if (opt_.is_main)
      std::fprintf(stderr, "update %lld: non-finite loss in task %s; update skipped (%d in a row)\n",
                   (long long)update_, bad_task.c_str(), bad_in_a_row_);
    optim_->zero_grad();
    MM_CHECK(bad_in_a_row_ < opt_.max_bad_updates, "training stopped: ", bad_in_a_row_,
             " updates in a row had a non-finite loss or gradient (last: task ", bad_task, ", update ", update_,
             "); lower the learning rate or check the data");
  } else if (u.skipped) {
    optim_->zero_grad();  // f16 overflow, handled above
  } else {
    bad_in_a_row_ = 0;
    optim_->set_lr(u.lr);
    if (scaler_) scaler_->step(*optim_, params_);  // gradients already unscaled and finite
    else optim_->step();
    optim_->zero_grad();
  }
  for (auto& [name, ls] : per_task) u.task_loss[name] = ls.second > 0 ? ls.first / ls.second : 0.0;
  ++update_;
  u.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  history_.push_back(u);
  return u;
}

int64_t Trainer::train() {
  const int64_t start = update_;
  const auto t0 = std::chrono::steady_clock::now();
  while (update_ < opt_.max_updates) {
    if (stop_requested_ || g_sigint) {
      if (opt_.is_main) std::fprintf(stderr, "\ninterrupted at update %lld: saving a checkpoint\n", (long long)update_);
      if (!opt_.save_dir.empty()) save_checkpoint();
      g_sigint = false;
      return update_ - start;
    }
    UpdateLog u = update();
    if (opt_.log_every > 0 && (update_ % opt_.log_every == 0 || update_ == opt_.max_updates)) {
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double eta = elapsed / double(update_ - start) * double(opt_.max_updates - update_);
      if (opt_.is_main) {
        std::string losses;
        for (auto& [n, l] : u.task_loss) losses += cat(" ", n, " ", l);
        std::fprintf(stderr, "update %lld/%lld | lr %.3g | loss%s | %.0f tok/s | data %.0f%% | ETA %s\n",
                     (long long)update_, (long long)opt_.max_updates, u.lr, losses.c_str(),
                     double(u.ntokens) / u.seconds, 100.0 * u.data_seconds / u.seconds, format_duration(eta).c_str());
      }
      log(u);
    }
    if (!opt_.save_dir.empty() && opt_.save_every > 0 && update_ % opt_.save_every == 0) save_checkpoint();
    if (opt_.eval_every > 0 && update_ % opt_.eval_every == 0) maybe_evaluate(true);
  }
  if (opt_.eval_every == 0) maybe_evaluate(true);
  if (!opt_.save_dir.empty()) save_checkpoint();
  return update_ - start;
}

void Trainer::log(const UpdateLog& u) {
  if (!opt_.is_main || opt_.metrics_log.empty()) return;
  nlohmann::json j = {{"update", u.update + 1}, {"lr", u.lr},         {"grad_norm", u.grad_norm},
                      {"seconds", u.seconds},   {"data_seconds", u.data_seconds}, {"ntokens", u.ntokens},
                      {"skipped", u.skipped},   {"loss", u.task_loss}};
  if (u.loss_scale > 0) j["loss_scale"] = u.loss_scale;
  std::ofstream f(opt_.metrics_log, std::ios::app);
  MM_CHECK(f, "cannot append to the metrics log '", opt_.metrics_log, "'");
  f << j.dump() << "\n";
}

void Trainer::maybe_evaluate(bool force) {
  if (!force || !hooks_.evaluate) return;
  std::map<std::string, double> scores = hooks_.evaluate(update_);
  double total = 0;
  for (size_t i = 0; i < tasks_.size(); ++i) {
    auto it = scores.find(tasks_[i]->name());
    if (it == scores.end()) continue;
    scheduler_->observe_validation(int(i), it->second);
    total += it->second;
  }
  const double mean_score = scores.empty() ? 0.0 : total / double(scores.size());
  if (opt_.is_main && !opt_.metrics_log.empty()) {
    std::ofstream f(opt_.metrics_log, std::ios::app);
    f << nlohmann::json{{"update", update_}, {"eval", scores}, {"mean", mean_score}}.dump() << "\n";
  }
  if (mean_score > best_score_) {
    best_score_ = mean_score;
    if (!opt_.save_dir.empty()) save_checkpoint(true);
  }
}

nlohmann::json Trainer::trainer_state() const {
  nlohmann::json tasks = nlohmann::json::object();
  for (TrainTask* t : tasks_) tasks[t->name()] = t->state();
  nlohmann::json j = {{"update", update_},
                      {"bad_in_a_row", bad_in_a_row_},
                      {"best_score", best_score_},
                      {"scheduler", scheduler_->save_state()},
                      {"tasks", tasks}};
  if (model_rng_) j["model_rng"] = {model_rng_->seed(), model_rng_->offset()};
  if (scaler_) j["loss_scaler"] = scaler_->state();
  return j;
}

std::string Trainer::save_checkpoint(bool best) {
  MM_CHECK(!opt_.save_dir.empty(), "save_checkpoint: no save_dir configured");
  const std::string name = best ? "checkpoint_best" : cat("checkpoint_", update_);
  if (!opt_.is_main) return name;
  fs::create_directories(opt_.save_dir);
  const fs::path final_dir = fs::path(opt_.save_dir) / name;
  const fs::path tmp = fs::path(opt_.save_dir) / cat(".tmp_", name, "_", getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    save_safetensors((tmp / "model.safetensors").string(), host_tensors(model_.state_dict()), opt_.model_metadata);
    save_safetensors((tmp / "optimizer.safetensors").string(), host_tensors(optim_->state()));
    write_file_atomic((tmp / "trainer.json").string(), trainer_state().dump(2));
  } catch (...) {
    fs::remove_all(tmp);  // the previous checkpoints stay as they were
    throw;
  }
  // Swap the finished folder into place; only then point `latest` at it.
  const fs::path old = fs::path(opt_.save_dir) / cat(".old_", name, "_", getpid());
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  fs::remove_all(old);
  if (!best) {
    write_file_atomic((fs::path(opt_.save_dir) / "latest").string(), name + "\n");
    // Keep the newest keep_last numbered checkpoints.
    std::vector<std::pair<int64_t, fs::path>> numbered;
    for (auto& e : fs::directory_iterator(opt_.save_dir)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("checkpoint_", 0) == 0 && n != "checkpoint_best") {
        try {
          numbered.push_back({std::stoll(n.substr(11)), e.path()});
        } catch (...) {
        }
      }
    }
    std::sort(numbered.begin(), numbered.end());
    for (size_t i = 0; i + size_t(std::max(opt_.keep_last, 1)) < numbered.size(); ++i) fs::remove_all(numbered[i].second);
  }
  return final_dir.string();
}

bool Trainer::resume(const std::string& checkpoint_dir) {
  fs::path dir = checkpoint_dir;
  if (dir.empty()) {
    MM_CHECK(!opt_.save_dir.empty(), "resume: no save_dir configured");
    const fs::path latest = fs::path(opt_.save_dir) / "latest";
    if (!fs::exists(latest)) return false;
    std::string name = read_text(latest.string());
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    dir = fs::path(opt_.save_dir) / name;
  }
  MM_CHECK(fs::is_directory(dir), "resume: checkpoint folder '", dir.string(), "' does not exist");
  SafeTensors model = load_safetensors((dir / "model.safetensors").string());
  model_.load_state_dict(model.tensors);
  SafeTensors optim = load_safetensors((dir / "optimizer.safetensors").string());
  optim_->load_state(optim.tensors);
  nlohmann::json j;
  const std::string state_path = (dir / "trainer.json").string();
  try {
    j = nlohmann::json::parse(read_text(state_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("resume: corrupt '", state_path, "': ", e.what()));
  }
  update_ = j.at("update").get<int64_t>();
  bad_in_a_row_ = j.at("bad_in_a_row").get<int>();
  best_score_ = j.at("best_score").get<double>();
  scheduler_->load_state(j.at("scheduler").get<std::string>());
  for (TrainTask* t : tasks_) {
    MM_CHECK(j.at("tasks").contains(t->name()), "resume: '", state_path, "' has no state for task '", t->name(),
             "' (a checkpoint of another task list?)");
    t->load_state(j.at("tasks").at(t->name()));
  }
  if (scaler_ && j.contains("loss_scaler")) scaler_->load_state(j["loss_scaler"].get<std::map<std::string, double>>());
  if (model_rng_ && j.contains("model_rng"))
    model_rng_->set_state(j["model_rng"][0].get<uint64_t>(), j["model_rng"][1].get<uint64_t>());
  return true;
}

}  // namespace mm
