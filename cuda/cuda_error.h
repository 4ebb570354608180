// CUDA runtime errors as mm::Error. Host code of the CUDA backend wraps every runtime call:
//
//   MM_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, s), "copy cpu -> cuda:0");
//
// The message names what we were doing (the arguments after the call), the call, and
// CUDA's error name and text. The sticky last-error state is cleared so that one failed
// call does not poison the next launch check.
#pragma once
#include "cuda/kernel_api.h"
#include "runtime/error.h"

#define MM_CUDA_CHECK(call, ...)                                                                   \
  do {                                                                                             \
    const cudaError_t mm_cuda_err_ = (call);                                                       \
    if (mm_cuda_err_ != cudaSuccess) [[unlikely]] {                                                \
      (void)cudaGetLastError();                                                                    \
      throw ::mm::Error(::mm::cat(__VA_ARGS__, ": ", #call, " failed: ", cudaGetErrorName(mm_cuda_err_), \
                                  " (", cudaGetErrorString(mm_cuda_err_), ")"));                   \
    }                                                                                              \
  } while (0)
