// Kernel study: softmax over the rows of x [R, N] (f32),
//
//   y[r, j] = exp(x[r, j] - m_r) / sum_k exp(x[r, k] - m_r),   m_r = max_k x[r, k]
//
// (subtracting the row maximum keeps exp() from overflowing; it cancels in the ratio).
// The shape timed is attention's: R = B*NH*T query rows of N = T keys. The production
// kernel is cuda/softmax.cu (one block per row, any dtype, special rows).
//
//   v1  one thread per row, three sweeps over global memory (max, exp + sum, scale).
//       Few rows -> few threads; neighbouring threads read addresses N floats apart, so
//       no load is coalesced.
//   v2  one block (256 threads) per row: each sweep is strided over the block (coalesced),
//       the max and the sum are tree reductions in shared memory (8 barrier steps each).
//   v3  one warp per row: reductions by warp shuffles (no shared memory, no barriers), and
//       an online max/sum (m' = max(m, x); s' = s e^(m - m') + e^(x - m')) so the
//       statistics take one read sweep instead of two.
//   v4  v3 with 128-bit loads/stores (float4) and the row held in registers (N <= 1024,
//       N % 4 == 0): x is read from memory exactly once, so the kernel can run at the
//       bandwidth bound. Other shapes go to v3.
//
// Build: `make study` (emulator: checks) or `make study-gpu` (timing); run
// build/study/softmax [N] to time version N only.
#include "cuda/study/common.cuh"

namespace mm::study::softmax {

// ---- CPU reference (double) ----------------------------------------------------------------
inline std::vector<double> reference(const std::vector<float>& x, int R, int N) {
  std::vector<double> y(x.size());
  for (int r = 0; r < R; ++r) {
    const float* xr = x.data() + size_t(r) * N;
    double m = -INFINITY, s = 0;
    for (int j = 0; j < N; ++j) m = std::fmax(m, double(xr[j]));
    for (int j = 0; j < N; ++j) s += std::exp(double(xr[j]) - m);
    for (int j = 0; j < N; ++j) y[size_t(r) * N + j] = std::exp(double(xr[j]) - m) / s;
  }
  return y;
}

// ---- v1: one thread per row ------------------------------------------------------------------
__global__ void softmax_v1(const float* __restrict__ x, float* __restrict__ y, int R, int N) {
  const int r = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (r >= R) return;
  const float* xr = x + int64_t(r) * N;
  float* yr = y + int64_t(r) * N;
  float m = -FLT_MAX;
  for (int j = 0; j < N; ++j) m = fmaxf(m, xr[j]);
  float s = 0.f;
  for (int j = 0; j < N; ++j) {
    const float e = expf(xr[j] - m);
    yr[j] = e;  // keep the numerator: the last sweep only scales
    s += e;
  }
  const float inv = 1.f / s;
  for (int j = 0; j < N; ++j) yr[j] *= inv;
}

// ---- v2: one block per row, shared-memory tree reductions ------------------------------------
constexpr int kV2Threads = 256;  // a power of two: the tree halves it

__global__ void softmax_v2(const float* __restrict__ x, float* __restrict__ y, int N) {
  MM_SHARED(float, red, kV2Threads);
  const int t = int(threadIdx.x);
  const float* xr = x + int64_t(blockIdx.x) * N;
  float* yr = y + int64_t(blockIdx.x) * N;

  float m = -FLT_MAX;
  for (int j = t; j < N; j += kV2Threads) m = fmaxf(m, xr[j]);
  red[t] = m;
  __syncthreads();
  for (int stride = kV2Threads / 2; stride > 0; stride /= 2) {
    if (t < stride) red[t] = fmaxf(red[t], red[t + stride]);
    __syncthreads();
  }
  m = red[0];
  __syncthreads();  // everyone has read red[0] before the sum overwrites it

  float s = 0.f;
  for (int j = t; j < N; j += kV2Threads) s += expf(xr[j] - m);
  red[t] = s;
  __syncthreads();
  for (int stride = kV2Threads / 2; stride > 0; stride /= 2) {
    if (t < stride) red[t] = red[t] + red[t + stride];
    __syncthreads();
  }
  const float inv = 1.f / red[0];
  for (int j = t; j < N; j += kV2Threads) yr[j] = expf(xr[j] - m) * inv;
}

// ---- v3: one warp per row, shuffles, online max/sum ------------------------------------------
constexpr int kWarpsPerBlock = 8;

// Folds the (m, s) pairs of the 32 lanes into every lane: the pair of the union is
// (max(m1, m2), s1 e^(m1 - m) + s2 e^(m2 - m)). m starts at -FLT_MAX, not -inf, so that
// two empty lanes combine to (-FLT_MAX, 0) instead of inf - inf = NaN.
__device__ __forceinline__ void warp_online_reduce(float& m, float& s) {
  for (int o = 16; o > 0; o /= 2) {
    const float m2 = __shfl_xor_sync(kFullMask, m, o);
    const float s2 = __shfl_xor_sync(kFullMask, s, o);
    const float mm = fmaxf(m, m2);
    s = s * expf(m - mm) + s2 * expf(m2 - mm);
    m = mm;
  }
}

__global__ void softmax_v3(const float* __restrict__ x, float* __restrict__ y, int R, int N) {
  const int lane = int(threadIdx.x) % 32;
  const int r = int(blockIdx.x) * kWarpsPerBlock + int(threadIdx.x) / 32;
  if (r >= R) return;  // the whole warp leaves together: no shuffle misses a lane
  const float* xr = x + int64_t(r) * N;
  float* yr = y + int64_t(r) * N;
  float m = -FLT_MAX, s = 0.f;
  for (int j = lane; j < N; j += 32) {
    const float v = xr[j];
    if (v > m) {
      s *= expf(m - v);
      m = v;
    }
    s += expf(v - m);
  }
  warp_online_reduce(m, s);
  const float inv = 1.f / s;
  for (int j = lane; j < N; j += 32) yr[j] = expf(xr[j] - m) * inv;
}

// ---- v4: v3 with float4 and the row in registers --------------------------------------------
constexpr int kV4Cache = 8;                 // float4 per lane
constexpr int kV4MaxN = 32 * 4 * kV4Cache;  // 1024

__global__ void softmax_v4(const float* __restrict__ x, float* __restrict__ y, int R, int N) {
  const int lane = int(threadIdx.x) % 32;
  const int r = int(blockIdx.x) * kWarpsPerBlock + int(threadIdx.x) / 32;
  if (r >= R) return;
  const int N4 = N / 4;
  const float4* xr = reinterpret_cast<const float4*>(x + int64_t(r) * N);
  float4* yr = reinterpret_cast<float4*>(y + int64_t(r) * N);
  float4 c[kV4Cache];
  float m = -FLT_MAX;
  MM_UNROLL
  for (int u = 0; u < kV4Cache; ++u) {
    const int j = lane + 32 * u;
    c[u] = j < N4 ? xr[j] : make_float4(-FLT_MAX, -FLT_MAX, -FLT_MAX, -FLT_MAX);
    m = fmaxf(m, fmaxf(fmaxf(c[u].x, c[u].y), fmaxf(c[u].z, c[u].w)));
  }
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(kFullMask, m, o));
  // Exact two-pass statistics, at no memory cost: the row is already in registers.
  float s = 0.f;
  MM_UNROLL
  for (int u = 0; u < kV4Cache; ++u) {
    c[u].x = expf(c[u].x - m);  // padding: exp(-FLT_MAX - m) = 0
    c[u].y = expf(c[u].y - m);
    c[u].z = expf(c[u].z - m);
    c[u].w = expf(c[u].w - m);
    s += (c[u].x + c[u].y) + (c[u].z + c[u].w);
  }
  for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(kFullMask, s, o);
  const float inv = 1.f / s;
  MM_UNROLL
  for (int u = 0; u < kV4Cache; ++u) {
    const int j = lane + 32 * u;
    if (j < N4) yr[j] = make_float4(c[u].x * inv, c[u].y * inv, c[u].z * inv, c[u].w * inv);
  }
}

// ---- launchers -------------------------------------------------------------------------------
inline unsigned div_up(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }

inline void launch_v1(const float* x, float* y, int R, int N) {
  MM_LAUNCH(softmax_v1, dim3(div_up(R, 128)), dim3(128), 0, 0, x, y, R, N);
}
inline void launch_v2(const float* x, float* y, int R, int N) {
  MM_LAUNCH(softmax_v2, dim3(unsigned(R)), dim3(kV2Threads), 0, 0, x, y, N);
}
inline void launch_v3(const float* x, float* y, int R, int N) {
  MM_LAUNCH(softmax_v3, dim3(div_up(R, kWarpsPerBlock)), dim3(32 * kWarpsPerBlock), 0, 0, x, y, R, N);
}
inline bool v4_applies(const float* x, const float* y, int N) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return N % 4 == 0 && N <= kV4MaxN && aligned(x) && aligned(y);
}
inline void launch_v4(const float* x, float* y, int R, int N) {
  if (!v4_applies(x, y, N)) return launch_v3(x, y, R, N);
  MM_LAUNCH(softmax_v4, dim3(div_up(R, kWarpsPerBlock)), dim3(32 * kWarpsPerBlock), 0, 0, x, y, R, N);
}

struct Version {
  const char* name;
  void (*launch)(const float* x, float* y, int R, int N);
};
inline const Version kVersions[] = {
    {"v1 thread per row", launch_v1},
    {"v2 block per row, shared-memory tree", launch_v2},
    {"v3 warp per row, shuffles, online max/sum", launch_v3},
    {"v4 v3 + float4, row in registers", launch_v4},
};

// Every version at small shapes: fewer rows than a block, N below one warp, N not a
// multiple of 4 (v4 falls back), N = 1000 (v4: 250 float4, lanes with 7 or 8).
inline bool run_checks() {
  struct Shape {
    int R, N;
  };
  const Shape shapes[] = {{3, 7}, {37, 256}, {5, 1000}, {9, 77}};
  bool ok = true;
  if (g_verbose) std::printf("softmax: every version against the CPU reference\n");
  for (const Shape& sh : shapes) {
    const std::vector<float> x = random_vector(size_t(sh.R) * sh.N, uint64_t(sh.R * 131 + sh.N), -8.f, 8.f);
    const std::vector<double> ref = reference(x, sh.R, sh.N);
    DeviceBuffer<float> dx(x), dy(x.size());
    for (const Version& v : kVersions) {
      dy.poison();
      v.launch(dx.get(), dy.get(), sh.R, sh.N);
      ok &= check_close(cat(v.name, " [", sh.R, ", ", sh.N, "]"), dy.download(), ref, 1e-7, 1e-5);
    }
  }
  return ok;
}

// OFA-base attention probabilities: B = 8, NH = 12, T = 256.
inline void run_timing(int only) {
  const int B = 8, NH = 12, T = 256, R = B * NH * T, N = T;
  Cost c;
  c.bytes = 2.0 * R * N * sizeof(float);  // read x, write y
  c.flops = 5.0 * R * N;                  // max, subtract, exp, sum, scale per element
  print_cost("softmax", cat("[B*NH*T, T] = [", R, ", ", N, "] f32"), c);
  if (only < 0) return;
  const std::vector<float> x = random_vector(size_t(R) * N, 7, -8.f, 8.f);
  const std::vector<double> ref = reference(x, R, N);
  DeviceBuffer<float> dx(x), dy(x.size());
  for (int k = 0; k < int(std::size(kVersions)); ++k) {
    const Version& v = kVersions[k];
    if (only && only != k + 1) continue;
    dy.poison();
    v.launch(dx.get(), dy.get(), R, N);
    if (!check_close(v.name, dy.download(), ref, 1e-7, 1e-4)) continue;
    report(v.name, time_us([&] { v.launch(dx.get(), dy.get(), R, N); }), c);
  }
}

}  // namespace mm::study::softmax

MM_STUDY_MAIN(mm::study::softmax::run_checks, mm::study::softmax::run_timing)
