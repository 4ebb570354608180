// The harness every kernel study file (cuda/study/*.cu) shares: inputs, device buffers,
// the comparison with the CPU reference, timing, and the cost report.
//
// A study file holds one kernel in several numbered versions, naive to fast, and
//   bool run_checks();          every version against the CPU reference at small shapes
//                               (the emulator runs this; so does tests/test_cuda_study.cpp)
//   void run_timing(int only);  every version (or version `only`) at the OFA-base shape:
//                               checked again, then timed (a real GPU only)
// and ends with MM_STUDY_MAIN(run_checks, run_timing), a main() that runs the checks and,
// on a GPU, the timing. Build and run: `make study` (emulator), `make study-gpu` (nvcc).
//
// Each report line gives the time per call, the achieved bandwidth (bytes / time) and
// compute rate (FLOPs / time), and how far it is from the H100 lower bound
//   max(bytes / 3.0 TB/s, FLOPs / 800 TFLOP/s)
// (measured ceilings: HBM3 copy bandwidth and dense bf16 tensor-core throughput). "Bytes"
// are the compulsory traffic of one call: every input read once, every output written
// once; a version that reads its input twice is slower than the bound says, which is the
// point of the comparison.
#pragma once
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/cuda_error.h"
#include "cuda/kernel_api.h"
#include "cuda/kernel_util.cuh"  // MM_UNROLL
#include "runtime/error.h"

namespace mm::study {

constexpr double kH100BytesPerS = 3.0e12;  // HBM3, measured copy bandwidth
constexpr double kH100Flops = 800e12;      // dense bf16 tensor cores, measured

constexpr bool on_gpu() {
#ifdef MM_CUDA_EMU
  return false;
#else
  return true;
#endif
}

constexpr unsigned kFullMask = 0xffffffffu;

// false: checks print failures only (the doctest sets it).
inline bool g_verbose = true;

// Uniform values in [lo, hi) from a 64-bit LCG: the same inputs on every machine.
inline std::vector<float> random_vector(size_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::vector<float> v(n);
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = lo + (hi - lo) * float(double(s >> 40) / double(1ull << 24));
  }
  return v;
}

// n elements of T in device memory, freed on scope exit.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) {
    MM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), (n ? n : 1) * sizeof(T)), "study: cudaMalloc of ",
                  n * sizeof(T), " bytes");
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { (void)cudaFree(p_); }

  T* get() const { return p_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    MM_CHECK(host.size() == n_, "study: upload of ", host.size(), " elements into a buffer of ", n_);
    MM_CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), "study: upload");
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    MM_CUDA_CHECK(cudaDeviceSynchronize(), "study: kernel execution");
    MM_CUDA_CHECK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "study: download");
    return host;
  }
  // Fills with 0xff bytes (NaN floats) so an element a kernel forgets to write is seen.
  void poison() { MM_CUDA_CHECK(cudaMemset(p_, 0xff, n_ * sizeof(T)), "study: memset"); }

 private:
  T* p_ = nullptr;
  size_t n_;
};

// Whether |got - ref| <= atol + rtol |ref| everywhere; prints the first mismatch and the
// largest error under `what`.
inline bool check_close(const std::string& what, const std::vector<float>& got, const std::vector<double>& ref,
                        double atol, double rtol) {
  if (got.size() != ref.size()) {
    std::printf("  FAIL %s: %zu values, expected %zu\n", what.c_str(), got.size(), ref.size());
    return false;
  }
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(double(got[i]) - ref[i]);
    if (!(d <= atol + rtol * std::fabs(ref[i]))) {
      std::printf("  FAIL %s: element %zu is %.9g, expected %.9g (|diff| %.3g)\n", what.c_str(), i, double(got[i]),
                  ref[i], d);
      return false;
    }
    worst = d > worst ? d : worst;
  }
  if (g_verbose) std::printf("  ok   %-60s max |diff| %.2e\n", what.c_str(), worst);
  return true;
}

// Compulsory traffic and arithmetic of one call at one shape.
struct Cost {
  double bytes = 0;
  double flops = 0;
  double bound_us() const {
    const double mem = bytes / kH100BytesPerS, math = flops / kH100Flops;
    return 1e6 * (mem > math ? mem : math);
  }
};

// The kernel, the shape, and its cost and H100 lower bound (printed by both builds).
inline void print_cost(const char* kernel, const std::string& shape, const Cost& c) {
  std::printf("%s at %s: %.2f MB moved, %.3f GFLOP per call; H100 lower bound %.1f us "
              "(%.1f us at 3.0 TB/s, %.1f us at 800 TFLOP/s)\n",
              kernel, shape.c_str(), c.bytes / 1e6, c.flops / 1e9, c.bound_us(), 1e6 * c.bytes / kH100BytesPerS,
              1e6 * c.flops / kH100Flops);
}

// Mean microseconds per call of `launch` (enqueues one call on the default stream) over
// `repeats` calls after `warmup` calls, by CUDA events.
template <class F>
double time_us(F&& launch, int repeats = 20, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) launch();
  cudaEvent_t start, stop;
  MM_CUDA_CHECK(cudaEventCreate(&start), "study: event");
  MM_CUDA_CHECK(cudaEventCreate(&stop), "study: event");
  MM_CUDA_CHECK(cudaEventRecord(start, 0), "study: event record");
  for (int i = 0; i < repeats; ++i) launch();
  MM_CUDA_CHECK(cudaEventRecord(stop, 0), "study: event record");
  MM_CUDA_CHECK(cudaEventSynchronize(stop), "study: kernel execution");
  float ms = 0;
  MM_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "study: elapsed time");
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  return 1e3 * double(ms) / repeats;
}

// One line: time, GB/s, TFLOP/s, and the time as a multiple of the lower bound.
inline void report(const char* version, double us, const Cost& c) {
  std::printf("  %-44s %10.1f us %9.1f GB/s %8.2f TFLOP/s  %6.1fx the bound\n", version, us, c.bytes / us / 1e3,
              c.flops / us / 1e6, us / c.bound_us());
}

// Runs checks, then (on a GPU) the timing; argv[1] = N times version N only. Exit status
// 0 when every check passed.
inline int study_main(int argc, char** argv, bool (*checks)(), void (*timing)(int)) {
  try {
    const int only = argc > 1 ? std::atoi(argv[1]) : 0;
    const bool ok = checks();
    if (!ok) {
      std::printf("%s: checks FAILED\n", argv[0]);
      return 1;
    }
    if (on_gpu()) {
      timing(only);
    } else {
      std::printf("(emulator build: correctness only; `make study-gpu` builds the timed version)\n");
      timing(-1);  // -1: print the cost at the timing shape, run nothing
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
}

}  // namespace mm::study

// The main() of a study file (left out when a test includes the file: MM_STUDY_NO_MAIN).
#ifndef MM_STUDY_NO_MAIN
#define MM_STUDY_MAIN(checks, timing) \
  int main(int argc, char** argv) { return ::mm::study::study_main(argc, argv, checks, timing); }
#else
#define MM_STUDY_MAIN(checks, timing)
#endif
