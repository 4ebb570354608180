#include "ops/op_util.h"

namespace mm {

void check_defined(std::string_view op, const Tensor& t, std::string_view arg) {
  MM_CHECK(t.defined(), op, ": argument '", arg, "' is an undefined tensor");
}
void check_same_device(std::string_view op, const Tensor& a, const Tensor& b) {
  MM_CHECK(a.device() == b.device(), op, ": tensors on different devices (", a.device(), " and ",
           b.device(), "); move one with to()");
}
void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b) {
  MM_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " ", a.shape(),
           " and ", dtype_name(b.dtype()), " ", b.shape(), "); cast one first");
}
void check_floating(std::string_view op, const Tensor& t) {
  MM_CHECK(t.dtype() == DType::f32 || t.dtype() == DType::f64 ||
               (!t.device().is_cpu() && is_floating(t.dtype())),
           op, ": expected a floating tensor (f32 or f64 on the CPU), got ", dtype_name(t.dtype()),
           " of shape ", t.shape());
}
void check_dim(std::string_view op, const Tensor& t, int dim, std::string_view what) {
  MM_CHECK(t.dim() == dim, op, ": expected ", what, " to be ", dim, "-D, got shape ", t.shape());
}

Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b) {
  Shape out;
  int n = a.n > b.n ? a.n : b.n;
  out.n = n;
  for (int i = 0; i < n; ++i) {
    int64_t da = i - (n - a.n) >= 0 ? a[i - (n - a.n)] : 1;
    int64_t db = i - (n - b.n) >= 0 ? b[i - (n - b.n)] : 1;
    MM_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
             " cannot be broadcast (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Shape infer_shape(std::string_view op, const Shape& target, int64_t numel) {
  Shape s = target;
  int infer = -1;
  int64_t known = 1;
  for (int i = 0; i < s.n; ++i) {
    if (s[i] == -1) {
      MM_CHECK(infer < 0, op, ": shape ", target, " has more than one -1");
      infer = i;
    } else {
      MM_CHECK(s[i] >= 0, op, ": negative size in shape ", target);
      known *= s[i];
    }
  }
  if (infer >= 0) {
    MM_CHECK(known != 0 && numel % known == 0, op, ": cannot infer -1 in ", target, " for ",
             numel, " elements");
    s[infer] = numel / known;
  }
  MM_CHECK(s.numel() == numel, op, ": shape ", target, " does not hold ", numel, " elements");
  return s;
}

int64_t prod(const Shape& s, int b, int e) {
  int64_t p = 1;
  for (int i = b; i < e; ++i) p *= s[i];
  return p;
}

}  // namespace mm
