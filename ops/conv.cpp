#include "ops/conv.h"

#include "autograd/node.h"
#include "ops/creation.h"
#include "ops/op_util.h"
#include "ops/shape.h"

namespace mm {
using autograd::grads;
using autograd::Node;

namespace {

// Output extent of a sliding window: floor((in + 2 pad - k) / stride) + 1, or <= 0 when
// the window does not fit once.
int64_t out_extent(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  const int64_t span = in + 2 * pad - k;
  return span < 0 ? 0 : span / stride + 1;
}

void check_window(const char* op, Size2 k, Size2 stride, Size2 pad) {
  MM_CHECK(k.h >= 1 && k.w >= 1, op, ": kernel must be positive, got ", k.h, "x", k.w);
  MM_CHECK(stride.h >= 1 && stride.w >= 1, op, ": stride must be positive, got ", stride.h, "x", stride.w);
  MM_CHECK(pad.h >= 0 && pad.w >= 0, op, ": padding must be non-negative, got ", pad.h, "x", pad.w);
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Size2 stride, Size2 padding, int64_t groups) {
  check_defined("conv2d", x, "x");
  check_defined("conv2d", w, "w");
  check_floating("conv2d", x);
  check_same_device("conv2d", x, w);
  check_same_dtype("conv2d", x, w);
  MM_CHECK(x.dim() == 4, "conv2d: input must be [B, Cin, H, W], got shape ", x.shape());
  MM_CHECK(w.dim() == 4, "conv2d: weight must be [Cout, Cin/groups, KH, KW], got shape ", w.shape());
  MM_CHECK(groups >= 1, "conv2d: groups must be positive, got ", groups);
  const int64_t B = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t Cout = w.size(0), KH = w.size(2), KW = w.size(3);
  MM_CHECK(Cin % groups == 0 && Cout % groups == 0, "conv2d: channels of input ", x.shape(), " and weight ",
           w.shape(), " must both be divisible by groups = ", groups);
  MM_CHECK(w.size(1) * groups == Cin, "conv2d: input ", x.shape(), " has ", Cin, " channels but weight ",
           w.shape(), " expects ", w.size(1) * groups, " (", w.size(1), " per group x ", groups, " groups)");
  if (b.defined()) {
    check_same_device("conv2d", x, b);
    check_same_dtype("conv2d", x, b);
    MM_CHECK(b.dim() == 1 && b.size(0) == Cout, "conv2d: bias must be [", Cout, "] for weight ", w.shape(),
             ", got ", b.shape());
  }
  check_window("conv2d", Size2(KH, KW), stride, padding);
  const int64_t OH = out_extent(H, KH, stride.h, padding.h), OW = out_extent(W, KW, stride.w, padding.w);
  MM_CHECK(OH >= 1 && OW >= 1, "conv2d: kernel ", KH, "x", KW, " does not fit the input ", x.shape(),
           " padded by ", padding.h, "x", padding.w);

  Conv2dArgs a;
  a.stride_h = stride.h; a.stride_w = stride.w;
  a.pad_h = padding.h; a.pad_w = padding.w;
  a.groups = groups;
  Tensor xc = contiguous(x), wc = contiguous(w), bc = b.defined() ? contiguous(b) : Tensor();
  Tensor y = Tensor::empty({B, Cout, OH, OW}, x.dtype(), x.device());
  backend_of(x).conv2d(xc, wc, bc, a, y);
  autograd::record(y, "conv2d", {xc, wc, bc}, [xc, wc, a](const Tensor& g, const Node& n) {
    // y = W * x + b: gx is the transposed convolution of gy with W (col2im of W^T gy),
    // gw the correlation of gy with x (gy col(x)^T summed over the batch), gb sums gy.
    // The kernel overwrites every gradient it is handed.
    Tensor gy = contiguous(g), gx, gw, gb;
    if (n.needs(0)) gx = Tensor::empty(xc.shape(), g.dtype(), g.device());
    if (n.needs(1)) gw = Tensor::empty(wc.shape(), g.dtype(), g.device());
    if (n.needs(2)) gb = Tensor::empty({wc.size(0)}, g.dtype(), g.device());
    backend_of(g).conv2d_backward(xc, wc, gy, a, gx.defined() ? &gx : nullptr, gw.defined() ? &gw : nullptr,
                                  gb.defined() ? &gb : nullptr);
    return grads{gx, gw, gb};
  });
  return y;
}

Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride, Size2 padding) {
  check_defined("max_pool2d", x, "x");
  check_floating("max_pool2d", x);
  MM_CHECK(x.dim() == 4, "max_pool2d: input must be [B, C, H, W], got shape ", x.shape());
  if (stride.h == 0 && stride.w == 0) stride = kernel;
  check_window("max_pool2d", kernel, stride, padding);
  // As PyTorch: every window then holds at least one real element.
  MM_CHECK(2 * padding.h <= kernel.h && 2 * padding.w <= kernel.w, "max_pool2d: padding ", padding.h, "x",
           padding.w, " must be at most half the kernel ", kernel.h, "x", kernel.w);
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out_extent(H, kernel.h, stride.h, padding.h), OW = out_extent(W, kernel.w, stride.w, padding.w);
  MM_CHECK(OH >= 1 && OW >= 1, "max_pool2d: kernel ", kernel.h, "x", kernel.w, " does not fit the input ",
           x.shape(), " padded by ", padding.h, "x", padding.w);
  Conv2dArgs a;
  a.stride_h = stride.h; a.stride_w = stride.w;
  a.pad_h = padding.h; a.pad_w = padding.w;
  Tensor xc = contiguous(x);
  Tensor y = Tensor::empty({B, C, OH, OW}, x.dtype(), x.device());
  Tensor arg = Tensor::empty({B, C, OH, OW}, DType::i64, x.device());
  backend_of(x).max_pool2d(xc, kernel.h, kernel.w, a, y, arg);
  const Shape in = x.shape();
  autograd::record(y, "max_pool2d", {xc}, [arg, in](const Tensor& g, const Node&) {
    // Only the window's maximum moved the output: its gradient goes there (summed when
    // overlapping windows share a maximum).
    // The kernel adds into gx (overlapping windows may share a maximum): start from zeros.
    Tensor gx = zeros(in, g.dtype(), g.device());
    backend_of(g).max_pool2d_backward(contiguous(g), arg, gx);
    return grads{gx};
  });
  return y;
}

}  // namespace mm
