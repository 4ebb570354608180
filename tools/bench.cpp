// make bench: op throughput next to this machine's measured ceilings.
//
// Ceilings: memory bandwidth = a large parallel memcpy (read + write bytes / s); sgemm
// rate = raw cblas_sgemm at 1024^3 with OpenBLAS running its own threads. Every op row is
// measured through the public op API with autograd recording on (inputs require grad),
// so dispatch, allocation and graph recording are included.
//
//   build/bench            all rows        build/bench matmul    rows whose name contains "matmul"
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/node.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/creation.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/reduce.h"
#include "ops/softmax.h"
#include "runtime/blas.h"
#include "runtime/parallel.h"
#include "tasks/preprocess_bench.h"


using namespace mm;
using Clock = std::chrono::steady_clock;

namespace {

// Median seconds per call over repeats lasting at least `min_s` in total.
double time_it(const std::function<void()>& fn, double min_s = 0.4) {
  fn();  // warm up: caches, allocator, thread pool
  std::vector<double> ts;
  double total = 0;
  while (total < min_s || ts.size() < 5) {
    auto t0 = Clock::now();
    fn();
    double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    ts.push_back(dt);
    total += dt;
    if (ts.size() > 100000) break;
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

struct Ceilings {
  double bw_gbs = 0, sgemm_gflops = 0;
};

Ceilings measure_ceilings() {
  Ceilings c;
  const size_t n = size_t(64) << 20;  // 64M floats = 256 MiB each way
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  double t = time_it([&] {
    parallel_for(int64_t(n), 1 << 20, [&](int64_t s, int64_t e) {
      std::memcpy(b.data() + s, a.data() + s, size_t(e - s) * 4);
    });
  });
  c.bw_gbs = 2.0 * double(n) * 4 / t / 1e9;
  const int N = 1024;
  std::vector<float> x(size_t(N) * N, 0.5f), y(size_t(N) * N, 0.25f), z(size_t(N) * N);
  set_blas_threads(num_threads());
  t = time_it([&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, x.data(), N, y.data(), N, 0.0f, z.data(), N);
  });
  set_blas_threads(1);  // back to our pool owning the threads
  c.sgemm_gflops = 2.0 * N * N * double(N) / t / 1e9;
  return c;
}

struct Row {
  std::string name, shape;
  double seconds, flops, bytes;
};

void print_row(const Row& r, const Ceilings& c) {
  std::string rate, ratio;
  char buf[64];
  if (r.flops > 0) {
    double g = r.flops / r.seconds / 1e9;
    std::snprintf(buf, sizeof buf, "%8.1f GFLOP/s", g);
    rate = buf;
    std::snprintf(buf, sizeof buf, "%5.0f%% of sgemm", 100 * g / c.sgemm_gflops);
    ratio = buf;
  } else if (r.bytes > 0) {
    double g = r.bytes / r.seconds / 1e9;
    std::snprintf(buf, sizeof buf, "%8.2f GB/s", g);
    rate = buf;
    std::snprintf(buf, sizeof buf, "%5.0f%% of copy", 100 * g / c.bw_gbs);
    ratio = buf;
  }
  double us = r.seconds * 1e6;
  std::printf("%-28s %-26s %12.2f us  %-18s %s\n", r.name.c_str(), r.shape.c_str(), us, rate.c_str(), ratio.c_str());
  std::fflush(stdout);
}

Tensor param(const Shape& s, Generator& g) { return randn(s, g).set_requires_grad(true); }

}  // namespace

int main(int argc, char** argv) {
  mm::ensure_blas_kernels(argv);
  const std::string filter = argc > 1 ? argv[1] : "";
  auto want = [&](const std::string& name) { return filter.empty() || name.find(filter) != std::string::npos; };
  Ceilings c = measure_ceilings();
  std::printf("threads %d | memory bandwidth (parallel memcpy, read+write) %.2f GB/s | raw cblas_sgemm 1024^3 %.1f "
              "GFLOP/s (OpenBLAS %s kernels)\n\n",
              num_threads(), c.bw_gbs, c.sgemm_gflops, blas_kernels().c_str());
  std::printf("%-28s %-26s %15s  %-18s %s\n", "op", "shape", "time", "rate", "vs ceiling");
  Generator g(1);
  auto run = [&](const std::string& name, const std::string& shape, double flops, double bytes,
                 const std::function<void()>& fn) {
    if (!want(name)) return;
    print_row({name, shape, time_it(fn), flops, bytes}, c);
  };

  {
    Tensor a = param({1024, 1024}, g), b = param({1024, 1024}, g);
    run("matmul (autograd on)", "1024x1024 @ 1024x1024", 2.0 * 1024 * 1024 * 1024, 0, [&] { matmul(a, b); });
  }
  {
    Tensor q = param({32, 128, 64}, g), k = param({32, 64, 128}, g);
    run("batched matmul", "32 x 128x64 @ 64x128", 2.0 * 32 * 128 * 64 * 128, 0, [&] { matmul(q, k); });
  }
  {
    Tensor x = param({4096, 768}, g), w = param({3072, 768}, g), b = param({3072}, g);
    run("linear (fwd)", "4096x768 -> 3072", 2.0 * 4096 * 768 * 3072, 0, [&] { linear(x, w, b); });
  }
  {
    const int64_t n = int64_t(8192) * 768;
    Tensor x = param({8192, 768}, g);
    run("gelu tanh (fwd)", "8192x768", 0, 8.0 * double(n), [&] { gelu(x, true); });
    Tensor y = param({8192, 768}, g);
    run("add (fwd)", "8192x768 + 8192x768", 0, 12.0 * double(n), [&] { add(x, y); });
    run("sum over rows (fwd)", "8192x768 -> 768", 0, 4.0 * double(n), [&] { sum(x, {0}); });
    Tensor w = param({768}, g), b = param({768}, g);
    run("layer_norm (fwd)", "8192x768", 0, 8.0 * double(n), [&] { layer_norm(x, w, b); });
    run("softmax (fwd)", "8192x768", 0, 8.0 * double(n), [&] { softmax(x); });
  }
  {
    // Training step pieces: forward + backward through autograd.
    Tensor x = param({8192, 768}, g), w = param({768}, g), b = param({768}, g);
    const double n = 8192.0 * 768;
    run("layer_norm (fwd+bwd)", "8192x768", 0, 8.0 * n + 16.0 * n, [&] { autograd::backward(sum(layer_norm(x, w, b))); });
  }
  {
    // OFA-base attention shape: B=8, H=12, T=128, D=64; fwd = 2 GEMMs of 2*T*T*D per head.
    Tensor q = param({8, 12, 128, 64}, g), k = param({8, 12, 128, 64}, g), v = param({8, 12, 128, 64}, g);
    const double f = 2.0 * 2 * 8 * 12 * 128.0 * 128 * 64;
    run("attention (fwd)", "B8 H12 T128 D64", f, 0, [&] { attention(q, k, v); });
    run("attention (fwd+bwd)", "B8 H12 T128 D64", 3 * f, 0, [&] { autograd::backward(sum(attention(q, k, v))); });
  }
  {
    Tensor logits = param({1024, 50257}, g);
    Tensor tgt = Tensor::empty({1024}, DType::i64);
    for (int i = 0; i < 1024; ++i) tgt.data<int64_t>()[i] = (i * 7919) % 50257;
    const double bytes = 1024.0 * 50257 * 4;
    run("cross_entropy (fwd)", "1024x50257", 0, bytes, [&] { cross_entropy(logits, tgt); });
    CrossEntropyOptions smooth;
    smooth.label_smoothing = 0.1;
    run("cross_entropy (fwd+bwd)", "1024x50257", 0, 3 * bytes,
        [&] { autograd::backward(cross_entropy(logits, tgt, smooth)); });
  }
  {
    Tensor x = param({8, 64, 56, 56}, g), w = param({64, 64, 3, 3}, g);
    run("conv2d 3x3 (fwd)", "8x64x56x56, 64->64", 2.0 * 8 * 64 * 56 * 56 * 64 * 9, 0, [&] { conv2d(x, w, Tensor(), 1, 1); });
    Tensor w1 = param({256, 64, 1, 1}, g);
    run("conv2d 1x1 (fwd)", "8x64x56x56, 64->256", 2.0 * 8 * 64 * 56 * 56 * 256, 0, [&] { conv2d(x, w1); });
  }
  {
    Tensor a = param({16}, g), b = param({16}, g);
    run("dispatch: add of 16 floats", "16 + 16 (autograd on)", 0, 0, [&] { add(a, b); });
    Tensor c2 = randn({16}, g), d2 = randn({16}, g);
    run("dispatch: add, no grad", "16 + 16", 0, 0, [&] { add(c2, d2); });
  }
  if (want("preprocess")) {
    PreprocessBench p = bench_preprocess(1.0);
    std::printf("\npreprocess (one core): images 28x28 -> 128x128 + normalise: %.0f items/s (target >= 2000); "
                "audio 1 s -> 80-dim fbank: %.0f audio s/s (target >= 200)\n",
                p.images_per_s, p.audio_seconds_per_s);
  }
  return 0;
}
