// Distribution benchmark: CPU all-reduce bandwidth over MPI, and the share of a training
// step spent communicating gradients.
//
//   mpirun -np 2 --oversubscribe build/bench_dist            # the numbers in docs/distributed.md
//   mpirun -np 2 --oversubscribe build/bench_dist --quick    # fewer sizes and steps
//
// Bandwidths follow nccl-tests: algorithm bandwidth = bytes / time; bus bandwidth =
// algbw * 2 (n - 1) / n, what each link carries in a ring all-reduce, comparable across n.
// Time per all-reduce is the slowest rank's mean over the iterations. The last column is the
// ceiling on one host: a plain memcpy of the same buffer by one rank (every rank copying at
// once), since a shared-memory all-reduce must at least read and write the buffer.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/blas.h"
#include "tools/dist_mlp.h"

using namespace mm;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void bench_all_reduce(dist::Comm& w, bool quick) {
  const std::vector<double> sizes_mb = quick ? std::vector<double>{1, 10, 100}
                                             : std::vector<double>{1, 2, 4, 8, 16, 32, 64, 100};
  if (w.is_main()) {
    std::printf("all-reduce (sum, f32) over MPI on %d ranks (%d on this host)\n", w.size(), w.local_size());
    std::printf("%10s %8s %12s %14s %14s %14s\n", "size MB", "iters", "time ms", "algbw GB/s", "busbw GB/s",
                "memcpy GB/s");
  }
  for (double mb : sizes_mb) {
    const int64_t n = int64_t(mb * 1e6 / 4);
    Tensor t = Tensor::full({n}, 1.0);
    const int iters = std::clamp(int(400 / mb), 3, 50);
    w.all_reduce(t);  // warm-up: first-touch pages, connection set-up
    w.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) w.all_reduce(t);
    const double per = w.all_reduce(seconds_since(t0) / iters, dist::Op::max);
    const double algbw = double(n) * 4 / per / 1e9;
    const double busbw = algbw * 2.0 * (w.size() - 1) / w.size();
    Tensor dst = Tensor::empty({n});
    std::memcpy(dst.raw_data(), t.raw_data(), size_t(n) * 4);  // first touch
    w.barrier();
    const auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) std::memcpy(dst.raw_data(), t.raw_data(), size_t(n) * 4);
    const double copy = w.all_reduce(seconds_since(t1) / iters, dist::Op::max);
    if (w.is_main())
      std::printf("%10.0f %8d %12.3f %14.2f %14.2f %14.2f\n", mb, iters, per * 1e3, algbw, busbw,
                  double(n) * 4 / copy / 1e9);
  }
}

void bench_step(dist::Comm& w, bool zero, bool quick) {
  distmlp::Config c;
  c.in = 64;
  c.hidden = 512;
  c.depth = 4;
  c.classes = 10;
  c.global_batch = 64;
  c.steps = quick ? 10 : 30;
  c.zero = zero;
  c.lr = 1e-3;
  distmlp::Timing t = distmlp::train(w, c, [](const distmlp::StepLog&) {}, [](const std::string&) {});
  // The slowest rank decides the step time.
  const double total = w.all_reduce(t.total_s, dist::Op::max), comm = w.all_reduce(t.comm_s, dist::Op::max);
  if (w.is_main())
    std::printf("%-8s %10d %12.2f %12.2f %10.1f%%\n", zero ? "ZeRO-1" : "DDP", t.steps, total / t.steps * 1e3,
                comm / t.steps * 1e3, 100.0 * comm / total);
}

}  // namespace

int main(int argc, char** argv) {
  mm::ensure_blas_kernels(argv);
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  return dist::guarded([&] {
    dist::Session session;
    dist::Comm& w = dist::world();
    if (w.size() == 1) {
      std::printf("one rank has nothing to communicate: run `mpirun -np 2 --oversubscribe build/bench_dist`\n");
      return 2;
    }
    bench_all_reduce(w, quick);
    if (w.is_main()) {
      std::printf("\ntraining step of the self-test MLP (in 64, 4 x 512 hidden, 10 classes; 64 samples per step "
                  "over all ranks)\n");
      std::printf("%-8s %10s %12s %12s %11s\n", "mode", "steps", "step ms", "comm ms", "comm share");
    }
    bench_step(w, false, quick);
    bench_step(w, true, quick);
    return 0;
  });
}
