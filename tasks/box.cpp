#include "tasks/box.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "runtime/error.h"

namespace mm {

BoxFrame box_frame_for_resize(int in_w, int in_h, int out_w, int out_h) {
  MM_CHECK(in_w > 0 && in_h > 0 && out_w > 0 && out_h > 0, "box: image sizes must be positive, "
           "got ", in_w, "x", in_h, " -> ", out_w, "x", out_h);
  BoxFrame f;
  f.sx = double(out_w) / in_w;
  f.sy = double(out_h) / in_h;
  f.width = out_w;
  f.height = out_h;
  return f;
}

std::array<double, 4> parse_box(std::string_view text) {
  std::array<double, 4> b{};
  std::string s(text);
  for (char& c : s)
    if (c == ',') c = ' ';
  const char* p = s.c_str();
  int n = 0;
  while (true) {
    while (*p == ' ' || *p == '\t') ++p;
    if (!*p) break;
    MM_CHECK(n < 4, "box: expected 4 numbers 'x0 y0 x1 y1', got more in '", text, "'");
    char* end = nullptr;
    errno = 0;
    double v = std::strtod(p, &end);
    MM_CHECK(end != p && errno == 0 && std::isfinite(v) && (*end == 0 || *end == ' ' ||
             *end == '\t'), "box: '", text, "' is not 4 numbers 'x0 y0 x1 y1'");
    b[n++] = v;
    p = end;
  }
  MM_CHECK(n == 4, "box: expected 4 numbers 'x0 y0 x1 y1', got ", n, " in '", text, "'");
  MM_CHECK(b[0] <= b[2] && b[1] <= b[3], "box: expected x0 <= x1 and y0 <= y1 in '", text, "'");
  return b;
}

namespace {
int64_t to_bin(double c, int64_t n_bins) {
  c = std::clamp(c, 0.0, 1.0);  // OFA clips boxes that leave the (cropped) image
  return int64_t(std::llround(c * double(n_bins - 1)));
}
}  // namespace

std::array<int64_t, 4> box_to_bins(const std::array<double, 4>& b, const BoxFrame& f,
                                   int64_t n_bins) {
  MM_CHECK(n_bins >= 2, "box: need at least 2 bins, got ", n_bins);
  MM_CHECK(f.sx != 0 && f.sy != 0 && f.width > 0 && f.height > 0, "box: degenerate frame");
  for (double v : b) MM_CHECK(std::isfinite(v), "box: coordinates must be finite");
  double x0 = f.sx * b[0] + f.tx, x1 = f.sx * b[2] + f.tx;
  double y0 = f.sy * b[1] + f.ty, y1 = f.sy * b[3] + f.ty;
  if (x0 > x1) std::swap(x0, x1);  // a horizontal flip swaps the corners
  if (y0 > y1) std::swap(y0, y1);
  return {to_bin(x0 / f.width, n_bins), to_bin(y0 / f.height, n_bins),
          to_bin(x1 / f.width, n_bins), to_bin(y1 / f.height, n_bins)};
}

std::array<double, 4> bins_to_box(const std::array<int64_t, 4>& bins, const BoxFrame& f,
                                  int64_t n_bins) {
  MM_CHECK(n_bins >= 2, "box: need at least 2 bins, got ", n_bins);
  MM_CHECK(f.sx != 0 && f.sy != 0, "box: degenerate frame");
  for (int64_t v : bins)
    MM_CHECK(v >= 0 && v < n_bins, "box: bin ", v, " out of range [0, ", n_bins, ")");
  auto c = [&](int i) { return double(bins[i]) / double(n_bins - 1); };
  double x0 = (c(0) * f.width - f.tx) / f.sx, x1 = (c(2) * f.width - f.tx) / f.sx;
  double y0 = (c(1) * f.height - f.ty) / f.sy, y1 = (c(3) * f.height - f.ty) / f.sy;
  if (x0 > x1) std::swap(x0, x1);
  if (y0 > y1) std::swap(y0, y1);
  return {x0, y0, x1, y1};
}

std::array<int64_t, 4> box_to_ids(const std::array<double, 4>& box, const BoxFrame& f,
                                  const Vocab& v) {
  auto bins = box_to_bins(box, f, v.range(TokenKind::location).size());
  for (auto& b : bins) b = v.to_id(TokenKind::location, b);
  return bins;
}

std::array<double, 4> ids_to_box(const std::array<int64_t, 4>& ids, const BoxFrame& f,
                                 const Vocab& v) {
  std::array<int64_t, 4> bins;
  for (int i = 0; i < 4; ++i) bins[i] = v.to_local(TokenKind::location, ids[i]);
  return bins_to_box(bins, f, v.range(TokenKind::location).size());
}

}  // namespace mm
