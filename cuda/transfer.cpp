#include "cuda/transfer.h"

#include <cstring>
#include <mutex>

#include "cuda/cuda_error.h"

namespace mm::cuda {

namespace {

struct Staging {
  std::mutex mu;
  void* buf[2] = {nullptr, nullptr};
  cudaEvent_t done[2] = {nullptr, nullptr};
  size_t total = 0;

  void ensure() {
    if (buf[0]) return;
    for (int k = 0; k < 2; ++k) {
      MM_CUDA_CHECK(cudaMallocHost(&buf[k], kStagingChunk), "allocating a pinned staging buffer");
      MM_CUDA_CHECK(cudaEventCreateWithFlags(&done[k], cudaEventDisableTiming), "creating a staging event");
    }
  }
};

// Kept for the life of the process (freed by the driver at exit).
Staging& staging() {
  static auto* s = new Staging();
  return *s;
}

}  // namespace

void copy_to_device(void* dst, const void* src, size_t bytes, cudaStream_t s) {
  if (bytes == 0) return;
  if (bytes < kStagingThreshold) {
    MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "copy cpu -> cuda (", bytes, " bytes)");
    return;
  }
  Staging& st = staging();
  std::lock_guard<std::mutex> lk(st.mu);
  st.ensure();
  size_t off = 0;
  for (int c = 0; off < bytes; ++c) {
    const int k = c % 2;
    const size_t len = bytes - off < kStagingChunk ? bytes - off : kStagingChunk;
    MM_CUDA_CHECK(cudaEventSynchronize(st.done[k]), "copy cpu -> cuda: waiting for a staging buffer");
    std::memcpy(st.buf[k], static_cast<const char*>(src) + off, len);
    MM_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, st.buf[k], len, cudaMemcpyHostToDevice, s),
                  "copy cpu -> cuda (", bytes, " bytes, staged)");
    MM_CUDA_CHECK(cudaEventRecord(st.done[k], s), "copy cpu -> cuda: recording a staging event");
    off += len;
  }
  st.total += bytes;
}

void copy_to_host(void* dst, const void* src, size_t bytes, cudaStream_t s) {
  if (bytes == 0) return;
  if (bytes < kStagingThreshold) {
    MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "copy cuda -> cpu (", bytes, " bytes)");
    MM_CUDA_CHECK(cudaStreamSynchronize(s), "copy cuda -> cpu: waiting for the copy");
    return;
  }
  Staging& st = staging();
  std::lock_guard<std::mutex> lk(st.mu);
  st.ensure();
  // Chunk c lands in buf[c % 2]; while chunk c is in flight, chunk c - 1 is copied out.
  size_t prev_off = 0, prev_len = 0, off = 0;
  for (int c = 0; off < bytes || prev_len; ++c) {
    const int k = c % 2;
    size_t len = 0;
    if (off < bytes) {
      len = bytes - off < kStagingChunk ? bytes - off : kStagingChunk;
      MM_CUDA_CHECK(cudaMemcpyAsync(st.buf[k], static_cast<const char*>(src) + off, len, cudaMemcpyDeviceToHost, s),
                    "copy cuda -> cpu (", bytes, " bytes, staged)");
      MM_CUDA_CHECK(cudaEventRecord(st.done[k], s), "copy cuda -> cpu: recording a staging event");
    }
    if (prev_len) {
      MM_CUDA_CHECK(cudaEventSynchronize(st.done[k ^ 1]), "copy cuda -> cpu: waiting for a staging buffer");
      std::memcpy(static_cast<char*>(dst) + prev_off, st.buf[k ^ 1], prev_len);
    }
    prev_off = off;
    prev_len = len;
    off += len;
  }
  st.total += bytes;
}

size_t staged_bytes() {
  Staging& st = staging();
  std::lock_guard<std::mutex> lk(st.mu);
  return st.total;
}

}  // namespace mm::cuda
