#include "cuda/allocator.h"

#include <bit>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cuda/cuda_error.h"
#include "cuda/stream.h"

namespace mm::cuda {

std::string format_bytes(size_t n) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double v = double(n);
  int u = 0;
  while (v >= 1024.0 && u < 4) { v /= 1024.0; ++u; }
  if (u == 0) return cat(n, " bytes");
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return cat(buf, " ", units[u], " (", n, " bytes)");
}

namespace {

// MM_CUDA_MEMORY_LIMIT=123, 64K, 512M, 2G.
size_t limit_from_env() {
  const char* s = std::getenv("MM_CUDA_MEMORY_LIMIT");
  if (!s || !*s) return 0;
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  double mul = 1;
  if (end && *end) {
    switch (*end) {
      case 'k': case 'K': mul = 1024.0; break;
      case 'm': case 'M': mul = 1024.0 * 1024; break;
      case 'g': case 'G': mul = 1024.0 * 1024 * 1024; break;
      default: throw Error(cat("MM_CUDA_MEMORY_LIMIT='", s, "': expected bytes with an optional K, M or G suffix"));
    }
  }
  MM_CHECK(v >= 0, "MM_CUDA_MEMORY_LIMIT='", s, "' must not be negative");
  return size_t(v * mul);
}

}  // namespace

size_t CudaCachingAllocator::size_class(size_t n) {
  if (n == 0) n = 1;
  if (n <= 4096) return (n + 511) & ~size_t(511);
  const int k = std::bit_width(n - 1) - 1;  // 2^k < n <= 2^(k+1), k >= 12
  const size_t step = size_t(1) << (k - 2);  // 4 classes per power of two
  return (n + step - 1) / step * step;
}

CudaCachingAllocator::CudaCachingAllocator(int device) : device_(device), limit_(limit_from_env()) {}

CudaCachingAllocator::~CudaCachingAllocator() {
  // At exit the driver may already be gone: errors are ignored here.
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& pd : pending_) {
    for (cudaEvent_t e : pd.events) (void)cudaEventDestroy(e);
    (void)cudaFree(pd.p);
  }
  for (auto& [key, ptrs] : free_)
    for (void* p : ptrs) (void)cudaFree(p);
}

void* CudaCachingAllocator::allocate(size_t nbytes) { return allocate(nbytes, current_stream()); }

void* CudaCachingAllocator::allocate(size_t nbytes, cudaStream_t stream) {
  std::lock_guard<std::mutex> lk(mu_);
  return allocate_locked(nbytes, stream);
}

void* CudaCachingAllocator::allocate_locked(size_t nbytes, cudaStream_t stream) {
  const size_t cls = size_class(nbytes);
  ++st_.n_alloc;
  if (!pending_.empty()) collect_pending_locked();
  void* p = nullptr;
  auto it = free_.find({reinterpret_cast<uintptr_t>(stream), cls});
  if (it != free_.end() && !it->second.empty()) {
    p = it->second.back();
    it->second.pop_back();
    st_.cached -= cls;
    ++st_.n_reused;
  } else {
    if (limit_ && st_.reserved + cls > limit_) {
      release_cache_locked();
      if (st_.reserved + cls > limit_) out_of_memory_locked(nbytes, cls, "the allocator's limit");
    }
    cudaError_t e = cudaMalloc(&p, cls);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      release_cache_locked();
      e = cudaMalloc(&p, cls);
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        out_of_memory_locked(nbytes, cls, cudaGetErrorName(e));
      }
    }
    ++st_.n_device_malloc;
    st_.reserved += cls;
    if (st_.reserved > st_.peak_reserved) st_.peak_reserved = st_.reserved;
  }
  live_[p] = Block{cls, nbytes, stream, {}};
  st_.allocated += cls;
  st_.requested += nbytes;
  if (st_.allocated > st_.peak_allocated) st_.peak_allocated = st_.allocated;
  return p;
}

void CudaCachingAllocator::deallocate(void* p, size_t /*nbytes*/) {
  if (!p) return;
  std::lock_guard<std::mutex> lk(mu_);
  auto it = live_.find(p);
  MM_ASSERT(it != live_.end());
  Block b = std::move(it->second);
  live_.erase(it);
  st_.allocated -= b.cls;
  st_.requested -= b.requested;
  st_.cached += b.cls;
  if (b.other_streams.empty()) {
    free_[{reinterpret_cast<uintptr_t>(b.stream), b.cls}].push_back(p);
    return;
  }
  // Work queued on the other streams may still read the block: reuse waits for it.
  Pending pd{p, std::move(b), {}};
  for (cudaStream_t s : pd.b.other_streams) {
    cudaEvent_t e = nullptr;
    MM_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cuda allocator: freeing a block");
    MM_CUDA_CHECK(cudaEventRecord(e, s), "cuda allocator: freeing a block used on another stream");
    pd.events.push_back(e);
  }
  pending_.push_back(std::move(pd));
}

void CudaCachingAllocator::record_stream(void* p, cudaStream_t stream) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = live_.find(p);
  MM_CHECK(it != live_.end(), "record_stream: ", p, " is not a live block of the cuda allocator");
  Block& b = it->second;
  if (stream == b.stream) return;
  for (cudaStream_t s : b.other_streams)
    if (s == stream) return;
  b.other_streams.push_back(stream);
}

void CudaCachingAllocator::collect_pending_locked() {
  size_t keep = 0;
  for (size_t i = 0; i < pending_.size(); ++i) {
    Pending& pd = pending_[i];
    bool done = true;
    for (cudaEvent_t e : pd.events) {
      const cudaError_t r = cudaEventQuery(e);
      if (r == cudaErrorNotReady) { (void)cudaGetLastError(); done = false; break; }
      MM_CUDA_CHECK(r, "cuda allocator: querying the event of a freed block");
    }
    if (done) {
      for (cudaEvent_t e : pd.events) (void)cudaEventDestroy(e);
      free_[{reinterpret_cast<uintptr_t>(pd.b.stream), pd.b.cls}].push_back(pd.p);
    } else {
      if (keep != i) pending_[keep] = std::move(pd);
      ++keep;
    }
  }
  pending_.resize(keep);
}

void CudaCachingAllocator::release_cache_locked() {
  if (!pending_.empty()) collect_pending_locked();
  for (auto& [key, ptrs] : free_) {
    for (void* p : ptrs) {
      MM_CUDA_CHECK(cudaFree(p), "cuda allocator: returning cached memory to the device");
      ++st_.n_device_free;
      st_.reserved -= key.second;
      st_.cached -= key.second;
    }
    ptrs.clear();
  }
  free_.clear();
}

void CudaCachingAllocator::out_of_memory_locked(size_t nbytes, size_t cls, const char* why) {
  ++st_.n_oom;
  size_t dev_free = 0, dev_total = 0;
  std::string dev;
  if (cudaMemGetInfo(&dev_free, &dev_total) == cudaSuccess)
    dev = cat("; the device has ", format_bytes(dev_free), " free of ", format_bytes(dev_total));
  else
    (void)cudaGetLastError();
  throw Error(cat("CUDA out of memory on cuda:", device_, ": tried to allocate ", format_bytes(nbytes),
                  " (size class ", cls, " bytes), refused by ", why, "; tensors hold ", format_bytes(st_.allocated),
                  " in ", live_.size(), " blocks, ", format_bytes(st_.cached), " more is cached (",
                  format_bytes(st_.reserved), " reserved in all)",
                  limit_ ? cat(", limit ", format_bytes(limit_), " (set_limit / MM_CUDA_MEMORY_LIMIT)") : std::string(),
                  dev));
}

AllocatorStats CudaCachingAllocator::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  AllocatorStats s;
  s.allocated = st_.allocated;
  s.peak_allocated = st_.peak_allocated;
  s.cached = st_.cached;
  s.n_alloc = st_.n_alloc;
  s.n_reused = st_.n_reused;
  return s;
}

CudaAllocatorStats CudaCachingAllocator::detailed_stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  CudaAllocatorStats s = st_;
  s.largest_free = 0;
  for (const auto& [key, ptrs] : free_)
    if (!ptrs.empty() && key.second > s.largest_free) s.largest_free = key.second;
  return s;
}

void CudaCachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lk(mu_);
  st_.peak_allocated = st_.allocated;
  st_.peak_reserved = st_.reserved;
}

void CudaCachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lk(mu_);
  release_cache_locked();
}

void CudaCachingAllocator::set_limit(size_t bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  limit_ = bytes;
}
size_t CudaCachingAllocator::limit() const {
  std::lock_guard<std::mutex> lk(mu_);
  return limit_;
}

}  // namespace mm::cuda
