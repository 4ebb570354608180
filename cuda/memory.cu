// fill, Philox random fills, and the strided copy with dtype conversion.
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"
#include "runtime/philox.h"

namespace mm::cuda::kernels {
namespace {

constexpr unsigned kThreads = 256;

template <class U>
__global__ void fill_kernel(U* __restrict__ dst, int64_t n, U v) {
  for (int64_t i = flat_index(); i < n; i += flat_step()) dst[i] = v;
}

// The CPU backend computes lo + hi * r in double and converts once; so do we.
template <class T>
__global__ void fill_random_kernel(T* __restrict__ dst, int64_t n, bool normal, double lo, double hi, uint64_t seed,
                                   uint64_t offset) {
  for (int64_t i = flat_index(); i < n; i += flat_step()) {
    const double r = normal ? double(philox_normal(seed, offset, uint64_t(i)))
                            : double(philox_uniform(seed, offset, uint64_t(i)));
    dst[i] = st<T>(acc_t<T>(normal ? lo + hi * r : lo + (hi - lo) * r));
  }
}

// One floating type to another: through double when either side is double, else through
// float (bf16 <-> f16 <-> f32 are exact or rounded once).
template <class S, class D>
__device__ __forceinline__ D convert(S v) {
  if constexpr (std::is_same_v<S, D>) return v;
  else if constexpr (std::is_same_v<D, double>) return double(ld(v));
  else if constexpr (std::is_same_v<S, double>) return D(float(v));
  else return D(ld(v));
}

template <class S, class D>
__global__ void copy_kernel(const S* __restrict__ src, D* __restrict__ dst, Strided<2> d) {
  for (int64_t i = flat_index(); i < d.numel; i += flat_step()) {
    int64_t off[2];
    d.offsets(i, off);
    dst[off[1]] = convert<S, D>(src[off[0]]);
  }
}

// Integers and bool: element values through double, as runtime/tensor.cpp's
// load_as_double / store_from_double do on the CPU.
__device__ double load_any(const void* base, DType dt, int64_t i) {
  switch (dt) {
    case DType::f32: return static_cast<const float*>(base)[i];
    case DType::f64: return static_cast<const double*>(base)[i];
    case DType::bf16: return float(static_cast<const __nv_bfloat16*>(base)[i]);
    case DType::f16: return float(static_cast<const __half*>(base)[i]);
    case DType::i32: return static_cast<const int32_t*>(base)[i];
    case DType::i64: return double(static_cast<const int64_t*>(base)[i]);
    case DType::u8: case DType::boolean: return static_cast<const uint8_t*>(base)[i];
  }
  return 0;
}
__device__ void store_any(void* base, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::f32: static_cast<float*>(base)[i] = float(v); break;
    case DType::f64: static_cast<double*>(base)[i] = v; break;
    case DType::bf16: static_cast<__nv_bfloat16*>(base)[i] = __nv_bfloat16(float(v)); break;
    case DType::f16: static_cast<__half*>(base)[i] = __half(float(v)); break;
    case DType::i32: static_cast<int32_t*>(base)[i] = int32_t(v); break;
    case DType::i64: static_cast<int64_t*>(base)[i] = int64_t(v); break;
    case DType::u8: static_cast<uint8_t*>(base)[i] = uint8_t(v); break;
    case DType::boolean: static_cast<uint8_t*>(base)[i] = v != 0; break;
  }
}
__global__ void copy_any_kernel(const void* src, DType sdt, void* dst, DType ddt, Strided<2> d) {
  for (int64_t i = flat_index(); i < d.numel; i += flat_step()) {
    int64_t off[2];
    d.offsets(i, off);
    store_any(dst, ddt, off[1], load_any(src, sdt, off[0]));
  }
}

template <class S>
void copy_from(const S* src, DType dst_dt, void* dst, const Strided<2>& d, cudaStream_t s) {
  const unsigned blocks = flat_blocks(d.numel, kThreads);
  MM_CUDA_DISPATCH_FLOAT(dst_dt, "copy",
                         MM_LAUNCH((copy_kernel<S, T>), dim3(blocks), dim3(kThreads), 0, s, src,
                                   static_cast<T*>(dst), d));
}

template <class U>
void copy_bits(const void* src, void* dst, const Strided<2>& d, cudaStream_t s) {
  MM_LAUNCH((copy_kernel<U, U>), dim3(flat_blocks(d.numel, kThreads)), dim3(kThreads), 0, s,
            static_cast<const U*>(src), static_cast<U*>(dst), d);
}

}  // namespace

void fill(void* dst, int64_t n, int elem_size, uint64_t bits, cudaStream_t s) {
  if (n == 0) return;
  const dim3 grid(flat_blocks(n, kThreads)), block(kThreads);
  switch (elem_size) {
    case 1: MM_LAUNCH(fill_kernel<uint8_t>, grid, block, 0, s, static_cast<uint8_t*>(dst), n, uint8_t(bits)); break;
    case 2: MM_LAUNCH(fill_kernel<uint16_t>, grid, block, 0, s, static_cast<uint16_t*>(dst), n, uint16_t(bits)); break;
    case 4: MM_LAUNCH(fill_kernel<uint32_t>, grid, block, 0, s, static_cast<uint32_t*>(dst), n, uint32_t(bits)); break;
    case 8: MM_LAUNCH(fill_kernel<uint64_t>, grid, block, 0, s, static_cast<uint64_t*>(dst), n, uint64_t(bits)); break;
    default: throw Error(cat("fill: element size ", elem_size, " is not 1, 2, 4 or 8"));
  }
}

void fill_random(DType dt, void* dst, int64_t n, bool normal, double lo, double hi, uint64_t seed, uint64_t offset,
                 cudaStream_t s) {
  if (n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "fill_random",
                         MM_LAUNCH(fill_random_kernel<T>, dim3(flat_blocks(n, kThreads)), dim3(kThreads), 0, s,
                                   static_cast<T*>(dst), n, normal, lo, hi, seed, offset));
}

void copy(DType src_dt, const void* src, DType dst_dt, void* dst, const Strided<2>& d, cudaStream_t s) {
  if (d.numel == 0) return;
  if (src_dt == dst_dt) {  // bits, whatever the type
    switch (dtype_size(src_dt)) {
      case 1: copy_bits<uint8_t>(src, dst, d, s); return;
      case 2: copy_bits<uint16_t>(src, dst, d, s); return;
      case 4: copy_bits<uint32_t>(src, dst, d, s); return;
      default: copy_bits<uint64_t>(src, dst, d, s); return;
    }
  }
  if (is_floating(src_dt) && is_floating(dst_dt)) {
    MM_CUDA_DISPATCH_FLOAT(src_dt, "copy", copy_from<T>(static_cast<const T*>(src), dst_dt, dst, d, s));
    return;
  }
  MM_LAUNCH(copy_any_kernel, dim3(flat_blocks(d.numel, kThreads)), dim3(kThreads), 0, s, src, src_dt, dst, dst_dt, d);
}

}  // namespace mm::cuda::kernels
