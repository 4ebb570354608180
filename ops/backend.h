// The kernel interface every device implements: ops/cpu/ for the host, cuda/ for GPUs.
// Ops (ops/*.cpp) check arguments, allocate outputs, pick the backend of their inputs'
// device with backend_for(), call a kernel and record the autograd rule; kernels only
// compute. This is the one dispatch point: no `if (cuda)` anywhere else.
//
// Conventions for every kernel below:
//  - Tensors passed as `out`/`g*` are allocated by the op, contiguous, on the same device.
//  - Inputs are contiguous unless the comment says "strided" (then any strides, including
//    0 for broadcast dims, as produced by expand()).
//  - Floating kernels support f32 and f64 (f64 is what gradcheck runs in); the CUDA
//    backend adds bf16/f16 where its comment says so.
// Shape letters: M rows, N columns (the reduced/normalised axis), B batch, C channels,
// H heads or height, W width, T time, D head size, V vocabulary.
#pragma once
#include <cstdint>

#include "runtime/philox.h"
#include "runtime/tensor.h"

namespace mm {

enum class UnaryOp : uint8_t {
  neg, exp, log, tanh, sqrt, rsqrt, abs, sigmoid,
  relu, gelu_tanh, gelu_erf, silu,
  pow,        // x^alpha
  scale,      // x * alpha
  add_scalar  // x + alpha
};
enum class BinaryOp : uint8_t { add, sub, mul, div, maximum, minimum, eq, lt, gt };
enum class ReduceOp : uint8_t { sum, max };

// C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b] for b < batch; row-major; op = transpose
// when trans_*. Pointers are to the first element; strides per batch in elements.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr; int64_t lda = 0, stride_a = 0;
  const void* b = nullptr; int64_t ldb = 0, stride_b = 0;
  void* c = nullptr; int64_t ldc = 0, stride_c = 0;
  int64_t batch = 1;
  double alpha = 1.0, beta = 0.0;
  DType dtype = DType::f32;
};

struct Conv2dArgs {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, groups = 1;
};

struct CrossEntropyArgs {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"  // the defaults below ignore their arguments
// A kernel a backend does not implement (yet: a port in progress) throws an error naming
// the op and the backend, never a crash.
struct Backend {
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  [[noreturn]] void unsupported(const char* kernel) const;

  // ---- memory ---------------------------------------------------------------------
  // dst = src, elementwise, same shape; src and dst strided; converts dtype.
  // Either side may be on another device when this backend handles transfers.
  virtual void copy(const Tensor& src, Tensor& dst) { unsupported("copy"); }
  virtual void fill(Tensor& dst, double value) { unsupported("fill"); }
  // dst[i] = uniform [lo, hi) or normal (mean=lo, std=hi) from Philox(seed, offset, i).
  virtual void fill_random(Tensor& dst, bool normal, double lo, double hi, uint64_t seed,
                           uint64_t offset) { unsupported("fill_random"); }

  // ---- elementwise ----------------------------------------------------------------
  virtual void unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) { unsupported("unary"); }
  // gx = gy * d op(x)/dx; y = op(x) (some derivatives are cheaper from y).
  virtual void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy,
                              Tensor& gx, double alpha) { unsupported("unary_backward"); }
  // out = a op b; a, b strided views already broadcast to out's shape. Comparison ops
  // write 1/0 in out's dtype.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) { unsupported("binary"); }
  // out = cond ? a : b; all three strided views broadcast to out's shape; cond is u8/bool.
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) { unsupported("where"); }

  // ---- reductions over the middle axis of x viewed as [outer, red, inner] -----------
  // out [outer, inner]; for max, argmax [outer, inner] (i64, first maximum).
  virtual void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t red, int64_t inner,
                      Tensor& out, Tensor* argmax) { unsupported("reduce"); }
  // Sum of squares of all elements, accumulated in double (for gradient-norm clipping).
  virtual double sum_squares(const Tensor& x) { unsupported("sum_squares"); }

  // ---- matrix products ------------------------------------------------------------
  virtual void gemm(const GemmArgs& g) { unsupported("gemm"); }

  // ---- softmax over the last axis of x [M, N] ----------------------------------------
  virtual void softmax(const Tensor& x, Tensor& y, bool log) { unsupported("softmax"); }
  // gx from y = softmax(x) (or log-softmax) and gy.
  virtual void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) { unsupported("softmax_backward"); }

  // ---- normalisation ----------------------------------------------------------------
  // LayerNorm over N of x [M, N]; w, b [N] (may be undefined); mean, rstd [M] saved.
  virtual void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps,
                          Tensor& y, Tensor& mean, Tensor& rstd) { unsupported("layer_norm"); }
  // gw, gb accumulate (+=) so they may be zero-initialised by the op.
  virtual void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& gy, Tensor& gx,
                                   Tensor* gw, Tensor* gb) { unsupported("layer_norm_backward"); }
  // GroupNorm on x [B, C, S] (S = spatial size), G groups of C/G channels; w, b [C];
  // mean, rstd [B, G].
  virtual void group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups,
                          double eps, Tensor& y, Tensor& mean, Tensor& rstd) { unsupported("group_norm"); }
  virtual void group_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean,
                                   const Tensor& rstd, int64_t groups, const Tensor& gy,
                                   Tensor& gx, Tensor* gw, Tensor* gb) { unsupported("group_norm_backward"); }
  // BatchNorm on x [B, C, S]: statistics per channel over B and S. Training: batch
  // statistics (mean, rstd [C] saved) and running stats updated with momentum (unbiased
  // variance, as PyTorch); eval: running stats (mean/rstd computed from them).
  virtual void batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& running_mean,
                          Tensor& running_var, bool training, double momentum, double eps,
                          Tensor& y, Tensor& mean, Tensor& rstd) { unsupported("batch_norm"); }
  virtual void batch_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean,
                                   const Tensor& rstd, bool training, const Tensor& gy,
                                   Tensor& gx, Tensor* gw, Tensor* gb) { unsupported("batch_norm_backward"); }

  // ---- indexing ----------------------------------------------------------------------
  // out [outer, K, inner] = x [outer, N, inner] at idx [K] along the middle axis.
  virtual void index_select(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n,
                            int64_t inner, Tensor& out) { unsupported("index_select"); }
  // gx [outer, N, inner] += g [outer, K, inner] scattered at idx [K] (deterministic).
  virtual void index_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n,
                         int64_t inner, Tensor& gx) { unsupported("index_add"); }
  // out [outer, K, inner] = x [outer, N, inner] at idx [outer, K, inner] (torch.gather).
  virtual void gather(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n,
                      int64_t inner, Tensor& out) { unsupported("gather"); }
  virtual void scatter_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n,
                           int64_t inner, Tensor& gx) { unsupported("scatter_add"); }

  // ---- randomness (Philox: the same mask on every backend) ---------------------------
  // out = x * keep / (1 - p), keep[i] = uniform(seed, offset, i) >= p. Backward applies
  // the same call to the gradient.
  virtual void dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) { unsupported("dropout"); }
  // Per-sample (stochastic depth): x [B, R]; sample b kept with probability 1-p.
  virtual void drop_path(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) { unsupported("drop_path"); }

  // ---- convolution and pooling (NCHW) --------------------------------------------------
  // x [B, Cin, H, W], w [Cout, Cin/groups, KH, KW], b [Cout] or undefined -> y [B, Cout, OH, OW].
  virtual void conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a,
                      Tensor& y) { unsupported("conv2d"); }
  // Overwrites gx, gw and gb (each may be null when not needed).
  virtual void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy,
                               const Conv2dArgs& a, Tensor* gx, Tensor* gw, Tensor* gb) { unsupported("conv2d_backward"); }
  // y [B, C, OH, OW], argmax [B, C, OH, OW] (i64 flat index into H*W; padding is -inf).
  virtual void max_pool2d(const Tensor& x, int64_t kh, int64_t kw, const Conv2dArgs& a,
                          Tensor& y, Tensor& argmax) { unsupported("max_pool2d"); }
  // Adds into gx (the op zero-fills it first).
  virtual void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, Tensor& gx) { unsupported("max_pool2d_backward"); }

  // ---- fused loss ----------------------------------------------------------------------
  // logits [M, V], targets [M] (i64), allowed: undefined or a u8 mask broadcastable to
  // [M, V] (strided; row stride 0 for one mask for all rows). Per row: loss [M] (0 where
  // ignored), lse [M] = logsumexp over allowed tokens (saved for backward). Probabilities
  // are never stored.
  virtual void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& allowed,
                             const CrossEntropyArgs& a, Tensor& loss, Tensor& lse) { unsupported("cross_entropy"); }
  // glogits [M, V] = gloss[row] * (softmax - smoothed one-hot), 0 outside allowed/ignored.
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& targets,
                                      const Tensor& allowed, const CrossEntropyArgs& a,
                                      const Tensor& lse, const Tensor& gloss, Tensor& glogits) { unsupported("cross_entropy_backward"); }

  // ---- attention ------------------------------------------------------------------------
  // q [B, H, Tq, D], k, v [B, H, Tk, D]; bias: undefined or strided, broadcast to
  // [B, H, Tq, Tk]; key_pad: undefined or u8 [B, Tk] (1 = padding, never attended);
  // causal masks keys j > i + (Tk - Tq). out [B, H, Tq, D]; probs [B, H, Tq, Tk] saved
  // for backward. Rows with no visible key give zeros.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                         const Tensor& key_pad, bool causal, double scale, Tensor& out,
                         Tensor& probs) { unsupported("attention"); }
  // gbias (if asked) is [B, H, Tq, Tk]: the op sums it down to the bias's own shape.
  virtual void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const Tensor& probs, const Tensor& gout, double scale,
                                  Tensor& gq, Tensor& gk, Tensor& gv, Tensor* gbias) { unsupported("attention_backward"); }

  // ---- optimizer -------------------------------------------------------------------------
  // One AdamW step on contiguous p, g, m, v (f32 or f64); bias corrections c1 = 1-b1^t,
  // c2 = 1-b2^t precomputed; decoupled weight decay p -= lr*wd*p.
  virtual void adamw(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1,
                     double b2, double eps, double wd, double c1, double c2) { unsupported("adamw"); }
};
#pragma GCC diagnostic pop

// The backend of a device; throws a clear error when the device is not built in.
Backend& backend_for(Device d);
void register_backend(DeviceType t, Backend* b);

}  // namespace mm
