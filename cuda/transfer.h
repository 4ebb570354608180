// Host <-> device byte copies for the CUDA backend's copy().
//
// Small copies (< kStagingThreshold) go straight through cudaMemcpyAsync from pageable
// memory (the driver stages them itself). Large ones go through two pinned host buffers
// of kStagingChunk bytes, used in turn, so that the CPU's memcpy into (or out of) one
// buffer overlaps the DMA of the other:
//
//   to device:  memcpy src -> pinned[0]; DMA pinned[0] -> dst  | memcpy -> pinned[1]; DMA ...
//   to host:    DMA src -> pinned[0] | DMA -> pinned[1], memcpy pinned[0] -> dst | ...
//
// An event per buffer says when its DMA is done and the buffer may be refilled.
// copy_to_device returns once the source bytes have been read (the DMA may still run);
// copy_to_host returns once the bytes are on the host.
#pragma once
#include <cstddef>

#include "cuda/kernel_api.h"

namespace mm::cuda {

constexpr size_t kStagingThreshold = size_t(1) << 20;  // 1 MiB
constexpr size_t kStagingChunk = size_t(4) << 20;      // 4 MiB per pinned buffer

void copy_to_device(void* dst, const void* src, size_t bytes, cudaStream_t s);
void copy_to_host(void* dst, const void* src, size_t bytes, cudaStream_t s);

// How many bytes went through the pinned buffers since the start (tests, profiling).
size_t staged_bytes();

}  // namespace mm::cuda
