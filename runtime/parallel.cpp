#include "runtime/parallel.h"

#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/blas.h"

namespace mm {
namespace {

int default_threads() {
  for (const char* var : {"MM_NUM_THREADS", "OMP_NUM_THREADS"}) {
    if (const char* s = std::getenv(var)) {
      int n = std::atoi(s);
      if (n > 0) return n;
    }
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  int n = int(std::thread::hardware_concurrency());
  return n > 0 ? n : 1;
}

// Set while a thread runs a part of a parallel region: a nested parallel_for (a kernel
// calling another kernel) then runs inline instead of waiting on the busy pool.
thread_local bool t_in_region = false;

struct RegionFlag {
  RegionFlag() { t_in_region = true; }
  ~RegionFlag() { t_in_region = false; }
};

class Pool {
 public:
  explicit Pool(int n) : want_(n) {
    set_blas_threads(1);
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return want_; }
  void resize(int n) { want_ = n > 0 ? n : 1; }

  void run(int64_t n, int64_t grain, const RangeFn& fn) {
    std::lock_guard<std::mutex> run_lock(run_mu_);  // one parallel region at a time
    int64_t max_parts = (n + grain - 1) / grain;
    int parts = int(max_parts < want_ ? max_parts : want_);
    ensure_workers(parts - 1);
    Job job{&fn, n, parts};
    pending_.store(parts - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    do_part(job, 0);
    // Wait for the workers: spin (they finish within microseconds of us), then yield.
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins)
      if (spins > 1000) std::this_thread::yield();
  }

 private:
  struct Job {
    const RangeFn* fn = nullptr;
    int64_t n = 0;
    int parts = 1;
  };
  static void do_part(const Job& j, int p) {
    int64_t b = j.n * p / j.parts, e = j.n * (p + 1) / j.parts;
    RegionFlag in_region;
    if (b < e) (*j.fn)(b, e);
  }
  void ensure_workers(int k) {
    while (int(workers_.size()) < k) {
      int id = int(workers_.size()) + 1;
      workers_.emplace_back([this, id] { loop(id); });
    }
  }
  void loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      // Spin a little for the next job (they come back to back), then sleep.
      for (int spins = 0; spins < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spins)
        __builtin_ia32_pause();
      Job job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return stop_ || generation_.load() != seen; });
        if (stop_) return;
        seen = generation_.load();
        job = job_;  // snapshot under the lock: parameters and generation agree
      }
      if (id < job.parts) {
        do_part(job, id);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  int want_;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  Job job_;
  std::atomic<int> pending_{0};
};

Pool& pool() {
  static auto* p = new Pool(default_threads());  // leaked: workers may outlive statics
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n); }
void parallel_for_impl(int64_t n, int64_t grain, const RangeFn& fn) {
  if (t_in_region) {
    fn(0, n);
    return;
  }
  pool().run(n, grain, fn);
}

}  // namespace mm
