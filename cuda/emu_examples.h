// Example kernels for the CUDA emulator (cuda/emu_examples.cu): they show the kernel
// subset in use and are run by tests/test_cuda_emu.cpp against CPU loops. All pointers are
// device pointers (cudaMalloc); every call is synchronous under the emulator.
#pragma once
#include <cstdint>

namespace mm::cuda_examples {

// y[r] = sum of row r of x (rows x cols): one block per row, warp shuffles + shared memory.
void row_sum(const float* x, float* y, int rows, int cols);
// y (cols x rows) = transpose of x (rows x cols) through a 32x33 shared tile.
void transpose(const float* x, float* y, int rows, int cols);
// bins[k] += number of i with keys[i] == k (0 <= k < 64), total += sum of w: shared-memory
// atomics per block, then global atomics.
constexpr int kHistBins = 64;
void histogram(const int* keys, const float* w, int n, unsigned* bins, float* total);
// Row softmax of x (rows x cols) with the row cached in dynamic shared memory; rows
// longer than 12k floats opt in to more than 48 KiB with cudaFuncSetAttribute.
void softmax_rows(const float* x, float* y, int rows, int cols);
// C (M x N) = A (M x K) * B (K x N), row-major, with 16x16 shared tiles: the classic
// loop with two barriers per tile.
void matmul(const float* a, const float* b, float* c, int m, int n, int k);
// y = bf16(x) with 128-bit float4 loads; y holds bf16 bits.
void f32_to_bf16(const float* x, uint16_t* y, int n);

}  // namespace mm::cuda_examples
