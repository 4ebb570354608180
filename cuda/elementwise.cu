// Unary math (forward and derivative), broadcasting binary ops, and where.
//
// Contiguous operands take the packed path: each thread moves 16 bytes per load and store
// (4 floats, 8 bf16, 2 doubles), the 128-bit accesses a GPU needs to reach its memory
// bandwidth; the tail that does not fill a pack (n % 4 floats) goes element by element.
// Broadcast and strided views go through Strided<K>::offsets (cuda/strided.h).
#include "cuda/kernel_util.cuh"
#include "cuda/kernels.h"

namespace mm::cuda::kernels {
namespace {

constexpr unsigned kThreads = 256;

template <class A>
__device__ __forceinline__ A sigmoid(A v) { return A(1) / (A(1) + d_exp(-v)); }

// The formulas of ops/cpu/elementwise.cpp and ops/cpu/vec_math.h, in the compute type A.
template <class A>
__device__ __forceinline__ A unary_f(UnaryOp op, A v, A a) {
  constexpr A kS2P = A(0.7978845608028654);  // sqrt(2 / pi)
  switch (op) {
    case UnaryOp::neg: return -v;
    case UnaryOp::exp: return d_exp(v);
    case UnaryOp::log: return d_log(v);
    case UnaryOp::tanh: return d_tanh(v);
    case UnaryOp::sqrt: return d_sqrt(v);
    case UnaryOp::rsqrt: return A(1) / d_sqrt(v);
    case UnaryOp::abs: return d_abs(v);
    case UnaryOp::sigmoid: return sigmoid(v);
    case UnaryOp::relu: return v > A(0) ? v : A(0);
    case UnaryOp::gelu_tanh: return A(0.5) * v * (A(1) + d_tanh(kS2P * (v + A(0.044715) * v * v * v)));
    case UnaryOp::gelu_erf: return A(0.5) * v * (A(1) + d_erf(v * A(0.7071067811865476)));
    case UnaryOp::silu: return v * sigmoid(v);
    case UnaryOp::pow: return d_pow(v, a);
    case UnaryOp::scale: return v * a;
    case UnaryOp::add_scalar: return v + a;
  }
  return v;
}

// d op(x) / dx * g, from x (v) or the output y (o) where that is cheaper.
template <class A>
__device__ __forceinline__ A unary_grad_f(UnaryOp op, A v, A o, A g, A a) {
  constexpr A kS2P = A(0.7978845608028654);
  switch (op) {
    case UnaryOp::neg: return -g;
    case UnaryOp::exp: return g * o;
    case UnaryOp::log: return g / v;
    case UnaryOp::tanh: return g * (A(1) - o * o);
    case UnaryOp::sqrt: return g * A(0.5) / o;
    case UnaryOp::rsqrt: return g * A(-0.5) * o * o * o;
    case UnaryOp::abs: return v > A(0) ? g : (v < A(0) ? -g : A(0));
    case UnaryOp::sigmoid: return g * o * (A(1) - o);
    case UnaryOp::relu: return v > A(0) ? g : A(0);
    case UnaryOp::gelu_tanh: {
      // 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)
      const A t = d_tanh(kS2P * (v + A(0.044715) * v * v * v));
      return g * (A(0.5) * (A(1) + t) + A(0.5) * v * (A(1) - t * t) * kS2P * (A(1) + A(3 * 0.044715) * v * v));
    }
    case UnaryOp::gelu_erf:  // Phi(x) + x phi(x)
      return g * (A(0.5) * (A(1) + d_erf(v * A(0.7071067811865476))) +
                  v * A(0.3989422804014327) * d_exp(A(-0.5) * v * v));
    case UnaryOp::silu: {
      const A s = sigmoid(v);
      return g * (s * (A(1) + v * (A(1) - s)));
    }
    case UnaryOp::pow: return g * a * d_pow(v, a - A(1));
    case UnaryOp::scale: return g * a;
    case UnaryOp::add_scalar: return g;
  }
  return g;
}

template <class T>
__global__ void unary_kernel(UnaryOp op, const T* __restrict__ x, T* __restrict__ y, int64_t n, acc_t<T> a,
                             bool packed) {
  constexpr int N = kPack<T>;
  int64_t done = 0;
  if (packed) {
    const int64_t np = n / N;
    const Pack<T, N>* xp = reinterpret_cast<const Pack<T, N>*>(x);
    Pack<T, N>* yp = reinterpret_cast<Pack<T, N>*>(y);
    for (int64_t i = flat_index(); i < np; i += flat_step()) {
      const Pack<T, N> in = xp[i];
      Pack<T, N> out;
MM_UNROLL
      for (int j = 0; j < N; ++j) out.v[j] = st<T>(unary_f(op, ld(in.v[j]), a));
      yp[i] = out;
    }
    done = np * N;
  }
  for (int64_t i = done + flat_index(); i < n; i += flat_step()) y[i] = st<T>(unary_f(op, ld(x[i]), a));
}

template <class T>
__global__ void unary_backward_kernel(UnaryOp op, const T* __restrict__ x, const T* __restrict__ y,
                                      const T* __restrict__ gy, T* __restrict__ gx, int64_t n, acc_t<T> a) {
  for (int64_t i = flat_index(); i < n; i += flat_step())
    gx[i] = st<T>(unary_grad_f(op, ld(x[i]), ld(y[i]), ld(gy[i]), a));
}

template <class A, class O>
__device__ __forceinline__ O binary_f(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::add: return st<O>(a + b);
    case BinaryOp::sub: return st<O>(a - b);
    case BinaryOp::mul: return st<O>(a * b);
    case BinaryOp::div: return st<O>(a / b);
    case BinaryOp::maximum: return st<O>(a > b ? a : b);
    case BinaryOp::minimum: return st<O>(a < b ? a : b);
    case BinaryOp::eq: return O(a == b);
    case BinaryOp::lt: return O(a < b);
    case BinaryOp::gt: return O(a > b);
  }
  return O(0);
}

// O is T for arithmetic and uint8_t (bool) for comparisons.
template <class T, class O>
__global__ void binary_kernel(BinaryOp op, const T* __restrict__ a, const T* __restrict__ b, O* __restrict__ out,
                              Strided<3> d, bool packed) {
  constexpr int N = kPack<T>;
  if (packed) {  // a, b, out contiguous and aligned: one walk, 16-byte loads
    const int64_t np = d.numel / N;
    const Pack<T, N>* ap = reinterpret_cast<const Pack<T, N>*>(a);
    const Pack<T, N>* bp = reinterpret_cast<const Pack<T, N>*>(b);
    Pack<O, N>* op_ = reinterpret_cast<Pack<O, N>*>(out);
    for (int64_t i = flat_index(); i < np; i += flat_step()) {
      const Pack<T, N> x = ap[i], y = bp[i];
      Pack<O, N> z;
MM_UNROLL
      for (int j = 0; j < N; ++j) z.v[j] = binary_f<acc_t<T>, O>(op, ld(x.v[j]), ld(y.v[j]));
      op_[i] = z;
    }
    for (int64_t i = np * N + flat_index(); i < d.numel; i += flat_step())
      out[i] = binary_f<acc_t<T>, O>(op, ld(a[i]), ld(b[i]));
    return;
  }
  for (int64_t i = flat_index(); i < d.numel; i += flat_step()) {
    int64_t off[3];
    d.offsets(i, off);
    out[off[2]] = binary_f<acc_t<T>, O>(op, ld(a[off[0]]), ld(b[off[1]]));
  }
}

template <class T>
__global__ void where_kernel(const uint8_t* __restrict__ c, const T* __restrict__ a, const T* __restrict__ b,
                             T* __restrict__ out, Strided<4> d) {
  for (int64_t i = flat_index(); i < d.numel; i += flat_step()) {
    int64_t off[4];
    d.offsets(i, off);
    out[off[3]] = c[off[0]] ? a[off[1]] : b[off[2]];
  }
}

template <class T, class O>
void launch_binary(BinaryOp op, const void* a, const void* b, void* out, const Strided<3>& d, cudaStream_t s) {
  const bool packed = d.contiguous(0) && d.contiguous(1) && d.contiguous(2) && pack_aligned(a) &&
                      pack_aligned(b) && reinterpret_cast<uintptr_t>(out) % (sizeof(O) * kPack<T>) == 0;
  const int64_t items = packed ? d.numel / kPack<T> + d.numel % kPack<T> : d.numel;
  MM_LAUNCH((binary_kernel<T, O>), dim3(flat_blocks(items, kThreads)), dim3(kThreads), 0, s, op,
            static_cast<const T*>(a), static_cast<const T*>(b), static_cast<O*>(out), d, packed);
}

template <class T>
void launch_binary_as(BinaryOp op, const void* a, const void* b, void* out, const Strided<3>& d, cudaStream_t s) {
  if (op == BinaryOp::eq || op == BinaryOp::lt || op == BinaryOp::gt) launch_binary<T, uint8_t>(op, a, b, out, d, s);
  else launch_binary<T, T>(op, a, b, out, d, s);
}

}  // namespace

void unary(UnaryOp op, DType dt, const void* x, void* y, int64_t n, double alpha, cudaStream_t s) {
  if (n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "unary", {
    const bool packed = pack_aligned(x) && pack_aligned(y);
    const int64_t items = packed ? n / kPack<T> + n % kPack<T> : n;
    MM_LAUNCH(unary_kernel<T>, dim3(flat_blocks(items, kThreads)), dim3(kThreads), 0, s, op,
              static_cast<const T*>(x), static_cast<T*>(y), n, acc_t<T>(alpha), packed);
  });
}

void unary_backward(UnaryOp op, DType dt, const void* x, const void* y, const void* gy, void* gx, int64_t n,
                    double alpha, cudaStream_t s) {
  if (n == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "unary_backward",
                         MM_LAUNCH(unary_backward_kernel<T>, dim3(flat_blocks(n, kThreads)), dim3(kThreads), 0, s,
                                   op, static_cast<const T*>(x), static_cast<const T*>(y),
                                   static_cast<const T*>(gy), static_cast<T*>(gx), n, acc_t<T>(alpha)));
}

void binary(BinaryOp op, DType dt, const void* a, const void* b, void* out, const Strided<3>& d, cudaStream_t s) {
  if (d.numel == 0) return;
  switch (dt) {
    case DType::i32: launch_binary_as<int32_t>(op, a, b, out, d, s); return;
    case DType::i64: launch_binary_as<int64_t>(op, a, b, out, d, s); return;
    default: MM_CUDA_DISPATCH_FLOAT(dt, "binary", launch_binary_as<T>(op, a, b, out, d, s));
  }
}

void where(DType dt, const uint8_t* cond, const void* a, const void* b, void* out, const Strided<4>& d,
           cudaStream_t s) {
  if (d.numel == 0) return;
  MM_CUDA_DISPATCH_FLOAT(dt, "where",
                         MM_LAUNCH(where_kernel<T>, dim3(flat_blocks(d.numel, kThreads)), dim3(kThreads), 0, s,
                                   cond, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), d));
}

}  // namespace mm::cuda::kernels
