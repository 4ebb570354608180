// Canvas scenes for the real-data task suite: Fashion-MNIST items, each scaled, tinted
// and placed on a black square canvas, with the geometry the captioning, grounding, VQA
// and video tasks talk about (tight boxes, left/right/above relations).
//
//   std::mt19937_64 rng(seed);
//   Scene sc = random_scene(/*n_items=*/2, /*canvas=*/64, pool, rng);
//   std::vector<uint8_t> rgb = render_scene(sc, pool.data);     // [64, 64, 3]
//   caption_of(sc) == "a sandal to the left of a pullover"
#pragma once
#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tasks/fashion_mnist.h"

namespace mm {

// Named tints an item's grey levels are multiplied by (VQA asks for them).
struct Tint {
  const char* name;
  std::array<uint8_t, 3> rgb;
};
const std::vector<Tint>& canvas_tints();  // white red green blue yellow cyan

// Fashion-MNIST images available to a split, indexed by class.
struct ItemPool {
  const FashionMnist* data = nullptr;
  std::vector<std::vector<int64_t>> by_class;  // [10] image indices
  // Items [begin, end) of `d` (e.g. the training images kept apart for validation).
  ItemPool(const FashionMnist& d, int64_t begin, int64_t end);
  int64_t draw(int cls, std::mt19937_64& rng) const;  // a random image of class cls
};

struct CanvasItem {
  int cls = 0;            // Fashion-MNIST class
  int64_t image = 0;      // index into the pool's FashionMnist
  int tint = 0;           // index into canvas_tints()
  int x = 0, y = 0;       // top-left corner of the scaled item, canvas pixels
  int size = 28;          // scaled side
  std::array<int, 4> box{};  // tight box of the item's visible pixels: x0 y0 x1 y1
                             // (continuous pixel coordinates, x1/y1 exclusive)
  double cx() const { return 0.5 * (box[0] + box[2]); }
  double cy() const { return 0.5 * (box[1] + box[3]); }
};

struct Scene {
  int canvas = 64;
  std::vector<CanvasItem> items;
};

// The tight box of the visible pixels (grey > threshold) of image `img` scaled to `size`
// and placed at (x, y).
std::array<int, 4> item_box(const FashionMnist& d, int64_t img, int x, int y, int size);

// n_items (1..3) items of distinct classes, sizes in [min_size, max_size], placed without
// overlapping squares (a 2-pixel gap), random tints (white half the time).
Scene random_scene(int n_items, int canvas, const ItemPool& pool, std::mt19937_64& rng,
                   int min_size = 20, int max_size = 28);

// Draws one item onto rgb [canvas, canvas, 3] (brightest wins where items touch).
void draw_item(std::vector<uint8_t>& rgb, int canvas, const FashionMnist& d, const CanvasItem& it);
// The whole scene -> rgb [canvas, canvas, 3] u8.
std::vector<uint8_t> render_scene(const Scene& sc, const FashionMnist& d);

// "a sandal", "a sandal to the left of a pullover", "a bag above an ankle boot",
// "a bag, a coat and a dress from left to right".
std::string caption_of(const Scene& sc);
// "a sandal" / "an ankle boot".
std::string with_article(const std::string& noun);

}  // namespace mm
