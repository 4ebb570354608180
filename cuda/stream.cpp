#include "cuda/stream.h"

#include "cuda/cuda_error.h"

namespace mm::cuda {

namespace {
thread_local cudaStream_t t_current = nullptr;  // 0: the legacy default stream
}

cudaStream_t current_stream() { return t_current; }
void set_current_stream(cudaStream_t s) { t_current = s; }

Stream::Stream() { MM_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "creating a CUDA stream"); }
Stream::~Stream() {
  if (s_) (void)cudaStreamDestroy(s_);  // destructors do not throw
}
void Stream::synchronize() const { MM_CUDA_CHECK(cudaStreamSynchronize(s_), "synchronizing a CUDA stream"); }

Event::Event(bool timing) {
  MM_CUDA_CHECK(cudaEventCreateWithFlags(&e_, timing ? cudaEventDefault : cudaEventDisableTiming),
                "creating a CUDA event");
}
Event::~Event() {
  if (e_) (void)cudaEventDestroy(e_);
}
void Event::record(cudaStream_t s) { MM_CUDA_CHECK(cudaEventRecord(e_, s), "recording a CUDA event"); }
void Event::synchronize() const { MM_CUDA_CHECK(cudaEventSynchronize(e_), "waiting for a CUDA event"); }
bool Event::ready() const {
  const cudaError_t e = cudaEventQuery(e_);
  if (e == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  MM_CUDA_CHECK(e, "querying a CUDA event");
  return true;
}
float Event::elapsed_ms(const Event& start) const {
  // Waits for this (the later) event first: cudaEventElapsedTime on a GPU answers
  // cudaErrorNotReady while it is pending (the emulator never did; the H200 did).
  synchronize();
  float ms = 0;
  MM_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_), "timing between two CUDA events");
  return ms;
}

void wait(cudaStream_t s, const Event& e) {
  MM_CUDA_CHECK(cudaStreamWaitEvent(s, e.handle(), 0), "making a stream wait for an event");
}
void synchronize() { MM_CUDA_CHECK(cudaStreamSynchronize(current_stream()), "synchronizing the current stream"); }

}  // namespace mm::cuda
