// Convolution as im2col + GEMM, and max pooling, on NCHW tensors.
//
// For one sample and one group g (Cg = Cin/groups input channels, Og = Cout/groups
// output channels, K = Cg*KH*KW, P = OH*OW):
//   col [K, P]    col[(c, kh, kw), (oh, ow)] = x[c, oh*sh - ph + kh, ow*sw - pw + kw] (0 in padding)
//   y_g [Og, P]   = w_g [Og, K] @ col + b
//   gw_g [Og, K] += gy_g [Og, P] @ col^T              (summed over the batch)
//   gcol [K, P]   = w_g^T [K, Og] @ gy_g,   gx = col2im(gcol) (the adjoint of im2col: adds)
// A 1x1 convolution with stride 1 and no padding has col == x: no im2col, a direct GEMM
// on x (cut into bands only when there are fewer samples than threads).
//
// Tiles: col is built for a band of output rows at a time (a tile of ~0.5 MB), so it is
// still in cache when BLAS packs it; a whole-sample col (7 MB for a 64-channel 3x3 layer
// at 56x56) would go to memory and back. The tasks are (sample, band) pairs spread over
// the thread pool, each calling single-threaded BLAS on its own buffer, so one sample
// (inference) keeps every core busy too.
//  - forward: every task writes its own band of y.
//  - gw: each thread sums its tasks into a private partial, the partials are added in a
//    fixed order: the result does not depend on scheduling (only on the thread count).
//  - gx: col2im of neighbouring bands overlaps (windows straddle band edges), so tasks
//    are (sample, group) pairs; with fewer of those than threads, one sample at a time
//    with the GEMM split by the threaded backend gemm and col2im split over channels.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/strided.h"

namespace mm {
using namespace cpu;

namespace {

// C = A B (+ C when beta = 1), row-major, single-threaded BLAS (the caller parallelises).
template <typename T>
void blas(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb,
          T beta, T* c, int64_t ldc) {
  const auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  if constexpr (sizeof(T) == 4)
    cblas_sgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), 1.0f, a, int(lda), b, int(ldb), beta, c, int(ldc));
  else
    cblas_dgemm(CblasRowMajor, TA, TB, int(m), int(n), int(k), 1.0, a, int(lda), b, int(ldb), beta, c, int(ldc));
}

// Uninitialised scratch memory (every element is written before it is read).
template <typename T>
std::unique_ptr<T[]> scratch(int64_t n) {
  return n > 0 ? std::unique_ptr<T[]>(new T[size_t(n)]) : nullptr;
}

struct Geom {
  int64_t B, Cin, H, W, Cout, KH, KW, OH, OW, G, Cg, Og, sh, sw, ph, pw;
  int64_t rows;  // output rows per band (tile)
  int64_t K() const { return Cg * KH * KW; }  // rows of col (one group)
  int64_t P() const { return OH * OW; }       // columns of col: output positions
  int64_t HW() const { return H * W; }
  int64_t bands() const { return (OH + rows - 1) / rows; }
  bool direct() const { return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
};

Geom geometry(const Tensor& x, const Tensor& w, const Conv2dArgs& a) {
  Geom g{};
  g.B = x.size(0); g.Cin = x.size(1); g.H = x.size(2); g.W = x.size(3);
  g.Cout = w.size(0); g.KH = w.size(2); g.KW = w.size(3);
  g.sh = a.stride_h; g.sw = a.stride_w; g.ph = a.pad_h; g.pw = a.pad_w;
  g.OH = (g.H + 2 * g.ph - g.KH) / g.sh + 1;
  g.OW = (g.W + 2 * g.pw - g.KW) / g.sw + 1;
  g.G = a.groups; g.Cg = g.Cin / g.G; g.Og = g.Cout / g.G;
  MM_CHECK(g.K() < (int64_t(1) << 31) && g.P() < (int64_t(1) << 31) && g.Cout < (int64_t(1) << 31),
           "conv2d: im2col matrix ", g.K(), "x", g.P(), " exceeds BLAS's 32-bit limit");
  // A band's col is ~0.5 MB (f32) but at least ~256 columns wide: narrower GEMMs lose more
  // to BLAS overheads than the cache saves.
  const int64_t cols = std::max<int64_t>(256, (int64_t(1) << 17) / std::max<int64_t>(g.K(), 1));
  g.rows = std::clamp<int64_t>((cols + g.OW - 1) / std::max<int64_t>(g.OW, 1), 1, std::max<int64_t>(g.OH, 1));
  if (g.direct()) {
    // No col to keep in cache: bands only to give every thread work when samples are few.
    const int64_t per_sample = (num_threads() + g.B - 1) / std::max<int64_t>(g.B, 1);
    g.rows = std::max<int64_t>(1, (g.OH + per_sample - 1) / std::max<int64_t>(per_sample, 1));
  }
  return g;
}

// The output columns [lo, hi) whose input column ow*s - p + k lies inside [0, W).
struct Span { int64_t lo, hi; };
Span valid_span(int64_t W, int64_t OW, int64_t s, int64_t p, int64_t k) {
  const int64_t a = p - k;  // need ow*s >= a and ow*s <= W - 1 + a
  int64_t lo = a <= 0 ? 0 : (a + s - 1) / s;
  int64_t hi = W - 1 + a < 0 ? 0 : (W - 1 + a) / s + 1;
  if (hi > OW) hi = OW;
  if (lo > hi) lo = hi;
  return {lo, hi};
}

// col [nc*KH*KW, (oh1-oh0)*OW] for output rows [oh0, oh1) from nc channels of x [nc, H, W].
template <typename T>
void im2col(const T* x, const Geom& g, int64_t nc, int64_t oh0, int64_t oh1, T* col) {
  const int64_t ld = (oh1 - oh0) * g.OW;
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        const T* xc = x + c * g.HW();
        const Span s = valid_span(g.W, g.OW, g.sw, g.pw, kw);
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          T* r = row + (oh - oh0) * g.OW;
          const int64_t ih = oh * g.sh - g.ph + kh;
          if (ih < 0 || ih >= g.H) {
            for (int64_t ow = 0; ow < g.OW; ++ow) r[ow] = T(0);
            continue;
          }
          const int64_t base = ih * g.W + kw - g.pw;  // x index of column ow: base + ow*sw
          for (int64_t ow = 0; ow < s.lo; ++ow) r[ow] = T(0);
          if (g.sw == 1) std::memcpy(r + s.lo, xc + base + s.lo, size_t(s.hi - s.lo) * sizeof(T));
          else for (int64_t ow = s.lo; ow < s.hi; ++ow) r[ow] = xc[base + ow * g.sw];
          for (int64_t ow = s.hi; ow < g.OW; ++ow) r[ow] = T(0);
        }
      }
}

// gx [nc, H, W] += col2im(col) for output rows [oh0, oh1): each col entry goes back to
// the pixel it was read from (the adjoint of im2col).
template <typename T>
void col2im_add(const T* col, const Geom& g, int64_t nc, int64_t oh0, int64_t oh1, T* gx) {
  const int64_t ld = (oh1 - oh0) * g.OW;
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        T* xc = gx + c * g.HW();
        const Span s = valid_span(g.W, g.OW, g.sw, g.pw, kw);
        const int64_t shift = kw - g.pw;  // gx column of output column ow: ow*sw + shift
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const int64_t ih = oh * g.sh - g.ph + kh;
          if (ih < 0 || ih >= g.H) continue;
          const T* r = row + (oh - oh0) * g.OW;
          T* dst = xc + ih * g.W;
          if (g.sw == 1) { _Pragma("omp simd") for (int64_t ow = s.lo; ow < s.hi; ++ow) dst[ow + shift] += r[ow]; }
          else for (int64_t ow = s.lo; ow < s.hi; ++ow) dst[ow * g.sw + shift] += r[ow];
        }
      }
}

// Splits [0, n) tasks into min(n, threads) contiguous parts; f(part, t0, t1) per part.
template <typename F>
int64_t for_parts(int64_t n, F&& f) {
  const int64_t parts = std::min<int64_t>(n, num_threads());
  parallel_for(parts, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) f(c, c * n / parts, (c + 1) * n / parts);
  });
  return parts;
}

template <typename T>
void conv_forward(const Geom& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t K = g.K(), P = g.P(), nb = g.bands();
  const T beta = bias ? T(1) : T(0);
  for_parts(g.B * nb, [&](int64_t, int64_t t0, int64_t t1) {
    auto col = scratch<T>(g.direct() ? 0 : K * g.rows * g.OW);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / nb, oh0 = (t % nb) * g.rows, oh1 = std::min(g.OH, oh0 + g.rows);
      const int64_t p0 = oh0 * g.OW, pc = (oh1 - oh0) * g.OW;
      T* yb = y + b * g.Cout * P + p0;  // y[b, :, band]: rows of stride P
      if (bias)
        for (int64_t o = 0; o < g.Cout; ++o) std::fill(yb + o * P, yb + o * P + pc, bias[o]);
      for (int64_t grp = 0; grp < g.G; ++grp) {
        const T* xg = x + (b * g.Cin + grp * g.Cg) * g.HW();
        const T* src = xg + p0;  // direct: x[b, group, band] is col
        int64_t ld = P;
        if (!g.direct()) { im2col(xg, g, g.Cg, oh0, oh1, col.get()); src = col.get(); ld = pc; }
        blas<T>(false, false, g.Og, pc, K, w + grp * g.Og * K, K, src, ld, beta, yb + grp * g.Og * P, P);
      }
    }
  });
}

template <typename T>
void conv_weight_grad(const Geom& g, const T* x, const T* gy, T* gw) {
  const int64_t K = g.K(), P = g.P(), nb = g.bands(), Wn = g.Cout * K;
  const int64_t parts = std::min<int64_t>(g.B * nb, num_threads());
  if (parts == 0) { std::fill(gw, gw + Wn, T(0)); return; }
  auto partial = scratch<T>((parts - 1) * Wn);  // part 0 accumulates straight into gw
  for_parts(g.B * nb, [&](int64_t part, int64_t t0, int64_t t1) {
    auto col = scratch<T>(g.direct() ? 0 : K * g.rows * g.OW);
    T* acc = part == 0 ? gw : partial.get() + (part - 1) * Wn;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / nb, oh0 = (t % nb) * g.rows, oh1 = std::min(g.OH, oh0 + g.rows);
      const int64_t p0 = oh0 * g.OW, pc = (oh1 - oh0) * g.OW;
      for (int64_t grp = 0; grp < g.G; ++grp) {
        const T* xg = x + (b * g.Cin + grp * g.Cg) * g.HW();
        const T* src = xg + p0;
        int64_t ld = P;
        if (!g.direct()) { im2col(xg, g, g.Cg, oh0, oh1, col.get()); src = col.get(); ld = pc; }
        // gw_g [Og, K] (+)= gy[b, group, band] [Og, pc] @ col^T [pc, K]
        blas<T>(false, true, g.Og, K, pc, gy + (b * g.Cout + grp * g.Og) * P + p0, P, src, ld,
                t == t0 ? T(0) : T(1), acc + grp * g.Og * K, K);
      }
    }
  });
  if (parts > 1)
    parallel_for(Wn, kGrain, [&](int64_t i0, int64_t i1) {
      for (int64_t c = 1; c < parts; ++c) {
        const T* src = partial.get() + (c - 1) * Wn;
        _Pragma("omp simd") for (int64_t i = i0; i < i1; ++i) gw[i] += src[i];
      }
    });
}

template <typename T>
void conv_input_grad(CpuBackend& be, const Geom& g, const T* w, const T* gy, T* gx) {
  const int64_t K = g.K(), P = g.P(), nb = g.bands();
  if (g.B * g.G >= num_threads()) {
    for_parts(g.B * g.G, [&](int64_t, int64_t t0, int64_t t1) {
      auto gcol = scratch<T>(g.direct() ? 0 : K * g.rows * g.OW);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / g.G, grp = t % g.G;
        const T* wg = w + grp * g.Og * K;
        const T* gyg = gy + (b * g.Cout + grp * g.Og) * P;
        T* gxg = gx + (b * g.Cin + grp * g.Cg) * g.HW();
        if (g.direct()) {  // gx_g [Cg, HW] = w_g^T [Cg, Og] @ gy_g [Og, HW]
          blas<T>(true, false, K, P, g.Og, wg, K, gyg, P, T(0), gxg, P);
          continue;
        }
        std::fill(gxg, gxg + g.Cg * g.HW(), T(0));
        for (int64_t band = 0; band < nb; ++band) {
          const int64_t oh0 = band * g.rows, oh1 = std::min(g.OH, oh0 + g.rows), pc = (oh1 - oh0) * g.OW;
          blas<T>(true, false, K, pc, g.Og, wg, K, gyg + oh0 * g.OW, P, T(0), gcol.get(), pc);
          col2im_add(gcol.get(), g, g.Cg, oh0, oh1, gxg);
        }
      }
    });
    return;
  }
  // Fewer (sample, group) pairs than threads: one sample at a time, split inside.
  auto gcol = scratch<T>(g.direct() ? 0 : g.G * K * P);
  for (int64_t b = 0; b < g.B; ++b) {
    T* gxb = gx + b * g.Cin * g.HW();
    GemmArgs ga;  // per group: gcol_g = w_g^T @ gy_g (straight into gx for the direct case)
    ga.trans_a = true;
    ga.m = K; ga.n = P; ga.k = g.Og;
    ga.a = w; ga.lda = K; ga.stride_a = g.Og * K;
    ga.b = gy + b * g.Cout * P; ga.ldb = P; ga.stride_b = g.Og * P;
    ga.c = g.direct() ? gxb : gcol.get(); ga.ldc = P; ga.stride_c = K * P;
    ga.batch = g.G; ga.dtype = sizeof(T) == 4 ? DType::f32 : DType::f64;
    be.gemm(ga);
    if (!g.direct())
      parallel_for(g.Cin, 1, [&](int64_t c0, int64_t c1) {
        T* dst = gxb + c0 * g.HW();
        std::fill(dst, dst + (c1 - c0) * g.HW(), T(0));
        col2im_add(gcol.get() + c0 * g.KH * g.KW * P, g, c1 - c0, 0, g.OH, dst);
      });
  }
}

template <typename T>
void conv_bias_grad(const Geom& g, const T* gy, T* gb) {
  // gb[o] = sum over samples and positions of gy[b, o, :], in a fixed order.
  const int64_t P = g.P();
  parallel_for(g.Cout, 1 + 4096 / (g.B * P + 1), [&](int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; ++o) {
      double s = 0;
      for (int64_t b = 0; b < g.B; ++b) {
        const T* r = gy + (b * g.Cout + o) * P;
        for (int64_t p = 0; p < P; ++p) s += double(r[p]);
      }
      gb[o] = T(s);
    }
  });
}

}  // namespace

void CpuBackend::conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a, Tensor& y) {
  const Geom g = geometry(x, w, a);
  MM_DISPATCH_FLOAT(x.dtype(), "conv2d",
                    conv_forward<T>(g, x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>()));
}

// Overwrites each gradient it is given (nullptr: not needed).
void CpuBackend::conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Conv2dArgs& a,
                                 Tensor* gx, Tensor* gw, Tensor* gb) {
  const Geom g = geometry(x, w, a);
  MM_DISPATCH_FLOAT(x.dtype(), "conv2d_backward", {
    if (gb) conv_bias_grad<T>(g, gy.data<T>(), gb->data<T>());
    if (gw) conv_weight_grad<T>(g, x.data<T>(), gy.data<T>(), gw->data<T>());
    if (gx) conv_input_grad<T>(*this, g, w.data<T>(), gy.data<T>(), gx->data<T>());
  });
}

void CpuBackend::max_pool2d(const Tensor& x, int64_t kh, int64_t kw, const Conv2dArgs& a, Tensor& y,
                            Tensor& argmax) {
  const int64_t planes = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = y.size(2), OW = y.size(3);
  const int64_t sh = a.stride_h, sw = a.stride_w, ph = a.pad_h, pw = a.pad_w;
  MM_DISPATCH_FLOAT(x.dtype(), "max_pool2d", {
    const T* px = x.data<T>();
    T* py = y.data<T>();
    int64_t* pa = argmax.data<int64_t>();
    parallel_for(planes, 1 + kGrain / (OH * OW * kh * kw + 1), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl) {
        const T* xp = px + pl * H * W;
        for (int64_t oh = 0; oh < OH; ++oh) {
          const int64_t h0 = oh * sh - ph, hs = h0 < 0 ? 0 : h0, he = h0 + kh < H ? h0 + kh : H;
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t w0 = ow * sw - pw, ws = w0 < 0 ? 0 : w0, we = w0 + kw < W ? w0 + kw : W;
            // Padding is -inf: only real elements compete; the first maximum wins, NaN
            // propagates (PyTorch's rule).
            T best = -std::numeric_limits<T>::infinity();
            int64_t bi = hs * W + ws;
            for (int64_t ih = hs; ih < he; ++ih)
              for (int64_t iw = ws; iw < we; ++iw) {
                const T v = xp[ih * W + iw];
                if (v > best || std::isnan(v)) { best = v; bi = ih * W + iw; }
              }
            py[(pl * OH + oh) * OW + ow] = best;
            pa[(pl * OH + oh) * OW + ow] = bi;
          }
        }
      }
    });
  });
}

// gx += gy scattered to each window's argmax (the op zero-fills gx). Planes are
// independent; inside a plane the order is fixed: deterministic.
void CpuBackend::max_pool2d_backward(const Tensor& gy, const Tensor& argmax, Tensor& gx) {
  const int64_t planes = gx.size(0) * gx.size(1), HW = gx.size(2) * gx.size(3);
  const int64_t P = gy.size(2) * gy.size(3);
  MM_DISPATCH_FLOAT(gy.dtype(), "max_pool2d_backward", {
    const T* pg = gy.data<T>();
    const int64_t* pa = argmax.data<int64_t>();
    T* px = gx.data<T>();
    parallel_for(planes, 1 + kGrain / (P + 1), [&](int64_t p0, int64_t p1) {
      for (int64_t pl = p0; pl < p1; ++pl)
        for (int64_t i = 0; i < P; ++i) px[pl * HW + pa[pl * P + i]] += pg[pl * P + i];
    });
  });
}

}  // namespace mm
