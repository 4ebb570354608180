// Unary math (forward and derivative), broadcasting binary ops, and where.
#include <cmath>

#include "ops/cpu/cpu_backend.h"
#include "ops/cpu/strided.h"
#include "ops/cpu/vec_math.h"

namespace mm {
using namespace cpu;

namespace {

template <typename T>
void unary_kernel(UnaryOp op, const T* x, T* y, int64_t n, T a) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    switch (op) {
#define LOOP(expr) _Pragma("omp simd") for (int64_t i = b; i < e; ++i) { const T v = x[i]; y[i] = (expr); } break
      case UnaryOp::neg: LOOP(-v);
      case UnaryOp::exp: LOOP(fast_exp(v));
      case UnaryOp::log: LOOP(std::log(v));
      case UnaryOp::tanh: LOOP(std::tanh(v));
      case UnaryOp::sqrt: LOOP(std::sqrt(v));
      case UnaryOp::rsqrt: LOOP(T(1) / std::sqrt(v));
      case UnaryOp::abs: LOOP(std::fabs(v));
      case UnaryOp::sigmoid: LOOP(fast_sigmoid(v));
      case UnaryOp::relu: LOOP(v > T(0) ? v : T(0));
      case UnaryOp::gelu_tanh: LOOP(gelu_tanh(v));
      case UnaryOp::gelu_erf: LOOP(gelu_erf(v));
      case UnaryOp::silu: LOOP(v * fast_sigmoid(v));
      case UnaryOp::pow: LOOP(std::pow(v, a));
      case UnaryOp::scale: LOOP(v * a);
      case UnaryOp::add_scalar: LOOP(v + a);
#undef LOOP
    }
  });
}

// gx = gy * f'(x); y = f(x) where that is cheaper.
template <typename T>
void unary_grad_kernel(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T a) {
  parallel_for(n, kGrain, [&](int64_t b, int64_t e) {
    switch (op) {
#define LOOP(expr) _Pragma("omp simd") for (int64_t i = b; i < e; ++i) { const T v = x[i], o = y[i], g = gy[i]; (void)v; (void)o; gx[i] = (expr); } break
      case UnaryOp::neg: LOOP(-g);
      case UnaryOp::exp: LOOP(g * o);
      case UnaryOp::log: LOOP(g / v);
      case UnaryOp::tanh: LOOP(g * (T(1) - o * o));
      case UnaryOp::sqrt: LOOP(g * T(0.5) / o);
      case UnaryOp::rsqrt: LOOP(g * T(-0.5) * o * o * o);
      case UnaryOp::abs: LOOP(v > T(0) ? g : (v < T(0) ? -g : T(0)));
      case UnaryOp::sigmoid: LOOP(g * o * (T(1) - o));
      case UnaryOp::relu: LOOP(v > T(0) ? g : T(0));
      case UnaryOp::gelu_tanh: LOOP(g * gelu_tanh_grad(v));
      case UnaryOp::gelu_erf: LOOP(g * gelu_erf_grad(v));
      case UnaryOp::silu: LOOP(g * (fast_sigmoid(v) * (T(1) + v * (T(1) - fast_sigmoid(v)))));
      case UnaryOp::pow: LOOP(g * a * std::pow(v, a - T(1)));
      case UnaryOp::scale: LOOP(g * a);
      case UnaryOp::add_scalar: LOOP(g);
#undef LOOP
    }
  });
}

template <typename T, typename O>
inline O apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return O(a + b);
    case BinaryOp::sub: return O(a - b);
    case BinaryOp::mul: return O(a * b);
    case BinaryOp::div: return O(a / b);
    case BinaryOp::maximum: return O(a > b ? a : b);
    case BinaryOp::minimum: return O(a < b ? a : b);
    case BinaryOp::eq: return O(a == b);
    case BinaryOp::lt: return O(a < b);
    case BinaryOp::gt: return O(a > b);
  }
  return O(0);
}

template <typename T, typename O>
void binary_kernel(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const T* pa = static_cast<const T*>(a.impl()->storage->data);
  const T* pb = static_cast<const T*>(b.impl()->storage->data);
  O* po = out.data<O>();
  for_each_row<3>(out.shape(), {a.strides(), b.strides(), out.strides()}, {a.offset(), b.offset(), 0}, kGrain,
                  [&](const std::array<int64_t, 3>& o, int64_t len, const std::array<int64_t, 3>& st) {
    const T* x = pa + o[0];
    const T* y = pb + o[1];
    O* z = po + o[2];
    // The common layouts get loops the compiler vectorises; the op switch is hoisted.
#define BODY(XI, YI)                                                                     \
    switch (op) {                                                                        \
      case BinaryOp::add: _Pragma("omp simd") for (int64_t j = 0; j < len; ++j) z[j] = O(XI + YI); break; \
      case BinaryOp::sub: _Pragma("omp simd") for (int64_t j = 0; j < len; ++j) z[j] = O(XI - YI); break; \
      case BinaryOp::mul: _Pragma("omp simd") for (int64_t j = 0; j < len; ++j) z[j] = O(XI * YI); break; \
      case BinaryOp::div: _Pragma("omp simd") for (int64_t j = 0; j < len; ++j) z[j] = O(XI / YI); break; \
      default: for (int64_t j = 0; j < len; ++j) z[j] = apply_binary<T, O>(op, XI, YI); break; \
    }
    if (st[0] == 1 && st[1] == 1) { BODY(x[j], y[j]) }
    else if (st[0] == 1 && st[1] == 0) { const T yv = y[0]; BODY(x[j], yv) }
    else if (st[0] == 0 && st[1] == 1) { const T xv = x[0]; BODY(xv, y[j]) }
    else { BODY(x[j * st[0]], y[j * st[1]]) }
#undef BODY
  });
}

}  // namespace

void CpuBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) {
  MM_DISPATCH_FLOAT(x.dtype(), "unary", unary_kernel<T>(op, x.data<T>(), out.data<T>(), x.numel(), T(alpha)));
}

void CpuBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                                double alpha) {
  MM_DISPATCH_FLOAT(x.dtype(), "unary_backward",
                    unary_grad_kernel<T>(op, x.data<T>(), y.data<T>(), gy.data<T>(), gx.data<T>(), x.numel(),
                                         T(alpha)));
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const bool cmp = op == BinaryOp::eq || op == BinaryOp::lt || op == BinaryOp::gt;
  if (cmp) {
    MM_CHECK(out.dtype() == DType::boolean, "binary: comparison output must be bool");
    if (a.dtype() == DType::i64) { binary_kernel<int64_t, uint8_t>(op, a, b, out); return; }
    if (a.dtype() == DType::i32) { binary_kernel<int32_t, uint8_t>(op, a, b, out); return; }
    MM_DISPATCH_FLOAT(a.dtype(), "binary", (binary_kernel<T, uint8_t>(op, a, b, out)));
    return;
  }
  if (a.dtype() == DType::i64) { binary_kernel<int64_t, int64_t>(op, a, b, out); return; }
  if (a.dtype() == DType::i32) { binary_kernel<int32_t, int32_t>(op, a, b, out); return; }
  MM_DISPATCH_FLOAT(a.dtype(), "binary", (binary_kernel<T, T>(op, a, b, out)));
}

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  const uint8_t* pc = static_cast<const uint8_t*>(cond.impl()->storage->data);
  MM_DISPATCH_FLOAT(a.dtype(), "where", {
    const T* pa = static_cast<const T*>(a.impl()->storage->data);
    const T* pb = static_cast<const T*>(b.impl()->storage->data);
    T* po = out.data<T>();
    for_each_row<4>(out.shape(), {cond.strides(), a.strides(), b.strides(), out.strides()},
                    {cond.offset(), a.offset(), b.offset(), 0}, kGrain,
                    [&](const std::array<int64_t, 4>& o, int64_t len, const std::array<int64_t, 4>& st) {
      for (int64_t j = 0; j < len; ++j)
        po[o[3] + j] = pc[o[0] + j * st[0]] ? pa[o[1] + j * st[1]] : pb[o[2] + j * st[2]];
    });
  });
}

}  // namespace mm
