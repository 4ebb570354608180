// The CPU backend: one class, its kernels spread over ops/cpu/<family>.cpp. Kernels are
// templates over f32/f64 (f64 is what gradcheck runs), parallelised with parallel_for.
#pragma once
#include "ops/backend.h"

namespace mm {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  // memory.cpp
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& dst, double value) override;
  void fill_random(Tensor& dst, bool normal, double lo, double hi, uint64_t seed, uint64_t offset) override;
  // elementwise.cpp
  void unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) override;
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                      double alpha) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;
  // reduce.cpp
  void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t red, int64_t inner, Tensor& out,
              Tensor* argmax) override;
  double sum_squares(const Tensor& x) override;
  // gemm.cpp
  void gemm(const GemmArgs& g) override;
  // index.cpp (scatter_add is also the backward of max)
  void index_select(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                    Tensor& out) override;
  void index_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                 Tensor& gx) override;
  void gather(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
              Tensor& out) override;
  void scatter_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                   Tensor& gx) override;
  // ---- further families: each helper adds its declarations below its own marker ----
  // softmax.cpp / norm.cpp / loss.cpp / attention.cpp
  // softmax.cpp
  void softmax(const Tensor& x, Tensor& y, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) override;
  // norm.cpp
  void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                  Tensor& rstd) override;
  void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                           const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) override;
  void group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups, double eps, Tensor& y,
                  Tensor& mean, Tensor& rstd) override;
  void group_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                           int64_t groups, const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) override;
  void batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& running_mean, Tensor& running_var,
                  bool training, double momentum, double eps, Tensor& y, Tensor& mean, Tensor& rstd) override;
  void batch_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                           bool training, const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) override;
  // loss.cpp
  void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& allowed, const CrossEntropyArgs& a,
                     Tensor& loss, Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& allowed,
                              const CrossEntropyArgs& a, const Tensor& lse, const Tensor& gloss,
                              Tensor& glogits) override;
  // attention.cpp
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, const Tensor& key_pad,
                 bool causal, double scale, Tensor& out, Tensor& probs) override;
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                          const Tensor& gout, double scale, Tensor& gq, Tensor& gk, Tensor& gv,
                          Tensor* gbias) override;
  // dropout.cpp / conv.cpp
  void dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) override;
  void drop_path(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) override;
  void conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a, Tensor& y) override;
  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Conv2dArgs& a, Tensor* gx,
                       Tensor* gw, Tensor* gb) override;
  void max_pool2d(const Tensor& x, int64_t kh, int64_t kw, const Conv2dArgs& a, Tensor& y,
                  Tensor& argmax) override;
  void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, Tensor& gx) override;
  // adamw.cpp
  void adamw(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps,
             double wd, double c1, double c2) override;
};

// Calls body with T = float or double according to dt; other dtypes throw naming `op`.
#define MM_DISPATCH_FLOAT(dt, op, ...)                                                   \
  do {                                                                                  \
    switch (dt) {                                                                       \
      case ::mm::DType::f32: { using T = float; __VA_ARGS__; break; }                   \
      case ::mm::DType::f64: { using T = double; __VA_ARGS__; break; }                  \
      default:                                                                          \
        throw ::mm::Error(::mm::cat(op, ": the cpu backend supports f32 and f64, not ", \
                                    ::mm::dtype_name(dt)));                             \
    }                                                                                   \
  } while (0)

}  // namespace mm
