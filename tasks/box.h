// BOX preprocessing: pixel boxes <-> 4 location tokens (OFA).
//
//   BoxFrame f = box_frame_for_resize(640, 480, 512, 512);   // original -> model input
//   auto bins = box_to_bins(parse_box("10 20 300 400"), f);   // 4 bins in [0, 1000)
//   auto ids  = box_to_ids(parse_box("10 20 300 400"), f, vocab);  // <bin_i> ids
//   auto px   = bins_to_box(bins, f);                         // back to original pixels
//
// Forward: box in original pixels -> the image transform (resize/crop/flip) -> divide by
// the model-input size -> clip to [0, 1] -> bin = round(c * (n_bins - 1)). Inverse: bin /
// (n_bins - 1) * size, then the inverse transform. Round trip error <= half a bin
// (0.5 * size / (n_bins - 1) model-input pixels) for boxes inside the image.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

#include "tasks/vocab.h"

namespace mm {

// Where original pixel coordinates land in the model input: x' = sx*x + tx,
// y' = sy*y + ty (same fields as Affine2D in tasks/image.h), and the model-input size
// that normalises them to [0, 1].
struct BoxFrame {
  double sx = 1, tx = 0, sy = 1, ty = 0;
  double width = 1, height = 1;  // model-input (resized) image size in pixels
};

// A plain resize from (in_w, in_h) to (out_w, out_h).
BoxFrame box_frame_for_resize(int in_w, int in_h, int out_w, int out_h);

// "x0 y0 x1 y1" (spaces and/or commas) -> {x0, y0, x1, y1}; throws unless 4 finite
// numbers with x0 <= x1 and y0 <= y1.
std::array<double, 4> parse_box(std::string_view text);

// {x0, y0, x1, y1} original pixels -> 4 bins in [0, n_bins); corners re-ordered after a flip.
std::array<int64_t, 4> box_to_bins(const std::array<double, 4>& box, const BoxFrame& f,
                                   int64_t n_bins = 1000);
// 4 bins -> {x0, y0, x1, y1} in original pixels (exact inverse up to the bin width).
std::array<double, 4> bins_to_box(const std::array<int64_t, 4>& bins, const BoxFrame& f,
                                  int64_t n_bins = 1000);

// The same through the vocabulary's location range: 4 global ids.
std::array<int64_t, 4> box_to_ids(const std::array<double, 4>& box, const BoxFrame& f,
                                  const Vocab& v);
// 4 global ids (must be location tokens) -> original pixels.
std::array<double, 4> ids_to_box(const std::array<int64_t, 4>& ids, const BoxFrame& f,
                                 const Vocab& v);

}  // namespace mm
