#include "tasks/image.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "runtime/error.h"
#include "tasks/base64.h"
#include "tasks/rng.h"

// The one translation unit that compiles stb_image. stb is third-party C that does not
// build clean under -Wall -Wextra, so its warnings are silenced here only.
#include "tasks/stb_warnings.h"  // pushes the diagnostic state; popped below
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_HDR     // we want 8-bit pixels, never float HDR decoding
#define STBI_NO_LINEAR
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace mm {

// ---------------------------------------------------------------- decoding

Image image_from_u8(const uint8_t* pixels, int h, int w, int channels) {
  MM_CHECK(h > 0 && w > 0, "image_from_u8: bad size ", h, "x", w);
  MM_CHECK(channels == 1 || channels == 3 || channels == 4,
           "image_from_u8: channels must be 1, 3 or 4, got ", channels);
  Image im(h, w, 3);
  const size_t n = size_t(h) * w;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = pixels + i * channels;
    float* q = &im.data[i * 3];
    if (channels == 1) {
      q[0] = q[1] = q[2] = float(p[0]);
    } else {
      q[0] = float(p[0]); q[1] = float(p[1]); q[2] = float(p[2]);
    }
  }
  return im;
}

Image decode_image(const uint8_t* bytes, size_t n, const std::string& source) {
  MM_CHECK(n > 0, "image ", source, ": empty data");
  MM_CHECK(n <= size_t(0x7fffffff), "image ", source, ": data too large (", n, " bytes)");
  int w = 0, h = 0, comp = 0;
  // Ask stb for 3 channels: it converts grey / grey+alpha / RGBA / paletted for us.
  stbi_uc* px = stbi_load_from_memory(bytes, int(n), &w, &h, &comp, 3);
  if (!px) {
    const char* why = stbi_failure_reason();
    throw Error(cat("image ", source, ": cannot decode (", why ? why : "unknown reason", ")"));
  }
  Image im;
  try {
    im = image_from_u8(px, h, w, 3);
  } catch (...) {
    stbi_image_free(px);
    throw;
  }
  stbi_image_free(px);
  return im;
}

Image load_image(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  MM_CHECK(f.good(), "image ", path, ": cannot open file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return decode_image(bytes.data(), bytes.size(), path);
}

Image decode_image_base64(std::string_view b64, const std::string& field_name) {
  const std::string source = "field " + field_name;
  std::vector<uint8_t> bytes;
  try {
    bytes = base64_decode(b64);
  } catch (const Error& e) {
    throw Error(cat("image ", source, ": ", e.what()));
  }
  return decode_image(bytes.data(), bytes.size(), source);
}

// ---------------------------------------------------------------- resampling

namespace {

// Keys' cubic convolution kernel with a = -0.5 (PIL, OpenCV use this a for bicubic).
inline double cubic(double x) {
  const double a = -0.5;
  x = std::fabs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}
inline double triangle(double x) {
  x = std::fabs(x);
  return x < 1 ? 1 - x : 0;
}

// Per-axis filter taps: output index i reads input [start[i], start[i] + taps) with
// weights w[i * taps + k]. Separable resize = one table per axis.
struct Taps {
  int taps = 0;
  std::vector<int> start;
  std::vector<float> w;
};

Taps make_taps(int in_n, int out_n, ResizeMode mode) {
  Taps t;
  const double scale = double(in_n) / out_n;
  t.start.resize(out_n);
  if (mode == ResizeMode::area) {
    // Output i covers input [i*scale, (i+1)*scale); weight = overlap / scale.
    t.taps = int(std::ceil(scale)) + 1;
    t.w.assign(size_t(out_n) * t.taps, 0.f);
    for (int i = 0; i < out_n; ++i) {
      const double a = i * scale, b = (i + 1) * scale;
      int j0 = std::clamp(int(std::floor(a)), 0, in_n - 1);
      t.start[i] = j0;
      double sum = 0;
      for (int k = 0; k < t.taps && j0 + k < in_n; ++k) {
        const int j = j0 + k;
        const double ov = std::min<double>(b, j + 1) - std::max<double>(a, j);
        if (ov > 0) { t.w[size_t(i) * t.taps + k] = float(ov); sum += ov; }
      }
      for (int k = 0; k < t.taps; ++k) t.w[size_t(i) * t.taps + k] = float(t.w[size_t(i) * t.taps + k] / sum);
    }
    // start + taps may run past the end; shift such windows left (weights move with them).
  } else {
    const double support0 = mode == ResizeMode::bicubic ? 2.0 : 1.0;
    const double fs = std::max(scale, 1.0);  // widen the kernel when shrinking: antialias
    const double support = support0 * fs;
    t.taps = int(std::ceil(support)) * 2 + 1;
    t.w.assign(size_t(out_n) * t.taps, 0.f);
    for (int i = 0; i < out_n; ++i) {
      const double c = (i + 0.5) * scale;  // output pixel centre in input coordinates
      int j0 = std::max(0, int(std::floor(c - support + 0.5)));
      int j1 = std::min(in_n, int(std::floor(c + support + 0.5)));
      j1 = std::min(j1, j0 + t.taps);
      t.start[i] = j0;
      double sum = 0;
      std::vector<double> tmp(size_t(std::max(0, j1 - j0)));
      for (int j = j0; j < j1; ++j) {
        const double x = (j + 0.5 - c) / fs;
        const double v = mode == ResizeMode::bicubic ? cubic(x) : triangle(x);
        tmp[j - j0] = v;
        sum += v;
      }
      // Taps that fall outside the image are dropped and the rest renormalised (PIL's
      // edge rule), so a constant image stays exactly constant.
      for (int j = j0; j < j1; ++j) t.w[size_t(i) * t.taps + (j - j0)] = float(tmp[j - j0] / sum);
    }
  }
  // Keep every window inside [0, in_n): shift the window left and its weights right.
  for (int i = 0; i < out_n; ++i) {
    const int over = t.start[i] + t.taps - in_n;
    if (over > 0) {
      float* w = &t.w[size_t(i) * t.taps];
      const int shift = std::min(over, t.start[i]);
      if (shift > 0) {
        for (int k = t.taps - 1; k >= shift; --k) w[k] = w[k - shift];
        for (int k = 0; k < shift; ++k) w[k] = 0.f;
        t.start[i] -= shift;
      }
    }
  }
  return t;
}

}  // namespace

// 8 floats in one AVX register (two SSE ones without AVX). GCC's -O2 vectoriser only
// takes loops it can vectorise without a scalar epilogue, which these are not, so the
// hot loops spell out their vectors.
typedef float f32x8 __attribute__((vector_size(32)));

void resize_into(const Image& im, int out_h, int out_w, ResizeMode mode, Image& out) {
  MM_CHECK(!im.empty() && im.C == 3, "resize: expected a non-empty [H, W, 3] image, got ",
           im.H, "x", im.W, "x", im.C);
  MM_CHECK(out_h > 0 && out_w > 0, "resize: bad output size ", out_h, "x", out_w);
  MM_CHECK(&out != &im, "resize_into: output must not be the input");
  const int C = 3;
  const Taps tx = make_taps(im.W, out_w, mode);
  const Taps ty = make_taps(im.H, out_h, mode);
  // Images narrower than `taps` keep windows starting at 0: read only what exists.
  const int kx = std::min(tx.taps, im.W), ky = std::min(ty.taps, im.H);

  // Pass 1, horizontal: [H, W, C] -> tmp [H, out_w, C]. Scratch reused across calls.
  thread_local std::vector<float> tmp;
  tmp.resize(size_t(im.H) * out_w * C);
  for (int y = 0; y < im.H; ++y) {
    const float* row = &im.data[size_t(y) * im.W * C];
    float* o = &tmp[size_t(y) * out_w * C];
    for (int x = 0; x < out_w; ++x) {
      const float* w = &tx.w[size_t(x) * tx.taps];
      const float* p = row + size_t(tx.start[x]) * C;
      float r = 0, g = 0, b = 0;
      for (int k = 0; k < kx; ++k) {
        r += w[k] * p[3 * k];
        g += w[k] * p[3 * k + 1];
        b += w[k] * p[3 * k + 2];
      }
      o[3 * x] = r; o[3 * x + 1] = g; o[3 * x + 2] = b;
    }
  }
  // Pass 2, vertical: each output row is a weighted sum of whole tmp rows, 8 lanes at a
  // time, clamped to [0, 255] (cubic lobes overshoot at sharp edges, as 8-bit paths clip).
  out.H = out_h;
  out.W = out_w;
  out.C = C;
  out.data.resize(size_t(out_h) * out_w * C);
  const size_t rowlen = size_t(out_w) * C;
  const f32x8 lo = {0, 0, 0, 0, 0, 0, 0, 0};
  const f32x8 hi = lo + 255.f;
  for (int y = 0; y < out_h; ++y) {
    float* o = &out.data[size_t(y) * rowlen];
    const float* w = &ty.w[size_t(y) * ty.taps];
    const float* base = &tmp[size_t(ty.start[y]) * rowlen];
    size_t i = 0;
    for (; i + 8 <= rowlen; i += 8) {
      f32x8 acc = lo;
      for (int k = 0; k < ky; ++k) {
        f32x8 v;
        std::memcpy(&v, base + size_t(k) * rowlen + i, sizeof v);
        acc += w[k] * v;
      }
      acc = acc < lo ? lo : acc;
      acc = acc > hi ? hi : acc;
      std::memcpy(o + i, &acc, sizeof acc);
    }
    for (; i < rowlen; ++i) {
      float acc = 0;
      for (int k = 0; k < ky; ++k) acc += w[k] * base[size_t(k) * rowlen + i];
      o[i] = std::clamp(acc, 0.f, 255.f);
    }
  }
}

Image resize(const Image& im, int out_h, int out_w, ResizeMode mode) {
  Image out;
  resize_into(im, out_h, out_w, mode, out);
  return out;
}

Image crop(const Image& im, int x0, int y0, int w, int h) {
  MM_CHECK(w > 0 && h > 0 && x0 >= 0 && y0 >= 0 && x0 + w <= im.W && y0 + h <= im.H,
           "crop: rectangle (", x0, ", ", y0, ", ", w, "x", h, ") outside image ", im.W, "x", im.H);
  Image out(h, w, im.C);
  for (int y = 0; y < h; ++y) {
    const float* src = &im.data[(size_t(y0 + y) * im.W + x0) * im.C];
    std::copy(src, src + size_t(w) * im.C, &out.data[size_t(y) * w * im.C]);
  }
  return out;
}

Image hflip(const Image& im) {
  Image out(im.H, im.W, im.C);
  for (int y = 0; y < im.H; ++y)
    for (int x = 0; x < im.W; ++x)
      for (int c = 0; c < im.C; ++c) out.at(y, im.W - 1 - x, c) = im.at(y, x, c);
  return out;
}

void to_chw_normalized(const Image& im, float* out) {
  const size_t hw = size_t(im.H) * im.W;
  const float s = 1.f / 127.5f;
  // De-interleave 8 pixels at a time: three contiguous loads hold R, G, B of 8 pixels.
  const float* p = im.data.data();
  float* r = out;
  float* g = out + hw;
  float* b = out + 2 * hw;
  size_t i = 0;
  if (im.C == 3) {
    for (; i + 8 <= hw; i += 8) {
      float buf[24];
      std::memcpy(buf, p + 3 * i, sizeof buf);
      f32x8 vr, vg, vb;
      for (int j = 0; j < 8; ++j) { vr[j] = buf[3 * j]; vg[j] = buf[3 * j + 1]; vb[j] = buf[3 * j + 2]; }
      vr = vr * s - 1.f;
      vg = vg * s - 1.f;
      vb = vb * s - 1.f;
      std::memcpy(r + i, &vr, sizeof vr);
      std::memcpy(g + i, &vg, sizeof vg);
      std::memcpy(b + i, &vb, sizeof vb);
    }
  }
  for (; i < hw; ++i)
    for (int c = 0; c < im.C; ++c) out[c * hw + i] = p[i * im.C + c] * s - 1.f;
}

std::vector<float> to_chw_normalized(const Image& im) {
  std::vector<float> out(size_t(im.H) * im.W * im.C);
  to_chw_normalized(im, out.data());
  return out;
}

Image from_chw_normalized(const std::vector<float>& chw, int h, int w) {
  const size_t hw = size_t(h) * w;
  MM_CHECK(chw.size() == hw * 3, "from_chw_normalized: expected ", hw * 3, " values for [3, ", h,
           ", ", w, "], got ", chw.size());
  Image im(h, w, 3);
  for (int c = 0; c < 3; ++c)
    for (size_t i = 0; i < hw; ++i)
      im.data[i * 3 + c] = std::clamp((chw[c * hw + i] + 1.f) * 127.5f, 0.f, 255.f);
  return im;
}

// ---------------------------------------------------------------- geometry

std::array<double, 4> Affine2D::apply_box(const std::array<double, 4>& b) const {
  auto p = apply(b[0], b[1]);
  auto q = apply(b[2], b[3]);
  return {std::min(p[0], q[0]), std::min(p[1], q[1]), std::max(p[0], q[0]), std::max(p[1], q[1])};
}

Affine2D Affine2D::inverse() const {
  MM_CHECK(sx != 0 && sy != 0, "Affine2D::inverse: singular transform");
  return {1 / sx, -tx / sx, 1 / sy, -ty / sy};
}

Affine2D Affine2D::after(const Affine2D& first) const {
  return {sx * first.sx, sx * first.tx + tx, sy * first.sy, sy * first.ty + ty};
}

Affine2D resize_transform(int in_w, int in_h, int out_w, int out_h) {
  return {double(out_w) / in_w, 0.0, double(out_h) / in_h, 0.0};
}

namespace {
// Draws from tasks/rng.h: identical on every standard library, unlike std:: distributions.
inline double uniform(std::mt19937_64& rng, double a, double b) { return a + (b - a) * uniform_unit(rng); }
// Uniform integer in [lo, hi].
inline int randint(std::mt19937_64& rng, int lo, int hi) {
  return lo + int(uniform_index(rng, uint64_t(hi - lo + 1)));
}
}  // namespace

Augmented random_resized_crop(const Image& im, int out_h, int out_w, const AugmentOptions& opt,
                              std::mt19937_64& rng) {
  MM_CHECK(!im.empty(), "random_resized_crop: empty image");
  MM_CHECK(opt.scale_min > 0 && opt.scale_min <= opt.scale_max && opt.ratio_min > 0 &&
               opt.ratio_min <= opt.ratio_max,
           "random_resized_crop: bad scale/ratio ranges");
  const double area = double(im.H) * im.W;
  int cw = 0, ch = 0, x0 = 0, y0 = 0;
  bool found = false;
  // torchvision's rule: 10 tries at a random area and log-uniform aspect ratio, then a
  // centre crop clamped to the ratio range.
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const double target = area * uniform(rng, opt.scale_min, opt.scale_max);
    const double aspect = std::exp(uniform(rng, std::log(opt.ratio_min), std::log(opt.ratio_max)));
    const int w = int(std::lround(std::sqrt(target * aspect)));
    const int h = int(std::lround(std::sqrt(target / aspect)));
    if (w > 0 && h > 0 && w <= im.W && h <= im.H) {
      cw = w; ch = h;
      y0 = randint(rng, 0, im.H - h);
      x0 = randint(rng, 0, im.W - w);
      found = true;
    }
  }
  if (!found) {
    const double in_ratio = double(im.W) / im.H;
    if (in_ratio < opt.ratio_min) {
      cw = im.W; ch = std::max(1, int(std::lround(cw / opt.ratio_min)));
    } else if (in_ratio > opt.ratio_max) {
      ch = im.H; cw = std::max(1, int(std::lround(ch * opt.ratio_max)));
    } else {
      cw = im.W; ch = im.H;
    }
    ch = std::min(ch, im.H); cw = std::min(cw, im.W);
    y0 = (im.H - ch) / 2;
    x0 = (im.W - cw) / 2;
  }
  Augmented a;
  a.image = resize(crop(im, x0, y0, cw, ch), out_h, out_w, opt.mode);
  // Original -> crop (shift) -> resized crop (scale).
  a.transform = {double(out_w) / cw, -x0 * double(out_w) / cw, double(out_h) / ch, -y0 * double(out_h) / ch};
  if (opt.flip_prob > 0 && uniform_unit(rng) < opt.flip_prob) {
    a.image = hflip(a.image);
    a.transform = Affine2D{-1.0, double(out_w), 1.0, 0.0}.after(a.transform);
    a.flipped = true;
  }
  return a;
}

// ---------------------------------------------------------------- Gato patches

std::array<int, 2> patch_interval(int i, int n, int bins) {
  MM_ASSERT(n > 0 && i >= 0 && i < n && bins > 0);
  // [i/n, (i+1)/n) * bins, in integers: lo = floor(i*bins/n), hi = ceil((i+1)*bins/n) - 1.
  const int lo = int(int64_t(i) * bins / n);
  int hi = int((int64_t(i + 1) * bins + n - 1) / n) - 1;
  hi = std::clamp(hi, lo, bins - 1);
  return {lo, hi};
}

Patches gato_patches(const Image& im, int P, std::mt19937_64* rng) {
  MM_CHECK(P > 0, "gato_patches: bad patch size ", P);
  MM_CHECK(!im.empty() && im.H % P == 0 && im.W % P == 0, "gato_patches: image ", im.H, "x",
           im.W, " is not a multiple of the patch size ", P, " (resize it first)");
  Patches out;
  out.P = P;
  out.C = im.C;
  out.rows = im.H / P;
  out.cols = im.W / P;
  const int N = out.rows * out.cols;
  const size_t per = size_t(im.C) * P * P;
  out.data.resize(size_t(N) * per);
  out.row_pos.resize(N);
  out.col_pos.resize(N);
  // [0,255] -> [-1,1] -> / sqrt(P): Gato's scaling keeps patch embeddings' inputs small.
  const float scale = 1.f / (127.5f * std::sqrt(float(P)));
  const float shift = 1.f / std::sqrt(float(P));
  for (int r = 0; r < out.rows; ++r) {
    const auto ri = patch_interval(r, out.rows);
    for (int c = 0; c < out.cols; ++c) {
      const int n = r * out.cols + c;
      float* o = &out.data[size_t(n) * per];
      for (int ch = 0; ch < im.C; ++ch)
        for (int y = 0; y < P; ++y)
          for (int x = 0; x < P; ++x)
            o[(size_t(ch) * P + y) * P + x] = im.at(r * P + y, c * P + x, ch) * scale - shift;
      const auto ci = patch_interval(c, out.cols);
      if (rng) {
        out.row_pos[n] = randint(*rng, ri[0], ri[1]);
        out.col_pos[n] = randint(*rng, ci[0], ci[1]);
      } else {
        // Middle of the interval, rounding half up.
        out.row_pos[n] = (ri[0] + ri[1] + 1) / 2;
        out.col_pos[n] = (ci[0] + ci[1] + 1) / 2;
      }
    }
  }
  return out;
}

}  // namespace mm
