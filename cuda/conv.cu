// The pieces of convolution as im2col + GEMM, and max pooling, on NCHW tensors (the
// scheme of ops/cpu/conv.cpp; the GEMMs are the backend's, so cuBLAS on a GPU).
//
// For one sample, with K = Cg KH KW rows per group and P = OH OW output positions:
//   col [Cin KH KW, P]   col[(c, kh, kw), (oh, ow)] = x[c, oh sh - ph + kh, ow sw - pw + kw]
//                        (0 in the padding); group g owns rows [g K, (g + 1) K)
//   y_g = w_g [Og, K] @ col_g [K, P];   gcol_g = w_g^T @ gy_g;   gx = col2im(gcol)
// col2im is the adjoint of im2col: each input element sums the col entries that copied
// it. Here one thread per input element gathers them in a fixed (kh, kw) order: no float
// atomics, the same result every run.
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

constexpr unsigned kThreads = 256;

template <class T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ col, ConvGeometry g) {
  const int64_t P = g.OH * g.OW, total = g.Cin * g.KH * g.KW * P;
  for (int64_t t = flat_index(); t < total; t += flat_step()) {
    const int64_t p = t % P, r = t / P;
    const int64_t kw = r % g.KW, kh = (r / g.KW) % g.KH, c = r / (g.KW * g.KH);
    const int64_t ih = (p / g.OW) * g.sh - g.ph + kh, iw = (p % g.OW) * g.sw - g.pw + kw;
    const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
    col[t] = in ? x[(c * g.H + ih) * g.W + iw] : st<T>(acc_t<T>(0));
  }
}

template <class T>
__global__ void col2im_kernel(const T* __restrict__ col, T* __restrict__ x, ConvGeometry g) {
  using A = acc_t<T>;
  const int64_t P = g.OH * g.OW, total = g.Cin * g.H * g.W;
  for (int64_t t = flat_index(); t < total; t += flat_step()) {
    const int64_t iw = t % g.W, ih = (t / g.W) % g.H, c = t / (g.W * g.H);
    A s = A(0);
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t th = ih + g.ph - kh;  // = oh * sh
      if (th < 0 || th % g.sh != 0 || th / g.sh >= g.OH) continue;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t tw = iw + g.pw - kw;
        if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.OW) continue;
        s += ld(col[((c * g.KH + kh) * g.KW + kw) * P + (th / g.sh) * g.OW + tw / g.sw]);
      }
    }
    x[t] = st<T>(s);
  }
}

template <class T>
__global__ void add_channel_bias_kernel(T* __restrict__ y, const T* __restrict__ b, int64_t n, int64_t C,
                                        int64_t P) {
  for (int64_t i = flat_index(); i < n; i += flat_step()) y[i] = st<T>(ld(y[i]) + ld(b[(i / P) % C]));
}

// One thread per output: the window's first maximum (a NaN replaces it: PyTorch's rule,
// as the CPU kernel); padding never competes.
template <class T>
__global__ void max_pool2d_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ arg,
                                  int64_t planes, ConvGeometry g) {
  using A = acc_t<T>;
  const int64_t P = g.OH * g.OW;
  for (int64_t t = flat_index(); t < planes * P; t += flat_step()) {
    const int64_t pl = t / P, oh = (t % P) / g.OW, ow = t % g.OW;
    const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    const int64_t hs = h0 < 0 ? 0 : h0, he = h0 + g.KH < g.H ? h0 + g.KH : g.H;
    const int64_t ws = w0 < 0 ? 0 : w0, we = w0 + g.KW < g.W ? w0 + g.KW : g.W;
    const T* xp = x + pl * g.H * g.W;
    A best = -d_inf<A>();
    int64_t bi = hs * g.W + ws;
    for (int64_t ih = hs; ih < he; ++ih)
      for (int64_t iw = ws; iw < we; ++iw) {
        const A v = ld(xp[ih * g.W + iw]);
        if (v > best || v != v) { best = v; bi = ih * g.W + iw; }
      }
    y[t] = st<T>(best);
    arg[t] = bi;
  }
}

// One thread per plane adds its outputs' gradients in output order (as the CPU does):
// overlapping windows may share a maximum, and this order keeps the sum deterministic.
template <class T>
__global__ void max_pool2d_backward_kernel(const T* __restrict__ gy, const int64_t* __restrict__ arg,
                                           T* __restrict__ gx, int64_t planes, int64_t P, int64_t HW) {
  for (int64_t pl = flat_index(); pl < planes; pl += flat_step())
    for (int64_t i = 0; i < P; ++i) {
      T* d = gx + pl * HW + arg[pl * P + i];
      *d = st<T>(ld(*d) + ld(gy[pl * P + i]));
    }
}

}  // namespace

void im2col(DType dt, const void* x, void* col, const ConvGeometry& g, cudaStream_t s) {
  const int64_t total = g.Cin * g.KH * g.KW * g.OH * g.OW;
  if (total == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "conv2d",
                         MM_LAUNCH(im2col_kernel<T>, dim3(flat_blocks(total, kThreads)), dim3(kThreads), 0, s,
                                   static_cast<const T*>(x), static_cast<T*>(col), g));
}

void col2im(DType dt, const void* col, void* x, const ConvGeometry& g, cudaStream_t s) {
  const int64_t total = g.Cin * g.H * g.W;
  if (total == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "conv2d_backward",
                         MM_LAUNCH(col2im_kernel<T>, dim3(flat_blocks(total, kThreads)), dim3(kThreads), 0, s,
                                   static_cast<const T*>(col), static_cast<T*>(x), g));
}

void add_channel_bias(DType dt, void* y, const void* b, int64_t B, int64_t C, int64_t P, cudaStream_t s) {
  const int64_t n = B * C * P;
  if (n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "conv2d",
                         MM_LAUNCH(add_channel_bias_kernel<T>, dim3(flat_blocks(n, kThreads)), dim3(kThreads), 0, s,
                                   static_cast<T*>(y), static_cast<const T*>(b), n, C, P));
}

void max_pool2d(DType dt, const void* x, void* y, int64_t* argmax, int64_t planes, const ConvGeometry& g,
                cudaStream_t s) {
  const int64_t n = planes * g.OH * g.OW;
  if (n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "max_pool2d",
                         MM_LAUNCH(max_pool2d_kernel<T>, dim3(flat_blocks(n, kThreads)), dim3(kThreads), 0, s,
                                   static_cast<const T*>(x), static_cast<T*>(y), argmax, planes, g));
}

void max_pool2d_backward(DType dt, const void* gy, const int64_t* argmax, void* gx, int64_t planes, int64_t P,
                         int64_t HW, cudaStream_t s) {
  if (planes * P == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "max_pool2d_backward",
                         MM_LAUNCH(max_pool2d_backward_kernel<T>, dim3(flat_blocks(planes, 128)), dim3(128), 0, s,
                                   static_cast<const T*>(gy), argmax, static_cast<T*>(gx), planes, P, HW));
}

}  // namespace mm::cuda::kernels
