// IMAGE preprocessing: decode (PNG/JPEG/BMP/GIF via stb_image), resize, normalise,
// train-time augmentation, and Gato-style patches.
//
//   Image im = load_image("cat.jpg");                         // H x W x 3, values 0..255
//   Image sq = resize(im, 384, 384, ResizeMode::bicubic);      // OFA: square input
//   std::vector<float> chw = to_chw_normalized(sq);            // [3, 384, 384] in [-1, 1]
//
//   std::mt19937_64 rng(seed);                                 // train-time augmentation
//   Augmented a = random_resized_crop(im, 384, 384, {}, rng);  // a.transform maps boxes
//   Box b2 = a.transform.apply(box_in_original_pixels);
//
// All coordinates are continuous pixel coordinates with the origin at the top-left
// corner of the top-left pixel (pixel (x, y) covers [x, x+1) x [y, y+1)), the convention
// BOX coordinates use, so a box of the whole image is {0, 0, W, H}.
#pragma once
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

// An RGB image, HWC row-major, float values in [0, 255]. Float so that resize, crop
// and flip chain without re-quantising; 3 channels always (grey and RGBA are expanded
// or dropped at decode time, as OFA's PIL convert("RGB") does).
struct Image {
  int H = 0, W = 0, C = 3;
  std::vector<float> data;  // [H, W, C]

  Image() = default;
  Image(int h, int w, int c = 3) : H(h), W(w), C(c), data(size_t(h) * w * c, 0.f) {}
  float& at(int y, int x, int c) { return data[(size_t(y) * W + x) * C + c]; }
  float at(int y, int x, int c) const { return data[(size_t(y) * W + x) * C + c]; }
  bool empty() const { return data.empty(); }
};

// Image from 8-bit interleaved pixels [h, w, channels] (channels 1, 3 or 4) -> [h, w, 3].
// Grey is replicated into R, G, B; alpha is dropped. For Fashion-MNIST style raw data.
Image image_from_u8(const uint8_t* pixels, int h, int w, int channels);

// Decodes PNG/JPEG/BMP/GIF (first frame)/TGA/PSD/PNM bytes -> [H, W, 3].
// `source` names the input in errors ("path/x.png", "field img"); throws mm::Error with
// stb's reason on corrupt or truncated data.
Image decode_image(const uint8_t* bytes, size_t n, const std::string& source);
// Reads and decodes a file -> [H, W, 3]. Errors name the path.
Image load_image(const std::string& path);
// Decodes a base64 image field of a data row (OFA's TSV style) -> [H, W, 3], with
// tasks/base64.h. Errors (bad base64 or bad image) name the source as "field <name>".
Image decode_image_base64(std::string_view b64, const std::string& field_name);

// bicubic: Keys cubic (a = -0.5), widened when shrinking so it also antialiases, as PIL
//          does (what OFA's torchvision/PIL pipeline uses).
// area:    each output pixel is the exact area-weighted mean of the input pixels it
//          covers (OpenCV INTER_AREA when shrinking); the best choice for big shrinks.
//          When enlarging this is close to nearest-neighbour (blocky): use bicubic.
// bilinear: triangle filter, widened when shrinking like bicubic.
enum class ResizeMode { bicubic, area, bilinear };

// [H, W, 3] -> [out_h, out_w, 3]; output clamped to [0, 255].
Image resize(const Image& im, int out_h, int out_w, ResizeMode mode = ResizeMode::bicubic);
// The same into `out`, reusing its memory (data loaders: no allocation per item).
void resize_into(const Image& im, int out_h, int out_w, ResizeMode mode, Image& out);
// [H, W, 3] -> [h, w, 3], the sub-rectangle at (x0, y0) (integer pixels, inside the image).
Image crop(const Image& im, int x0, int y0, int w, int h);
// [H, W, 3] -> [H, W, 3] mirrored left-right.
Image hflip(const Image& im);

// [H, W, 3] in [0,255] -> [3, H, W] in [-1, 1]: v/127.5 - 1, the OFA mean=std=0.5 rule.
std::vector<float> to_chw_normalized(const Image& im);
// The same written to out[0 .. 3*H*W), e.g. straight into a slot of a batch tensor.
void to_chw_normalized(const Image& im, float* out);
// Inverse of to_chw_normalized: [3, H, W] in [-1, 1] -> [H, W, 3] in [0, 255].
Image from_chw_normalized(const std::vector<float>& chw, int h, int w);

// An axis-aligned affine map of pixel coordinates: x' = sx*x + tx, y' = sy*y + ty.
// It is what resize/crop/flip do to geometry, so BOX targets follow the pixels.
struct Affine2D {
  double sx = 1, tx = 0, sy = 1, ty = 0;
  std::array<double, 2> apply(double x, double y) const { return {sx * x + tx, sy * y + ty}; }
  // {x0, y0, x1, y1} -> the transformed box, corners re-ordered so x0 <= x1, y0 <= y1
  // (a flip swaps them).
  std::array<double, 4> apply_box(const std::array<double, 4>& b) const;
  Affine2D inverse() const;
  // (this after first): x -> this(first(x)).
  Affine2D after(const Affine2D& first) const;
};

// The map of a plain resize from in (w, h) to out (w, h).
Affine2D resize_transform(int in_w, int in_h, int out_w, int out_h);

// torchvision RandomResizedCrop + RandomHorizontalFlip. Defaults are torchvision's.
struct AugmentOptions {
  double scale_min = 0.08, scale_max = 1.0;       // crop area / image area
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // crop w / h
  double flip_prob = 0.5;                         // 0 disables the flip
  ResizeMode mode = ResizeMode::bicubic;
};
struct Augmented {
  Image image;         // [out_h, out_w, 3]
  Affine2D transform;  // original pixel coords -> output pixel coords
  bool flipped = false;
};
// [H, W, 3] -> random crop resized to [out_h, out_w, 3], maybe flipped. Deterministic
// for a given rng state (our own uniform draws, not std:: distributions, whose output
// differs between standard libraries).
Augmented random_resized_crop(const Image& im, int out_h, int out_w, const AugmentOptions& opt,
                              std::mt19937_64& rng);

// Gato image tokens: non-overlapping P x P patches in raster order.
struct Patches {
  int rows = 0, cols = 0, P = 16, C = 3;
  std::vector<float> data;     // [rows*cols, C, P, P]: pixels in [-1,1] divided by sqrt(P)
  std::vector<int> row_pos;    // [rows*cols], each in [0, kPatchPosBins)
  std::vector<int> col_pos;    // [rows*cols], each in [0, kPatchPosBins)
  int count() const { return rows * cols; }
};
inline constexpr int kPatchPosBins = 128;

// The quantised interval [lo, hi] (inclusive, in [0, bins)) of patch `i` of `n` along
// an axis: the normalised extent [i/n, (i+1)/n) times `bins`.
std::array<int, 2> patch_interval(int i, int n, int bins = kPatchPosBins);

// [H, W, 3] with H, W multiples of P -> Patches. Position = a uniform random index in
// the patch's quantised interval when rng is given (training), its middle when null (eval).
Patches gato_patches(const Image& im, int P = 16, std::mt19937_64* rng = nullptr);

}  // namespace mm
