// Example kernels written in the portable subset (cuda/kernel_api.h): they compile with
// nvcc for the GPU and with g++ -x c++ for the CPU emulator.
#include "cuda/emu_examples.h"

#include "cuda/kernel_api.h"

namespace mm::cuda_examples {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The sum (or max) of v over the block, returned to every thread. blockDim.x must be a
// multiple of 32; scratch holds at least 33 floats. Two barriers; scratch may be reused
// by the next call right away (its writes come after that call's first barrier).
template <bool kMax>
__device__ float block_reduce(float v, mm_smem_ptr<float> scratch) {
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32, nwarps = int(blockDim.x) / 32;
  v = kMax ? warp_max(v) : warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float t = lane < nwarps ? float(scratch[lane]) : (kMax ? -INFINITY : 0.0f);
    t = kMax ? warp_max(t) : warp_sum(t);
    if (lane == 0) scratch[32] = t;
  }
  __syncthreads();
  return scratch[32];
}

__global__ void row_sum_kernel(const float* __restrict__ x, float* __restrict__ y, int cols) {
  MM_SHARED(float, scratch, 33);
  const float* row = x + size_t(blockIdx.x) * cols;
  float s = 0.0f;
  for (int c = int(threadIdx.x); c < cols; c += int(blockDim.x)) s += row[c];
  s = block_reduce<false>(s, scratch);
  if (threadIdx.x == 0) y[blockIdx.x] = s;
}

constexpr int kTile = 32, kTileRows = 8;

// Block (32, 8) moves a 32x32 tile; the +1 column keeps the column reads conflict-free.
__global__ void transpose_kernel(const float* __restrict__ x, float* __restrict__ y, int rows, int cols) {
  MM_SHARED_2D(float, tile, kTile, kTile + 1);
  const int col0 = int(blockIdx.x) * kTile, row0 = int(blockIdx.y) * kTile;
  const int tx = int(threadIdx.x);
  for (int j = int(threadIdx.y); j < kTile; j += kTileRows) {
    const int r = row0 + j, c = col0 + tx;
    if (r < rows && c < cols) tile[j][tx] = x[size_t(r) * cols + c];
  }
  __syncthreads();
  for (int j = int(threadIdx.y); j < kTile; j += kTileRows) {
    const int r = col0 + j, c = row0 + tx;  // y[r][c] = x[c][r]
    if (r < cols && c < rows) y[size_t(r) * rows + c] = tile[tx][j];
  }
}

__global__ void histogram_kernel(const int* __restrict__ keys, const float* __restrict__ w, int n,
                                 unsigned* __restrict__ bins, float* __restrict__ total) {
  MM_SHARED(unsigned, h, kHistBins);
  for (int b = int(threadIdx.x); b < kHistBins; b += int(blockDim.x)) h[b] = 0u;
  __syncthreads();
  float local = 0.0f;
  for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) {
    atomicAdd(&h[keys[i]], 1u);
    local += w[i];
  }
  atomicAdd(total, local);
  __syncthreads();
  for (int b = int(threadIdx.x); b < kHistBins; b += int(blockDim.x)) {
    const unsigned c = h[b];
    if (c) atomicAdd(&bins[b], c);
  }
}

__global__ void softmax_kernel(const float* __restrict__ x, float* __restrict__ y, int cols) {
  MM_DYN_SHARED(float, row);  // cols floats
  MM_SHARED(float, scratch, 33);
  const float* xr = x + size_t(blockIdx.x) * cols;
  float* yr = y + size_t(blockIdx.x) * cols;
  const int t = int(threadIdx.x), nt = int(blockDim.x);
  float m = -INFINITY;
  for (int c = t; c < cols; c += nt) {
    const float v = xr[c];
    row[c] = v;
    m = fmaxf(m, v);
  }
  m = block_reduce<true>(m, scratch);
  float s = 0.0f;
  for (int c = t; c < cols; c += nt) {
    const float e = __expf(float(row[c]) - m);
    row[c] = e;
    s += e;
  }
  s = block_reduce<false>(s, scratch);
  const float inv = 1.0f / s;
  for (int c = t; c < cols; c += nt) yr[c] = row[c] * inv;
}

constexpr int kMT = 16;

__global__ void matmul_kernel(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                              int m, int n, int k) {
  MM_SHARED_2D(float, as, kMT, kMT);
  MM_SHARED_2D(float, bs, kMT, kMT + 1);
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  const int row = int(blockIdx.y) * kMT + ty, col = int(blockIdx.x) * kMT + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < k; k0 += kMT) {
    as[ty][tx] = (row < m && k0 + tx < k) ? a[size_t(row) * k + k0 + tx] : 0.0f;
    bs[ty][tx] = (k0 + ty < k && col < n) ? b[size_t(k0 + ty) * n + col] : 0.0f;
    __syncthreads();
    for (int kk = 0; kk < kMT; ++kk) acc += as[ty][kk] * bs[kk][tx];
    __syncthreads();  // the next tile overwrites as/bs
  }
  if (row < m && col < n) c[size_t(row) * n + col] = acc;
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, int n) {
  const int i4 = int(blockIdx.x * blockDim.x + threadIdx.x), base = i4 * 4;
  if (base + 3 < n) {
    const float4 v = reinterpret_cast<const float4*>(x)[i4];  // x is 16-byte aligned
    y[base + 0] = __float2bfloat16(v.x);
    y[base + 1] = __float2bfloat16(v.y);
    y[base + 2] = __float2bfloat16(v.z);
    y[base + 3] = __float2bfloat16(v.w);
  } else {
    for (int i = base; i < n; ++i) y[i] = __float2bfloat16(x[i]);
  }
}

}  // namespace

void row_sum(const float* x, float* y, int rows, int cols) {
  MM_LAUNCH(row_sum_kernel, dim3(unsigned(rows)), dim3(256), 0, 0, x, y, cols);
}

void transpose(const float* x, float* y, int rows, int cols) {
  const dim3 grid(unsigned((cols + kTile - 1) / kTile), unsigned((rows + kTile - 1) / kTile));
  MM_LAUNCH(transpose_kernel, grid, dim3(kTile, kTileRows), 0, 0, x, y, rows, cols);
}

void histogram(const int* keys, const float* w, int n, unsigned* bins, float* total) {
  const int threads = 256, blocks = (n + threads * 4 - 1) / (threads * 4);
  MM_LAUNCH(histogram_kernel, dim3(unsigned(blocks > 0 ? blocks : 1)), dim3(threads), 0, 0, keys, w, n, bins,
            total);
}

void softmax_rows(const float* x, float* y, int rows, int cols) {
  const size_t bytes = size_t(cols) * sizeof(float);
  if (bytes > 40 * 1024) {  // leave room for the static scratch below the 48 KiB default
    cudaError_t e = cudaFuncSetAttribute(softmax_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
    MM_CHECK(e == cudaSuccess, "softmax_rows: ", cols, " columns need ", bytes,
             " bytes of shared memory: ", cudaGetErrorString(e));
  }
  MM_LAUNCH(softmax_kernel, dim3(unsigned(rows)), dim3(256), bytes, 0, x, y, cols);
}

void matmul(const float* a, const float* b, float* c, int m, int n, int k) {
  const dim3 grid(unsigned((n + kMT - 1) / kMT), unsigned((m + kMT - 1) / kMT));
  MM_LAUNCH(matmul_kernel, grid, dim3(kMT, kMT), 0, 0, a, b, c, m, n, k);
}

void f32_to_bf16(const float* x, uint16_t* y, int n) {
  const int threads = 256, blocks = (n + threads * 4 - 1) / (threads * 4);
  MM_LAUNCH(f32_to_bf16_kernel, dim3(unsigned(blocks > 0 ? blocks : 1)), dim3(threads), 0, 0, x,
            reinterpret_cast<__nv_bfloat16*>(y), n);
}

}  // namespace mm::cuda_examples
