// 2-D convolution and max pooling on NCHW tensors (ResNet's stem, blocks and
// downsampling; patch embedding is a conv with kernel = stride = patch size).
//
//   Tensor y = conv2d(x, w, b, /*stride=*/2, /*padding=*/3);      // 7x7 stem
//   Tensor d = conv2d(x, dw, Tensor(), 1, 1, /*groups=*/C);        // depthwise 3x3
//   Tensor p = max_pool2d(y, 3, 2, 1);
//
// Shape letters: B batch, Cin/Cout channels, H/W input size, KH/KW kernel size,
// OH = (H + 2*pad.h - KH) / stride.h + 1 and OW likewise (floor: PyTorch's default).
#pragma once
#include <cstdint>

#include "runtime/tensor.h"

namespace mm {

// A (height, width) pair; one number means the same for both axes: 2 == {2, 2}.
struct Size2 {
  int64_t h = 0, w = 0;
  Size2(int64_t v = 0) : h(v), w(v) {}  // NOLINT: implicit on purpose
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

// x [B, Cin, H, W], w [Cout, Cin/groups, KH, KW], b [Cout] or undefined -> [B, Cout, OH, OW].
// Input channel group g (Cin/groups of them) feeds output channels g*Cout/groups onwards;
// groups = Cin with Cout = Cin is a depthwise convolution.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(), Size2 stride = 1,
              Size2 padding = 0, int64_t groups = 1);

// x [B, C, H, W] -> [B, C, OH, OW]: the maximum of each window; padding counts as -inf
// (it is never chosen) and may be at most half the kernel. stride 0 means stride = kernel.
// The gradient goes to the first maximal element of each window (NaN wins, as PyTorch).
Tensor max_pool2d(const Tensor& x, Size2 kernel, Size2 stride = 0, Size2 padding = 0);

}  // namespace mm
