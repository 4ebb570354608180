// Fashion-MNIST (Xiao et al. 2017) from the Debian package dataset-fashion-mnist: the
// four gzip'ed IDX files in /usr/share/datasets/fashion-mnist. Decompressed with the
// gzip program (no zlib link needed), parsed and checked here.
//
//   FashionMnist train = load_fashion_mnist(kFashionMnistDir, /*train=*/true);
//   const uint8_t* px = train.image(7);   // [28, 28] grey, 0 = background
//   fashion_mnist_classes()[train.labels[7]] == "sneaker"
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mm {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct FashionMnist {
  int64_t n = 0;
  int rows = 28, cols = 28;
  std::vector<uint8_t> pixels;  // [n, rows, cols]
  std::vector<uint8_t> labels;  // [n], each in [0, 10)
  const uint8_t* image(int64_t i) const { return pixels.data() + i * rows * cols; }
};

// The training (60k) or test (10k) set; max_items > 0 reads only the first max_items.
// Errors name the file (missing, not gzip, bad IDX magic, sizes that disagree).
FashionMnist load_fashion_mnist(const std::string& dir, bool train, int64_t max_items = 0);

// The 10 class names, lower case, in label order: "t-shirt", "trouser", ..., "ankle boot".
const std::vector<std::string>& fashion_mnist_classes();

}  // namespace mm
