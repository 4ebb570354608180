// LayerNorm, GroupNorm and BatchNorm, forward and backward.
//
// All three normalise a set of n values with its mean and variance, then scale and shift:
//   xhat = (x - mean) * rstd,   rstd = 1 / sqrt(var + eps),   y = xhat * w + b
// and differ only in which values form a set:
//   LayerNorm  x [M, N]     one set per row (the N features of a token);   w, b [N]
//   GroupNorm  x [B, C, S]  one set per (sample, group of C/G channels);   w, b [C]
//   BatchNorm  x [B, C, S]  one set per channel, across the batch;        w, b [C]
//
// Statistics are two-pass (mean first, then the mean of squared deviations), which stays
// accurate in f32 when |mean| >> std, unlike E[x^2] - E[x]^2. f32 partial sums run over
// one contiguous row in `omp simd` loops (8 lanes); sums over many rows are carried in
// double. The first sweep of a row streams it from memory front to back; the sweeps
// after it, in L1, use four accumulators (ops/cpu/row_reduce.h).
//
// Backward, the one derivation all three share. Within a set of n values,
//   d xhat_i / d x_j = rstd * (delta_ij - 1/n - xhat_i xhat_j / n)
// so with g_i = dL/dxhat_i = gy_i * w_i (the weight of i's feature or channel):
//   gx_j = rstd * (g_j - mean(g) - xhat_j * mean(g * xhat))
// and for the affine parameters, summed over every position that uses them:
//   gw = sum gy * xhat,   gb = sum gy.
// BatchNorm in eval mode uses fixed running statistics, so there gx = gy * w * rstd.
#include <cmath>
#include <vector>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/row_reduce.h"
#include "ops/cpu/strided.h"

namespace mm {
using namespace cpu;

namespace {

template <typename T> const T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
template <typename T> T* ptr_or_null(Tensor* t) { return t ? t->data<T>() : nullptr; }

template <typename T>
inline T sum_row(const T* x, int64_t n) {
  return row_sum(x, n, [](T v) { return v; });
}
template <typename T>
inline T sum_sq_dev(const T* x, int64_t n, T mu) {
  return row_sum4(x, n, [mu](T v) { return (v - mu) * (v - mu); });
}
// y = (x - mu) * scale + shift over one contiguous row.
template <typename T>
inline void affine_row(const T* x, T* y, int64_t n, T mu, T scale, T shift) {
  _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) y[j] = (x[j] - mu) * scale + shift;
}
// Sums over one row of gy and of gy * xhat, xhat = (x - mu) * rs: the per-channel
// reductions of the GroupNorm/BatchNorm backward.
template <typename T>
inline void grad_sums_row(const T* x, const T* gy, int64_t n, T mu, T rs, T& sum_g, T& sum_gxh) {
  T sg = 0, sgx = 0;  // one sweep over both rows
  _Pragma("omp simd reduction(+:sg, sgx)") for (int64_t j = 0; j < n; ++j) {
    sg += gy[j];
    sgx += gy[j] * (x[j] - mu) * rs;
  }
  sum_g = sg;
  sum_gxh = sgx;
}

// ---- LayerNorm -------------------------------------------------------------------------

template <typename T>
void layer_norm_kernel(const T* x, const T* w, const T* b, T eps, T* y, T* mean, T* rstd, int64_t m, int64_t n) {
  const int64_t grain = n >= kGrain ? 1 : kGrain / n;
  parallel_for(m, grain, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      const T mu = sum_row(xr, n) / T(n);
      const T rs = T(1) / std::sqrt(sum_sq_dev(xr, n, mu) / T(n) + eps);
      mean[r] = mu;
      rstd[r] = rs;
      // The four affine variants, so each inner loop is a plain vectorised stream.
      if (w && b) {
        _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
      } else if (w) {
        _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - mu) * rs * w[j];
      } else if (b) {
        _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - mu) * rs + b[j];
      } else {
        _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) yr[j] = (xr[j] - mu) * rs;
      }
    }
  });
}

// gw and gb are reductions over rows. Rows are cut into at most kMaxChunks fixed chunks
// (independent of the thread count, so results are bit-identical for any number of
// threads); each chunk sums into its own partial [N], and the partials are added in
// chunk order.
constexpr int64_t kMaxChunks = 64;

template <typename T>
void layer_norm_backward_kernel(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw,
                                T* gb, int64_t m, int64_t n) {
  int64_t chunk = n >= kGrain ? 1 : kGrain / n;
  if (chunk * kMaxChunks < m) chunk = (m + kMaxChunks - 1) / kMaxChunks;
  const int64_t nchunks = (m + chunk - 1) / chunk;
  std::vector<T> part_w(gw ? size_t(nchunks * n) : 0), part_b(gb ? size_t(nchunks * n) : 0);
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T* pw = gw ? part_w.data() + c * n : nullptr;
      T* pb = gb ? part_b.data() + c * n : nullptr;
      const int64_t r_end = (c + 1) * chunk < m ? (c + 1) * chunk : m;
      for (int64_t r = c * chunk; r < r_end; ++r) {
        const T* xr = x + r * n;
        const T* gr = gy + r * n;
        T* gxr = gx + r * n;
        const T mu = mean[r], rs = rstd[r];
        // mean(g) and mean(g * xhat), g = gy * w
        T sg = 0, sgx = 0;
        if (w) {
          _Pragma("omp simd reduction(+:sg, sgx)") for (int64_t j = 0; j < n; ++j) {
            const T g = gr[j] * w[j];
            sg += g;
            sgx += g * (xr[j] - mu) * rs;
          }
        } else {
          _Pragma("omp simd reduction(+:sg, sgx)") for (int64_t j = 0; j < n; ++j) {
            sg += gr[j];
            sgx += gr[j] * (xr[j] - mu) * rs;
          }
        }
        const T a = sg / T(n), c2 = sgx / T(n);
        if (w) {
          _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) {
            const T xh = (xr[j] - mu) * rs;
            gxr[j] = rs * (gr[j] * w[j] - a - xh * c2);
          }
        } else {
          _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) {
            const T xh = (xr[j] - mu) * rs;
            gxr[j] = rs * (gr[j] - a - xh * c2);
          }
        }
        if (pw) {
          _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) pw[j] += gr[j] * (xr[j] - mu) * rs;
        }
        if (pb) {
          _Pragma("omp simd") for (int64_t j = 0; j < n; ++j) pb[j] += gr[j];
        }
      }
    }
  });
  // Fold the partials, in chunk order, parallel over columns.
  const int64_t col_grain = kGrain / nchunks + 1;
  parallel_for(n, col_grain, [&](int64_t j0, int64_t j1) {
    for (int64_t c = 0; c < nchunks; ++c) {
      if (gw) {
        const T* pw = part_w.data() + c * n;
        _Pragma("omp simd") for (int64_t j = j0; j < j1; ++j) gw[j] += pw[j];
      }
      if (gb) {
        const T* pb = part_b.data() + c * n;
        _Pragma("omp simd") for (int64_t j = j0; j < j1; ++j) gb[j] += pb[j];
      }
    }
  });
}

// ---- GroupNorm -------------------------------------------------------------------------
// x [B, C, S]: the set (sample b, group g) is channels g*cpg .. (g+1)*cpg - 1 of sample b,
// cpg*S contiguous values. Parallel over the B*G sets.

template <typename T>
void group_norm_kernel(const T* x, const T* w, const T* b, int64_t B, int64_t C, int64_t S, int64_t G, T eps, T* y,
                       T* mean, T* rstd) {
  const int64_t cpg = C / G, n = cpg * S;
  const int64_t grain = n >= kGrain ? 1 : kGrain / n;
  parallel_for(B * G, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t bg = i0; bg < i1; ++bg) {
      const T* xs = x + bg * n;
      T* ys = y + bg * n;
      const int64_t g = bg % G;
      double s = 0;
      for (int64_t c = 0; c < cpg; ++c) s += double(sum_row(xs + c * S, S));
      const T mu = T(s / double(n));
      double v = 0;
      for (int64_t c = 0; c < cpg; ++c) v += double(sum_sq_dev(xs + c * S, S, mu));
      const T rs = T(1.0 / std::sqrt(v / double(n) + double(eps)));
      mean[bg] = mu;
      rstd[bg] = rs;
      for (int64_t c = 0; c < cpg; ++c) {
        const int64_t ch = g * cpg + c;
        affine_row(xs + c * S, ys + c * S, S, mu, w ? rs * w[ch] : rs, b ? b[ch] : T(0));
      }
    }
  });
}

template <typename T>
void group_norm_backward_kernel(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw,
                                T* gb, int64_t B, int64_t C, int64_t S, int64_t G) {
  const int64_t cpg = C / G, n = cpg * S;
  // Per (sample, channel): sum gy and sum gy * xhat, kept for gw and gb.
  std::vector<double> sum_g(size_t(B * C)), sum_gxh(size_t(B * C));
  const int64_t grain = n >= kGrain ? 1 : kGrain / n;
  parallel_for(B * G, grain, [&](int64_t i0, int64_t i1) {
    for (int64_t bg = i0; bg < i1; ++bg) {
      const int64_t g = bg % G, bc0 = bg * cpg;  // bc0 = b * C + g * cpg
      const T mu = mean[bg], rs = rstd[bg];
      const T* xs = x + bg * n;
      const T* gs = gy + bg * n;
      // mean(g) and mean(g * xhat) over the set, g = gy * w[channel]
      double a = 0, c2 = 0;
      for (int64_t c = 0; c < cpg; ++c) {
        T sg, sgx;
        grad_sums_row(xs + c * S, gs + c * S, S, mu, rs, sg, sgx);
        sum_g[size_t(bc0 + c)] = double(sg);
        sum_gxh[size_t(bc0 + c)] = double(sgx);
        const double wc = w ? double(w[g * cpg + c]) : 1.0;
        a += wc * double(sg);
        c2 += wc * double(sgx);
      }
      const T ma = T(a / double(n)), mc = T(c2 / double(n));
      for (int64_t c = 0; c < cpg; ++c) {
        const T wc = w ? w[g * cpg + c] : T(1);
        const T* xr = xs + c * S;
        const T* gr = gs + c * S;
        T* gxr = gx + bg * n + c * S;
        _Pragma("omp simd") for (int64_t j = 0; j < S; ++j) {
          const T xh = (xr[j] - mu) * rs;
          gxr[j] = rs * (gr[j] * wc - ma - xh * mc);
        }
      }
    }
  });
  // gw[c] = sum over samples of sum_gxh, gb[c] = of sum_g (sample order: deterministic).
  for (int64_t c = 0; c < C; ++c) {
    double sw = 0, sb = 0;
    for (int64_t bi = 0; bi < B; ++bi) {
      sw += sum_gxh[size_t(bi * C + c)];
      sb += sum_g[size_t(bi * C + c)];
    }
    if (gw) gw[c] += T(sw);
    if (gb) gb[c] += T(sb);
  }
}

// ---- BatchNorm -------------------------------------------------------------------------
// x [B, C, S]: the set of channel c is B rows of S values, one per sample. Parallel over
// channels.

template <typename T>
void batch_norm_kernel(const T* x, const T* w, const T* b, T* run_mean, T* run_var, bool training, T momentum,
                       T eps, T* y, T* mean, T* rstd, int64_t B, int64_t C, int64_t S) {
  const int64_t n = B * S;
  const int64_t grain = n >= kGrain ? 1 : kGrain / n;
  parallel_for(C, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T mu, rs;
      if (training) {
        double s = 0;
        for (int64_t bi = 0; bi < B; ++bi) s += double(sum_row(x + (bi * C + c) * S, S));
        mu = T(s / double(n));
        double v = 0;
        for (int64_t bi = 0; bi < B; ++bi) v += double(sum_sq_dev(x + (bi * C + c) * S, S, mu));
        const double var = v / double(n);  // biased: what normalises the batch
        rs = T(1.0 / std::sqrt(var + double(eps)));
        if (run_mean) run_mean[c] = (T(1) - momentum) * run_mean[c] + momentum * mu;
        // The running variance estimates the population: unbiased, n / (n - 1) (n > 1 is
        // checked by the op).
        if (run_var) run_var[c] = (T(1) - momentum) * run_var[c] + momentum * T(var * double(n) / double(n - 1));
      } else {
        mu = run_mean[c];
        rs = T(1) / std::sqrt(run_var[c] + eps);
      }
      mean[c] = mu;
      rstd[c] = rs;
      const T scale = w ? rs * w[c] : rs, shift = b ? b[c] : T(0);
      for (int64_t bi = 0; bi < B; ++bi)
        affine_row(x + (bi * C + c) * S, y + (bi * C + c) * S, S, mu, scale, shift);
    }
  });
}

template <typename T>
void batch_norm_backward_kernel(const T* x, const T* w, const T* mean, const T* rstd, bool training, const T* gy,
                                T* gx, T* gw, T* gb, int64_t B, int64_t C, int64_t S) {
  const int64_t n = B * S;
  const int64_t grain = n >= kGrain ? 1 : kGrain / n;
  parallel_for(C, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const T mu = mean[c], rs = rstd[c], wc = w ? w[c] : T(1);
      double sg = 0, sgx = 0;
      for (int64_t bi = 0; bi < B; ++bi) {
        T a, d;
        grad_sums_row(x + (bi * C + c) * S, gy + (bi * C + c) * S, S, mu, rs, a, d);
        sg += double(a);
        sgx += double(d);
      }
      if (gw) gw[c] += T(sgx);
      if (gb) gb[c] += T(sg);
      // Training: gx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = gy * w, i.e.
      // w * rstd * (gy - mean(gy) - xhat * mean(gy * xhat)). Eval: w * rstd * gy.
      const T k = wc * rs;
      const T ma = training ? T(sg / double(n)) : T(0), mc = training ? T(sgx / double(n)) : T(0);
      for (int64_t bi = 0; bi < B; ++bi) {
        const T* xr = x + (bi * C + c) * S;
        const T* gr = gy + (bi * C + c) * S;
        T* gxr = gx + (bi * C + c) * S;
        _Pragma("omp simd") for (int64_t j = 0; j < S; ++j) gxr[j] = k * (gr[j] - ma - (xr[j] - mu) * rs * mc);
      }
    }
  });
}

}  // namespace

void CpuBackend::layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                            Tensor& rstd) {
  MM_ASSERT(x.dim() == 2 && x.is_contiguous() && y.shape() == x.shape());
  const int64_t m = x.size(0), n = x.size(1);
  MM_DISPATCH_FLOAT(x.dtype(), "layer_norm",
                    layer_norm_kernel<T>(x.data<T>(), ptr_or_null<T>(w), ptr_or_null<T>(b), T(eps), y.data<T>(),
                                         mean.data<T>(), rstd.data<T>(), m, n));
}

void CpuBackend::layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                     const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) {
  MM_ASSERT(x.dim() == 2 && x.is_contiguous() && gy.shape() == x.shape() && gx.shape() == x.shape());
  const int64_t m = x.size(0), n = x.size(1);
  MM_DISPATCH_FLOAT(x.dtype(), "layer_norm_backward",
                    layer_norm_backward_kernel<T>(x.data<T>(), ptr_or_null<T>(w), mean.data<T>(), rstd.data<T>(),
                                                  gy.data<T>(), gx.data<T>(), ptr_or_null<T>(gw),
                                                  ptr_or_null<T>(gb), m, n));
}

void CpuBackend::group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups, double eps, Tensor& y,
                            Tensor& mean, Tensor& rstd) {
  MM_ASSERT(x.dim() == 3 && x.is_contiguous() && groups > 0 && x.size(1) % groups == 0);
  MM_DISPATCH_FLOAT(x.dtype(), "group_norm",
                    group_norm_kernel<T>(x.data<T>(), ptr_or_null<T>(w), ptr_or_null<T>(b), x.size(0), x.size(1),
                                         x.size(2), groups, T(eps), y.data<T>(), mean.data<T>(), rstd.data<T>()));
}

void CpuBackend::group_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                     int64_t groups, const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) {
  MM_ASSERT(x.dim() == 3 && x.is_contiguous() && gy.shape() == x.shape() && gx.shape() == x.shape());
  MM_DISPATCH_FLOAT(x.dtype(), "group_norm_backward",
                    group_norm_backward_kernel<T>(x.data<T>(), ptr_or_null<T>(w), mean.data<T>(), rstd.data<T>(),
                                                  gy.data<T>(), gx.data<T>(), ptr_or_null<T>(gw),
                                                  ptr_or_null<T>(gb), x.size(0), x.size(1), x.size(2), groups));
}

void CpuBackend::batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& running_mean,
                            Tensor& running_var, bool training, double momentum, double eps, Tensor& y, Tensor& mean,
                            Tensor& rstd) {
  MM_ASSERT(x.dim() == 3 && x.is_contiguous() && y.shape() == x.shape());
  MM_ASSERT(training || (running_mean.defined() && running_var.defined()));
  MM_DISPATCH_FLOAT(x.dtype(), "batch_norm",
                    batch_norm_kernel<T>(x.data<T>(), ptr_or_null<T>(w), ptr_or_null<T>(b),
                                         running_mean.defined() ? running_mean.data<T>() : nullptr,
                                         running_var.defined() ? running_var.data<T>() : nullptr, training,
                                         T(momentum), T(eps), y.data<T>(), mean.data<T>(), rstd.data<T>(),
                                         x.size(0), x.size(1), x.size(2)));
}

void CpuBackend::batch_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                     bool training, const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) {
  MM_ASSERT(x.dim() == 3 && x.is_contiguous() && gy.shape() == x.shape() && gx.shape() == x.shape());
  MM_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward",
                    batch_norm_backward_kernel<T>(x.data<T>(), ptr_or_null<T>(w), mean.data<T>(), rstd.data<T>(),
                                                  training, gy.data<T>(), gx.data<T>(), ptr_or_null<T>(gw),
                                                  ptr_or_null<T>(gb), x.size(0), x.size(1), x.size(2)));
}

}  // namespace mm
