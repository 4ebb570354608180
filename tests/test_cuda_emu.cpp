// The CUDA emulator (cuda/emu/): example kernels against CPU loops, warp-operation
// semantics, planted bugs that each check must report (naming kernel, block and thread),
// launch validation, the runtime API subset and the bf16/half conversions.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/emu_examples.h"
#include "cuda/kernel_api.h"
#include "runtime/dtype.h"

namespace {

// A cudaMalloc'd array of T, filled from / copied back to host vectors.
template <class T>
struct DeviceArray {
  T* p = nullptr;
  size_t n = 0;
  explicit DeviceArray(size_t count) : n(count) { REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess); }
  explicit DeviceArray(const std::vector<T>& v) : DeviceArray(v.size()) {
    REQUIRE(cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
  }
  ~DeviceArray() { cudaFree(p); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  std::vector<T> get() const {
    std::vector<T> v(n);
    REQUIRE(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
    return v;
  }
};

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// Runs f, which must throw mm::Error; returns the message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const mm::Error& e) {
    return e.what();
  }
  return "<no error was thrown>";
}
void check_contains(const std::string& msg, std::initializer_list<const char*> parts) {
  for (const char* p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, "expected '", std::string(p), "' in: ", msg);
}

// ---- kernels with planted bugs (emulator only) ------------------------------------------------

// Thread t reads the element that thread t - dist wrote, with no barrier in between.
__global__ void race_raw_kernel(float* out, int dist) {
  MM_SHARED(float, s, 128);
  const int t = int(threadIdx.x);
  s[t] = float(t);
  if (t >= dist) out[t] = s[t - dist];  // BUG: missing __syncthreads()
}
// Each thread reads its right neighbour, then overwrites its own element: thread 1's write
// conflicts with thread 0's read in the same barrier interval.
__global__ void race_war_kernel(float* out) {
  MM_SHARED(float, s, 64);
  const int t = int(threadIdx.x);
  s[t] = float(t);
  __syncthreads();
  const float v = s[(t + 1) % int(blockDim.x)];
  s[t] = 2.0f * v;  // BUG: needs a __syncthreads() between the reads and the writes
  out[t] = v;
}
// Correct: the same exchange inside one warp, ordered by __syncwarp().
__global__ void warp_exchange_kernel(float* out) {
  MM_SHARED(float, s, 32);
  const int t = int(threadIdx.x);
  s[t] = float(t);
  __syncwarp();
  const float v = s[(t + 1) % 32];
  __syncwarp();
  s[t] = v;
  __syncwarp();
  out[t] = s[t];
}
// The tiled-matmul loop without its second barrier: the next tile's stores race with the
// previous tile's loads of slower threads.
__global__ void matmul_missing_barrier_kernel(const float* a, const float* b, float* c, int n) {
  MM_SHARED_2D(float, as, 16, 16);
  MM_SHARED_2D(float, bs, 16, 16);
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  float acc = 0.0f;
  for (int k0 = 0; k0 < n; k0 += 16) {
    as[ty][tx] = a[ty * n + k0 + tx];
    bs[ty][tx] = b[(k0 + ty) * n + tx];
    __syncthreads();
    for (int kk = 0; kk < 16; ++kk) acc += as[ty][kk] * bs[kk][tx];
    // BUG: no __syncthreads() here
  }
  c[ty * n + tx] = acc;
}
__global__ void divergent_exit_kernel(float* out) {
  MM_SHARED(float, s, 64);
  s[threadIdx.x] = 1.0f;
  if (threadIdx.x < 16) __syncthreads();  // BUG: threads 16.. never arrive
  out[threadIdx.x] = 1.0f;
}
__global__ void divergent_sites_kernel(float* out) {
  if (threadIdx.x < 40) {
    __syncthreads();
  } else {
    __syncthreads();  // BUG: a different barrier
  }
  out[threadIdx.x] = 1.0f;
}
__global__ void oob_static_kernel(float* out) {
  MM_SHARED(float, s, 64);
  s[threadIdx.x + blockIdx.x] = 1.0f;  // BUG: block 1, thread 63 writes s[64]
  out[threadIdx.x] = 0.0f;
}
__global__ void oob_dynamic_kernel(float* out) {
  MM_DYN_SHARED(float, d);  // launched with 100 bytes: 25 floats
  d[threadIdx.x] = 1.0f;    // BUG: thread 25 is out of bounds
  out[threadIdx.x] = 0.0f;
}
__global__ void oob_2d_kernel(float* out) {
  MM_SHARED_2D(float, tile, 4, 8);
  tile[threadIdx.y][threadIdx.x] = 1.0f;  // BUG with blockDim.x == 9: column 8
  out[0] = 0.0f;
}
__global__ void uninit_kernel(float* out) {
  MM_SHARED(float, s, 64);
  if (threadIdx.x < 32) s[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];  // BUG: nobody wrote s[32..63]
}
__global__ void shuffle_missing_lane_kernel(float* out) {
  float v = float(threadIdx.x);
  if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);  // BUG: lanes 16..31 don't come
  out[threadIdx.x] = v;
}
__global__ void shuffle_vs_barrier_kernel(float* out) {
  float v = float(threadIdx.x);
  if (threadIdx.x % 32 != 5) v = __shfl_down_sync(0xffffffffu, v, 1);  // BUG: lane 5 skips it...
  __syncthreads();                                                    // ...and waits here
  out[threadIdx.x] = v;
}
__global__ void static_smem_too_big_kernel(float* out) {
  MM_SHARED(float, big, 13000);  // 52000 bytes > 48 KiB
  big[threadIdx.x] = 1.0f;
  out[threadIdx.x] = big[threadIdx.x];
}
__global__ void dyn_smem_kernel(float* out, int n) {
  MM_DYN_SHARED(float, d);
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) d[i] = float(i);
  __syncthreads();
  if (threadIdx.x == 0) out[0] = d[n - 1];
}
__global__ void noop_kernel(float* out) {
  if (out) out[0] = 1.0f;
}

// ---- kernels for semantics ---------------------------------------------------------------------
__global__ void warp_ops_kernel(const int* in, int* out) {
  const int t = int(threadIdx.x), n = int(blockDim.x);
  const int v = in[t];
  out[0 * n + t] = __shfl_sync(0xffffffffu, v, (t * 7 + 3) % 32);
  out[1 * n + t] = __shfl_up_sync(0xffffffffu, v, 3, 16);
  out[2 * n + t] = __shfl_down_sync(0xffffffffu, v, 5, 8);
  out[3 * n + t] = __shfl_xor_sync(0xffffffffu, v, 20, 16);
  out[4 * n + t] = __shfl_sync(0xffffffffu, v, 40, 16);
  out[5 * n + t] = int(__ballot_sync(0xffffffffu, v & 1));
  out[6 * n + t] = __any_sync(0xffffffffu, v == 103) + 2 * __all_sync(0xffffffffu, v >= 0);
  out[7 * n + t] = __syncthreads_count(v & 1);
  // A partial mask: lanes 0..15 only; lane 8+ reads a lane outside the mask (poison).
  if (t % 32 < 16) out[8 * n + t] = __shfl_down_sync(0x0000ffffu, v, 8);
  else out[8 * n + t] = 0;
  const double d = __shfl_xor_sync(0xffffffffu, double(v) + 0.5, 1);  // 8-byte values
  out[9 * n + t] = int(d * 2.0);
}
__global__ void elementwise_kernel(const float* x, float* y, int n) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = 2.0f * x[i] + 1.0f;
}
__global__ void shared_atomics_kernel(int* out) {
  MM_SHARED(int, counter, 2);
  if (threadIdx.x == 0) {
    counter[0] = 0;
    counter[1] = -1;
  }
  __syncthreads();
  atomicAdd(&counter[0], 1);                  // many threads, one word: atomics never race
  atomicMax(&counter[1], int(threadIdx.x));
  __syncthreads();
  if (threadIdx.x == 0) {
    out[0] = counter[0];
    out[1] = counter[1];
  }
}

__global__ void smem_vector_kernel(const float* x, float* y, uint16_t* yb, int misalign) {
  MM_SHARED(float, s, 64);
  MM_SHARED(__nv_bfloat16, b, 16);
  const int t = int(threadIdx.x);  // 16 threads
  mm_smem_ptr<float4> s4 = mm_smem_cast<float4>(s + misalign);
  s4[t] = reinterpret_cast<const float4*>(x)[t];  // 128-bit shared stores
  b[t] = __float2bfloat16(x[t]);  // 2-byte elements: neighbours share a word, no race
  __syncthreads();
  const float4 v = s4[15 - t];
  const float f = b[15 - t];  // a bf16 element converts straight to float
  y[t] = v.x + v.y + v.z + v.w + f;
  yb[t] = __bfloat16_as_ushort(b[t]);
  const int any_big = __syncthreads_or(v.x > 1e30f), all_small = __syncthreads_and(v.x < 1e30f);
  if (t == 0) y[16] = float(any_big * 10 + all_small);
}

}  // namespace

TEST_SUITE("cuda_emu") {

TEST_CASE("row_sum: shuffles + shared memory match a CPU loop") {
  mm::emu::set_checks(true);
  for (auto [rows, cols] : {std::pair{64, 1000}, std::pair{37, 333}, std::pair{5, 7}}) {
    auto x = randn(size_t(rows) * cols, 1);
    DeviceArray<float> dx(x), dy{size_t(rows)};
    mm::cuda_examples::row_sum(dx.p, dy.p, rows, cols);
    auto y = dy.get();
    for (int r = 0; r < rows; ++r) {
      double s = 0;
      for (int c = 0; c < cols; ++c) s += x[size_t(r) * cols + c];
      CHECK(y[r] == doctest::Approx(s).epsilon(1e-4));
    }
  }
}

TEST_CASE("transpose through a 32x33 tile") {
  for (auto [rows, cols] : {std::pair{67, 45}, std::pair{100, 33}, std::pair{1, 70}}) {
    auto x = randn(size_t(rows) * cols, 2);
    DeviceArray<float> dx(x), dy(size_t(rows) * cols);
    mm::cuda_examples::transpose(dx.p, dy.p, rows, cols);
    auto y = dy.get();
    int bad = 0;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) bad += y[size_t(c) * rows + r] != x[size_t(r) * cols + c];
    CHECK(bad == 0);
  }
}

TEST_CASE("histogram with shared and global atomics") {
  const int n = 10007;
  std::mt19937 g(3);
  std::vector<int> keys(n);
  for (int& k : keys) k = int(g() % mm::cuda_examples::kHistBins);
  auto w = randn(n, 4);
  DeviceArray<int> dk(keys);
  DeviceArray<float> dw(w), dtotal(std::vector<float>{0.0f});
  DeviceArray<unsigned> dbins(std::vector<unsigned>(mm::cuda_examples::kHistBins, 0u));
  mm::cuda_examples::histogram(dk.p, dw.p, n, dbins.p, dtotal.p);
  auto bins = dbins.get();
  std::vector<unsigned> want(mm::cuda_examples::kHistBins, 0u);
  double total = 0;
  for (int i = 0; i < n; ++i) {
    ++want[size_t(keys[i])];
    total += w[i];
  }
  CHECK(bins == want);
  CHECK(dtotal.get()[0] == doctest::Approx(total).epsilon(1e-3));
}

TEST_CASE("softmax with the row in dynamic shared memory (and the >48 KiB opt-in)") {
  for (auto [rows, cols] : {std::pair{64, 1000}, std::pair{3, 20000}, std::pair{2, 1}}) {
    auto x = randn(size_t(rows) * cols, 5, 3.0f);
    DeviceArray<float> dx(x), dy(size_t(rows) * cols);
    mm::cuda_examples::softmax_rows(dx.p, dy.p, rows, cols);
    auto y = dy.get();
    double max_err = 0;
    for (int r = 0; r < rows; ++r) {
      const float* xr = &x[size_t(r) * cols];
      double m = -INFINITY, s = 0;
      for (int c = 0; c < cols; ++c) m = std::max(m, double(xr[c]));
      for (int c = 0; c < cols; ++c) s += std::exp(double(xr[c]) - m);
      for (int c = 0; c < cols; ++c)
        max_err = std::max(max_err, std::abs(y[size_t(r) * cols + c] - std::exp(double(xr[c]) - m) / s));
    }
    CHECK(max_err < 1e-6);
  }
}

TEST_CASE("tiled matmul with 16x16 shared tiles") {
  for (auto [m, n, k] : {std::tuple{37, 45, 50}, std::tuple{16, 16, 16}, std::tuple{1, 70, 3}}) {
    auto a = randn(size_t(m) * k, 10), b = randn(size_t(k) * n, 11);
    DeviceArray<float> da(a), db(b), dc{size_t(m) * n};
    mm::cuda_examples::matmul(da.p, db.p, dc.p, m, n, k);
    auto c = dc.get();
    double max_err = 0;
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double s = 0;
        for (int q = 0; q < k; ++q) s += double(a[size_t(i) * k + q]) * b[size_t(q) * n + j];
        max_err = std::max(max_err, std::abs(s - c[size_t(i) * n + j]));
      }
    CHECK(max_err < 1e-4);
  }
}

TEST_CASE("f32_to_bf16 kernel: float4 loads, CUDA rounding") {
  auto x = randn(1001, 6, 100.0f);
  x[0] = NAN;
  x[1] = INFINITY;
  x[2] = -0.0f;
  x[3] = 1e-40f;  // subnormal
  DeviceArray<float> dx(x);
  DeviceArray<uint16_t> dy(x.size());
  mm::cuda_examples::f32_to_bf16(dx.p, dy.p, int(x.size()));
  auto y = dy.get();
  CHECK(y[0] == 0x7fff);  // CUDA's canonical NaN
  int bad = 0;
  for (size_t i = 1; i < x.size(); ++i) bad += y[i] != mm::f32_to_bf16_bits(x[i]);
  CHECK(bad == 0);
}

TEST_CASE("warp shuffles, votes and __syncthreads_count follow CUDA's rules") {
  const int n = 64;
  std::vector<int> in(n);
  for (int i = 0; i < n; ++i) in[size_t(i)] = 100 + 3 * i;  // odd for odd i
  DeviceArray<int> din(in), dout(size_t(10 * n));
  MM_LAUNCH(warp_ops_kernel, dim3(1), dim3(n), 0, 0, din.p, dout.p);
  auto out = dout.get();
  auto at = [&](int row, int t) { return out[size_t(row * n + t)]; };
  for (int t = 0; t < n; ++t) {
    const int lane = t % 32, wbase = t - lane;
    auto v = [&](int l) { return in[size_t(wbase + l)]; };
    CHECK(at(0, t) == v((lane * 7 + 3) % 32));
    CHECK(at(1, t) == (lane % 16 >= 3 ? v(lane - 3) : v(lane)));     // up: no wrap within 16
    CHECK(at(2, t) == (lane % 8 + 5 < 8 ? v(lane + 5) : v(lane)));   // down: no wrap within 8
    CHECK(at(3, t) == ((lane ^ 20) < (lane / 16 + 1) * 16 ? v(lane ^ 20) : v(lane)));  // xor: later groups -> own
    CHECK(at(4, t) == v(lane / 16 * 16 + 40 % 16));                  // idx wraps inside its 16-lane group
    CHECK(unsigned(at(5, t)) == 0xaaaaaaaau);                        // odd lanes hold odd values
    CHECK(at(6, t) == (t < 32 ? 3 : 2));  // v == 103 only in warp 0; all v >= 0
    CHECK(at(7, t) == n / 2);
    if (lane < 8) CHECK(at(8, t) == v(lane + 8));
    else if (lane < 16) CHECK(at(8, t) == -1);  // source lane outside the mask: poison (all ones)
    CHECK(at(9, t) == int((double(v(lane ^ 1)) + 0.5) * 2.0));
  }
}

TEST_CASE("shared-memory atomics are not races; __syncwarp orders lanes of a warp") {
  DeviceArray<int> dout(2);
  MM_LAUNCH(shared_atomics_kernel, dim3(2), dim3(96), 0, 0, dout.p);
  auto out = dout.get();
  CHECK(out[0] == 96);
  CHECK(out[1] == 95);
  DeviceArray<float> dw(32);
  MM_LAUNCH(warp_exchange_kernel, dim3(1), dim3(32), 0, 0, dw.p);
  auto w = dw.get();
  for (int t = 0; t < 32; ++t) CHECK(w[size_t(t)] == float((t + 1) % 32));
}

TEST_CASE("float4 and bf16 elements in shared memory; misaligned vector access is reported") {
  auto x = randn(64, 9);
  DeviceArray<float> dx(x), dy(17);
  DeviceArray<uint16_t> db(16);
  MM_LAUNCH(smem_vector_kernel, dim3(1), dim3(16), 0, 0, dx.p, dy.p, db.p, 0);
  auto y = dy.get();
  auto yb = db.get();
  for (int t = 0; t < 16; ++t) {
    const int u = 15 - t;
    const float want = x[size_t(4 * u)] + x[size_t(4 * u + 1)] + x[size_t(4 * u + 2)] + x[size_t(4 * u + 3)] +
                       mm::bf16_bits_to_f32(mm::f32_to_bf16_bits(x[size_t(u)]));
    CHECK(y[size_t(t)] == doctest::Approx(want).epsilon(1e-6));
    CHECK(yb[size_t(t)] == mm::f32_to_bf16_bits(x[size_t(t)]));
  }
  CHECK(y[16] == 1.0f);  // __syncthreads_or: none big; __syncthreads_and: all small
  std::string msg = error_of([&] { MM_LAUNCH(smem_vector_kernel, dim3(1), dim3(16), 0, 0, dx.p, dy.p, db.p, 1); });
  check_contains(msg, {"kernel 'smem_vector_kernel'", "block (0,0,0)", "thread (0,0,0)",
                       "misaligned shared memory write of 16 bytes", "needs 16-byte alignment"});
}

TEST_CASE("planted bug: shared-memory race (missing __syncthreads) is reported") {
  mm::emu::set_checks(true);
  DeviceArray<float> out(128);
  std::string msg = error_of([&] { MM_LAUNCH(race_raw_kernel, dim3(1), dim3(128), 0, 0, out.p, 32); });
  check_contains(msg, {"kernel 'race_raw_kernel'", "block (0,0,0)", "thread (32,0,0)", "data race",
                       "'s'[0]", "thread (0,0,0) wrote", "no __syncthreads()"});
  // Within one warp: lanes are unordered without __syncwarp.
  msg = error_of([&] { MM_LAUNCH(race_raw_kernel, dim3(1), dim3(128), 0, 0, out.p, 1); });
  check_contains(msg, {"kernel 'race_raw_kernel'", "block (0,0,0)", "thread (1,0,0)", "data race",
                       "same warp"});
  // Write after read.
  msg = error_of([&] { MM_LAUNCH(race_war_kernel, dim3(1), dim3(64), 0, 0, out.p); });
  check_contains(msg, {"kernel 'race_war_kernel'", "block (0,0,0)", "thread (1,0,0)", "writes 's'[1]",
                       "thread (0,0,0) read"});
  // The classic tiled loop missing its second barrier.
  auto a = randn(32 * 32, 12);
  DeviceArray<float> da(a), dc{32 * 32};
  msg = error_of([&] { MM_LAUNCH(matmul_missing_barrier_kernel, dim3(1), dim3(16, 16), 0, 0, da.p, da.p, dc.p, 32); });
  check_contains(msg, {"kernel 'matmul_missing_barrier_kernel'", "block (0,0,0)", "thread (1,0,0)",
                       "reads 'as'[0][0]", "thread (0,0,0) wrote"});
  // With the checks off the same kernel runs (that is the point of switching them off).
  mm::emu::set_checks(false);
  CHECK_NOTHROW(MM_LAUNCH(race_raw_kernel, dim3(1), dim3(128), 0, 0, out.p, 32));
  mm::emu::set_checks(true);
}

TEST_CASE("planted bug: divergent __syncthreads is reported") {
  DeviceArray<float> out(64);
  std::string msg = error_of([&] { MM_LAUNCH(divergent_exit_kernel, dim3(2), dim3(64), 0, 0, out.p); });
  check_contains(msg, {"kernel 'divergent_exit_kernel'", "block (0,0,0)", "thread (16,0,0)", "exited while 16",
                       "barrier divergence"});
  msg = error_of([&] { MM_LAUNCH(divergent_sites_kernel, dim3(1), dim3(64), 0, 0, out.p); });
  check_contains(msg, {"kernel 'divergent_sites_kernel'", "block (0,0,0)", "thread (40,0,0)",
                       "waits at the __syncthreads() at ", "test_cuda_emu.cpp:", "barrier divergence"});
}

TEST_CASE("planted bug: out-of-bounds shared memory is reported") {
  DeviceArray<float> out(64);
  std::string msg = error_of([&] { MM_LAUNCH(oob_static_kernel, dim3(2), dim3(64), 0, 0, out.p); });
  check_contains(msg, {"kernel 'oob_static_kernel'", "block (1,0,0)", "thread (63,0,0)",
                       "out-of-bounds shared memory write of 's'", "element 64", "outside [0, 64)"});
  msg = error_of([&] { MM_LAUNCH(oob_dynamic_kernel, dim3(1), dim3(32), 100, 0, out.p); });
  check_contains(msg, {"kernel 'oob_dynamic_kernel'", "block (0,0,0)", "thread (25,0,0)",
                       "out-of-bounds shared memory write of 'd'", "dynamic", "element 25", "outside [0, 25)"});
  msg = error_of([&] { MM_LAUNCH(oob_2d_kernel, dim3(1), dim3(9, 4), 0, 0, out.p); });
  check_contains(msg, {"kernel 'oob_2d_kernel'", "block (0,0,0)", "thread (8,0,0)", "'tile'",
                       "row 0, column 8 is outside [0, 8)"});
}

TEST_CASE("planted bug: read of uninitialised shared memory is reported") {
  DeviceArray<float> out(64);
  std::string msg = error_of([&] { MM_LAUNCH(uninit_kernel, dim3(3), dim3(64), 0, 0, out.p); });
  check_contains(msg, {"kernel 'uninit_kernel'", "block (0,0,0)", "thread (32,0,0)",
                       "uninitialised shared memory", "'s'[32]"});
}

TEST_CASE("planted bug: a shuffle whose mask names lanes that do not take part is reported") {
  DeviceArray<float> out(64);
  std::string msg = error_of([&] { MM_LAUNCH(shuffle_missing_lane_kernel, dim3(1), dim3(32), 0, 0, out.p); });
  check_contains(msg, {"kernel 'shuffle_missing_lane_kernel'", "block (0,0,0)", "thread (16,0,0)",
                       "__shfl_xor_sync(mask 0xffffffff)", "not all lanes of the mask participate"});
  msg = error_of([&] { MM_LAUNCH(shuffle_vs_barrier_kernel, dim3(1), dim3(64), 0, 0, out.p); });
  check_contains(msg, {"kernel 'shuffle_vs_barrier_kernel'", "block (0,0,0)", "thread (5,0,0)",
                       "__shfl_down_sync", "not all lanes of the mask participate"});
  // A full mask in a partial warp names lanes that do not exist.
  msg = error_of([&] { MM_LAUNCH(shuffle_missing_lane_kernel, dim3(1), dim3(8), 0, 0, out.p); });
  check_contains(msg, {"kernel 'shuffle_missing_lane_kernel'", "thread (0,0,0)", "lanes that do not exist"});
}

TEST_CASE("launch validation: shared memory limits and the cudaFuncSetAttribute opt-in") {
  DeviceArray<float> out(1);
  std::string msg = error_of([&] { MM_LAUNCH(dyn_smem_kernel, dim3(1), dim3(128), 64 * 1024, 0, out.p, 16); });
  check_contains(msg, {"kernel 'dyn_smem_kernel'", "dynamic shared memory 65536 bytes",
                       "exceeds this kernel's limit of 49152", "cudaFuncSetAttribute"});
  REQUIRE(cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) ==
          cudaSuccess);
  MM_LAUNCH(dyn_smem_kernel, dim3(2), dim3(128), 64 * 1024, 0, out.p, 16 * 1024);
  CHECK(out.get()[0] == float(16 * 1024 - 1));
  CHECK(cudaFuncSetAttribute(dyn_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 300 * 1024) ==
        cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);
  msg = error_of([&] { MM_LAUNCH(dyn_smem_kernel, dim3(1), dim3(128), 240 * 1024, 0, out.p, 16); });
  check_contains(msg, {"kernel 'dyn_smem_kernel'", "245760 bytes", "227 KiB"});
  msg = error_of([&] { MM_LAUNCH(static_smem_too_big_kernel, dim3(1), dim3(32), 0, 0, out.p); });
  check_contains(msg, {"kernel 'static_smem_too_big_kernel'", "block (0,0,0)", "thread (0,0,0)", "'big'",
                       "52000", "48 KiB"});
}

TEST_CASE("launch validation: block and grid dimensions") {
  std::string msg = error_of([&] { MM_LAUNCH(noop_kernel, dim3(4), dim3(2048), 0, 0, nullptr); });
  check_contains(msg, {"kernel 'noop_kernel'", "block (2048,1,1)", "block dimension x = 2048"});
  msg = error_of([&] { MM_LAUNCH(noop_kernel, dim3(4), dim3(64, 32), 0, 0, nullptr); });
  check_contains(msg, {"kernel 'noop_kernel'", "2048 threads per block exceed the limit of 1024"});
  msg = error_of([&] { MM_LAUNCH(noop_kernel, dim3(1), dim3(1, 1, 65), 0, 0, nullptr); });
  check_contains(msg, {"block dimension z = 65"});
  msg = error_of([&] { MM_LAUNCH(noop_kernel, dim3(1, 70000), dim3(32), 0, 0, nullptr); });
  check_contains(msg, {"grid dimension y = 70000"});
  msg = error_of([&] { MM_LAUNCH(noop_kernel, dim3(0), dim3(32), 0, 0, nullptr); });
  check_contains(msg, {"grid dimension x = 0"});
}

TEST_CASE("threads that never wait cost no context switch; blocks can run on several OS threads") {
  const int n = 100000;
  auto x = randn(n, 7);
  DeviceArray<float> dx(x), dy{size_t(n)};
  mm::emu::reset_stats();
  MM_LAUNCH(elementwise_kernel, dim3((n + 255) / 256), dim3(256), 0, 0, dx.p, dy.p, n);
  auto st = mm::emu::stats();
  CHECK(st.blocks == uint64_t((n + 255) / 256));
  CHECK(st.switches <= 2 * st.blocks);  // into the first thread of a block and back, no more
  auto y = dy.get();
  int bad = 0;
  for (int i = 0; i < n; ++i) bad += y[size_t(i)] != 2.0f * x[size_t(i)] + 1.0f;
  CHECK(bad == 0);

  mm::emu::set_threads(2);
  auto x2 = randn(size_t(64) * 1000, 8);
  DeviceArray<float> dx2(x2), dy2(64);
  mm::cuda_examples::row_sum(dx2.p, dy2.p, 64, 1000);
  auto y2 = dy2.get();
  for (int r = 0; r < 64; ++r) {
    double s = 0;
    for (int c = 0; c < 1000; ++c) s += x2[size_t(r) * 1000 + c];
    CHECK(y2[size_t(r)] == doctest::Approx(s).epsilon(1e-4));
  }
  DeviceArray<float> out(64);  // the error names the lowest failing block
  std::string msg = error_of([&] { MM_LAUNCH(oob_static_kernel, dim3(8), dim3(64), 0, 0, out.p); });
  check_contains(msg, {"kernel 'oob_static_kernel'", "block (1,0,0)", "thread (63,0,0)"});
  mm::emu::set_threads(1);
}

TEST_CASE("runtime API subset: memory checks, errors, device, events") {
  size_t base_bytes = 0;
  const size_t base = mm::emu::live_device_allocations(&base_bytes);
  int count = 0;
  CHECK(cudaGetDeviceCount(&count) == cudaSuccess);
  CHECK(count == 1);
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(prop.warpSize == 32);
  CHECK(prop.sharedMemPerBlockOptin == 227 * 1024);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  CHECK(cudaGetLastError() == cudaErrorInvalidDevice);

  float* d = nullptr;
  REQUIRE(cudaMalloc(&d, 64 * sizeof(float)) == cudaSuccess);
  CHECK(mm::emu::live_device_allocations() == base + 1);
  std::vector<float> h(65, 1.0f);
  CHECK(cudaMemcpy(d, h.data(), 64 * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaMemcpy(d, h.data(), 65 * sizeof(float), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);  // overflow
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cudaMemcpy(h.data(), h.data() + 1, 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);  // not device
  CHECK(cudaMemset(d + 8, 0, 56 * sizeof(float)) == cudaSuccess);
  CHECK(cudaMemset(d + 8, 0, 57 * sizeof(float)) == cudaErrorInvalidValue);
  cudaStream_t s;
  cudaEvent_t e0, e1;
  CHECK(cudaStreamCreate(&s) == cudaSuccess);
  CHECK(cudaEventCreate(&e0) == cudaSuccess);
  CHECK(cudaEventCreate(&e1) == cudaSuccess);
  CHECK(cudaEventRecord(e0, s) == cudaSuccess);
  CHECK(cudaMemcpyAsync(h.data(), d, 64 * sizeof(float), cudaMemcpyDeviceToHost, s) == cudaSuccess);
  CHECK(cudaEventRecord(e1, s) == cudaSuccess);
  CHECK(cudaStreamSynchronize(s) == cudaSuccess);
  float ms = -1;
  CHECK(cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess);
  CHECK(ms >= 0.0f);
  CHECK(h[0] == 1.0f);
  CHECK(h[8] == 0.0f);
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(s);
  CHECK(cudaFree(d) == cudaSuccess);
  CHECK(cudaFree(d) == cudaErrorInvalidValue);  // double free
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(mm::emu::live_device_allocations() == base);
  CHECK(std::string(cudaGetErrorString(cudaErrorMemoryAllocation)) == "out of memory");
  CHECK(error_of([] { __syncthreads(); }).find("outside an emulated kernel") != std::string::npos);
}

TEST_CASE("bf16/half conversions match runtime/dtype.h bit for bit (NaN: CUDA's canonical NaN)") {
  std::vector<float> vals;
  for (uint64_t u = 0; u < (1ull << 32); u += 4099) {  // a stride through every exponent
    uint32_t b = uint32_t(u);
    float f;
    std::memcpy(&f, &b, 4);
    vals.push_back(f);
  }
  for (uint32_t k = 0; k < 0x10000u; k += 7) {  // bf16 ties and their neighbours
    for (uint32_t low : {0x7fffu, 0x8000u, 0x8001u}) {
      uint32_t b = (k << 16) | low;
      float f;
      std::memcpy(&f, &b, 4);
      vals.push_back(f);
    }
  }
  for (uint32_t h = 0; h < 0x7c00u; ++h) {  // f16 ties: halfway between consecutive halves
    float a = mm::f16_bits_to_f32(uint16_t(h)), b = mm::f16_bits_to_f32(uint16_t(h + 1));
    vals.push_back(0.5f * (a + b));
    vals.push_back(-0.5f * (a + b));
  }
  for (float f : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-45f, 1e-40f, 1.17549435e-38f, 65504.0f,
                  65519.99f, 65520.0f, 3.0e38f, 3.4028235e38f, 5.9604645e-8f, 2.9802322e-8f, 6.1035156e-5f})
    vals.push_back(f);
  int bad_b = 0, bad_h = 0;
  for (float f : vals) {
    const uint16_t b = __bfloat16_as_ushort(__float2bfloat16(f)), h = __half_as_ushort(__float2half(f));
    if (std::isnan(f)) {
      bad_b += b != 0x7fff;
      bad_h += h != 0x7fff;
    } else {
      bad_b += b != mm::f32_to_bf16_bits(f);
      bad_h += h != mm::f32_to_f16_bits(f);
    }
  }
  CHECK(bad_b == 0);
  CHECK(bad_h == 0);
  int bad_back = 0;
  for (uint32_t x = 0; x < 0x10000u; ++x) {
    const float a = __bfloat162float(__ushort_as_bfloat16(uint16_t(x))), b = mm::bf16_bits_to_f32(uint16_t(x));
    const float c = __half2float(__ushort_as_half(uint16_t(x))), d = mm::f16_bits_to_f32(uint16_t(x));
    bad_back += std::memcmp(&a, &b, 4) != 0;  // bf16 -> f32 keeps NaN payloads, as CUDA does
    bad_back += std::isnan(d) ? !std::isnan(c) : std::memcmp(&c, &d, 4) != 0;
  }
  CHECK(bad_back == 0);
  // implicit conversions and arithmetic as in cuda_bf16.h / cuda_fp16.h
  __nv_bfloat16 x = 1.5f, y = 0.25f;
  CHECK(float(x * y) == 0.375f);
  half hx = 2.0f;
  CHECK(float(hx / half(4.0f)) == 0.5f);
}

// Known answers from CUDA's __float2half (cuda_fp16.hpp host path, checked for all 2^32
// floats against CUDA 13): f16 subnormals and the rounding at the top of the range.
TEST_CASE("f16 conversion known answers (subnormals, ties, overflow)") {
  struct KA {
    float f;
    uint16_t h;
  };
  const KA cases[] = {
      {1.0f, 0x3c00},         {65504.0f, 0x7bff},       {65520.0f, 0x7c00},
      {65519.99f, 0x7bff},    {0x1p-14f, 0x0400},       {0x1p-24f, 0x0001},
      {0x1p-25f, 0x0000},     {0x1.8p-25f, 0x0001},     {0x1.8p-24f, 0x0002},
      {0x1p-15f, 0x0200},     {0x1.ff8p-15f, 0x03ff},   {0x1.ffcp-15f, 0x0400},
      {0x1.ff4p-15f, 0x03fe}, {0x1.ffep-15f, 0x0400},
      {-0x1p-20f, 0x8010},    {0x1.4p-23f, 0x0002},     {0x1p-26f, 0x0000},
  };
  for (const KA& c : cases) {
    CHECK_MESSAGE(__half_as_ushort(__float2half(c.f)) == c.h, "f=", c.f);
    CHECK_MESSAGE(mm::f32_to_f16_bits(c.f) == c.h, "runtime/dtype.h f32_to_f16_bits(", c.f, ")");
  }
}

}  // TEST_SUITE
