// Kernel study: LayerNorm forward over the rows of x [R, C] (f32),
//
//   mean_r = sum_c x[r, c] / C
//   rstd_r = 1 / sqrt(sum_c (x[r, c] - mean_r)^2 / C + eps)
//   y[r, c] = (x[r, c] - mean_r) rstd_r w[c] + b[c]
//
// mean and rstd are outputs too: the backward needs them. The shape timed is the
// transformer's: R = B*T tokens of C channels. The production kernel is cuda/norm.cu.
//
//   v1  one thread per row, three sweeps (mean, variance, normalise). R = 2048 rows is
//       2048 threads: most of an H100 idles, and no load is coalesced.
//   v2  one block (256 threads) per row, coalesced sweeps, shared-memory tree reductions
//       for the sum and the squared deviations (x read three times, mostly from L1/L2).
//   v3  one warp per row, warp-shuffle reductions: no shared memory, no barriers, 8 rows
//       per 256-thread block.
//   v4  v3 with float4 loads/stores and the row held in registers (C <= 1024,
//       C % 4 == 0): x comes from memory once and the variance is the exact two-pass one
//       at no extra traffic. Other shapes go to v3.
//
// Build: `make study` (emulator: checks) or `make study-gpu` (timing).
#include "cuda/study/common.cuh"

namespace mm::study::layernorm {

constexpr float kEps = 1e-5f;

struct Outputs {
  std::vector<double> y, mean, rstd;
};

// ---- CPU reference (double) ----------------------------------------------------------------
inline Outputs reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
                         int R, int C) {
  Outputs o{std::vector<double>(x.size()), std::vector<double>(size_t(R)), std::vector<double>(size_t(R))};
  for (int r = 0; r < R; ++r) {
    const float* xr = x.data() + size_t(r) * C;
    double m = 0, v = 0;
    for (int c = 0; c < C; ++c) m += xr[c];
    m /= C;
    for (int c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
    const double rs = 1.0 / std::sqrt(v / C + double(kEps));
    for (int c = 0; c < C; ++c) o.y[size_t(r) * C + c] = (xr[c] - m) * rs * w[size_t(c)] + b[size_t(c)];
    o.mean[size_t(r)] = m;
    o.rstd[size_t(r)] = rs;
  }
  return o;
}

// ---- v1: one thread per row ------------------------------------------------------------------
__global__ void layernorm_v1(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                             float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, int R, int C) {
  const int r = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (r >= R) return;
  const float* xr = x + int64_t(r) * C;
  float* yr = y + int64_t(r) * C;
  float m = 0.f;
  for (int c = 0; c < C; ++c) m += xr[c];
  m /= float(C);
  float v = 0.f;
  for (int c = 0; c < C; ++c) v += (xr[c] - m) * (xr[c] - m);
  const float rs = rsqrtf(v / float(C) + kEps);
  for (int c = 0; c < C; ++c) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
  mean[r] = m;
  rstd[r] = rs;
}

// ---- v2: one block per row, shared-memory tree reductions ------------------------------------
constexpr int kV2Threads = 256;

// The sum of v over the block, in every thread. Ends with a barrier so `red` may be
// reused at once.
__device__ float block_sum_tree(float v, mm_smem_ptr<float> red) {
  const int t = int(threadIdx.x);
  red[t] = v;
  __syncthreads();
  for (int stride = kV2Threads / 2; stride > 0; stride /= 2) {
    if (t < stride) red[t] = red[t] + red[t + stride];
    __syncthreads();
  }
  const float total = red[0];
  __syncthreads();
  return total;
}

__global__ void layernorm_v2(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                             float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, int C) {
  MM_SHARED(float, red, kV2Threads);
  const int t = int(threadIdx.x), r = int(blockIdx.x);
  const float* xr = x + int64_t(r) * C;
  float* yr = y + int64_t(r) * C;
  float s = 0.f;
  for (int c = t; c < C; c += kV2Threads) s += xr[c];
  const float m = block_sum_tree(s, red) / float(C);
  float v = 0.f;
  for (int c = t; c < C; c += kV2Threads) v += (xr[c] - m) * (xr[c] - m);
  const float rs = rsqrtf(block_sum_tree(v, red) / float(C) + kEps);
  for (int c = t; c < C; c += kV2Threads) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
  if (t == 0) {
    mean[r] = m;
    rstd[r] = rs;
  }
}

// ---- v3: one warp per row, shuffles ----------------------------------------------------------
constexpr int kWarpsPerBlock = 8;

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__global__ void layernorm_v3(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                             float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, int R, int C) {
  const int lane = int(threadIdx.x) % 32;
  const int r = int(blockIdx.x) * kWarpsPerBlock + int(threadIdx.x) / 32;
  if (r >= R) return;  // whole warps leave
  const float* xr = x + int64_t(r) * C;
  float* yr = y + int64_t(r) * C;
  float s = 0.f;
  for (int c = lane; c < C; c += 32) s += xr[c];
  const float m = warp_sum(s) / float(C);
  float v = 0.f;
  for (int c = lane; c < C; c += 32) v += (xr[c] - m) * (xr[c] - m);
  const float rs = rsqrtf(warp_sum(v) / float(C) + kEps);
  for (int c = lane; c < C; c += 32) yr[c] = (xr[c] - m) * rs * w[c] + b[c];
  if (lane == 0) {
    mean[r] = m;
    rstd[r] = rs;
  }
}

// ---- v4: v3 with float4 and the row in registers --------------------------------------------
constexpr int kV4Cache = 8;                 // float4 per lane
constexpr int kV4MaxC = 32 * 4 * kV4Cache;  // 1024

__global__ void layernorm_v4(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ b,
                             float* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd, int R, int C) {
  const int lane = int(threadIdx.x) % 32;
  const int r = int(blockIdx.x) * kWarpsPerBlock + int(threadIdx.x) / 32;
  if (r >= R) return;
  const int C4 = C / 4;
  const float4* xr = reinterpret_cast<const float4*>(x + int64_t(r) * C);
  const float4* w4 = reinterpret_cast<const float4*>(w);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float4* yr = reinterpret_cast<float4*>(y + int64_t(r) * C);
  float4 c[kV4Cache];
  float s = 0.f;
  MM_UNROLL
  for (int u = 0; u < kV4Cache; ++u) {
    const int j = lane + 32 * u;
    c[u] = j < C4 ? xr[j] : make_float4(0.f, 0.f, 0.f, 0.f);
    s += (c[u].x + c[u].y) + (c[u].z + c[u].w);
  }
  const float m = warp_sum(s) / float(C);
  float v = 0.f;
  MM_UNROLL
  for (int u = 0; u < kV4Cache; ++u) {
    if (lane + 32 * u >= C4) continue;  // padding is 0, not m: leave it out
    const float dx = c[u].x - m, dy = c[u].y - m, dz = c[u].z - m, dw = c[u].w - m;
    v += (dx * dx + dy * dy) + (dz * dz + dw * dw);
  }
  const float rs = rsqrtf(warp_sum(v) / float(C) + kEps);
  MM_UNROLL
  for (int u = 0; u < kV4Cache; ++u) {
    const int j = lane + 32 * u;
    if (j >= C4) continue;
    const float4 wj = w4[j], bj = b4[j];
    yr[j] = make_float4((c[u].x - m) * rs * wj.x + bj.x, (c[u].y - m) * rs * wj.y + bj.y,
                        (c[u].z - m) * rs * wj.z + bj.z, (c[u].w - m) * rs * wj.w + bj.w);
  }
  if (lane == 0) {
    mean[r] = m;
    rstd[r] = rs;
  }
}

// ---- launchers -------------------------------------------------------------------------------
struct Args {
  const float *x, *w, *b;
  float *y, *mean, *rstd;
  int R, C;
};

inline unsigned div_up(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }

inline void launch_v1(const Args& a) {
  MM_LAUNCH(layernorm_v1, dim3(div_up(a.R, 128)), dim3(128), 0, 0, a.x, a.w, a.b, a.y, a.mean, a.rstd, a.R, a.C);
}
inline void launch_v2(const Args& a) {
  MM_LAUNCH(layernorm_v2, dim3(unsigned(a.R)), dim3(kV2Threads), 0, 0, a.x, a.w, a.b, a.y, a.mean, a.rstd, a.C);
}
inline void launch_v3(const Args& a) {
  MM_LAUNCH(layernorm_v3, dim3(div_up(a.R, kWarpsPerBlock)), dim3(32 * kWarpsPerBlock), 0, 0, a.x, a.w, a.b, a.y,
            a.mean, a.rstd, a.R, a.C);
}
inline void launch_v4(const Args& a) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (a.C % 4 != 0 || a.C > kV4MaxC || !aligned(a.x) || !aligned(a.w) || !aligned(a.b) || !aligned(a.y))
    return launch_v3(a);
  MM_LAUNCH(layernorm_v4, dim3(div_up(a.R, kWarpsPerBlock)), dim3(32 * kWarpsPerBlock), 0, 0, a.x, a.w, a.b, a.y,
            a.mean, a.rstd, a.R, a.C);
}

struct Version {
  const char* name;
  void (*launch)(const Args&);
};
inline const Version kVersions[] = {
    {"v1 thread per row", launch_v1},
    {"v2 block per row, shared-memory tree", launch_v2},
    {"v3 warp per row, shuffles", launch_v3},
    {"v4 v3 + float4, row in registers", launch_v4},
};

// Runs version v at [R, C] against the reference; true when y, mean and rstd match.
inline bool check_version(const Version& v, int R, int C, double rtol, bool quiet_name = false) {
  const std::vector<float> x = random_vector(size_t(R) * C, uint64_t(R * 7 + C), -3.f, 5.f);
  const std::vector<float> w = random_vector(size_t(C), 11, 0.5f, 1.5f), b = random_vector(size_t(C), 12);
  const Outputs ref = reference(x, w, b, R, C);
  DeviceBuffer<float> dx(x), dw(w), db(b), dy(x.size()), dm{size_t(R)}, dr{size_t(R)};
  dy.poison();
  dm.poison();
  dr.poison();
  v.launch(Args{dx.get(), dw.get(), db.get(), dy.get(), dm.get(), dr.get(), R, C});
  const std::string what = quiet_name ? std::string(v.name) : cat(v.name, " [", R, ", ", C, "]");
  bool ok = check_close(what + " y", dy.download(), ref.y, 1e-5, rtol);
  ok &= check_close(what + " mean", dm.download(), ref.mean, 1e-6, rtol);
  ok &= check_close(what + " rstd", dr.download(), ref.rstd, 0, rtol);
  return ok;
}

// Shapes: one row, C below a warp, C not a multiple of 4 (v4 falls back), C = 768.
inline bool run_checks() {
  struct Shape {
    int R, C;
  };
  const Shape shapes[] = {{1, 5}, {19, 768}, {10, 130}, {4, 1024}};
  bool ok = true;
  if (g_verbose) std::printf("layernorm: every version against the CPU reference\n");
  for (const Shape& sh : shapes)
    for (const Version& v : kVersions) ok &= check_version(v, sh.R, sh.C, 1e-5);
  return ok;
}

// OFA-base: B*T = 2048 tokens of C = 768.
inline void run_timing(int only) {
  const int B = 8, T = 256, C = 768, R = B * T;
  Cost c;
  c.bytes = (2.0 * R * C + 2.0 * C + 2.0 * R) * sizeof(float);  // x, y; w, b; mean, rstd
  c.flops = 8.0 * R * C;  // sum, subtract, square, sum; subtract, scale, w, b
  print_cost("layernorm forward", cat("[B*T, C] = [", R, ", ", C, "] f32"), c);
  if (only < 0) return;
  const std::vector<float> x = random_vector(size_t(R) * C, 5), w = random_vector(size_t(C), 6),
                           b = random_vector(size_t(C), 8);
  DeviceBuffer<float> dx(x), dw(w), db(b), dy(x.size()), dm{size_t(R)}, dr{size_t(R)};
  const Args a{dx.get(), dw.get(), db.get(), dy.get(), dm.get(), dr.get(), R, C};
  for (int k = 0; k < int(std::size(kVersions)); ++k) {
    const Version& v = kVersions[k];
    if (only && only != k + 1) continue;
    if (!check_version(v, R, C, 1e-4, true)) continue;
    report(v.name, time_us([&] { v.launch(a); }), c);
  }
}

}  // namespace mm::study::layernorm

MM_STUDY_MAIN(mm::study::layernorm::run_checks, mm::study::layernorm::run_timing)
