// The caching device allocator of the CUDA backend.
//
// cudaMalloc and cudaFree are slow (and cudaFree synchronises the device), while a training
// step frees and re-allocates the same activation sizes every iteration. So freed blocks
// are kept in bins by size class and handed out again:
//
//  - Size classes: 512-byte granules up to 4 KiB, then 4 classes per power of two (at most
//    25% slack), so a request of 1000 bytes and one of 1020 share a bin.
//  - Stream-aware reuse: a block belongs to the stream it was allocated on. Freed, it may
//    be reused at once by that stream (work on one stream runs in order), never by another.
//    If the block was also used on other streams (record_stream), it returns to its bin
//    only after events recorded on those streams at free time have completed.
//  - A configurable capacity (set_limit, or MM_CUDA_MEMORY_LIMIT=bytes with an optional
//    K/M/G suffix): with it the emulated device can run out of memory like a GPU does.
//  - Out of memory (the limit or cudaMalloc failing): the cache is released and the
//    allocation retried once; then an mm::Error names the request and what is held.
//  - Statistics: in use, peak, cached, reserved from the device (and its peak), the
//    requested bytes (against the rounded ones: internal fragmentation), and cached bytes
//    over reserved bytes (external fragmentation).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cuda/kernel_api.h"
#include "runtime/allocator.h"

namespace mm::cuda {

struct CudaAllocatorStats {
  size_t allocated = 0;       // bytes in blocks handed out (size classes)
  size_t peak_allocated = 0;  // since reset_peak()
  size_t requested = 0;       // bytes asked for by the blocks handed out
  size_t cached = 0;          // bytes in free blocks kept for reuse (including those waiting on events)
  size_t reserved = 0;        // bytes obtained from cudaMalloc and not yet returned
  size_t peak_reserved = 0;
  size_t largest_free = 0;    // the largest cached block
  uint64_t n_alloc = 0, n_reused = 0, n_device_malloc = 0, n_device_free = 0, n_oom = 0;
  // Share of reserved memory sitting unused in the cache.
  double fragmentation() const { return reserved ? double(cached) / double(reserved) : 0.0; }
};

class CudaCachingAllocator final : public Allocator {
 public:
  explicit CudaCachingAllocator(int device = 0);
  ~CudaCachingAllocator() override;

  // On the current stream (cuda/stream.h).
  void* allocate(size_t nbytes) override;
  void* allocate(size_t nbytes, cudaStream_t stream);
  void deallocate(void* p, size_t nbytes) override;
  // `p` (a live block) is also used by work on `stream`: its reuse waits for that work.
  void record_stream(void* p, cudaStream_t stream);

  AllocatorStats stats() const override;
  CudaAllocatorStats detailed_stats() const;
  void reset_peak() override;
  // Returns every cached block that is not waiting on an event to the device.
  void empty_cache() override;

  // Most bytes this allocator may reserve from the device (0: no limit but the device's).
  void set_limit(size_t bytes);
  size_t limit() const;

  static size_t size_class(size_t nbytes);

 private:
  struct Block {
    size_t cls = 0, requested = 0;
    cudaStream_t stream = nullptr;
    std::vector<cudaStream_t> other_streams;
  };
  struct Pending {  // freed, waiting for work on other streams
    void* p;
    Block b;
    std::vector<cudaEvent_t> events;
  };
  using BinKey = std::pair<uintptr_t, size_t>;  // (stream, size class)

  void* allocate_locked(size_t nbytes, cudaStream_t stream);
  void collect_pending_locked();
  void release_cache_locked();
  [[noreturn]] void out_of_memory_locked(size_t nbytes, size_t cls, const char* why);

  int device_;
  size_t limit_ = 0;
  mutable std::mutex mu_;
  std::unordered_map<void*, Block> live_;
  std::map<BinKey, std::vector<void*>> free_;
  std::vector<Pending> pending_;
  CudaAllocatorStats st_;
};

// "1.50 MiB (1572864 bytes)": sizes in messages.
std::string format_bytes(size_t n);

}  // namespace mm::cuda
