// Attention forward: a tiled kernel with an online softmax, additive bias, key padding and
// causal masks; plus the row kernel of the backward's softmax Jacobian.
//
// Shapes: q [B, H, Tq, D], k, v [B, H, Tk, D] contiguous; bias a strided view of
// [B, H, Tq, Tk]; key_pad u8 [B, Tk]. Outputs: out [B, H, Tq, D] and probs [B, H, Tq, Tk]
// (the op saves probs for the backward, so they are written, normalised).
//
// A block of kRows warps takes kRows consecutive query rows of one (b, h); warp w owns row
// i. The keys are visited in tiles of 32: the block stages K and V of the tile in shared
// memory, lane j of each warp scores key j0 + j against its row,
//   s = scale * q . k + bias   (-inf when masked),
// and the warp folds the tile into its running statistics (m = max so far, l = sum of
// exp(s - m)) and its output accumulator o (lane owns d = lane + 32 u):
//   m' = max(m, max_j s_j);  c = exp(m - m');  l' = c l + sum_j exp(s_j - m');
//   o' = c o + sum_j exp(s_j - m') v_j.
// After the last tile out = o / l (zeros for a row that sees no key). A second sweep
// recomputes the scores and writes probs = exp(s - m) / l. Shared memory per block:
// (kRows D + 32 (D + 1) + 32 D) values of acc_t<T>; D <= 256.
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

constexpr int kRows = 4;    // query rows (warps) per block
constexpr int kTile = 32;   // keys per tile: one per lane
constexpr int kMaxPerLane = int(kAttentionMaxD / 32);

struct AttnArgs {
  AttentionShape shape;
  bool causal;
  double scale;
};

// Loads keys [j0, j0 + kTile) of K and V (zeros past Tk) into Ks [kTile][D + 1] and Vs.
template <class T, class A>
__device__ void load_tile(const T* __restrict__ kz, const T* __restrict__ vz, int64_t j0, int64_t Tk, int64_t D,
                          mm_smem_ptr<A> Ks, mm_smem_ptr<A> Vs) {
  for (int64_t e = threadIdx.x; e < kTile * D; e += blockDim.x) {
    const int64_t j = e / D, d = e - j * D, key = j0 + j;
    const bool in = key < Tk;
    Ks[j * (D + 1) + d] = in ? ld(kz[key * D + d]) : A(0);
    Vs[j * D + d] = in ? ld(vz[key * D + d]) : A(0);
  }
}

// The score of key j0 + lane for query row i (-inf if masked or past lim).
template <class T, class A>
__device__ A score(const AttnArgs& a, const T* __restrict__ bias, const uint8_t* __restrict__ pad, int64_t b,
                   int64_t h, int64_t i, int64_t key, int64_t lim, mm_smem_ptr<A> q, mm_smem_ptr<A> Ks) {
  const int64_t D = a.shape.D;
  if (key >= lim || (pad && pad[b * a.shape.Tk + key])) return -d_inf<A>();
  const int lane = int(threadIdx.x) % 32;
  A dot = A(0);
  for (int64_t d = 0; d < D; ++d) dot += q[d] * Ks[lane * (D + 1) + d];
  A s = A(a.scale) * dot;
  if (bias) {
    const int64_t* bs = a.shape.bias_stride;
    s += ld(bias[b * bs[0] + h * bs[1] + i * bs[2] + key * bs[3]]);
  }
  return s;
}

template <class T>
__global__ void __launch_bounds__(kRows * 32)
    attention_kernel(AttnArgs a, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                     const T* __restrict__ bias, const uint8_t* __restrict__ pad, T* __restrict__ out,
                     T* __restrict__ probs) {
  using A = acc_t<T>;
  MM_DYN_SHARED(A, smem);
  const int64_t Tq = a.shape.Tq, Tk = a.shape.Tk, D = a.shape.D, H = a.shape.H;
  mm_smem_ptr<A> Qs = smem, Ks = smem + kRows * D, Vs = smem + kRows * D + kTile * (D + 1);
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int64_t z = blockIdx.y, b = z / H, h = z % H;
  const int64_t row0 = int64_t(blockIdx.x) * kRows, i = row0 + warp;
  const bool active = i < Tq;
  const T* qz = q + z * Tq * D;
  const T* kz = k + z * Tk * D;
  const T* vz = v + z * Tk * D;
  // Keys query i may see: [0, lim). The block visits tiles up to the largest lim of its rows.
  auto lim_of = [&](int64_t row) -> int64_t {
    if (!a.causal) return Tk;
    const int64_t l = row + (Tk - Tq) + 1;
    return l < 0 ? 0 : (l > Tk ? Tk : l);
  };
  const int64_t lim = lim_of(i);
  const int64_t last = row0 + kRows - 1 < Tq ? row0 + kRows - 1 : Tq - 1;
  const int64_t jend = lim_of(last);
  mm_smem_ptr<A> qrow = Qs + warp * D;
  if (active)
    for (int64_t d = lane; d < D; d += 32) qrow[d] = ld(qz[i * D + d]);

  A m = -d_inf<A>(), l = A(0);
  A o[kMaxPerLane];
  MM_UNROLL
  for (int u = 0; u < kMaxPerLane; ++u) o[u] = A(0);
  for (int64_t j0 = 0; j0 < jend; j0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and, first time, Qs is written)
    load_tile(kz, vz, j0, Tk, D, Ks, Vs);
    __syncthreads();
    if (!active) continue;
    const A s = score(a, bias, pad, b, h, i, j0 + lane, lim, qrow, Ks);
    const A mt = warp_reduce(s, MaxOp{});
    const A mn = m > mt ? m : mt;
    if (mn == -d_inf<A>()) continue;  // nothing visible yet
    const A p = s == -d_inf<A>() ? A(0) : d_exp(s - mn);
    const A c = m == -d_inf<A>() ? A(0) : d_exp(m - mn);
    l = l * c + warp_reduce(p, SumOp{});
    MM_UNROLL
    for (int u = 0; u < kMaxPerLane; ++u) o[u] *= c;
    for (int jj = 0; jj < kTile; ++jj) {
      const A pj = __shfl_sync(0xffffffffu, p, jj);
      if (pj == A(0)) continue;  // the same for every lane: no divergence
      MM_UNROLL
      for (int u = 0; u < kMaxPerLane; ++u) {
        const int64_t d = lane + 32 * u;
        if (d < D) o[u] += pj * Vs[jj * D + d];
      }
    }
    m = mn;
  }
  if (active) {
    const A inv = l > A(0) ? A(1) / l : A(0);
    MM_UNROLL
    for (int u = 0; u < kMaxPerLane; ++u) {
      const int64_t d = lane + 32 * u;
      if (d < D) out[(z * Tq + i) * D + d] = st<T>(o[u] * inv);
    }
  }
  // Second sweep: probs = exp(s - m) / l, recomputing s tile by tile.
  T* prow = probs + (z * Tq + i) * Tk;
  for (int64_t j0 = 0; j0 < jend; j0 += kTile) {
    __syncthreads();
    load_tile(kz, vz, j0, Tk, D, Ks, Vs);
    __syncthreads();
    if (!active) continue;
    const int64_t key = j0 + lane;
    const A s = score(a, bias, pad, b, h, i, key, lim, qrow, Ks);
    if (key < Tk) prow[key] = st<T>(s == -d_inf<A>() || l == A(0) ? A(0) : d_exp(s - m) / l);
  }
  if (active)
    for (int64_t key = jend + lane; key < Tk; key += 32) prow[key] = st<T>(A(0));
}

// ds = p * (ds - sum_j p_j ds_j) per row: the softmax Jacobian applied to dP.
template <class T>
__global__ void softmax_jacobian_kernel(const T* __restrict__ p, T* __restrict__ ds, int64_t tk) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const T* pr = p + int64_t(blockIdx.x) * tk;
  T* dr = ds + int64_t(blockIdx.x) * tk;
  A dot = A(0);
  for (int64_t j = threadIdx.x; j < tk; j += blockDim.x) dot += ld(pr[j]) * ld(dr[j]);
  dot = block_reduce(dot, SumOp{}, A(0), scratch);
  for (int64_t j = threadIdx.x; j < tk; j += blockDim.x) dr[j] = st<T>(ld(pr[j]) * (ld(dr[j]) - dot));
}

}  // namespace

void attention(DType dt, const AttentionShape& sh, const void* q, const void* k, const void* v, const void* bias,
               const uint8_t* key_pad, bool causal, double scale, void* out, void* probs, cudaStream_t s) {
  if (sh.B * sh.H * sh.Tq == 0) return;
  MM_CHECK(sh.D <= kAttentionMaxD, "attention: head size D = ", sh.D, " exceeds the cuda kernel's limit of ",
           kAttentionMaxD);
  MM_CHECK(sh.B * sh.H <= 65535, "attention: B * H = ", sh.B * sh.H, " exceeds the cuda kernel's grid limit of 65535");
  const AttnArgs a{sh, causal, scale};
  const dim3 grid(unsigned((sh.Tq + kRows - 1) / kRows), unsigned(sh.B * sh.H));
  MM_CUDA_DISPATCH_FLOAT(dt, "attention", {
    const size_t smem = size_t(kRows * sh.D + kTile * (sh.D + 1) + kTile * sh.D) * sizeof(acc_t<T>);
    if (smem > cuda_limits::kDefaultSharedBytes) {
      const cudaError_t e = cudaFuncSetAttribute(attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 int(smem));
      MM_CHECK(e == cudaSuccess, "attention: head size ", sh.D, " needs ", smem,
               " bytes of shared memory per block: ", cudaGetErrorString(e));
    }
    MM_LAUNCH(attention_kernel<T>, grid, dim3(kRows * 32), smem, s, a, static_cast<const T*>(q),
              static_cast<const T*>(k), static_cast<const T*>(v), static_cast<const T*>(bias), key_pad,
              static_cast<T*>(out), static_cast<T*>(probs));
  });
}

void softmax_jacobian_rows(DType dt, const void* p, void* ds, int64_t rows, int64_t tk, cudaStream_t s) {
  if (rows == 0 || tk == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "attention_backward",
                         MM_LAUNCH(softmax_jacobian_kernel<T>, dim3(unsigned(rows)), dim3(row_threads(tk)), 0, s,
                                   static_cast<const T*>(p), static_cast<T*>(ds), tk));
}

}  // namespace mm::cuda::kernels
