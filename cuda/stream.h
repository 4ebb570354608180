// Streams and events of the CUDA backend.
//
// Every kernel and copy of the backend is issued on the *current stream* of the calling
// host thread: the legacy default stream (0) unless a StreamGuard says otherwise.
//
//   mm::cuda::Stream side;                       // a new non-blocking stream
//   { mm::cuda::StreamGuard g(side);  y = matmul(a, b); }   // runs on `side`
//   mm::cuda::Event done; done.record(side.handle());
//   mm::cuda::wait(mm::cuda::current_stream(), done);       // order the default stream after it
//
// A tensor made on one stream and used on another must be announced to the allocator
// (CudaCachingAllocator::record_stream) so that its memory is not reused too early.
// Under the emulator all work runs when it is issued, so these are cheap no-ops in effect.
#pragma once
#include "cuda/kernel_api.h"

namespace mm::cuda {

cudaStream_t current_stream();
void set_current_stream(cudaStream_t s);

// An owned, non-blocking stream.
class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t handle() const { return s_; }
  void synchronize() const;

 private:
  cudaStream_t s_ = nullptr;
};

// Makes `s` the current stream of this thread until the guard goes out of scope.
class StreamGuard {
 public:
  explicit StreamGuard(cudaStream_t s) : prev_(current_stream()) { set_current_stream(s); }
  explicit StreamGuard(const Stream& s) : StreamGuard(s.handle()) {}
  ~StreamGuard() { set_current_stream(prev_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  cudaStream_t prev_;
};

// An owned event (with timing unless told otherwise).
class Event {
 public:
  explicit Event(bool timing = true);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s);
  void synchronize() const;
  bool ready() const;  // every recorded piece of work is done
  // Milliseconds from `start` to this event (both recorded, both with timing); waits for
  // this event to complete.
  float elapsed_ms(const Event& start) const;
  cudaEvent_t handle() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// Work issued on `s` after this call waits for the work recorded in `e`.
void wait(cudaStream_t s, const Event& e);
// Waits for all work on the current stream.
void synchronize();

}  // namespace mm::cuda
