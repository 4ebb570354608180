// Branch-free float math that GCC vectorises (std::exp/std::tanh calls do not): the
// memory-bound kernels (GELU, softmax, LayerNorm) must run at memory speed.
// Double versions forward to <cmath>: f64 is for gradcheck accuracy, not speed.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace mm::cpu {

// e^x with relative error < 2e-7 on the whole f32 range (Taylor degree 6 after a
// reduction to |r| <= ln2/2; 2^n put straight into the exponent bits).
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = __builtin_roundf(x * 1.44269504088896341f);
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}
inline double fast_exp(double x) { return std::exp(x); }

inline float fast_tanh(float x) { return 1.0f - 2.0f / (fast_exp(2.0f * x) + 1.0f); }
inline double fast_tanh(double x) { return std::tanh(x); }

inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }
inline double fast_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
constexpr double kSqrt2OverPi = 0.7978845608028654;
template <typename T> inline T gelu_tanh(T x) {
  const T u = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
  return T(0.5) * x * (T(1) + fast_tanh(u));
}
// d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
template <typename T> inline T gelu_tanh_grad(T x) {
  const T u = T(kSqrt2OverPi) * (x + T(0.044715) * x * x * x);
  const T t = fast_tanh(u);
  return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * T(kSqrt2OverPi) * (T(1) + T(3 * 0.044715) * x * x);
}
// GELU, exact: x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); d/dx = Phi(x) + x phi(x).
template <typename T> inline T gelu_erf(T x) { return T(0.5) * x * (T(1) + std::erf(x * T(0.7071067811865476))); }
template <typename T> inline T gelu_erf_grad(T x) {
  return T(0.5) * (T(1) + std::erf(x * T(0.7071067811865476))) + x * T(0.3989422804014327) * std::exp(T(-0.5) * x * x);
}

}  // namespace mm::cpu
