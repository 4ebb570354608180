#include "tasks/fashion_mnist.h"

#include <cstdio>
#include <filesystem>

#include "runtime/error.h"

namespace mm {

namespace {

// Reads the first `max_bytes` (0 = all) decompressed bytes of a .gz file through gzip.
std::vector<uint8_t> gunzip(const std::string& path, size_t max_bytes) {
  MM_CHECK(std::filesystem::exists(path), path, ": not found (Debian: apt-get install "
           "dataset-fashion-mnist)");
  for (char c : path)
    MM_CHECK(c != '\'', path, ": a quote in the path is not supported");
  const std::string cmd = "gzip -dc '" + path + "' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  MM_CHECK(p != nullptr, path, ": cannot run gzip");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  while (max_bytes == 0 || out.size() < max_bytes) {
    size_t want = sizeof buf;
    if (max_bytes) want = std::min(want, max_bytes - out.size());
    const size_t got = std::fread(buf, 1, want, p);
    if (got == 0) break;
    out.insert(out.end(), buf, buf + got);
  }
  const bool stopped_early = max_bytes != 0 && out.size() >= max_bytes;
  const int rc = pclose(p);
  // Closing the pipe early makes gzip exit on SIGPIPE: only a full read must succeed.
  MM_CHECK(stopped_early || rc == 0, path, ": gzip failed (not a gzip file?)");
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t o) {
  return uint32_t(b[o]) << 24 | uint32_t(b[o + 1]) << 16 | uint32_t(b[o + 2]) << 8 | b[o + 3];
}

}  // namespace

FashionMnist load_fashion_mnist(const std::string& dir, bool train, int64_t max_items) {
  const std::string prefix = dir + (train ? "/train" : "/t10k");
  const std::string img_path = prefix + "-images-idx3-ubyte.gz";
  const std::string lbl_path = prefix + "-labels-idx1-ubyte.gz";
  FashionMnist d;
  const size_t want = max_items > 0 ? size_t(max_items) : 0;

  std::vector<uint8_t> lb = gunzip(lbl_path, want ? 8 + want : 0);
  MM_CHECK(lb.size() >= 8 && be32(lb, 0) == 0x00000801, lbl_path,
           ": not an IDX label file (magic 0x00000801)");
  const int64_t n_labels = be32(lb, 4);
  d.n = want ? std::min<int64_t>(int64_t(want), n_labels) : n_labels;
  MM_CHECK(int64_t(lb.size()) >= 8 + d.n, lbl_path, ": truncated (", lb.size() - 8, " labels, header says ",
           n_labels, ")");
  d.labels.assign(lb.begin() + 8, lb.begin() + 8 + d.n);
  for (int64_t i = 0; i < d.n; ++i)
    MM_CHECK(d.labels[size_t(i)] < 10, lbl_path, ": label ", int(d.labels[size_t(i)]), " at item ", i,
             " is not in [0, 10)");

  std::vector<uint8_t> ib = gunzip(img_path, want ? 16 + want * 784 : 0);
  MM_CHECK(ib.size() >= 16 && be32(ib, 0) == 0x00000803, img_path,
           ": not an IDX image file (magic 0x00000803)");
  MM_CHECK(int64_t(be32(ib, 4)) == n_labels, img_path, ": ", be32(ib, 4), " images but ",
           n_labels, " labels in ", lbl_path);
  d.rows = int(be32(ib, 8));
  d.cols = int(be32(ib, 12));
  MM_CHECK(d.rows == 28 && d.cols == 28, img_path, ": images are ", d.rows, "x", d.cols,
           ", expected 28x28");
  const size_t bytes = size_t(d.n) * 784;
  MM_CHECK(ib.size() >= 16 + bytes, img_path, ": truncated");
  d.pixels.assign(ib.begin() + 16, ib.begin() + 16 + std::ptrdiff_t(bytes));
  return d;
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"t-shirt", "trouser", "pullover", "dress",
                                                 "coat",    "sandal",  "shirt",    "sneaker",
                                                 "bag",     "ankle boot"};
  return names;
}

}  // namespace mm
