// The one header every CUDA source of the project includes (kernels in cuda/*.cu and the
// host code that launches them). The same source builds two ways:
//
//   nvcc (real GPU, __CUDACC__ defined)   the CUDA headers; MM_* macros map to CUDA syntax.
//   g++ -x c++ (no nvcc)                  the CPU emulator in cuda/emu/ (README.md there).
//
// Host-only .cpp files built against the real CUDA runtime without nvcc define
// MM_CUDA_REAL to get cuda_runtime.h instead of the emulator (kernels stay in .cu files).
//
// What kernels write instead of raw CUDA syntax (everything else is plain CUDA C++ within
// the subset listed in cuda/emu/README.md):
//
//   MM_SHARED(float, tile, 32 * 33);      __shared__ float tile[32 * 33];
//   MM_SHARED_2D(float, tile, 32, 33);    __shared__ float tile[32][33];
//   MM_DYN_SHARED(float, buf);            extern __shared__ float buf[];  (size from the launch)
//   mm_smem_ptr<float> p = tile + 8;      float* p = tile + 8;  (a pointer into shared memory)
//   mm_smem_cast<float4>(p)               reinterpret_cast<float4*>(p)
//   MM_LAUNCH(k, grid, block, smem, stream, args...)   k<<<grid, block, smem, stream>>>(args...)
//
// MM_LAUNCH validates the configuration on both paths (block <= 1024 threads and the dim
// limits, dynamic shared memory <= the kernel's limit) and throws mm::Error naming the
// kernel and the sizes; under nvcc it also turns a launch error into mm::Error. For a
// template kernel put the name in parentheses: MM_LAUNCH((k<float, 128>), ...).
#pragma once

#include "cuda/launch_limits.h"
#include "runtime/error.h"

#if defined(__CUDACC__) || (defined(MM_CUDA_REAL) && !defined(MM_CUDA_EMU))
// ======================================================================= real CUDA ====
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <tuple>
#include <type_traits>
#include <utility>

#define MM_SHARED(T, name, n) __shared__ T name[n]
#define MM_SHARED_2D(T, name, rows, cols) __shared__ T name[rows][cols]
#define MM_DYN_SHARED(T, name)                                        \
  extern __shared__ __align__(16) unsigned char mm_dyn_smem_##name[]; \
  T* name = reinterpret_cast<T*>(mm_dyn_smem_##name)

template <class T>
using mm_smem_ptr = T*;
template <class U, class T>
__device__ __forceinline__ U* mm_smem_cast(T* p) {
  return reinterpret_cast<U*>(p);
}

namespace mm {
// kernel<<<grid, block, smem, stream>>>(args...) through cudaLaunchKernel, with the
// launch checked before (limits) and after (cudaGetLastError).
template <class... P, class... A>
void cuda_launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
                 cudaStream_t stream, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  // Up front: what needs no query (dims, 1024 threads, the device's 227 KiB). The kernel's
  // own limits (registers, its dynamic shared memory attribute) are queried on failure only.
  ::mm::cuda_limits::check_launch(name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem,
                                  ::mm::cuda_limits::kMaxOptinSharedBytes);
  std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  cudaError_t e = std::apply(
      [&](auto&... p) {
        void* argv[] = {static_cast<void*>(&p)..., nullptr};
        return cudaLaunchKernel(reinterpret_cast<const void*>(kernel), grid, block, argv, smem, stream);
      },
      params);
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e == cudaSuccess) return;
  cudaFuncAttributes fa{};
  if (cudaFuncGetAttributes(&fa, kernel) == cudaSuccess)
    ::mm::cuda_limits::check_launch(name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem,
                                    size_t(fa.maxDynamicSharedSizeBytes));
  throw ::mm::Error(::mm::cat("CUDA launch of kernel '", name, "' with grid (", grid.x, ",", grid.y, ",", grid.z,
                              ") block (", block.x, ",", block.y, ",", block.z, ") dynamic shared memory ", smem,
                              " bytes failed: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e), " (kernel: ",
                              fa.maxThreadsPerBlock, " threads per block at most, ", fa.sharedSizeBytes,
                              " bytes of static shared memory, ", fa.maxDynamicSharedSizeBytes,
                              " bytes of dynamic shared memory at most, ", fa.numRegs, " registers per thread)"));
}
}  // namespace mm

#define MM_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::mm::cuda_launch(#kernel, kernel, grid, block, smem, stream __VA_OPT__(, ) __VA_ARGS__)

#else
// ======================================================================= emulator =====
#include "cuda/emu/emu.h"

#define MM_SHARED(T, name, n)                                                                       \
  static constinit ::mm::emu::SharedSite mm_emu_site_##name{#name, __FILE__, __LINE__, sizeof(T),   \
                                                            alignof(T), uint32_t(n), 0, false};     \
  ::mm::emu::SharedPtr<T> name = ::mm::emu::detail::shared_static<T>(&mm_emu_site_##name)
#define MM_SHARED_2D(T, name, rows, cols)                                                           \
  static constinit ::mm::emu::SharedSite mm_emu_site_##name{                                        \
      #name, __FILE__, __LINE__, sizeof(T), alignof(T), uint32_t((rows) * (cols)), uint32_t(cols), false}; \
  ::mm::emu::Shared2D<T> name = ::mm::emu::detail::shared_static_2d<T>(&mm_emu_site_##name)
#define MM_DYN_SHARED(T, name)                                                                      \
  static constinit ::mm::emu::SharedSite mm_emu_site_##name{#name, __FILE__, __LINE__, sizeof(T),   \
                                                            alignof(T), 0, 0, true};                \
  ::mm::emu::SharedPtr<T> name = ::mm::emu::detail::shared_dynamic<T>(&mm_emu_site_##name)

template <class T>
using mm_smem_ptr = ::mm::emu::SharedPtr<T>;
template <class U, class T>
::mm::emu::SharedPtr<U> mm_smem_cast(const ::mm::emu::SharedPtr<T>& p) {
  return p.template cast<U>();
}
template <class U, class T>
::mm::emu::SharedPtr<U> mm_smem_cast(const ::mm::emu::Shared2D<T>& p) {
  return ::mm::emu::SharedPtr<T>(p).template cast<U>();
}

#define MM_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::mm::emu::launch(#kernel, kernel, grid, block, smem, stream __VA_OPT__(, ) __VA_ARGS__)

#endif
