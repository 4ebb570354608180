// Memory for tensors. The CPU allocator caches freed blocks by size class so a training
// loop that allocates the same activations every step stops calling malloc (and stops
// paying the page faults of fresh mmap'd memory) after its first step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace mm {

struct AllocatorStats {
  size_t allocated = 0;       // bytes handed out now (rounded to size classes)
  size_t peak_allocated = 0;  // max of `allocated` since the last reset_peak()
  size_t cached = 0;          // bytes held in free lists
  uint64_t n_alloc = 0;       // allocate() calls
  uint64_t n_reused = 0;      // ... served from the cache
};

struct Allocator {
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void empty_cache() = 0;  // return cached blocks to the system
};

// Size classes: 4 per power of two above 256 bytes (at most 25% slack), 64-byte aligned.
class CachingHostAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;
  AllocatorStats stats() const override;
  void reset_peak() override;
  void empty_cache() override;
  ~CachingHostAllocator() override;

  static size_t size_class(size_t nbytes);

 private:
  static int bin_of(size_t cls);
  mutable std::mutex mu_;
  std::vector<std::vector<void*>> bins_ = std::vector<std::vector<void*>>(256);
  AllocatorStats st_;
};

Allocator& cpu_allocator();

}  // namespace mm
