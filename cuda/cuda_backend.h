// The CUDA backend: the kernels of ops/backend.h on an NVIDIA GPU, or, in the default
// build, on the CPU emulator (cuda/emu/), which runs the same kernel sources.
//
//   mm::cuda::init();                              // registers device cuda:0 (throws if none)
//   Tensor x = to(randn({B, T, C}, gen), Device::cuda());
//   Tensor y = layer_norm(x, w, b);                // kernels in cuda/norm.cu
//   Tensor h = to(y, Device::cpu());
//
// Host code here checks and dispatches; kernels live in cuda/*.cu behind cuda/kernels.h;
// memory comes from the caching allocator (cuda/allocator.h); work goes on the current
// stream (cuda/stream.h); host <-> device copies through cuda/transfer.h. Matrix products
// go to cuBLAS on a GPU and to the tiled kernel of cuda/gemm.cu under the emulator.
// Which build: the emulator unless compiled by nvcc or with MM_CUDA_REAL (kernel_api.h).
#pragma once
#include <string>

#include "cuda/allocator.h"
#include "ops/backend.h"

namespace mm::cuda {

// Makes device cuda:`device` available to tensors and ops (registers the backend and the
// allocator); idempotent. Throws a one-line mm::Error when there is no usable device.
void init(int device = 0);
// Whether init() has run and the device is registered.
bool initialized();
// Unregisters the device (new cuda tensors fail as in a CPU-only build); tensors still
// alive keep their memory. For tests that need the CPU-only behaviour back.
void shutdown();
// "cpu", "cuda", "cuda:N" -> the Device, calling init() for a CUDA device: what a
// `--device` flag should go through.
Device select_device(const std::string& name);
// Whether this library runs kernels on the CPU emulator (false: a real GPU build).
bool emulated();

// The device allocator (stats, limits, empty_cache). init() must have run.
CudaCachingAllocator& allocator();

class CudaBackend final : public Backend {
 public:
  const char* name() const override { return "cuda"; }

  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& dst, double value) override;
  void fill_random(Tensor& dst, bool normal, double lo, double hi, uint64_t seed, uint64_t offset) override;

  void unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) override;
  void unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                      double alpha) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t red, int64_t inner, Tensor& out,
              Tensor* argmax) override;
  double sum_squares(const Tensor& x) override;

  void gemm(const GemmArgs& g) override;

  void softmax(const Tensor& x, Tensor& y, bool log) override;
  void softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) override;

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

  void index_select(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                    Tensor& out) override;
  void index_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                 Tensor& gx) override;
  void gather(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n, int64_t inner, Tensor& out) override;
  void scatter_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                   Tensor& gx) override;

  void dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) override;
  void drop_path(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) override;

  void cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& allowed,
                     const CrossEntropyArgs& a, Tensor& loss, Tensor& lse) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& allowed,
                              const CrossEntropyArgs& a, const Tensor& lse, const Tensor& gloss,
                              Tensor& glogits) override;

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias, const Tensor& key_pad,
                 bool causal, double scale, Tensor& out, Tensor& probs) override;
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                          const Tensor& gout, double scale, Tensor& gq, Tensor& gk, Tensor& gv,
                          Tensor* gbias) override;

  void adamw(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps,
             double wd, double c1, double c2) override;

  void conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a, Tensor& y) override;
  void conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Conv2dArgs& a, Tensor* gx,
                       Tensor* gw, Tensor* gb) override;
  void max_pool2d(const Tensor& x, int64_t kh, int64_t kw, const Conv2dArgs& a, Tensor& y,
                  Tensor& argmax) override;
  void max_pool2d_backward(const Tensor& gy, const Tensor& argmax, Tensor& gx) override;
};

}  // namespace mm::cuda
