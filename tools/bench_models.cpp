// build/bench_models [ofa|gpt2|all] [--steps N] [--size S] [--device D]: whole training
// steps of the models.
//
//   ofa   OFA-tiny: B=8, 128x128 images (64 patches), source text 32, target 16,
//         vocab 59457, label smoothing 0.1, AdamW, dropout 0 (as the PyTorch reference)
//   gpt2  the GPT-2-124M-shaped decoder: B=4, T=64, vocab 50257, AdamW
//         (191.6 GFLOP per step: forward 1/3, backward 2/3), reported against this
//         machine's sgemm rate (cblas_sgemm 1024^3 on all threads)
// Each step is split into forward (model + loss), backward and optimizer; the median
// of --steps timed steps (default 3) after one warm-up step. Memory: the tensor
// allocator's peak during a step, and the process's peak resident set (VmHWM).
// The PyTorch side of the comparison is tools/ref/bench_torch.py.
//   --size S     the OFA preset (default tiny; base is the OFA paper's 180M model)
//   --device D   cpu (default) or cuda[:N] for the OFA bench (a CUDA=1 build and a GPU;
//                f32, our kernels and cuBLAS): the phases are timed after synchronising
//                the device
//   --bf16       with --device cuda: the forward under AutocastGuard(bf16) (ops/autocast.h)
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "autograd/optim.h"
#include "models/gato.h"
#include "models/loss.h"
#include "models/ofa.h"
#include "ops/autocast.h"
#include "ops/creation.h"
#include "cuda/cuda_backend.h"
#include "cuda/stream.h"
#include "runtime/allocator.h"
#include "runtime/blas.h"
#include "runtime/parallel.h"


using namespace mm;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

double sgemm_gflops() {
  const int N = 1024;
  std::vector<float> a(size_t(N) * N, 0.5f), b(size_t(N) * N, 0.25f), c(size_t(N) * N);
  set_blas_threads(num_threads());
  std::vector<double> ts;
  for (int i = 0; i < 6; ++i) {
    auto t0 = Clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a.data(), N, b.data(), N, 0.0f, c.data(), N);
    ts.push_back(seconds_since(t0));
  }
  set_blas_threads(1);
  return 2.0 * N * N * double(N) / median(ts) / 1e9;
}

struct Split {
  double fwd, bwd, opt, total;
  double loss;
};

Device g_device = Device::cpu();
bool g_bf16 = false;

// Phases on a GPU run asynchronously: wait for them before reading the clock.
void sync() {
  if (g_device.is_cuda()) cuda::synchronize();
}

// Times `steps` training steps after one warm-up; fn_forward returns the loss to backprop.
Split time_steps(int steps, const std::function<Tensor()>& forward, Optimizer& opt) {
  std::vector<double> f, b, o, t;
  double loss = 0;
  for (int s = 0; s <= steps; ++s) {
    if (s == 1) cpu_allocator().reset_peak();
    sync();
    auto t0 = Clock::now();
    Tensor l;
    {
      AutocastGuard amp(g_bf16 ? DType::bf16 : DType::f32);
      l = forward();
    }
    sync();
    const double tf = seconds_since(t0);
    loss = to(l, Device::cpu()).item();
    auto t1 = Clock::now();
    autograd::backward(l);
    sync();
    const double tb = seconds_since(t1);
    auto t2 = Clock::now();
    opt.step();
    opt.zero_grad();
    sync();
    const double topt = seconds_since(t2);
    if (s == 0) continue;  // warm-up: allocator caches, thread pool, page faults
    f.push_back(tf);
    b.push_back(tb);
    o.push_back(topt);
    t.push_back(tf + tb + topt);
  }
  return {median(f), median(b), median(o), median(t), loss};
}

void report(const char* name, const Split& s, double gflop, double sgemm) {
  std::printf("%-10s step %.3f s = forward %.3f + backward %.3f + optimizer %.3f   (loss %.3f)\n", name, s.total,
              s.fwd, s.bwd, s.opt, s.loss);
  if (gflop > 0)
    std::printf("%-10s %.1f GFLOP/step -> %.1f GFLOP/s = %.0f%% of sgemm %.1f GFLOP/s\n", name, gflop, gflop / s.total,
                100.0 * gflop / s.total / sgemm, sgemm);
  if (g_device.is_cuda())
    std::printf("%-10s on %s\n", name, g_device.str().c_str());
  else
    std::printf("%-10s peak tensor memory %.0f MB, process peak RSS %.0f MB\n", name,
                double(cpu_allocator().stats().peak_allocated) / 1e6, peak_rss_mb());
}

void bench_ofa(int steps, const std::string& size) {
  OfaConfig c = OfaConfig::preset(size);
  c.dropout = 0.0;
  OfaModel m(c);
  m.to(g_device);  // before the optimizer: its state is made where the parameters are
  m.train();
  Generator g(1);
  const int64_t B = 8, Ts = 32, Tt = 16, V = c.vocab_size;
  OfaInputs in;
  in.images = rand({B, 3, 128, 128}, g, -1.0, 1.0);
  std::vector<int64_t> src, prev, tgt;
  for (int64_t i = 0; i < B * Ts; ++i) src.push_back(6 + (i * 7919) % (V - 6));
  for (int64_t i = 0; i < B * Tt; ++i) tgt.push_back(6 + (i * 104729) % (V - 6));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tt; ++t) prev.push_back(t == 0 ? 1 : tgt[size_t(b * Tt + t - 1)]);
  in.src_tokens = Tensor::from_vector_i(src, {B, Ts});
  in.prev_tokens = Tensor::from_vector_i(prev, {B, Tt});
  Tensor target = Tensor::from_vector_i(tgt, {B, Tt});
  AdamWOptions ao;
  ao.lr = 1e-4;
  AdamW opt({{m.parameters(), 0.01}}, ao);
  LossOptions lo;
  lo.label_smoothing = 0.1;
  Split s = time_steps(steps, [&] {
    LossResult r = sequence_loss(m.forward(in), target, Tensor(), lo);
    return r.loss;
  }, opt);
  std::printf("OFA-%s: %.1fM parameters, B=8, 128x128 images, text 32 -> 16, V=%lld%s\n", size.c_str(),
              double(m.num_parameters()) / 1e6, (long long)V, g_bf16 ? ", bf16 autocast" : "");
  report(("ofa-" + size).c_str(), s, 0, 0);
}

void bench_gpt2(int steps, double sgemm) {
  GatoConfig c = GatoConfig::preset("gpt2-124m");
  GatoModel m(c);
  m.train();
  const int64_t B = 4, T = 64, V = c.vocab_size;
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < B * T; ++i) ids.push_back((i * 7919 + 13) % V);
  GatoInputs in;
  in.tokens = Tensor::from_vector_i(ids, {B, T});
  auto [target, mask] = GatoModel::next_token_targets(in);
  AdamWOptions ao;
  ao.lr = 1e-4;
  AdamW opt({{m.parameters(), 0.01}}, ao);
  Split s = time_steps(steps, [&] { return sequence_loss(m.forward(in), target, mask).loss; }, opt);
  std::printf("GPT-2-124M shape: %.1fM parameters, B=4, T=64, V=50257\n", double(m.num_parameters()) / 1e6);
  report("gpt2-124m", s, 191.6, sgemm);
}

}  // namespace

int main(int argc, char** argv) {
  mm::ensure_blas_kernels(argv);
  std::string which = "all", size = "tiny", device = "cpu";
  int steps = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) steps = std::max(1, std::atoi(argv[++i]));
    else if (a == "--size" && i + 1 < argc) size = argv[++i];
    else if (a == "--device" && i + 1 < argc) device = argv[++i];
    else if (a == "--bf16") g_bf16 = true;
    else which = a;
  }
  try {
    g_device = Device::parse(device);
    if (g_device.is_cuda()) {
      if (which == "all") which = "ofa";  // the Gato model does not move to a device yet
      MM_CHECK(which == "ofa", "--device ", device, ": only the OFA bench runs on a device");
      MM_CHECK(!cuda::emulated(), "--device ", device, ": build with `make CUDA=1` (build-cuda/bench_models)");
      g_device = cuda::select_device(device);
    }
    MM_CHECK(!g_bf16 || g_device.is_cuda(), "--bf16: autocast runs on a GPU (--device cuda)");
    std::printf("threads: %d\n", num_threads());
    if (which == "ofa" || which == "all") bench_ofa(steps, size);
    cpu_allocator().empty_cache();  // give OFA's cached blocks back before GPT-2 (RSS is a high-water mark)
    if (which == "gpt2" || which == "all") {
      const double sgemm = sgemm_gflops();
      bench_gpt2(steps, sgemm);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_models: %s\n", e.what());
    return 1;
  }
  return 0;
}
