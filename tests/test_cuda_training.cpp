// Training on the device: the OFA model moved to the emulated cuda:0 (Module::to), fed
// host batches, trained by the Trainer, against the same run on the CPU; checkpoints are
// written from host copies.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "autograd/node.h"
#include "cuda/cuda_backend.h"
#include "models/checkpoint.h"
#include "models/generation.h"
#include "models/loss.h"
#include "models/ofa.h"
#include "models/ofa_step_decoder.h"
#include "ops/autocast.h"
#include "ops/creation.h"
#include "ops/matmul.h"
#include "ops/shape.h"
#include "runtime/safetensors.h"
#include "tasks/trainer.h"
#include "test_util.h"

using namespace mm;
using mm::test::check_close;
namespace fs = std::filesystem;

namespace {

struct CudaDevice {  // the emulated device, registered for one test case
  CudaDevice() { mm::cuda::init(); }
  ~CudaDevice() { mm::cuda::shutdown(); }
};

// One task over a fixed host micro-batch (image + text -> text, the second row padded),
// whatever device the model is on.
struct FixedBatchTask : TrainTask {
  OfaModel& model;
  OfaInputs in;
  Tensor target;
  explicit FixedBatchTask(OfaModel& m) : model(m) {
    Generator g(7);
    in.images = randn({2, 3, 32, 32}, g);
    in.src_tokens = Tensor::from_vector_i({1, 17, 23, 9, 40, 2, 1, 33, 12, 2, 0, 0}, {2, 6});
    in.prev_tokens = Tensor::from_vector_i({1, 50, 44, 52, 53, 1, 60, 61, 45, 0}, {2, 5});
    target = Tensor::from_vector_i({50, 44, 52, 53, 2, 60, 61, 45, 2, 0}, {2, 5});
  }
  std::string name() const override { return "fixed"; }
  int64_t num_examples() const override { return 2; }
  MicroBatchResult next_micro_batch() override {
    LossOptions lo;
    lo.label_smoothing = 0.1;
    LossResult r = sequence_loss(model.forward(in), target, Tensor(), lo);
    return {r.loss, double(r.sample_size), target.numel(), 0.0};
  }
  nlohmann::json state() const override { return nlohmann::json::object(); }
  void load_state(const nlohmann::json&) override {}
};

// The micro OFA over a 64-token vocabulary.
OfaConfig micro_config(double dropout) {
  OfaConfig c = OfaConfig::preset("micro");
  c.vocab_size = 64;
  c.dropout = dropout;
  return c;
}

// A short run: `updates` updates, lr 1e-3 decaying over them, no progress lines.
TrainOptions short_run(int64_t updates) {
  TrainOptions o;
  o.max_updates = updates;
  o.log_every = 0;
  o.schedule.peak = 1e-3;
  o.schedule.total = updates;
  return o;
}

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("cuda: the trainer trains a micro OFA on cuda:0 as on the CPU; checkpoints come back to the host") {
  CudaDevice cuda_device;
  OfaConfig c = micro_config(0.1);  // Philox dropout masks: the same on both devices
  c.continuous_begin = 40;  // and the value embedding, tokens 40..47
  c.continuous_bins = 8;
  const std::string dir = "/tmp/mm_test_cuda_training";
  fs::remove_all(dir);

  std::vector<std::vector<double>> losses(2);
  std::vector<std::map<std::string, Tensor>> trained(2);
  std::vector<Hypotheses> beams(2);
  std::vector<std::map<std::string, Tensor>> first_grads(2);
  for (int k = 0; k < 2; ++k) {
    const Device d = k == 0 ? Device::cpu() : Device::cuda(0);
    OfaModel m(c);
    m.to(d);
    CHECK(m.device() == d);
    for (auto& [name, p] : m.named_parameters()) {
      CHECK_MESSAGE(p.device() == d, name);
      CHECK_MESSAGE(p.requires_grad(), name);
    }
    FixedBatchTask task(m);
    {  // one forward and backward by hand: the gradients, before any optimizer step
      MicroBatchResult r = task.next_micro_batch();
      autograd::backward(r.loss);
      for (auto& [name, p] : m.named_parameters())  // (the audio and video adaptors get none)
        if (p.grad().defined()) first_grads[size_t(k)][name] = to(p.grad(), Device::cpu());
      m.zero_grad();
    }
    TrainOptions o = short_run(3);
    o.save_dir = k == 1 ? dir : "";
    Trainer trainer(m, {&task}, o, AdamWOptions{}, 0.01, &m.dropout_generator());
    for (int step = 0; step < 3; ++step) {
      UpdateLog u = trainer.update();
      REQUIRE_FALSE(u.skipped);
      losses[size_t(k)].push_back(u.task_loss.at("fixed"));
    }
    for (auto& [name, t] : m.state_dict()) trained[size_t(k)][name] = to(t, Device::cpu());
    // Beam search on the trained model: the KV cache and encoder rows are reordered on d.
    m.eval();
    OfaStepDecoder dec(m, m.encode(task.in));
    GenerationOptions g;
    g.beam_size = 3;
    g.max_len = 4;
    beams[size_t(k)] = generate(dec, g);
    if (k == 1) {
      const std::string ck = trainer.save_checkpoint();
      SafeTensors st = load_safetensors((fs::path(dir) / ck / "model.safetensors").string());
      for (auto& [name, t] : st.tensors) CHECK_MESSAGE(t.device().is_cpu(), name);
      check_close(st.tensors.at("continuous_embed.weight"), trained[1].at("continuous_embed.weight"), 0, 0,
                  "saved value embedding");
      SafeTensors opt = load_safetensors((fs::path(dir) / ck / "optimizer.safetensors").string());
      CHECK(opt.tensors.size() > 1);
    }
  }
  MESSAGE("losses cpu ", losses[0][0], " ", losses[0][1], " ", losses[0][2], " | cuda:0 ", losses[1][0], " ",
          losses[1][1], " ", losses[1][2]);
  CHECK(losses[0][2] < losses[0][0]);  // it learns
  for (size_t i = 0; i < 3; ++i) CHECK(losses[1][i] == doctest::Approx(losses[0][i]).epsilon(1e-4));
  CHECK(first_grads[1].size() == first_grads[0].size());
  CHECK(first_grads[0].size() > 20);
  for (auto& [name, g] : first_grads[0]) {
    REQUIRE_MESSAGE(first_grads[1].count(name), name);
    check_close(first_grads[1].at(name), g, 1e-5, 1e-3, "gradient of " + name);
  }
  // Parameters: Adam moves a parameter by about lr a step whatever its gradient's size, so
  // one whose gradient is rounding noise (on the H200: the ResNet stem's bn1.bias) may step
  // either way on two devices whose sums round differently (on the H200 it did): the
  // bound is 3 steps of lr; the losses above and the gradients are the tight checks.
  for (auto& [name, t] : trained[0]) check_close(trained[1].at(name), t, 3 * 1e-3, 1e-4, name);
  for (size_t b = 0; b < 2; ++b) {
    CHECK(beams[1][b][0].tokens == beams[0][b][0].tokens);
    CHECK(beams[1][b][0].score == doctest::Approx(beams[0][b][0].score).epsilon(1e-4));
  }
  fs::remove_all(dir);
}

TEST_CASE("cuda: bf16 autocast: products in bf16, weights in f32, training tracks f32") {
  CudaDevice cuda_device;
  const Device d = Device::cuda(0);
  {  // the op: bf16 operands, an f32 result within bf16 rounding; CPU tensors untouched
    Generator g(3);
    const Tensor x = randn({5, 48}, g), w = randn({24, 48}, g), b = randn({24}, g);
    const Tensor ref = linear(to(x, d), to(w, d), to(b, d));
    AutocastGuard amp(DType::bf16);
    const Tensor y = linear(to(x, d), to(w, d), to(b, d));
    CHECK(y.dtype() == DType::f32);
    CHECK(y.device() == d);
    check_close(to(y, Device::cpu()), to(ref, Device::cpu()), 0.15, 2e-2, "bf16 linear");
    CHECK(to(y, Device::cpu()).to_vector() != to(ref, Device::cpu()).to_vector());  // it did run in bf16
    CHECK(matmul(x, transpose(w, 0, 1)).to_vector() == matmul(x, transpose(w, 0, 1)).to_vector());
    CHECK(linear(x, w, b).dtype() == DType::f32);
  }
  const OfaConfig c = micro_config(0.0);
  std::vector<std::vector<double>> losses(2);
  for (int k = 0; k < 2; ++k) {
    OfaModel m(c);
    m.to(k == 0 ? Device::cpu() : d);
    FixedBatchTask task(m);
    TrainOptions o = short_run(3);
    if (k == 1) o.autocast = DType::bf16;
    Trainer trainer(m, {&task}, o, AdamWOptions{}, 0.01, &m.dropout_generator());
    for (int step = 0; step < 3; ++step) {
      UpdateLog u = trainer.update();
      REQUIRE_FALSE(u.skipped);
      losses[size_t(k)].push_back(u.task_loss.at("fixed"));
    }
    for (auto& [name, p] : m.named_parameters()) CHECK_MESSAGE(p.dtype() == DType::f32, name);
  }
  MESSAGE("losses f32 cpu ", losses[0][0], " ", losses[0][1], " ", losses[0][2], " | bf16 autocast cuda:0 ",
          losses[1][0], " ", losses[1][1], " ", losses[1][2]);
  CHECK(losses[1][2] < losses[1][0]);
  for (size_t i = 0; i < 3; ++i) CHECK(losses[1][i] == doctest::Approx(losses[0][i]).epsilon(2e-2));
  CHECK(losses[1][0] != losses[0][0]);
}

TEST_CASE("cuda: f16 autocast with dynamic loss scaling: an overflow skips the update and backs off the scale") {
  CudaDevice cuda_device;
  const OfaConfig c = micro_config(0.0);
  OfaModel m(c);
  m.to(Device::cuda(0));
  FixedBatchTask task(m);
  TrainOptions o = short_run(4);
  o.autocast = DType::f16;
  o.loss_scaler.init_scale = 1e30;  // every f16 gradient overflows at this scale
  o.loss_scaler.backoff_factor = 1e-27;  // ... and fits after one backoff (1e3)
  Trainer trainer(m, {&task}, o, AdamWOptions{}, 0.01, &m.dropout_generator());
  const std::map<std::string, Tensor> before = [&] {
    std::map<std::string, Tensor> s;
    for (auto& [n, t] : m.state_dict()) s[n] = to(t, Device::cpu()).detach();
    return s;
  }();
  UpdateLog u0 = trainer.update();
  CHECK(u0.skipped);
  CHECK(u0.loss_scale == doctest::Approx(1e30));
  for (auto& [n, t] : m.named_parameters())  // no step was taken
    CHECK_MESSAGE(to(t, Device::cpu()).to_vector() == before.at(n).to_vector(), n);
  std::vector<double> losses{u0.task_loss.at("fixed")};
  for (int step = 1; step < 4; ++step) {
    UpdateLog u = trainer.update();
    CHECK_FALSE(u.skipped);
    CHECK(u.loss_scale == doctest::Approx(1e3));
    losses.push_back(u.task_loss.at("fixed"));
  }
  MESSAGE("f16 losses ", losses[0], " ", losses[1], " ", losses[2], " ", losses[3]);
  CHECK(losses[3] < losses[1]);
  for (auto& [n, t] : m.named_parameters()) CHECK_MESSAGE(t.dtype() == DType::f32, n);
}

}  // TEST_SUITE
