// Matrix products through BLAS (OpenBLAS on the CPU, cuBLAS on GPUs).
#pragma once
#include "runtime/tensor.h"

namespace mm {

// a [..., M, K] @ b [..., K, N] -> [..., M, N]; batch dims broadcast. Transposed views
// are passed to BLAS as transposes, never copied.
Tensor matmul(const Tensor& a, const Tensor& b);
// x [..., IN] @ w[OUT, IN]^T + b [OUT] -> [..., OUT] (PyTorch's nn.Linear layout).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

}  // namespace mm
