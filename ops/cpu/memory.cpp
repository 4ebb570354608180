// copy (strided, with dtype conversion), fill, and Philox random fills.
#include <cstring>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/strided.h"

namespace mm {

void CpuBackend::copy(const Tensor& src, Tensor& dst) {
  MM_CHECK(src.device().is_cpu() && dst.device().is_cpu(), "copy: the cpu backend cannot copy from ",
           src.device(), " to ", dst.device());
  MM_CHECK(src.shape() == dst.shape(), "copy: shapes differ: ", src.shape(), " -> ", dst.shape());
  const int64_t n = src.numel();
  if (n == 0) return;
  const size_t es = dtype_size(src.dtype());
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    const char* s = static_cast<const char*>(src.raw_data());
    char* d = static_cast<char*>(dst.raw_data());
    parallel_for(n, 4 * cpu::kGrain, [&](int64_t b, int64_t e) {
      std::memcpy(d + b * int64_t(es), s + b * int64_t(es), size_t(e - b) * es);
    });
    return;
  }
  const char* sbase = static_cast<const char*>(src.impl()->storage->data);
  char* dbase = static_cast<char*>(dst.impl()->storage->data);
  const DType sd = src.dtype(), dd = dst.dtype();
  cpu::for_each_row<2>(src.shape(), {src.strides(), dst.strides()}, {src.offset(), dst.offset()}, cpu::kGrain,
                       [&](const std::array<int64_t, 2>& o, int64_t len, const std::array<int64_t, 2>& st) {
    if (sd == dd && es == 4) {
      const uint32_t* s = reinterpret_cast<const uint32_t*>(sbase) + o[0];
      uint32_t* d = reinterpret_cast<uint32_t*>(dbase) + o[1];
      for (int64_t j = 0; j < len; ++j) d[j * st[1]] = s[j * st[0]];
    } else if (sd == dd) {
      for (int64_t j = 0; j < len; ++j)
        std::memcpy(dbase + (o[1] + j * st[1]) * int64_t(es), sbase + (o[0] + j * st[0]) * int64_t(es), es);
    } else if (sd == DType::f32 && dd == DType::bf16) {
      const float* s = reinterpret_cast<const float*>(sbase) + o[0];
      uint16_t* d = reinterpret_cast<uint16_t*>(dbase) + o[1];
      for (int64_t j = 0; j < len; ++j) d[j * st[1]] = f32_to_bf16_bits(s[j * st[0]]);
    } else if (sd == DType::bf16 && dd == DType::f32) {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(sbase) + o[0];
      float* d = reinterpret_cast<float*>(dbase) + o[1];
      for (int64_t j = 0; j < len; ++j) d[j * st[1]] = bf16_bits_to_f32(s[j * st[0]]);
    } else {
      for (int64_t j = 0; j < len; ++j)
        store_from_double(dbase, dd, o[1] + j * st[1], load_as_double(sbase, sd, o[0] + j * st[0]));
    }
  });
}

void CpuBackend::fill(Tensor& dst, double value) {
  const int64_t n = dst.numel();
  MM_ASSERT(dst.is_contiguous());
  if (dst.dtype() == DType::f32) {
    float* p = dst.data<float>();
    const float v = float(value);
    parallel_for(n, 4 * cpu::kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = v;
    });
  } else if (value == 0.0) {
    std::memset(dst.raw_data(), 0, size_t(n) * dtype_size(dst.dtype()));
  } else {
    void* p = dst.raw_data();
    for (int64_t i = 0; i < n; ++i) store_from_double(p, dst.dtype(), i, value);
  }
}

void CpuBackend::fill_random(Tensor& dst, bool normal, double lo, double hi, uint64_t seed, uint64_t offset) {
  MM_ASSERT(dst.is_contiguous());
  const int64_t n = dst.numel();
  MM_DISPATCH_FLOAT(dst.dtype(), "fill_random", {
    T* p = dst.data<T>();
    parallel_for(n, cpu::kGrain / 8, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float r = normal ? philox_normal(seed, offset, uint64_t(i)) : philox_uniform(seed, offset, uint64_t(i));
        p[i] = normal ? T(lo + hi * r) : T(lo + (hi - lo) * r);
      }
    });
  });
}

}  // namespace mm
