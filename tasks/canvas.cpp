#include "tasks/canvas.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"
#include "tasks/image.h"
#include "tasks/rng.h"

namespace mm {

namespace {
constexpr float kVisible = 40.f;  // grey level above which an item pixel counts as visible

// Image `img` of d scaled to size x size, grey levels in [0, 255] ([size, size, 3]).
Image scaled_item(const FashionMnist& d, int64_t img, int size) {
  Image im = image_from_u8(d.image(img), d.rows, d.cols, 1);
  return size == d.rows && size == d.cols ? im : resize(im, size, size, ResizeMode::area);
}
}  // namespace

const std::vector<Tint>& canvas_tints() {
  static const std::vector<Tint> t = {{"white", {255, 255, 255}}, {"red", {255, 48, 48}},
                                      {"green", {48, 255, 48}},   {"blue", {64, 96, 255}},
                                      {"yellow", {255, 255, 48}}, {"cyan", {48, 255, 255}}};
  return t;
}

ItemPool::ItemPool(const FashionMnist& d, int64_t begin, int64_t end) : data(&d), by_class(10) {
  MM_CHECK(begin >= 0 && begin < end && end <= d.n, "item pool: bad range [", begin, ", ", end,
           ") of ", d.n, " images");
  for (int64_t i = begin; i < end; ++i) by_class[d.labels[size_t(i)]].push_back(i);
}

int64_t ItemPool::draw(int cls, std::mt19937_64& rng) const {
  const auto& v = by_class[size_t(cls)];
  MM_CHECK(!v.empty(), "item pool: no image of class ", cls);
  return v[uniform_index(rng, v.size())];
}

std::array<int, 4> item_box(const FashionMnist& d, int64_t img, int x, int y, int size) {
  Image im = scaled_item(d, img, size);
  int x0 = size, y0 = size, x1 = -1, y1 = -1;
  for (int r = 0; r < size; ++r)
    for (int c = 0; c < size; ++c)
      if (im.at(r, c, 0) > kVisible) {
        x0 = std::min(x0, c); x1 = std::max(x1, c);
        y0 = std::min(y0, r); y1 = std::max(y1, r);
      }
  if (x1 < 0) return {x, y, x + size, y + size};  // an all-dark item: its square
  return {x + x0, y + y0, x + x1 + 1, y + y1 + 1};
}

Scene random_scene(int n_items, int canvas, const ItemPool& pool, std::mt19937_64& rng,
                   int min_size, int max_size) {
  MM_CHECK(n_items >= 1 && n_items <= 3, "random_scene: 1..3 items, got ", n_items);
  MM_CHECK(min_size >= 8 && min_size <= max_size && max_size <= canvas, "random_scene: bad sizes");
  // Distinct classes: a partial Fisher-Yates draw.
  std::vector<int> classes(10);
  for (int i = 0; i < 10; ++i) classes[size_t(i)] = i;
  for (int i = 0; i < n_items; ++i) std::swap(classes[size_t(i)], classes[size_t(i) + uniform_index(rng, uint64_t(10 - i))]);
  for (int attempt = 0;; ++attempt) {
    MM_CHECK(attempt < 1000, "random_scene: cannot place ", n_items, " items on a ", canvas,
             "-pixel canvas");
    Scene sc;
    sc.canvas = canvas;
    bool ok = true;
    for (int i = 0; i < n_items && ok; ++i) {
      CanvasItem it;
      it.cls = classes[size_t(i)];
      it.size = min_size + int(uniform_index(rng, uint64_t(max_size - min_size + 1)));
      it.x = int(uniform_index(rng, uint64_t(canvas - it.size + 1)));
      it.y = int(uniform_index(rng, uint64_t(canvas - it.size + 1)));
      for (const CanvasItem& o : sc.items)  // squares apart by at least 2 pixels
        ok &= it.x + it.size + 2 <= o.x || o.x + o.size + 2 <= it.x ||
              it.y + it.size + 2 <= o.y || o.y + o.size + 2 <= it.y;
      it.image = pool.draw(it.cls, rng);
      it.tint = uniform_unit(rng) < 0.5 ? 0 : 1 + int(uniform_index(rng, canvas_tints().size() - 1));
      sc.items.push_back(it);
    }
    if (!ok) continue;
    for (CanvasItem& it : sc.items) it.box = item_box(*pool.data, it.image, it.x, it.y, it.size);
    return sc;
  }
}

void draw_item(std::vector<uint8_t>& rgb, int canvas, const FashionMnist& d, const CanvasItem& it) {
  MM_CHECK(rgb.size() == size_t(canvas) * size_t(canvas) * 3, "draw_item: canvas buffer size");
  Image im = scaled_item(d, it.image, it.size);
  const auto& tint = canvas_tints()[size_t(it.tint)].rgb;
  for (int r = 0; r < it.size; ++r)
    for (int c = 0; c < it.size; ++c) {
      const int y = it.y + r, x = it.x + c;
      if (x < 0 || y < 0 || x >= canvas || y >= canvas) continue;
      const float g = im.at(r, c, 0) / 255.f;
      for (int ch = 0; ch < 3; ++ch) {
        uint8_t& dst = rgb[(size_t(y) * size_t(canvas) + size_t(x)) * 3 + size_t(ch)];
        dst = std::max(dst, uint8_t(std::lround(g * tint[size_t(ch)])));
      }
    }
}

std::vector<uint8_t> render_scene(const Scene& sc, const FashionMnist& d) {
  std::vector<uint8_t> rgb(size_t(sc.canvas) * size_t(sc.canvas) * 3, 0);
  for (const CanvasItem& it : sc.items) draw_item(rgb, sc.canvas, d, it);
  return rgb;
}

std::string with_article(const std::string& noun) {
  const bool vowel = !noun.empty() && std::string("aeiou").find(noun[0]) != std::string::npos;
  return (vowel ? "an " : "a ") + noun;
}

std::string caption_of(const Scene& sc) {
  const auto& names = fashion_mnist_classes();
  std::vector<const CanvasItem*> v;
  for (const CanvasItem& it : sc.items) v.push_back(&it);
  auto name = [&](const CanvasItem* it) { return with_article(names[size_t(it->cls)]); };
  if (v.size() == 1) return name(v[0]);
  if (v.size() == 2) {
    const double dx = v[1]->cx() - v[0]->cx(), dy = v[1]->cy() - v[0]->cy();
    if (std::fabs(dx) >= std::fabs(dy)) {
      if (dx < 0) std::swap(v[0], v[1]);
      return name(v[0]) + " to the left of " + name(v[1]);
    }
    if (dy < 0) std::swap(v[0], v[1]);
    return name(v[0]) + " above " + name(v[1]);
  }
  std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->cx() < b->cx(); });
  return name(v[0]) + ", " + name(v[1]) + " and " + name(v[2]) + " from left to right";
}

}  // namespace mm
