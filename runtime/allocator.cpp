#include "runtime/allocator.h"

#include <bit>
#include <cstdlib>
#include <new>

#include "runtime/error.h"

namespace mm {

size_t CachingHostAllocator::size_class(size_t n) {
  if (n <= 256) return (n + 63) & ~size_t(63);
  // 4 classes between 2^k and 2^(k+1): step 2^(k-2).
  int k = std::bit_width(n - 1) - 1;  // 2^k < n <= 2^(k+1)
  size_t step = size_t(1) << (k - 2 > 6 ? k - 2 : 6);
  return (n + step - 1) / step * step;
}

int CachingHostAllocator::bin_of(size_t cls) {
  if (cls <= 256) return int(cls / 64);  // 1..4
  int k = std::bit_width(cls - 1) - 1;
  size_t step = size_t(1) << (k - 2 > 6 ? k - 2 : 6);
  int sub = int((cls - (size_t(1) << k)) / step);  // 1..4
  return 4 + 4 * (k - 8) + sub;
}

void* CachingHostAllocator::allocate(size_t nbytes) {
  size_t cls = size_class(nbytes ? nbytes : 1);
  int b = bin_of(cls);
  std::lock_guard<std::mutex> lk(mu_);
  ++st_.n_alloc;
  void* p = nullptr;
  if (b < int(bins_.size()) && !bins_[b].empty()) {
    p = bins_[b].back();
    bins_[b].pop_back();
    st_.cached -= cls;
    ++st_.n_reused;
  } else {
    p = std::aligned_alloc(64, cls);
    if (!p) {
      // Give the cache back and try once more before failing.
      for (auto& bin : bins_) { for (void* q : bin) std::free(q); bin.clear(); }
      st_.cached = 0;
      p = std::aligned_alloc(64, cls);
      MM_CHECK(p, "out of host memory: asked for ", nbytes, " bytes with ", st_.allocated,
               " bytes in use");
    }
  }
  st_.allocated += cls;
  if (st_.allocated > st_.peak_allocated) st_.peak_allocated = st_.allocated;
  return p;
}

void CachingHostAllocator::deallocate(void* p, size_t nbytes) {
  if (!p) return;
  size_t cls = size_class(nbytes ? nbytes : 1);
  int b = bin_of(cls);
  std::lock_guard<std::mutex> lk(mu_);
  st_.allocated -= cls;
  if (b >= int(bins_.size())) { std::free(p); return; }
  bins_[b].push_back(p);
  st_.cached += cls;
}

AllocatorStats CachingHostAllocator::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return st_;
}
void CachingHostAllocator::reset_peak() {
  std::lock_guard<std::mutex> lk(mu_);
  st_.peak_allocated = st_.allocated;
}
void CachingHostAllocator::empty_cache() {
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& bin : bins_) { for (void* q : bin) std::free(q); bin.clear(); }
  st_.cached = 0;
}
CachingHostAllocator::~CachingHostAllocator() { empty_cache(); }

Allocator& cpu_allocator() {
  // Leaked on purpose: tensors in static storage may be freed after main returns.
  static auto* a = new CachingHostAllocator();
  return *a;
}

}  // namespace mm
