// LayerNorm, GroupNorm and BatchNorm, forward and backward (the math is written out in
// ops/cpu/norm.cpp): each normalises a set of n values,
//   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps),  y = xhat * w + b,
// and the backward, with g = gy * w, is
//   gx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  gw = sum gy * xhat,  gb = sum gy.
//
// One block per set (a row, a (sample, group), a channel): a sweep for the mean, one for
// the variance (two-pass: accurate when |mean| >> std), one to write. The parameter
// gradients are sums over sets; they are accumulated in a fixed order (per-chunk partials,
// then chunks in order), never with float atomics, so results do not change run to run.
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

constexpr unsigned kThreads = 256;

// ---- LayerNorm ---------------------------------------------------------------------------

template <class T>
__global__ void layer_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                  acc_t<T> eps, T* __restrict__ y, T* __restrict__ mean, T* __restrict__ rstd,
                                  int64_t n) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const int64_t r = blockIdx.x;
  const T* xr = x + r * n;
  T* yr = y + r * n;
  A s = A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += ld(xr[j]);
  const A mu = block_reduce(s, SumOp{}, A(0), scratch) / A(n);
  A v = A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const A d = ld(xr[j]) - mu;
    v += d * d;
  }
  const A rs = A(1) / d_sqrt(block_reduce(v, SumOp{}, A(0), scratch) / A(n) + eps);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    A o = (ld(xr[j]) - mu) * rs;
    if (w) o *= ld(w[j]);
    if (b) o += ld(b[j]);
    yr[j] = st<T>(o);
  }
  if (threadIdx.x == 0) {
    mean[r] = st<T>(mu);
    rstd[r] = st<T>(rs);
  }
}

template <class T>
__global__ void layer_norm_backward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                           const T* __restrict__ mean, const T* __restrict__ rstd,
                                           const T* __restrict__ gy, T* __restrict__ gx, int64_t n) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const int64_t r = blockIdx.x;
  const T* xr = x + r * n;
  const T* gr = gy + r * n;
  T* gxr = gx + r * n;
  const A mu = ld(mean[r]), rs = ld(rstd[r]);
  A sg = A(0), sgx = A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const A g = w ? ld(gr[j]) * ld(w[j]) : ld(gr[j]);
    sg += g;
    sgx += g * (ld(xr[j]) - mu) * rs;
  }
  const A a = block_reduce(sg, SumOp{}, A(0), scratch) / A(n);
  const A c = block_reduce(sgx, SumOp{}, A(0), scratch) / A(n);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const A g = w ? ld(gr[j]) * ld(w[j]) : ld(gr[j]);
    const A xh = (ld(xr[j]) - mu) * rs;
    gxr[j] = st<T>(rs * (g - a - xh * c));
  }
}

// Column partials of gw and gb over the rows of chunk blockIdx.y: pw[chunk][j], pb[chunk][j].
template <class T>
__global__ void layer_norm_param_partials_kernel(const T* __restrict__ x, const T* __restrict__ mean,
                                                 const T* __restrict__ rstd, const T* __restrict__ gy,
                                                 acc_t<T>* __restrict__ pw, acc_t<T>* __restrict__ pb, int64_t m,
                                                 int64_t n, int64_t rows_per_chunk) {
  using A = acc_t<T>;
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const int64_t c = blockIdx.y, r0 = c * rows_per_chunk, r1 = r0 + rows_per_chunk < m ? r0 + rows_per_chunk : m;
  A sw = A(0), sb = A(0);
  for (int64_t r = r0; r < r1; ++r) {
    const A g = ld(gy[r * n + j]);
    sw += g * (ld(x[r * n + j]) - ld(mean[r])) * ld(rstd[r]);
    sb += g;
  }
  if (pw) pw[c * n + j] = sw;
  if (pb) pb[c * n + j] = sb;
}

// gw[j] += sum over chunks (in order) of pw[chunk][j]; the same for gb.
template <class T>
__global__ void sum_partials_kernel(const acc_t<T>* __restrict__ pw, const acc_t<T>* __restrict__ pb,
                                    T* __restrict__ gw, T* __restrict__ gb, int64_t nchunks, int64_t n) {
  using A = acc_t<T>;
  for (int64_t j = flat_index(); j < n; j += flat_step()) {
    if (gw) {
      A s = ld(gw[j]);
      for (int64_t c = 0; c < nchunks; ++c) s += pw[c * n + j];
      gw[j] = st<T>(s);
    }
    if (gb) {
      A s = ld(gb[j]);
      for (int64_t c = 0; c < nchunks; ++c) s += pb[c * n + j];
      gb[j] = st<T>(s);
    }
  }
}

int64_t ln_rows_per_chunk(int64_t m) {
  const int64_t by_count = (m + 127) / 128;  // at most 128 chunks
  return by_count > 32 ? by_count : 32;
}

// ---- GroupNorm: the set (b, g) is cpg * S contiguous values of x [B, C, S] ----------------

template <class T>
__global__ void group_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                  acc_t<T> eps, T* __restrict__ y, T* __restrict__ mean, T* __restrict__ rstd,
                                  int64_t C, int64_t S, int64_t G) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const int64_t bg = blockIdx.x, g = bg % G, cpg = C / G, n = cpg * S;
  const T* xs = x + bg * n;
  T* ys = y + bg * n;
  A s = A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += ld(xs[j]);
  const A mu = block_reduce(s, SumOp{}, A(0), scratch) / A(n);
  A v = A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const A d = ld(xs[j]) - mu;
    v += d * d;
  }
  const A rs = A(1) / d_sqrt(block_reduce(v, SumOp{}, A(0), scratch) / A(n) + eps);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const int64_t ch = g * cpg + j / S;
    A o = (ld(xs[j]) - mu) * rs;
    if (w) o *= ld(w[ch]);
    if (b) o += ld(b[ch]);
    ys[j] = st<T>(o);
  }
  if (threadIdx.x == 0) {
    mean[bg] = st<T>(mu);
    rstd[bg] = st<T>(rs);
  }
}

// Per (sample, channel) block: sums[bc] = sum gy, sums[B*C + bc] = sum gy * xhat over S.
template <class T>
__global__ void group_norm_channel_sums_kernel(const T* __restrict__ x, const T* __restrict__ mean,
                                               const T* __restrict__ rstd, const T* __restrict__ gy,
                                               double* __restrict__ sums, int64_t BC, int64_t C, int64_t S,
                                               int64_t G) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const int64_t bc = blockIdx.x, bg = (bc / C) * G + (bc % C) / (C / G);
  const A mu = ld(mean[bg]), rs = ld(rstd[bg]);
  A sg = A(0), sgx = A(0);
  for (int64_t j = threadIdx.x; j < S; j += blockDim.x) {
    const A g = ld(gy[bc * S + j]);
    sg += g;
    sgx += g * (ld(x[bc * S + j]) - mu) * rs;
  }
  sg = block_reduce(sg, SumOp{}, A(0), scratch);
  sgx = block_reduce(sgx, SumOp{}, A(0), scratch);
  if (threadIdx.x == 0) {
    sums[bc] = double(sg);
    sums[BC + bc] = double(sgx);
  }
}

// Per (sample, group) block: mean(g) and mean(g * xhat) from the channel sums, then gx.
template <class T>
__global__ void group_norm_backward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                           const T* __restrict__ mean, const T* __restrict__ rstd,
                                           const T* __restrict__ gy, T* __restrict__ gx,
                                           const double* __restrict__ sums, int64_t BC, int64_t C, int64_t S,
                                           int64_t G) {
  using A = acc_t<T>;
  MM_SHARED(double, scratch, 33);
  const int64_t bg = blockIdx.x, g = bg % G, cpg = C / G, n = cpg * S, bc0 = bg * cpg;
  double a = 0, c2 = 0;
  for (int64_t c = threadIdx.x; c < cpg; c += blockDim.x) {
    const double wc = w ? double(ld(w[g * cpg + c])) : 1.0;
    a += wc * sums[bc0 + c];
    c2 += wc * sums[BC + bc0 + c];
  }
  const A ma = A(block_reduce(a, SumOp{}, 0.0, scratch) / double(n));
  const A mc = A(block_reduce(c2, SumOp{}, 0.0, scratch) / double(n));
  const A mu = ld(mean[bg]), rs = ld(rstd[bg]);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const A wc = w ? ld(w[g * cpg + j / S]) : A(1);
    const A xh = (ld(x[bg * n + j]) - mu) * rs;
    gx[bg * n + j] = st<T>(rs * (ld(gy[bg * n + j]) * wc - ma - xh * mc));
  }
}

// gw[c] += sum over samples (in order) of sum gy * xhat; gb[c] += of sum gy.
template <class T>
__global__ void group_norm_params_kernel(const double* __restrict__ sums, T* __restrict__ gw, T* __restrict__ gb,
                                         int64_t B, int64_t C) {
  for (int64_t c = flat_index(); c < C; c += flat_step()) {
    double sw = 0, sb = 0;
    for (int64_t b = 0; b < B; ++b) {
      sb += sums[b * C + c];
      sw += sums[B * C + b * C + c];
    }
    if (gw) gw[c] = st<T>(acc_t<T>(double(ld(gw[c])) + sw));
    if (gb) gb[c] = st<T>(acc_t<T>(double(ld(gb[c])) + sb));
  }
}

// ---- BatchNorm: the set of channel c is B rows of S values -------------------------------

template <class T>
__global__ void batch_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                                  T* __restrict__ run_mean, T* __restrict__ run_var, bool training,
                                  acc_t<T> momentum, acc_t<T> eps, T* __restrict__ y, T* __restrict__ mean,
                                  T* __restrict__ rstd, int64_t B, int64_t C, int64_t S) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const int64_t c = blockIdx.x, n = B * S;
  A mu, rs;
  if (training) {
    A s = A(0);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += ld(x[((j / S) * C + c) * S + j % S]);
    mu = block_reduce(s, SumOp{}, A(0), scratch) / A(n);
    A v = A(0);
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
      const A d = ld(x[((j / S) * C + c) * S + j % S]) - mu;
      v += d * d;
    }
    const A var = block_reduce(v, SumOp{}, A(0), scratch) / A(n);  // biased: normalises the batch
    rs = A(1) / d_sqrt(var + eps);
    if (threadIdx.x == 0) {  // the running variance is unbiased (n > 1 is checked by the op)
      if (run_mean) run_mean[c] = st<T>((A(1) - momentum) * ld(run_mean[c]) + momentum * mu);
      if (run_var) run_var[c] = st<T>((A(1) - momentum) * ld(run_var[c]) + momentum * var * A(n) / A(n - 1));
    }
  } else {
    mu = ld(run_mean[c]);
    rs = A(1) / d_sqrt(ld(run_var[c]) + eps);
  }
  const A scale = w ? rs * ld(w[c]) : rs, shift = b ? ld(b[c]) : A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const int64_t i = ((j / S) * C + c) * S + j % S;
    y[i] = st<T>((ld(x[i]) - mu) * scale + shift);
  }
  if (threadIdx.x == 0) {
    mean[c] = st<T>(mu);
    rstd[c] = st<T>(rs);
  }
}

template <class T>
__global__ void batch_norm_backward_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                           const T* __restrict__ mean, const T* __restrict__ rstd, bool training,
                                           const T* __restrict__ gy, T* __restrict__ gx, T* __restrict__ gw,
                                           T* __restrict__ gb, int64_t B, int64_t C, int64_t S) {
  using A = acc_t<T>;
  MM_SHARED(A, scratch, 33);
  const int64_t c = blockIdx.x, n = B * S;
  const A mu = ld(mean[c]), rs = ld(rstd[c]), wc = w ? ld(w[c]) : A(1);
  A sg = A(0), sgx = A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const int64_t i = ((j / S) * C + c) * S + j % S;
    const A g = ld(gy[i]);
    sg += g;
    sgx += g * (ld(x[i]) - mu) * rs;
  }
  sg = block_reduce(sg, SumOp{}, A(0), scratch);
  sgx = block_reduce(sgx, SumOp{}, A(0), scratch);
  if (threadIdx.x == 0) {
    if (gw) gw[c] = st<T>(ld(gw[c]) + sgx);
    if (gb) gb[c] = st<T>(ld(gb[c]) + sg);
  }
  // Training: w rstd (gy - mean(gy) - xhat mean(gy xhat)); eval (fixed statistics): w rstd gy.
  const A k = wc * rs, ma = training ? sg / A(n) : A(0), mc = training ? sgx / A(n) : A(0);
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
    const int64_t i = ((j / S) * C + c) * S + j % S;
    gx[i] = st<T>(k * (ld(gy[i]) - ma - (ld(x[i]) - mu) * rs * mc));
  }
}

template <class T> const T* cp(const void* p) { return static_cast<const T*>(p); }
template <class T> T* mp(void* p) { return static_cast<T*>(p); }

}  // namespace

void layer_norm(DType dt, const void* x, const void* w, const void* b, double eps, void* y, void* mean, void* rstd,
                int64_t m, int64_t n, cudaStream_t s) {
  if (m == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "layer_norm",
                         MM_LAUNCH(layer_norm_kernel<T>, dim3(unsigned(m)), dim3(row_threads(n)), 0, s, cp<T>(x),
                                   cp<T>(w), cp<T>(b), acc_t<T>(eps), mp<T>(y), mp<T>(mean), mp<T>(rstd), n));
}

size_t layer_norm_scratch_bytes(DType dt, int64_t m, int64_t n) {
  const int64_t rpc = ln_rows_per_chunk(m), nchunks = (m + rpc - 1) / rpc;
  return size_t(2 * nchunks * n) * (dt == DType::f64 ? sizeof(double) : sizeof(float));
}

void layer_norm_backward(DType dt, const void* x, const void* w, const void* mean, const void* rstd, const void* gy,
                         void* gx, void* gw, void* gb, int64_t m, int64_t n, void* scratch, cudaStream_t s) {
  if (m == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "layer_norm_backward", {
    MM_LAUNCH(layer_norm_backward_kernel<T>, dim3(unsigned(m)), dim3(row_threads(n)), 0, s, cp<T>(x), cp<T>(w),
              cp<T>(mean), cp<T>(rstd), cp<T>(gy), mp<T>(gx), n);
    if (gw || gb) {
      using A = acc_t<T>;
      const int64_t rpc = ln_rows_per_chunk(m), nchunks = (m + rpc - 1) / rpc;
      A* pw = gw ? static_cast<A*>(scratch) : nullptr;
      A* pb = gb ? static_cast<A*>(scratch) + nchunks * n : nullptr;
      const dim3 grid(unsigned((n + kThreads - 1) / kThreads), unsigned(nchunks));
      MM_LAUNCH(layer_norm_param_partials_kernel<T>, grid, dim3(kThreads), 0, s, cp<T>(x), cp<T>(mean),
                cp<T>(rstd), cp<T>(gy), pw, pb, m, n, rpc);
      MM_LAUNCH(sum_partials_kernel<T>, dim3(flat_blocks(n, kThreads)), dim3(kThreads), 0, s, pw, pb, mp<T>(gw),
                mp<T>(gb), nchunks, n);
    }
  });
}

void group_norm(DType dt, const void* x, const void* w, const void* b, int64_t B, int64_t C, int64_t S, int64_t G,
                double eps, void* y, void* mean, void* rstd, cudaStream_t s) {
  if (B * G == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "group_norm",
                         MM_LAUNCH(group_norm_kernel<T>, dim3(unsigned(B * G)), dim3(row_threads(C / G * S)), 0, s,
                                   cp<T>(x), cp<T>(w), cp<T>(b), acc_t<T>(eps), mp<T>(y), mp<T>(mean), mp<T>(rstd), C,
                                   S, G));
}

void group_norm_backward(DType dt, const void* x, const void* w, const void* mean, const void* rstd, const void* gy,
                         void* gx, void* gw, void* gb, int64_t B, int64_t C, int64_t S, int64_t G, double* scratch,
                         cudaStream_t s) {
  if (B * C == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "group_norm_backward", {
    MM_LAUNCH(group_norm_channel_sums_kernel<T>, dim3(unsigned(B * C)), dim3(row_threads(S)), 0, s, cp<T>(x),
              cp<T>(mean), cp<T>(rstd), cp<T>(gy), scratch, B * C, C, S, G);
    MM_LAUNCH(group_norm_backward_kernel<T>, dim3(unsigned(B * G)), dim3(row_threads(C / G * S)), 0, s, cp<T>(x),
              cp<T>(w), cp<T>(mean), cp<T>(rstd), cp<T>(gy), mp<T>(gx), scratch, B * C, C, S, G);
    if (gw || gb)
      MM_LAUNCH(group_norm_params_kernel<T>, dim3(flat_blocks(C, kThreads)), dim3(kThreads), 0, s, scratch, mp<T>(gw),
                mp<T>(gb), B, C);
  });
}

void batch_norm(DType dt, const void* x, const void* w, const void* b, void* run_mean, void* run_var, bool training,
                double momentum, double eps, void* y, void* mean, void* rstd, int64_t B, int64_t C, int64_t S,
                cudaStream_t s) {
  if (C == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "batch_norm",
                         MM_LAUNCH(batch_norm_kernel<T>, dim3(unsigned(C)), dim3(row_threads(B * S)), 0, s, cp<T>(x),
                                   cp<T>(w), cp<T>(b), mp<T>(run_mean), mp<T>(run_var), training,
                                   acc_t<T>(momentum), acc_t<T>(eps), mp<T>(y), mp<T>(mean), mp<T>(rstd), B, C, S));
}

void batch_norm_backward(DType dt, const void* x, const void* w, const void* mean, const void* rstd, bool training,
                         const void* gy, void* gx, void* gw, void* gb, int64_t B, int64_t C, int64_t S,
                         cudaStream_t s) {
  if (C == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "batch_norm_backward",
                         MM_LAUNCH(batch_norm_backward_kernel<T>, dim3(unsigned(C)), dim3(row_threads(B * S)), 0, s,
                                   cp<T>(x), cp<T>(w), cp<T>(mean), cp<T>(rstd), training, cp<T>(gy), mp<T>(gx),
                                   mp<T>(gw), mp<T>(gb), B, C, S));
}

}  // namespace mm::cuda::kernels
