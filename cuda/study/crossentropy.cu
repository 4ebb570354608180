// Kernel study: cross-entropy forward with label smoothing over logits [R, V] (f32),
//
//   lse_r  = log sum_j exp(x[r, j])                    (through the row max, as softmax)
//   loss_r = lse_r - (1 - eps) x[r, t_r] - (eps / V) sum_j x[r, j]
//
// which is -sum_j q_j log p_j for the smoothed target q = (1 - eps) onehot(t_r) + eps / V
// and p = softmax(x_r), without materialising p (the fusion the architecture asks for).
// A target equal to kIgnore (padding) gives loss 0. The shape timed is the decoder's
// output: R = B*T tokens over the V = 59457-word vocabulary: 487 MB of logits read once,
// so every version is a study in streaming memory. The production kernel (with the
// gradient in the same pass, allowed-token masks) is cuda/loss.cu.
//
//   v1  one thread per row: a max sweep, then a sweep summing exp(x - m) and x. 2048
//       threads for 2048 rows: a few SMs' worth, uncoalesced.
//   v2  one block (256 threads) per row, two coalesced sweeps (max; sums), reductions by
//       a shared-memory tree.
//   v3  one block per row, ONE sweep: each thread keeps an online (max, sum of exp) pair;
//       reductions by warp shuffles, then across warps through 8 shared values.
//   v4  v3 with 128-bit loads. A row starts at r*V floats: with V odd it is 16-byte
//       aligned for one row in four, so each row runs a scalar head up to the next
//       16-byte boundary, a float4 body, and a scalar tail.
//
// Build: `make study` (emulator: checks) or `make study-gpu` (timing).
#include "cuda/study/common.cuh"

namespace mm::study::crossentropy {

constexpr int kIgnore = -100;

// ---- CPU reference (double) ----------------------------------------------------------------
inline std::vector<double> reference(const std::vector<float>& x, const std::vector<int>& t, int R, int V,
                                     float eps) {
  std::vector<double> loss(size_t(R), 0.0);
  for (int r = 0; r < R; ++r) {
    if (t[size_t(r)] == kIgnore) continue;
    const float* xr = x.data() + size_t(r) * V;
    double m = -INFINITY, s = 0, sx = 0;
    for (int j = 0; j < V; ++j) m = std::fmax(m, double(xr[j]));
    for (int j = 0; j < V; ++j) s += std::exp(double(xr[j]) - m), sx += xr[j];
    loss[size_t(r)] = m + std::log(s) - (1.0 - eps) * xr[t[size_t(r)]] - eps / V * sx;
  }
  return loss;
}

// ---- v1: one thread per row ------------------------------------------------------------------
__global__ void crossentropy_v1(const float* __restrict__ x, const int* __restrict__ t, float* __restrict__ loss,
                                int R, int V, float eps) {
  const int r = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (r >= R) return;
  if (t[r] == kIgnore) {
    loss[r] = 0.f;
    return;
  }
  const float* xr = x + int64_t(r) * V;
  float m = -FLT_MAX;
  for (int j = 0; j < V; ++j) m = fmaxf(m, xr[j]);
  float s = 0.f, sx = 0.f;
  for (int j = 0; j < V; ++j) {
    s += expf(xr[j] - m);
    sx += xr[j];
  }
  loss[r] = m + logf(s) - (1.f - eps) * xr[t[r]] - eps / float(V) * sx;
}

// ---- v2: one block per row, two sweeps, shared-memory trees ----------------------------------
constexpr int kThreads = 256;

// The reduction of v over the block (tree in shared memory), in every thread.
template <class Op>
__device__ float block_tree(float v, mm_smem_ptr<float> red, Op op) {
  const int t = int(threadIdx.x);
  red[t] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) red[t] = op(float(red[t]), float(red[t + stride]));
    __syncthreads();
  }
  const float total = red[0];
  __syncthreads();
  return total;
}
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
};

__global__ void crossentropy_v2(const float* __restrict__ x, const int* __restrict__ t, float* __restrict__ loss,
                                int V, float eps) {
  MM_SHARED(float, red, kThreads);
  const int r = int(blockIdx.x), tid = int(threadIdx.x);
  const int target = t[r];
  if (target == kIgnore) {  // the same for the whole block: no barrier is skipped by some
    if (tid == 0) loss[r] = 0.f;
    return;
  }
  const float* xr = x + int64_t(r) * V;
  float m = -FLT_MAX;
  for (int j = tid; j < V; j += kThreads) m = fmaxf(m, xr[j]);
  m = block_tree(m, red, Max{});
  float s = 0.f, sx = 0.f;
  for (int j = tid; j < V; j += kThreads) {
    s += expf(xr[j] - m);
    sx += xr[j];
  }
  s = block_tree(s, red, Sum{});
  sx = block_tree(sx, red, Sum{});
  if (tid == 0) loss[r] = m + logf(s) - (1.f - eps) * xr[target] - eps / float(V) * sx;
}

// ---- v3: one block per row, one sweep with an online max/sum ---------------------------------
// The per-thread state: running max m, sum of exp(x - m), and the plain sum of x.
struct State {
  float m = -FLT_MAX, s = 0.f, sx = 0.f;
};

__device__ __forceinline__ void add(State& a, float v) {
  if (v > a.m) {
    a.s *= expf(a.m - v);
    a.m = v;
  }
  a.s += expf(v - a.m);
  a.sx += v;
}

// (m1, s1) + (m2, s2) = (max, s1 e^(m1 - max) + s2 e^(m2 - max)); -FLT_MAX (not -inf)
// for empty states keeps it NaN-free.
__device__ __forceinline__ State merge(State a, float m2, float s2, float sx2) {
  const float mm = fmaxf(a.m, m2);
  return State{mm, a.s * expf(a.m - mm) + s2 * expf(m2 - mm), a.sx + sx2};
}

__device__ __forceinline__ State warp_merge(State a) {
  for (int o = 16; o > 0; o /= 2)
    a = merge(a, __shfl_xor_sync(kFullMask, a.m, o), __shfl_xor_sync(kFullMask, a.s, o),
              __shfl_xor_sync(kFullMask, a.sx, o));
  return a;
}

// Merges the block's states (warps, then warp 0 over the 8 warp results) and writes the
// loss from thread 0.
__device__ void finish_row(State st, const float* __restrict__ xr, int target, int V, float eps, float* loss_r) {
  MM_SHARED(float, wm, kThreads / 32);
  MM_SHARED(float, ws, kThreads / 32);
  MM_SHARED(float, wsx, kThreads / 32);
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  st = warp_merge(st);
  if (lane == 0) {
    wm[warp] = st.m;
    ws[warp] = st.s;
    wsx[warp] = st.sx;
  }
  __syncthreads();
  if (warp != 0) return;  // no barrier follows
  State a;
  if (lane < kThreads / 32) a = State{wm[lane], ws[lane], wsx[lane]};
  a = warp_merge(a);
  if (lane == 0) *loss_r = a.m + logf(a.s) - (1.f - eps) * xr[target] - eps / float(V) * a.sx;
}

__global__ void crossentropy_v3(const float* __restrict__ x, const int* __restrict__ t, float* __restrict__ loss,
                                int V, float eps) {
  const int r = int(blockIdx.x), target = t[r];
  if (target == kIgnore) {
    if (threadIdx.x == 0) loss[r] = 0.f;
    return;
  }
  const float* xr = x + int64_t(r) * V;
  State st;
  for (int j = int(threadIdx.x); j < V; j += kThreads) add(st, xr[j]);
  finish_row(st, xr, target, V, eps, loss + r);
}

// ---- v4: v3 with float4 loads (head, aligned body, tail) -------------------------------------
__global__ void crossentropy_v4(const float* __restrict__ x, const int* __restrict__ t, float* __restrict__ loss,
                                int V, float eps) {
  const int r = int(blockIdx.x), target = t[r];
  if (target == kIgnore) {
    if (threadIdx.x == 0) loss[r] = 0.f;
    return;
  }
  const float* xr = x + int64_t(r) * V;
  // Floats before the first 16-byte boundary of the row (x itself is 16-byte aligned).
  int head = int((4 - (reinterpret_cast<uintptr_t>(xr) / sizeof(float)) % 4) % 4);
  head = head < V ? head : V;
  const int n4 = (V - head) / 4;
  const float4* body = reinterpret_cast<const float4*>(xr + head);
  State st;
  if (int(threadIdx.x) < head) add(st, xr[threadIdx.x]);
  for (int j = int(threadIdx.x); j < n4; j += kThreads) {
    const float4 v = body[j];
    add(st, v.x);
    add(st, v.y);
    add(st, v.z);
    add(st, v.w);
  }
  const int tail0 = head + 4 * n4;
  if (tail0 + int(threadIdx.x) < V) add(st, xr[tail0 + int(threadIdx.x)]);
  finish_row(st, xr, target, V, eps, loss + r);
}

// ---- launchers -------------------------------------------------------------------------------
struct Args {
  const float* x;
  const int* t;
  float* loss;
  int R, V;
  float eps;
};

inline void launch_v1(const Args& a) {
  MM_LAUNCH(crossentropy_v1, dim3(unsigned((a.R + 127) / 128)), dim3(128), 0, 0, a.x, a.t, a.loss, a.R, a.V, a.eps);
}
inline void launch_v2(const Args& a) {
  MM_LAUNCH(crossentropy_v2, dim3(unsigned(a.R)), dim3(kThreads), 0, 0, a.x, a.t, a.loss, a.V, a.eps);
}
inline void launch_v3(const Args& a) {
  MM_LAUNCH(crossentropy_v3, dim3(unsigned(a.R)), dim3(kThreads), 0, 0, a.x, a.t, a.loss, a.V, a.eps);
}
inline void launch_v4(const Args& a) {
  if (reinterpret_cast<uintptr_t>(a.x) % 16 != 0) return launch_v3(a);
  MM_LAUNCH(crossentropy_v4, dim3(unsigned(a.R)), dim3(kThreads), 0, 0, a.x, a.t, a.loss, a.V, a.eps);
}

struct Version {
  const char* name;
  void (*launch)(const Args&);
};
inline const Version kVersions[] = {
    {"v1 thread per row", launch_v1},
    {"v2 block per row, two sweeps, shared tree", launch_v2},
    {"v3 block per row, one online sweep, shuffles", launch_v3},
    {"v4 v3 + float4 (head, body, tail)", launch_v4},
};

// Targets in [0, V) with every 5th row ignored.
inline std::vector<int> make_targets(int R, int V) {
  std::vector<int> t(static_cast<size_t>(R));
  for (int r = 0; r < R; ++r) t[size_t(r)] = r % 5 == 3 ? kIgnore : int((uint64_t(r) * 2654435761u) % uint64_t(V));
  return t;
}

inline bool check_version(const Version& v, int R, int V, float eps, double rtol, bool quiet_name = false) {
  const std::vector<float> x = random_vector(size_t(R) * V, uint64_t(R * 3 + V), -6.f, 6.f);
  const std::vector<int> t = make_targets(R, V);
  const std::vector<double> ref = reference(x, t, R, V, eps);
  DeviceBuffer<float> dx(x), dl{size_t(R)};
  DeviceBuffer<int> dt(t);
  dl.poison();
  v.launch(Args{dx.get(), dt.get(), dl.get(), R, V, eps});
  return check_close(quiet_name ? std::string(v.name) : cat(v.name, " [", R, ", ", V, "]"), dl.download(), ref, 1e-5,
                     rtol);
}

// V below a warp, V odd (every head length 0..3 occurs over the rows), V = 1000.
inline bool run_checks() {
  struct Shape {
    int R, V;
    float eps;
  };
  const Shape shapes[] = {{4, 3, 0.f}, {9, 1001, 0.1f}, {6, 1000, 0.f}, {5, 2053, 0.1f}};
  bool ok = true;
  if (g_verbose) std::printf("cross-entropy forward: every version against the CPU reference\n");
  for (const Shape& sh : shapes)
    for (const Version& v : kVersions) ok &= check_version(v, sh.R, sh.V, sh.eps, 1e-5);
  return ok;
}

// OFA-base decoder output: B*T = 2048 tokens over V = 59457, label smoothing 0.1.
inline void run_timing(int only) {
  const int B = 8, T = 256, V = 59457, R = B * T;
  Cost c;
  c.bytes = (double(R) * V + 2.0 * R) * sizeof(float);  // logits; targets, losses
  c.flops = 5.0 * R * V;                                 // max, subtract, exp, sum; sum of x
  print_cost("cross-entropy forward", cat("[B*T, V] = [", R, ", ", V, "] f32, smoothing 0.1"), c);
  if (only < 0) return;
  const std::vector<float> x = random_vector(size_t(R) * V, 3, -6.f, 6.f);
  const std::vector<int> t = make_targets(R, V);
  DeviceBuffer<float> dx(x), dl{size_t(R)};
  DeviceBuffer<int> dt(t);
  const Args a{dx.get(), dt.get(), dl.get(), R, V, 0.1f};
  for (int k = 0; k < int(std::size(kVersions)); ++k) {
    const Version& v = kVersions[k];
    if (only && only != k + 1) continue;
    if (!check_version(v, R, V, 0.1f, 1e-4, true)) continue;
    report(v.name, time_us([&] { v.launch(a); }, 10, 2), c);
  }
}

}  // namespace mm::study::crossentropy

MM_STUDY_MAIN(mm::study::crossentropy::run_checks, mm::study::crossentropy::run_timing)
