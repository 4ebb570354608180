// Mixed precision by autocast (as PyTorch's torch.autocast, for the matrix products only):
// inside an AutocastGuard(DType::bf16), matmul and linear on a GPU take their f32 inputs
// as bf16 copies, multiply on the tensor cores with f32 accumulation (cuBLAS compute type
// 32F), and return f32. Parameters stay f32 (the master weights the optimizer updates);
// gradients come back through the casts as f32. Everything else (norms, softmax, losses,
// attention) stays f32. CPU tensors are left alone: OpenBLAS has no bf16 GEMM worth it.
//
//   { AutocastGuard amp(DType::bf16); loss = sequence_loss(model.forward(in), ...).loss; }
//   autograd::backward(loss);   // outside the guard: the graph already holds the casts
#pragma once
#include "runtime/tensor.h"

namespace mm {

// The autocast dtype of this thread: f32 means off.
DType autocast_dtype();

class AutocastGuard {
 public:
  explicit AutocastGuard(DType dt);  // bf16 or f16; f32 turns it off
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DType prev_;
};

// Whether a product with this input runs in the autocast dtype: autocast on, the input
// f32 and on a GPU.
bool autocast_applies(const Tensor& x);

}  // namespace mm
