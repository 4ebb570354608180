// A small thread pool for the CPU kernels: parallel_for splits [0, n) into one
// contiguous range per thread; the calling thread takes the first range.
//
//   parallel_for(rows, /*grain=*/64, [&](int64_t r0, int64_t r1) { ... rows r0..r1 ... });
//
// Size: MM_NUM_THREADS, else OMP_NUM_THREADS, else the cores the process may use.
// Workers spin briefly after a job (jobs come back-to-back in a training step) and
// then sleep, so they never compete for the cores with anything else for long.
// OpenBLAS is put in single-threaded mode at start-up: our pool owns the parallelism
// (matmul splits its work across the pool), so two sets of threads never fight.
#pragma once
#include <cstdint>
#include <functional>

namespace mm {

int num_threads();
void set_num_threads(int n);  // takes effect for the next parallel_for

using RangeFn = std::function<void(int64_t, int64_t)>;
void parallel_for_impl(int64_t n, int64_t grain, const RangeFn& fn);

// Runs fn(begin, end) over [0, n); inline when n <= grain or one thread.
template <typename F>
inline void parallel_for(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (n <= grain || num_threads() == 1) { fn(int64_t(0), n); return; }
  parallel_for_impl(n, grain, RangeFn(std::forward<F>(fn)));
}

}  // namespace mm
