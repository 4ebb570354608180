// Element types and the half-precision conversions (round to nearest even, as CUDA's
// __float2bfloat16_rn / __float2half_rn do, so CPU and GPU agree bit for bit).
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mm {

enum class DType : uint8_t { f32, f64, bf16, f16, i32, i64, u8, boolean };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::f64: case DType::i64: return 8;
    case DType::f32: case DType::i32: return 4;
    case DType::bf16: case DType::f16: return 2;
    case DType::u8: case DType::boolean: return 1;
  }
  return 0;
}
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32"; case DType::f64: return "f64";
    case DType::bf16: return "bf16"; case DType::f16: return "f16";
    case DType::i32: return "i32"; case DType::i64: return "i64";
    case DType::u8: return "u8"; case DType::boolean: return "bool";
  }
  return "?";
}
constexpr bool is_floating(DType t) {
  return t == DType::f32 || t == DType::f64 || t == DType::bf16 || t == DType::f16;
}
constexpr bool is_integral(DType t) { return !is_floating(t); }

// ---- bf16: the top 16 bits of an f32 ------------------------------------------------
inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t u; std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return uint16_t(u >> 16);
}
inline float bf16_bits_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16; float f; std::memcpy(&f, &u, 4); return f;
}

// ---- f16 (IEEE binary16) ------------------------------------------------------------
inline uint16_t f32_to_f16_bits(float f) {
  uint32_t x; std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return uint16_t(sign | 0x7e00u);          // NaN
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00u);         // overflow -> inf
  if (ax < 0x38800000u) {                                         // subnormal or zero
    if (ax < 0x33000000u) return uint16_t(sign);                  // < half the smallest
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    int shift = 126 - int(ax >> 23);                              // value = m * 2^-24
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = ax - 0x38000000u;                                  // rebias 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);                                 // round to nearest even
  return uint16_t(sign | (r >> 13));
}
inline float f16_bits_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
  if (e == 0) {
    if (m == 0) u = sign;
    else {  // subnormal: normalise
      int s = 0;
      while (!(m & 0x400u)) { m <<= 1; ++s; }
      u = sign | uint32_t(113 - s) << 23 | (m & 0x3ffu) << 13;
    }
  } else if (e == 31) u = sign | 0x7f800000u | m << 13;
  else u = sign | (e + 112) << 23 | m << 13;
  float f; std::memcpy(&f, &u, 4); return f;
}

// Storage types for half precision on the CPU side (the bits only).
struct bf16 { uint16_t bits; };
struct f16 { uint16_t bits; };

}  // namespace mm
