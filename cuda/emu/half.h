// __nv_bfloat16 and __half (half) for the CPU emulator, with CUDA's conversions.
//
// Rounding is CUDA's round-to-nearest-even, done by runtime/dtype.h's bit conversions (the
// CPU tensors use the same functions, so CPU and emulated kernels agree bit for bit). NaN
// handling follows CUDA 13's own host implementation (cuda_bf16.hpp / cuda_fp16.hpp):
// any NaN converts to the canonical NaN 0x7fff (bf16, f16) or 0x7fffffff (f16 -> f32);
// bf16 -> f32 is a plain shift and keeps the payload.
//
// As in CUDA (without __CUDA_NO_*_CONVERSIONS__), both types convert implicitly from and
// to float, and have + - * / and comparisons between two values of the type (computed in
// f32, rounded once: exact for + - * since f32 has more than 2p+2 bits). `bf16 + 1.0f` is
// ambiguous here as it is under nvcc: convert explicitly.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cuda/emu/vector_types.h"
#include "runtime/dtype.h"

namespace mm::emu::detail {
inline uint16_t float_to_bf16_bits_cuda(float f) {
  return std::isnan(f) ? uint16_t(0x7fff) : ::mm::f32_to_bf16_bits(f);
}
inline uint16_t float_to_f16_bits_cuda(float f) {
  return std::isnan(f) ? uint16_t(0x7fff) : ::mm::f32_to_f16_bits(f);
}
inline float f16_bits_to_float_cuda(uint16_t h) {
  if ((h & 0x7fffu) > 0x7c00u) {  // NaN: CUDA returns the canonical f32 NaN
    uint32_t u = 0x7fffffffu;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  return ::mm::f16_bits_to_f32(h);
}
struct RawBits {};  // tag: construct from bits
}  // namespace mm::emu::detail

#define MM_EMU_HALF_TYPE(T, TO_BITS, TO_FLOAT)                                             \
  struct T {                                                                               \
    unsigned short __x;                                                                    \
    T() = default;                                                                         \
    constexpr T(::mm::emu::detail::RawBits, unsigned short bits) : __x(bits) {}            \
    T(float f) : __x(TO_BITS(f)) {}                                                        \
    operator float() const { return TO_FLOAT(__x); }                                       \
    T& operator+=(T o) { return *this = T(float(*this) + float(o)); }                      \
    T& operator-=(T o) { return *this = T(float(*this) - float(o)); }                      \
    T& operator*=(T o) { return *this = T(float(*this) * float(o)); }                      \
    T& operator/=(T o) { return *this = T(float(*this) / float(o)); }                      \
    friend T operator+(T a, T b) { return T(float(a) + float(b)); }                        \
    friend T operator-(T a, T b) { return T(float(a) - float(b)); }                        \
    friend T operator*(T a, T b) { return T(float(a) * float(b)); }                        \
    friend T operator/(T a, T b) { return T(float(a) / float(b)); }                        \
    friend T operator-(T a) { return T(::mm::emu::detail::RawBits{}, (unsigned short)(a.__x ^ 0x8000u)); } \
    friend T operator+(T a) { return a; }                                                  \
    friend bool operator==(T a, T b) { return float(a) == float(b); }                      \
    friend bool operator!=(T a, T b) { return float(a) != float(b); }                      \
    friend bool operator<(T a, T b) { return float(a) < float(b); }                        \
    friend bool operator<=(T a, T b) { return float(a) <= float(b); }                      \
    friend bool operator>(T a, T b) { return float(a) > float(b); }                        \
    friend bool operator>=(T a, T b) { return float(a) >= float(b); }                      \
  };

MM_EMU_HALF_TYPE(__nv_bfloat16, ::mm::emu::detail::float_to_bf16_bits_cuda, ::mm::bf16_bits_to_f32)
MM_EMU_HALF_TYPE(__half, ::mm::emu::detail::float_to_f16_bits_cuda,
                 ::mm::emu::detail::f16_bits_to_float_cuda)
#undef MM_EMU_HALF_TYPE

typedef __nv_bfloat16 nv_bfloat16;
typedef __half half;

struct alignas(4) __nv_bfloat162 { __nv_bfloat16 x, y; };
struct alignas(4) __half2 { __half x, y; };
typedef __nv_bfloat162 nv_bfloat162;
typedef __half2 half2;

// ---- conversions (cuda_bf16.h / cuda_fp16.h names) ------------------------------------
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return float(h); }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return float(h); }

inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  return __nv_bfloat16(::mm::emu::detail::RawBits{}, u);
}
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { return __half(::mm::emu::detail::RawBits{}, u); }

inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline __nv_bfloat162 __float22bfloat162_rn(float2 v) { return {__nv_bfloat16(v.x), __nv_bfloat16(v.y)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {float(v.x), float(v.y)}; }
inline __half2 __floats2half2_rn(float a, float b) { return {__half(a), __half(b)}; }
inline __half2 __float22half2_rn(float2 v) { return {__half(v.x), __half(v.y)}; }
inline float2 __half22float2(__half2 v) { return {float(v.x), float(v.y)}; }
inline float __low2float(__nv_bfloat162 v) { return float(v.x); }
inline float __high2float(__nv_bfloat162 v) { return float(v.y); }
inline float __low2float(__half2 v) { return float(v.x); }
inline float __high2float(__half2 v) { return float(v.y); }

// ---- arithmetic intrinsics (one rounding from the exact f32 result for + - *) ----------
#define MM_EMU_HALF_OPS(T)                                                                 \
  inline T __hadd(T a, T b) { return a + b; }                                              \
  inline T __hsub(T a, T b) { return a - b; }                                              \
  inline T __hmul(T a, T b) { return a * b; }                                              \
  inline T __hdiv(T a, T b) { return a / b; }                                              \
  inline T __hneg(T a) { return -a; }                                                      \
  inline T __habs(T a) { return T(::mm::emu::detail::RawBits{}, (unsigned short)(a.__x & 0x7fffu)); } \
  inline T __hfma(T a, T b, T c) { return T(std::fma(float(a), float(b), float(c))); }     \
  inline T __hmax(T a, T b) { return T(std::fmax(float(a), float(b))); }                   \
  inline T __hmin(T a, T b) { return T(std::fmin(float(a), float(b))); }                   \
  inline bool __hisnan(T a) { return std::isnan(float(a)); }
MM_EMU_HALF_OPS(__nv_bfloat16)
MM_EMU_HALF_OPS(__half)
#undef MM_EMU_HALF_OPS
