// IMAGE preprocessing against independent references: stb_image called directly on the
// same bytes, pixel values we chose when making the file, and geometry we can predict.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <stb/stb_image.h>  // declarations only: the implementation is in tasks/image.cpp

#include "runtime/error.h"
#include "tasks/base64.h"
#include "tasks/image.h"
#include "tests/media_fixtures.h"

using namespace mm;

namespace {

// Decodes with stb directly and checks every pixel of our Image against it.
void check_equals_stb(const std::string& path) {
  const std::vector<uint8_t> bytes = read_bytes(path);
  REQUIRE(!bytes.empty());
  int w = 0, h = 0, comp = 0;
  stbi_uc* ref = stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &comp, 3);
  REQUIRE_MESSAGE(ref != nullptr, path);
  const Image im = load_image(path);
  CHECK(im.H == h);
  CHECK(im.W == w);
  CHECK(im.C == 3);
  size_t mismatches = 0;
  for (size_t i = 0; i < size_t(w) * h * 3; ++i) mismatches += im.data[i] != float(ref[i]);
  stbi_image_free(ref);
  CHECK_MESSAGE(mismatches == 0, path);
}

Image ramp_x(int h, int w) {  // value grows with x only: R = G = B = 255 x / (w - 1)
  Image im(h, w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) im.at(y, x, c) = 255.f * x / (w - 1);
  return im;
}

}  // namespace

TEST_SUITE("tasks") {

TEST_CASE("image: PNG, JPEG, BMP, GIF decode equal to stb_image on the same bytes") {
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  for (const char* name : {"testsrc.png", "testsrc.jpg", "grad.png", "grad.bmp", "grad.gif"}) {
    CAPTURE(name);
    check_equals_stb(fx.path(name));
  }
  const Image png = load_image(fx.path("testsrc.png"));
  CHECK(png.H == 48);
  CHECK(png.W == 64);
  // The test pattern is colourful: not a blank decode.
  float lo = 255, hi = 0;
  for (float v : png.data) { lo = std::min(lo, v); hi = std::max(hi, v); }
  CHECK(hi - lo > 200);
}

TEST_CASE("image: known pixel values of a gradient written as PNG and BMP") {
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  for (const char* name : {"grad.png", "grad.bmp"}) {
    CAPTURE(name);
    const Image im = load_image(fx.path(name));
    REQUIRE(im.H == 16);
    REQUIRE(im.W == 32);
    int bad = 0;
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 32; ++x) {
        bad += im.at(y, x, 0) != float(8 * x);
        bad += im.at(y, x, 1) != float(16 * y);
        bad += im.at(y, x, 2) != 128.f;
      }
    CHECK(bad == 0);
  }
}

TEST_CASE("image: grey and RGBA inputs expand to RGB") {
  const uint8_t grey[4] = {0, 50, 100, 255};
  Image g = image_from_u8(grey, 2, 2, 1);
  CHECK(g.at(1, 0, 0) == 100.f);
  CHECK(g.at(1, 0, 2) == 100.f);
  const uint8_t rgba[8] = {1, 2, 3, 9, 4, 5, 6, 9};
  Image a = image_from_u8(rgba, 1, 2, 4);
  CHECK(a.at(0, 1, 0) == 4.f);
  CHECK(a.at(0, 1, 2) == 6.f);
}

TEST_CASE("image: base64 image fields round-trip through tasks/base64.h") {
  std::mt19937 rng(7);
  for (size_t n = 0; n < 40; ++n) {
    std::vector<uint8_t> b(n);
    for (auto& v : b) v = uint8_t(rng());
    CHECK(base64_decode(base64_encode(b.data(), b.size())) == b);
  }
  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  for (const char* name : {"grad.png", "testsrc.jpg"}) {
    CAPTURE(name);
    const std::vector<uint8_t> bytes = read_bytes(fx.path(name));
    const std::string field = base64_encode(bytes.data(), bytes.size());
    CHECK(base64_decode(field) == bytes);
    const Image a = decode_image_base64(field, "img");
    const Image b = load_image(fx.path(name));
    CHECK(a.H == b.H);
    CHECK(a.data == b.data);
  }
  // Bad base64 in an image field names the field.
  CHECK_THROWS_WITH_AS(decode_image_base64("iVBO*w0KGgo", "img"), doctest::Contains("field img"), mm::Error);
}

TEST_CASE("image: corrupt or truncated data is an mm::Error naming the source and reason") {
  std::vector<uint8_t> junk(300);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = uint8_t(i * 37 + 11);
  const std::string b64 = base64_encode(junk.data(), junk.size());
  CHECK_THROWS_WITH_AS(decode_image_base64(b64, "img"), doctest::Contains("field img"), mm::Error);
  try {
    decode_image(junk.data(), junk.size(), "field img");
    FAIL("no error");
  } catch (const mm::Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("field img") != std::string::npos);
    CHECK(msg.find("cannot decode (") != std::string::npos);
    CHECK(msg.find("()") == std::string::npos);  // stb's reason is in the parentheses
  }

  const MediaFixtures& fx = media_fixtures();
  REQUIRE_MESSAGE(fx.ok, fx.log);
  std::vector<uint8_t> png = read_bytes(fx.path("testsrc.png"));
  png.resize(png.size() / 2);
  const std::string cut = fx.path("cut.png");
  {
    std::ofstream f(cut, std::ios::binary);
    f.write(reinterpret_cast<const char*>(png.data()), std::streamsize(png.size()));
  }
  CHECK_THROWS_WITH_AS(load_image(cut), doctest::Contains(cut.c_str()), mm::Error);
  CHECK_THROWS_WITH_AS(load_image(fx.path("missing.png")), doctest::Contains("missing.png"), mm::Error);
}

TEST_CASE("image: resize keeps a constant image constant and a ramp monotone") {
  for (ResizeMode mode : {ResizeMode::bicubic, ResizeMode::area, ResizeMode::bilinear}) {
    CAPTURE(int(mode));
    Image flat(28, 28);
    for (size_t i = 0; i < flat.data.size(); ++i) flat.data[i] = float(37 + 50 * (i % 3));
    for (auto [h, w] : {std::pair{128, 128}, std::pair{7, 11}, std::pair{28, 100}, std::pair{1, 1}}) {
      const Image r = resize(flat, h, w, mode);
      REQUIRE(r.H == h);
      REQUIRE(r.W == w);
      double err = 0;
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          for (int c = 0; c < 3; ++c) err = std::max(err, double(std::fabs(r.at(y, x, c) - float(37 + 50 * c))));
      CHECK(err < 1e-3);
    }
    const Image ramp = ramp_x(9, 37);
    for (int w : {100, 37, 13, 5}) {
      CAPTURE(w);
      const Image r = resize(ramp, 20, w, mode);
      int nonmono = 0;
      for (int y = 0; y < r.H; ++y)
        for (int x = 1; x < r.W; ++x) nonmono += r.at(y, x, 0) < r.at(y, x - 1, 0) - 1e-3f;
      CHECK(nonmono == 0);
      CHECK(r.at(0, 0, 0) < 255.f / w);            // dark on the left
      CHECK(r.at(0, w - 1, 0) > 255.f - 255.f / w);  // bright on the right
      // Rows are identical: the ramp has no vertical structure.
      CHECK(std::fabs(r.at(0, w / 2, 1) - r.at(r.H - 1, w / 2, 1)) < 1e-3f);
    }
  }
  // Bicubic reproduces a linear ramp exactly away from the borders (Keys' a = -0.5 is
  // exact on quadratics): upsampling 2x maps x_out centre to x_in = (x + 0.5) / 2 - 0.5.
  const Image ramp = ramp_x(4, 40);
  const Image up = resize(ramp, 8, 80, ResizeMode::bicubic);
  for (int x = 8; x < 72; ++x) {
    const double xin = (x + 0.5) / 2 - 0.5;
    CHECK(up.at(3, x, 0) == doctest::Approx(255.0 * xin / 39).epsilon(1e-4));
  }
  // Area mode halving averages 2x2 blocks exactly.
  Image blocks(2, 4);
  for (int x = 0; x < 4; ++x) for (int y = 0; y < 2; ++y) for (int c = 0; c < 3; ++c) blocks.at(y, x, c) = float(10 * x + 100 * y);
  const Image half = resize(blocks, 1, 2, ResizeMode::area);
  CHECK(half.at(0, 0, 0) == doctest::Approx((0 + 10 + 100 + 110) / 4.0));
  CHECK(half.at(0, 1, 0) == doctest::Approx((20 + 30 + 120 + 130) / 4.0));
}

TEST_CASE("image: CHW normalisation to [-1, 1] and back") {
  const uint8_t px[6] = {0, 255, 51, 102, 153, 204};  // 1 x 2 RGB
  const Image im = image_from_u8(px, 1, 2, 3);
  const std::vector<float> chw = to_chw_normalized(im);
  REQUIRE(chw.size() == 6);
  // Layout [C, H, W]: channel 0 holds R of pixel 0 then R of pixel 1.
  CHECK(chw[0] == doctest::Approx(-1.0));
  CHECK(chw[1] == doctest::Approx(102 / 127.5 - 1));
  CHECK(chw[2] == doctest::Approx(1.0));
  CHECK(chw[5] == doctest::Approx(204 / 127.5 - 1));
  const Image back = from_chw_normalized(chw, 1, 2);
  for (size_t i = 0; i < 6; ++i) CHECK(back.data[i] == doctest::Approx(im.data[i]).epsilon(1e-5));
}

TEST_CASE("image: random resized crop + flip moves boxes with the pixels, deterministically") {
  // A dark 80x60 image with a bright 20x16 rectangle at x in [30, 50), y in [20, 36).
  Image im(60, 80);
  for (int y = 20; y < 36; ++y)
    for (int x = 30; x < 50; ++x)
      for (int c = 0; c < 3; ++c) im.at(y, x, c) = 250.f;
  const std::array<double, 4> box = {30, 20, 50, 36};
  AugmentOptions opt;
  opt.scale_min = 0.4;
  int checked = 0, flips = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    std::mt19937_64 rng(seed), rng2(seed);
    const Augmented a = random_resized_crop(im, 64, 64, opt, rng);
    const Augmented b = random_resized_crop(im, 64, 64, opt, rng2);
    CHECK(a.image.data == b.image.data);  // same seed, same result
    REQUIRE(a.image.H == 64);
    REQUIRE(a.image.W == 64);
    flips += a.flipped;
    const auto t = a.transform.apply_box(box);
    CHECK(t[0] <= t[2]);
    // The box's centre, where it is inside the output, is bright; a point well outside
    // the box is dark.
    const double cx = (t[0] + t[2]) / 2, cy = (t[1] + t[3]) / 2;
    if (cx >= 1 && cx < 63 && cy >= 1 && cy < 63 && t[2] - t[0] > 8 && t[3] - t[1] > 8) {
      CHECK(a.image.at(int(cy), int(cx), 0) > 200.f);
      ++checked;
    }
    const double ox = t[2] + 10, oy = t[3] + 10;
    if (ox < 63 && oy < 63) CHECK(a.image.at(int(oy), int(ox), 0) < 30.f);
    // inverse() takes output pixels back to the original image.
    const auto inv = a.transform.inverse().apply_box(t);
    for (int k = 0; k < 4; ++k) CHECK(inv[k] == doctest::Approx(box[k]).epsilon(1e-9));
  }
  CHECK(checked > 5);
  CHECK(flips > 5);
  CHECK(flips < 35);
}

TEST_CASE("image: Gato patches, values and positions (eval = interval middles)") {
  Image im(48, 64);  // 3 x 4 patches of 16 x 16
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) im.at(y, x, c) = float((x + 2 * y + 50 * c) % 256);
  const Patches p = gato_patches(im);
  REQUIRE(p.rows == 3);
  REQUIRE(p.cols == 4);
  REQUIRE(p.data.size() == size_t(12 * 3 * 16 * 16));
  // Patch 6 = row 1, col 2; element [c=1, y=5, x=7] is pixel (21, 39) channel 1.
  const float v = p.data[size_t(6) * 768 + (1 * 16 + 5) * 16 + 7];
  CHECK(v == doctest::Approx((im.at(21, 39, 1) / 127.5 - 1) / 4.0));
  // Independent interval rule: patch i of n spans [i/n, (i+1)/n) of the axis; times 128
  // bins that is bins floor(128 i/n) .. ceil(128 (i+1)/n) - 1; its middle rounded up.
  auto middle = [](int i, int n) {
    const int lo = int(std::floor(128.0 * i / n));
    const int hi = int(std::ceil(128.0 * (i + 1) / n)) - 1;
    return int(std::floor((lo + hi) / 2.0 + 0.5));
  };
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) {
      CHECK(p.row_pos[r * 4 + c] == middle(r, 3));
      CHECK(p.col_pos[r * 4 + c] == middle(c, 4));
    }
  CHECK(p.row_pos[0] == 21);   // [0, 42]
  CHECK(p.row_pos[4] == 64);   // [42, 85]
  CHECK(p.col_pos[1] == 48);   // [32, 63] -> 47.5 rounds up
  // Training draws fall inside the interval and reach both of its ends.
  std::mt19937_64 rng(3);
  int lo_seen = 128, hi_seen = -1;
  for (int it = 0; it < 200; ++it) {
    const Patches q = gato_patches(im, 16, &rng);
    for (int n = 0; n < q.count(); ++n) {
      const auto ri = patch_interval(n / 4, 3), ci = patch_interval(n % 4, 4);
      CHECK(q.row_pos[n] >= ri[0]);
      CHECK(q.row_pos[n] <= ri[1]);
      CHECK(q.col_pos[n] >= ci[0]);
      CHECK(q.col_pos[n] <= ci[1]);
    }
    lo_seen = std::min(lo_seen, q.col_pos[1]);
    hi_seen = std::max(hi_seen, q.col_pos[1]);
  }
  CHECK(lo_seen == 32);
  CHECK(hi_seen == 63);
  CHECK_THROWS_AS(gato_patches(Image(20, 32)), mm::Error);  // 20 is not a multiple of 16
}

}  // TEST_SUITE
