// Branch-free float math that GCC vectorises (std::exp/std::tanh calls do not): the
// memory-bound kernels (GELU, softmax, LayerNorm) must run at memory speed.
// Double versions forward to <cmath>: f64 is for gradcheck accuracy, not speed.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace mm::cpu {

// e^x for x in [-100, 88]: a reduction to r = x - n ln2 with |r| <= ln2/2, a Taylor
// polynomial of degree 6 (relative error < 2e-7) and 2^n put straight into the exponent
// bits (n <= -127 gives a zero scale, so tiny results are exactly 0). Written so GCC
// vectorises the loops that call it at -O2 (with -fno-trapping-math, set in the Makefile):
// rounding adds and subtracts 1.5 * 2^23 since roundf has no vector form.
inline float exp_reduced(float x) {
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / ln 2)
  const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  float p = 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t ni = int32_t(n);
  ni = ni < -127 ? -127 : ni;
  const int32_t bits = (ni + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

// e^x on the whole f32 range (clamped to [-87, 88]: no overflow to inf, no denormals).
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;  // selects, not branches
  x = x > 88.0f ? 88.0f : x;
  return exp_reduced(x);
}
inline double fast_exp(double x) { return std::exp(x); }

// e^d for d <= 0 or -inf, the arguments softmax produces (x - max, or a log-probability).
// Unlike fast_exp, results below 2^-126 are exactly 0: a masked (-inf) logit gets
// probability 0, not 1e-38. The clamp to >= -100 is an integer min on the float's bits
// (for d <= -0 the unsigned bit patterns order like the magnitudes).
inline float exp_nonpos(float d) {
  uint32_t u;
  std::memcpy(&u, &d, 4);
  u = u < 0xC2C80000u ? u : 0xC2C80000u;  // max(d, -100) for d <= -0 (0xC2C80000 is -100.0f)
  float x;
  std::memcpy(&x, &u, 4);
  return exp_reduced(x);
}
inline double exp_nonpos(double d) { return std::exp(d); }

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
// erf(x) with absolute error < 6e-7 in f32 (Abramowitz & Stegun 7.1.26: a rational polynomial
// in t = 1 / (1 + p|x|) times e^(-x^2), odd by copysign). libm's erff does not vectorise
// and was 7% of a demo training step.
inline float fast_erf(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  const float poly =
      t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  return std::copysign(1.0f - poly * exp_nonpos(-a * a), x);
}
inline double fast_erf(double x) { return std::erf(x); }

// GELU, exact: x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); d/dx = Phi(x) + x phi(x).
template <typename T> inline T gelu_erf(T x) { return T(0.5) * x * (T(1) + fast_erf(x * T(0.7071067811865476))); }
template <typename T> inline T gelu_erf_grad(T x) {
  return T(0.5) * (T(1) + fast_erf(x * T(0.7071067811865476))) +
         x * T(0.3989422804014327) * exp_nonpos(T(-0.5) * x * x);
}

}  // namespace mm::cpu
