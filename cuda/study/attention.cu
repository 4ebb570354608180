// Kernel study: attention forward (f32), for each batch-head z and query row i,
//
//   s_j = scale q_i . k_j          j < T (j <= i when causal), scale = 1 / sqrt(HS)
//   out_i = sum_j softmax(s)_j v_j
//
// with q, k, v, out [B, NH, T, HS] contiguous (z = b NH + h indexes the leading pairs).
// None of the versions stores the [T, T] score matrix: each keeps the softmax statistics
// online (m = max so far, l = sum of exp(s - m)) and rescales its output accumulator when
// the max grows (the flash-attention recurrence):
//   m' = max(m, s_j);  l' = l e^(m - m') + e^(s_j - m');  o' = o e^(m - m') + e^(s_j - m') v_j
// The production kernel (additive bias, padding mask, probabilities for the backward) is
// cuda/attention.cu.
//
//   v1  one thread per query row, three sweeps over the keys (max; sum; output), each
//       recomputing the dot products, output accumulated in global memory: the plain
//       definition, for reference.
//   v2  one warp per query row: lane j scores key j0 + j of a 32-key tile, the warp folds
//       the tile into (m, l, o) with one rescale per tile; lane owns output dims lane +
//       32u. K and V come straight from global memory (each row re-reads all of them).
//   v3  a block of 8 warps (8 query rows) stages each 32-key tile of K and V in shared
//       memory once for its 8 rows (K padded to HS + 1 floats per key so that the 32
//       lanes reading 32 keys hit 32 different banks).
//   v4  one THREAD per query row (64 rows per block), q and the output accumulator in
//       registers (HS a compile-time 32 or 64); the K/V tile in shared memory is read by
//       all threads at the same address (a broadcast: no bank conflicts, no shuffles).
//       More arithmetic per shared-memory byte than v3. Other head sizes go to v3.
//
// Build: `make study` (emulator: checks) or `make study-gpu` (timing).
#include "cuda/study/common.cuh"

namespace mm::study::attention {

struct Shape {
  int BH, T, HS;  // batch * heads, sequence length, head size
  bool causal;
};

// ---- CPU reference (double) ----------------------------------------------------------------
inline std::vector<double> reference(const std::vector<float>& q, const std::vector<float>& k,
                                     const std::vector<float>& v, const Shape& s) {
  std::vector<double> out(q.size(), 0.0), p(size_t(s.T));
  const double scale = 1.0 / std::sqrt(double(s.HS));
  for (int z = 0; z < s.BH; ++z)
    for (int i = 0; i < s.T; ++i) {
      const size_t qi = (size_t(z) * s.T + i) * s.HS;
      const int lim = s.causal ? i + 1 : s.T;
      double m = -INFINITY, l = 0;
      for (int j = 0; j < lim; ++j) {
        const size_t kj = (size_t(z) * s.T + j) * s.HS;
        double dot = 0;
        for (int d = 0; d < s.HS; ++d) dot += double(q[qi + d]) * k[kj + d];
        p[size_t(j)] = scale * dot;
        m = std::fmax(m, p[size_t(j)]);
      }
      for (int j = 0; j < lim; ++j) l += (p[size_t(j)] = std::exp(p[size_t(j)] - m));
      for (int j = 0; j < lim; ++j)
        for (int d = 0; d < s.HS; ++d) out[qi + d] += p[size_t(j)] / l * v[(size_t(z) * s.T + j) * s.HS + d];
    }
  return out;
}

// Keys row i may see: [0, lim).
__device__ __forceinline__ int key_limit(int i, int T, bool causal) { return causal ? i + 1 : T; }

// ---- v1: one thread per query row, three sweeps ------------------------------------------------
__device__ __forceinline__ float dot_global(const float* a, const float* b, int n) {
  float s = 0.f;
  for (int d = 0; d < n; ++d) s += a[d] * b[d];
  return s;
}

__global__ void attention_v1(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                             float* __restrict__ out, int BH, int T, int HS, bool causal) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= int64_t(BH) * T) return;
  const int64_t z = row / T;
  const int i = int(row % T), lim = key_limit(i, T, causal);
  const float* qi = q + row * HS;
  const float* kz = k + z * T * HS;
  const float* vz = v + z * T * HS;
  float* oi = out + row * HS;
  const float scale = rsqrtf(float(HS));
  float m = -FLT_MAX;
  for (int j = 0; j < lim; ++j) m = fmaxf(m, scale * dot_global(qi, kz + int64_t(j) * HS, HS));
  float l = 0.f;
  for (int j = 0; j < lim; ++j) l += expf(scale * dot_global(qi, kz + int64_t(j) * HS, HS) - m);
  for (int d = 0; d < HS; ++d) oi[d] = 0.f;
  for (int j = 0; j < lim; ++j) {
    const float p = expf(scale * dot_global(qi, kz + int64_t(j) * HS, HS) - m) / l;
    for (int d = 0; d < HS; ++d) oi[d] += p * vz[int64_t(j) * HS + d];
  }
}

// ---- v2: one warp per query row, K and V from global memory ----------------------------------
constexpr int kTile = 32;           // keys per tile: one per lane
constexpr int kMaxHS = 128;         // v2, v3: output dims per lane = HS / 32 <= 4
constexpr int kPerLane = kMaxHS / 32;
constexpr int kWarpRows = 8;        // v2, v3: query rows (warps) per block

// Folds one tile of scores into the warp's (m, l, o). s: this lane's score (-FLT_MAX when
// masked); n: the keys of the tile the row sees (lanes >= n are masked); vrow(jj, d):
// element d of the value row of key jj of the tile (read for jj < n only: past the end of
// the sequence there is no row to read).
template <class VRow>
__device__ __forceinline__ void fold_tile(float s, int n, float& m, float& l, float (&o)[kPerLane], int HS,
                                          VRow vrow) {
  const int lane = int(threadIdx.x) % 32;
  float mt = s;
  for (int off = 16; off > 0; off /= 2) mt = fmaxf(mt, __shfl_xor_sync(kFullMask, mt, off));
  const float mn = fmaxf(m, mt);
  const float c = expf(m - mn);  // rescale of what was accumulated under the old max
  const float p = s == -FLT_MAX ? 0.f : expf(s - mn);
  float ps = p;
  for (int off = 16; off > 0; off /= 2) ps += __shfl_xor_sync(kFullMask, ps, off);
  l = l * c + ps;
  MM_UNROLL
  for (int u = 0; u < kPerLane; ++u) o[u] *= c;
  for (int jj = 0; jj < n; ++jj) {
    const float pj = __shfl_sync(kFullMask, p, jj);  // key jj's weight, to every lane
    MM_UNROLL
    for (int u = 0; u < kPerLane; ++u) {
      const int d = lane + 32 * u;
      if (d < HS) o[u] += pj * vrow(jj, d);
    }
  }
  m = mn;
}

__global__ void attention_v2(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                             float* __restrict__ out, int T, int HS, bool causal) {
  const int lane = int(threadIdx.x) % 32;
  const int i = int(blockIdx.x) * kWarpRows + int(threadIdx.x) / 32;
  if (i >= T) return;  // whole warps leave; there is no block barrier
  const int64_t z = blockIdx.y;
  const float* qi = q + (z * T + i) * HS;
  const float* kz = k + z * T * HS;
  const float* vz = v + z * T * HS;
  const int lim = key_limit(i, T, causal);
  const float scale = rsqrtf(float(HS));
  float m = -FLT_MAX, l = 0.f, o[kPerLane] = {};
  for (int j0 = 0; j0 < lim; j0 += kTile) {
    const int key = j0 + lane;
    float s = -FLT_MAX;
    if (key < lim) s = scale * dot_global(qi, kz + int64_t(key) * HS, HS);  // 32 rows apart: uncoalesced
    const int n = lim - j0 < kTile ? lim - j0 : kTile;
    fold_tile(s, n, m, l, o, HS, [&](int jj, int d) { return vz[int64_t(j0 + jj) * HS + d]; });
  }
  MM_UNROLL
  for (int u = 0; u < kPerLane; ++u)
    if (lane + 32 * u < HS) out[(z * T + i) * HS + lane + 32 * u] = o[u] / l;
}

// ---- v3: 8 warps share K/V tiles in shared memory ---------------------------------------------
// Shared memory: Ks [kTile][HS + 1], Vs [kTile][HS], Qs [kWarpRows][HS] floats.
inline size_t v3_smem_bytes(int HS) { return size_t(kTile * (HS + 1) + kTile * HS + kWarpRows * HS) * sizeof(float); }

__global__ void __launch_bounds__(32 * kWarpRows)
    attention_v3(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                 float* __restrict__ out, int T, int HS, bool causal) {
  MM_DYN_SHARED(float, smem);
  mm_smem_ptr<float> Ks = smem, Vs = smem + kTile * (HS + 1), Qs = smem + kTile * (HS + 1) + kTile * HS;
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int64_t z = blockIdx.y;
  const int row0 = int(blockIdx.x) * kWarpRows, i = row0 + warp;
  const bool active = i < T;  // inactive warps still load tiles and reach every barrier
  const int lim = active ? key_limit(i, T, causal) : 0;
  const int last = row0 + kWarpRows - 1 < T ? row0 + kWarpRows - 1 : T - 1;
  const int jend = key_limit(last, T, causal);  // the block visits keys up to its last row's limit
  const float* kz = k + z * T * HS;
  const float* vz = v + z * T * HS;
  mm_smem_ptr<float> qrow = Qs + warp * HS;
  const float scale = rsqrtf(float(HS));
  if (active)
    for (int d = lane; d < HS; d += 32) qrow[d] = scale * q[(z * T + i) * HS + d];
  float m = -FLT_MAX, l = 0.f, o[kPerLane] = {};
  for (int j0 = 0; j0 < jend; j0 += kTile) {
    __syncthreads();  // the previous tile is consumed
    for (int e = int(threadIdx.x); e < kTile * HS; e += int(blockDim.x)) {
      const int jj = e / HS, d = e % HS, key = j0 + jj;
      Ks[jj * (HS + 1) + d] = key < T ? kz[int64_t(key) * HS + d] : 0.f;
      Vs[jj * HS + d] = key < T ? vz[int64_t(key) * HS + d] : 0.f;
    }
    __syncthreads();
    if (!active || j0 >= lim) continue;
    float s = -FLT_MAX;
    if (j0 + lane < lim) {
      s = 0.f;
      for (int d = 0; d < HS; ++d) s += qrow[d] * Ks[lane * (HS + 1) + d];
    }
    const int n = lim - j0 < kTile ? lim - j0 : kTile;
    fold_tile(s, n, m, l, o, HS, [&](int jj, int d) -> float { return Vs[jj * HS + d]; });
  }
  if (!active) return;
  MM_UNROLL
  for (int u = 0; u < kPerLane; ++u)
    if (lane + 32 * u < HS) out[(z * T + i) * HS + lane + 32 * u] = o[u] / l;
}

// ---- v4: one thread per query row, broadcast reads of the K/V tile -----------------------------
constexpr int kV4Rows = 64;  // threads (query rows) per block

template <int HS>
__global__ void __launch_bounds__(kV4Rows)
    attention_v4(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                 float* __restrict__ out, int T, bool causal) {
  MM_DYN_SHARED(float, smem);
  mm_smem_ptr<float> Ks = smem, Vs = smem + kTile * HS;  // [kTile][HS] each
  const int64_t z = blockIdx.y;
  const int row0 = int(blockIdx.x) * kV4Rows, i = row0 + int(threadIdx.x);
  const bool active = i < T;
  const int lim = active ? key_limit(i, T, causal) : 0;
  const int last = row0 + kV4Rows - 1 < T ? row0 + kV4Rows - 1 : T - 1;
  const int jend = key_limit(last, T, causal);
  const float* kz = k + z * T * HS;
  const float* vz = v + z * T * HS;
  const float scale = rsqrtf(float(HS));
  float qr[HS], o[HS];
  MM_UNROLL
  for (int d = 0; d < HS; ++d) {
    qr[d] = active ? scale * q[(z * T + i) * HS + d] : 0.f;
    o[d] = 0.f;
  }
  float m = -FLT_MAX, l = 0.f;
  for (int j0 = 0; j0 < jend; j0 += kTile) {
    __syncthreads();
    for (int e = int(threadIdx.x); e < kTile * HS; e += kV4Rows) {
      const int key = j0 + e / HS;
      Ks[e] = key < T ? kz[int64_t(j0) * HS + e] : 0.f;
      Vs[e] = key < T ? vz[int64_t(j0) * HS + e] : 0.f;
    }
    __syncthreads();
    const int n = lim - j0 < kTile ? lim - j0 : kTile;  // keys of this tile the row sees
    if (n <= 0) continue;
    float s[kTile];
    float mt = m;
    MM_UNROLL
    for (int jj = 0; jj < kTile; ++jj) {
      float dot = 0.f;
      if (jj < n) {
        MM_UNROLL
        for (int d = 0; d < HS; ++d) dot += qr[d] * Ks[jj * HS + d];
        mt = fmaxf(mt, dot);
      }
      s[jj] = dot;
    }
    const float c = expf(m - mt);
    l *= c;
    MM_UNROLL
    for (int d = 0; d < HS; ++d) o[d] *= c;
    MM_UNROLL
    for (int jj = 0; jj < kTile; ++jj) {
      if (jj >= n) continue;
      const float p = expf(s[jj] - mt);
      l += p;
      MM_UNROLL
      for (int d = 0; d < HS; ++d) o[d] += p * Vs[jj * HS + d];
    }
    m = mt;
  }
  if (!active) return;
  const float inv = 1.f / l;
  MM_UNROLL
  for (int d = 0; d < HS; ++d) out[(z * T + i) * HS + d] = o[d] * inv;
}

// ---- launchers -------------------------------------------------------------------------------
struct Args {
  const float *q, *k, *v;
  float* out;
  Shape s;
};

inline unsigned div_up(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }

inline void launch_v1(const Args& a) {
  MM_LAUNCH(attention_v1, dim3(div_up(int64_t(a.s.BH) * a.s.T, 128)), dim3(128), 0, 0, a.q, a.k, a.v, a.out, a.s.BH,
            a.s.T, a.s.HS, a.s.causal);
}
inline void launch_v2(const Args& a) {
  MM_CHECK(a.s.HS <= kMaxHS, "attention v2: head size ", a.s.HS, " > ", kMaxHS);
  MM_LAUNCH(attention_v2, dim3(div_up(a.s.T, kWarpRows), unsigned(a.s.BH)), dim3(32 * kWarpRows), 0, 0, a.q, a.k,
            a.v, a.out, a.s.T, a.s.HS, a.s.causal);
}
inline void launch_v3(const Args& a) {
  MM_CHECK(a.s.HS <= kMaxHS, "attention v3: head size ", a.s.HS, " > ", kMaxHS);
  MM_LAUNCH(attention_v3, dim3(div_up(a.s.T, kWarpRows), unsigned(a.s.BH)), dim3(32 * kWarpRows),
            v3_smem_bytes(a.s.HS), 0, a.q, a.k, a.v, a.out, a.s.T, a.s.HS, a.s.causal);
}
inline void launch_v4(const Args& a) {
  const dim3 grid(div_up(a.s.T, kV4Rows), unsigned(a.s.BH));
  const size_t smem = size_t(2 * kTile * a.s.HS) * sizeof(float);
  if (a.s.HS == 64)
    MM_LAUNCH((attention_v4<64>), grid, dim3(kV4Rows), smem, 0, a.q, a.k, a.v, a.out, a.s.T, a.s.causal);
  else if (a.s.HS == 32)
    MM_LAUNCH((attention_v4<32>), grid, dim3(kV4Rows), smem, 0, a.q, a.k, a.v, a.out, a.s.T, a.s.causal);
  else
    launch_v3(a);
}

struct Version {
  const char* name;
  void (*launch)(const Args&);
};
inline const Version kVersions[] = {
    {"v1 thread per row, three sweeps", launch_v1},
    {"v2 warp per row, online softmax, K/V global", launch_v2},
    {"v3 8 warps share K/V tiles in shared memory", launch_v3},
    {"v4 thread per row, registers, broadcast tiles", launch_v4},
};

inline bool check_version(const Version& ver, const Shape& s, double rtol, bool quiet_name = false) {
  const size_t n = size_t(s.BH) * s.T * s.HS;
  const std::vector<float> q = random_vector(n, uint64_t(s.T * 5 + s.HS), -2.f, 2.f),
                           k = random_vector(n, uint64_t(s.T * 5 + s.HS + 1), -2.f, 2.f),
                           v = random_vector(n, uint64_t(s.T * 5 + s.HS + 2));
  const std::vector<double> ref = reference(q, k, v, s);
  DeviceBuffer<float> dq(q), dk(k), dv(v), dout(n);
  dout.poison();
  ver.launch(Args{dq.get(), dk.get(), dv.get(), dout.get(), s});
  const std::string shape = cat(" [", s.BH, ", ", s.T, ", ", s.HS, "]", s.causal ? " causal" : "");
  const std::string what = quiet_name ? std::string(ver.name) : ver.name + shape;
  return check_close(what, dout.download(), ref, 1e-5, rtol);
}

// T not a multiple of the tile or of the row groups; head sizes 64 and 32 (v4's) and 48
// (v4 falls back; not a multiple of 32 lanes); causal and not.
inline bool run_checks() {
  const Shape shapes[] = {{2, 37, 64, false}, {3, 70, 32, true}, {1, 5, 48, false}, {2, 33, 48, true}};
  bool ok = true;
  if (g_verbose) std::printf("attention forward: every version against the CPU reference\n");
  for (const Shape& s : shapes)
    for (const Version& v : kVersions) ok &= check_version(v, s, 1e-4);
  return ok;
}

// OFA-base encoder self-attention: B = 8, NH = 12, T = 256, HS = 64, no mask.
inline void run_timing(int only) {
  const Shape s{8 * 12, 256, 64, false};
  const double n = double(s.BH) * s.T * s.HS;
  Cost c;
  c.bytes = 4.0 * n * sizeof(float);                // q, k, v, out
  c.flops = 4.0 * s.BH * double(s.T) * s.T * s.HS;  // q k^T and p v, 2 FLOPs per multiply-add
  print_cost("attention forward", cat("B*NH = ", s.BH, ", T = ", s.T, ", HS = ", s.HS, " f32"), c);
  if (only < 0) return;
  const std::vector<float> q = random_vector(size_t(n), 1), k = random_vector(size_t(n), 2),
                           v = random_vector(size_t(n), 3);
  DeviceBuffer<float> dq(q), dk(k), dv(v), dout{size_t(n)};
  const Args a{dq.get(), dk.get(), dv.get(), dout.get(), s};
  for (int i = 0; i < int(std::size(kVersions)); ++i) {
    const Version& ver = kVersions[i];
    if (only && only != i + 1) continue;
    if (!check_version(ver, s, 1e-3, true)) continue;
    report(ver.name, time_us([&] { ver.launch(a); }, 10, 2), c);
  }
}

}  // namespace mm::study::attention

MM_STUDY_MAIN(mm::study::attention::run_checks, mm::study::attention::run_timing)
