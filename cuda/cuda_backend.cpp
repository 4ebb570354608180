#include "cuda/cuda_backend.h"

#include <climits>
#include <cstring>
#include <mutex>
#include <vector>

#include "cuda/cuda_error.h"
#include "cuda/kernels.h"
#include "cuda/stream.h"
#include "cuda/transfer.h"

#ifndef MM_CUDA_EMU
#include <cublas_v2.h>
#endif

namespace mm::cuda {

// ---- registration ------------------------------------------------------------------------

namespace {

std::mutex g_init_mu;
bool g_registered = false;
int g_device = 0;
CudaCachingAllocator* g_allocator = nullptr;  // leaked: tensors may outlive main()
CudaBackend* g_backend = nullptr;

}  // namespace

bool emulated() {
#ifdef MM_CUDA_EMU
  return true;
#else
  return false;
#endif
}

void init(int device) {
  std::lock_guard<std::mutex> lk(g_init_mu);
  if (g_registered) {
    MM_CHECK(device == g_device, "cuda: device cuda:", g_device, " is in use; this process cannot also use cuda:",
             device);
    return;
  }
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    (void)cudaGetLastError();
    throw Error(cat("cuda: no usable CUDA device (",
                    e != cudaSuccess ? cat("cudaGetDeviceCount: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e))
                                     : std::string("cudaGetDeviceCount found 0 devices"),
                    "); run on a machine with an NVIDIA GPU and driver, or use --device cpu"));
  }
  MM_CHECK(device >= 0 && device < count, "cuda: device cuda:", device, " does not exist (", count,
           " device", count == 1 ? "" : "s", " found)");
  MM_CUDA_CHECK(cudaSetDevice(device), "cuda: selecting device cuda:", device);
  if (!g_allocator) {
    g_allocator = new CudaCachingAllocator(device);
    g_backend = new CudaBackend();
  }
  g_device = device;
  register_device_allocator(DeviceType::cuda, g_allocator);
  register_backend(DeviceType::cuda, g_backend);
  g_registered = true;
}

bool initialized() {
  std::lock_guard<std::mutex> lk(g_init_mu);
  return g_registered;
}

void shutdown() {
  std::lock_guard<std::mutex> lk(g_init_mu);
  register_backend(DeviceType::cuda, nullptr);
  register_device_allocator(DeviceType::cuda, nullptr);
  g_registered = false;
}

Device select_device(const std::string& name) {
  const Device d = Device::parse(name);
  if (d.is_cuda()) init(d.index);
  return d;
}

CudaCachingAllocator& allocator() {
  MM_CHECK(g_allocator, "cuda: the allocator is used before mm::cuda::init()");
  return *g_allocator;
}

// ---- helpers -----------------------------------------------------------------------------

namespace {

void check_on_device(const char* op, const Tensor& t) {
  MM_CHECK(t.device().is_cuda() && t.device().index == g_device, op, ": tensor ", t.str(),
           " is not on the cuda backend's device cuda:", g_device);
}

const void* ptr(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
void* mptr(Tensor* t) { return t ? t->raw_data() : nullptr; }

Tensor device_empty(const Shape& s, DType dt) { return Tensor::empty(s, dt, Device::cuda(g_device)); }

// A device flag the index-checking kernels lower (atomicMin) to the first bad position.
class BadPosition {
 public:
  BadPosition() : t_(device_empty({1}, DType::i64)) {
    kernels::fill(t_.raw_data(), 1, 8, uint64_t(LLONG_MAX), current_stream());
  }
  long long* ptr() { return static_cast<long long*>(t_.raw_data()); }
  // The first bad position, or -1 when every index was valid (waits for the kernel).
  int64_t read() const {
    long long v = 0;
    copy_to_host(&v, t_.raw_data(), sizeof v, current_stream());
    return v == LLONG_MAX ? -1 : int64_t(v);
  }

 private:
  Tensor t_;
};

// Element `i` of a contiguous device tensor, as double (for error messages).
double element_at(const Tensor& t, int64_t i) {
  uint64_t bits = 0;
  const size_t es = dtype_size(t.dtype());
  copy_to_host(&bits, static_cast<const char*>(t.raw_data()) + i * int64_t(es), es, current_stream());
  return load_as_double(&bits, t.dtype(), 0);
}

void check_index_dtype(const char* op, const Tensor& idx) {
  MM_CHECK(idx.dtype() == DType::i64 || idx.dtype() == DType::i32, op, ": indices must be i64 or i32, got ",
           dtype_name(idx.dtype()));
}

// Reports the first out-of-range index the way the CPU backend does.
void report_bad_index(const char* op, const BadPosition& bad, const Tensor& idx, int64_t n) {
  const int64_t pos = bad.read();
  if (pos < 0) return;
  throw Error(cat(op, ": index ", int64_t(element_at(idx, pos)), " at position ", pos, " is out of range [0, ", n,
                  ")"));
}

}  // namespace

// ---- memory ------------------------------------------------------------------------------

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  MM_CHECK(src.shape() == dst.shape(), "copy: shapes differ: ", src.shape(), " -> ", dst.shape());
  if (!src.device().is_cpu()) check_on_device("copy", src);
  if (!dst.device().is_cpu()) check_on_device("copy", dst);
  const int64_t n = src.numel();
  if (n == 0) return;
  const cudaStream_t s = current_stream();
  const bool same = src.dtype() == dst.dtype();
  const size_t bytes = size_t(n) * dtype_size(src.dtype());
  Backend& cpu = backend_for(Device::cpu());

  if (src.device().is_cuda() && dst.device().is_cuda()) {
    if (same && src.is_contiguous() && dst.is_contiguous()) {
      MM_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), bytes, cudaMemcpyDeviceToDevice, s),
                    "copy cuda -> cuda (", bytes, " bytes)");
      return;
    }
    kernels::copy(src.dtype(), src.raw_data(), dst.dtype(), dst.raw_data(),
                  make_strided<2>(src.shape(), {&src.strides(), &dst.strides()}), s);
    return;
  }
  if (dst.device().is_cuda()) {  // cpu -> cuda: bytes in src's dtype, then convert on the device
    Tensor host = src;
    if (!src.is_contiguous()) {
      host = Tensor::empty(src.shape(), src.dtype());
      cpu.copy(src, host);
    }
    if (same && dst.is_contiguous()) {
      copy_to_device(dst.raw_data(), host.raw_data(), bytes, s);
      return;
    }
    Tensor staged = device_empty(src.shape(), src.dtype());
    copy_to_device(staged.raw_data(), host.raw_data(), bytes, s);
    kernels::copy(src.dtype(), staged.raw_data(), dst.dtype(), dst.raw_data(),
                  make_strided<2>(src.shape(), {&staged.strides(), &dst.strides()}), s);
    return;
  }
  // cuda -> cpu: convert / gather on the device into dst's dtype, contiguous, then bring it over.
  Tensor dev = src;
  if (!same || !src.is_contiguous()) {
    dev = device_empty(src.shape(), dst.dtype());
    kernels::copy(src.dtype(), src.raw_data(), dst.dtype(), dev.raw_data(),
                  make_strided<2>(src.shape(), {&src.strides(), &dev.strides()}), s);
  }
  const size_t out_bytes = size_t(n) * dtype_size(dst.dtype());
  if (dst.is_contiguous()) {
    copy_to_host(dst.raw_data(), dev.raw_data(), out_bytes, s);
    return;
  }
  Tensor host = Tensor::empty(src.shape(), dst.dtype());
  copy_to_host(host.raw_data(), dev.raw_data(), out_bytes, s);
  cpu.copy(host, dst);
}

void CudaBackend::fill(Tensor& dst, double value) {
  check_on_device("fill", dst);
  MM_ASSERT(dst.is_contiguous());
  const int64_t n = dst.numel();
  if (n == 0) return;
  const int es = int(dtype_size(dst.dtype()));
  uint64_t bits = 0;
  store_from_double(&bits, dst.dtype(), 0, value);  // the element's bytes, as on the CPU
  if (bits == 0) {
    MM_CUDA_CHECK(cudaMemsetAsync(dst.raw_data(), 0, size_t(n) * size_t(es), current_stream()), "fill ",
                  dst.str());
    return;
  }
  kernels::fill(dst.raw_data(), n, es, bits, current_stream());
}

void CudaBackend::fill_random(Tensor& dst, bool normal, double lo, double hi, uint64_t seed, uint64_t offset) {
  check_on_device("fill_random", dst);
  MM_ASSERT(dst.is_contiguous());
  kernels::fill_random(dst.dtype(), dst.raw_data(), dst.numel(), normal, lo, hi, seed, offset, current_stream());
}

// ---- elementwise -------------------------------------------------------------------------

void CudaBackend::unary(UnaryOp op, const Tensor& x, Tensor& out, double alpha) {
  MM_ASSERT(x.is_contiguous() && out.is_contiguous());
  kernels::unary(op, x.dtype(), x.raw_data(), out.raw_data(), x.numel(), alpha, current_stream());
}

void CudaBackend::unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& gy, Tensor& gx,
                                 double alpha) {
  kernels::unary_backward(op, x.dtype(), x.raw_data(), y.raw_data(), gy.raw_data(), gx.raw_data(), x.numel(), alpha,
                          current_stream());
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) {
  const bool cmp = op == BinaryOp::eq || op == BinaryOp::lt || op == BinaryOp::gt;
  MM_CHECK(!cmp || out.dtype() == DType::boolean, "binary: comparison output must be bool");
  kernels::binary(op, a.dtype(), a.raw_data(), b.raw_data(), out.raw_data(),
                  make_strided<3>(out.shape(), {&a.strides(), &b.strides(), &out.strides()}), current_stream());
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) {
  kernels::where(a.dtype(), static_cast<const uint8_t*>(cond.raw_data()), a.raw_data(), b.raw_data(),
                 out.raw_data(),
                 make_strided<4>(out.shape(), {&cond.strides(), &a.strides(), &b.strides(), &out.strides()}),
                 current_stream());
}

// ---- reductions --------------------------------------------------------------------------

void CudaBackend::reduce(ReduceOp op, const Tensor& x, int64_t outer, int64_t red, int64_t inner, Tensor& out,
                         Tensor* argmax) {
  MM_ASSERT(x.is_contiguous());
  kernels::reduce(op, x.dtype(), x.raw_data(), outer, red, inner, out.raw_data(),
                  argmax ? argmax->data<int64_t>() : nullptr, current_stream());
}

double CudaBackend::sum_squares(const Tensor& x) {
  MM_ASSERT(x.is_contiguous());
  if (x.numel() == 0) return 0.0;
  const int nb = kernels::sum_squares_blocks(x.numel());
  Tensor part = device_empty({nb}, DType::f64);
  kernels::sum_squares(x.dtype(), x.raw_data(), x.numel(), part.data<double>(), current_stream());
  std::vector<double> host(static_cast<size_t>(nb));
  copy_to_host(host.data(), part.raw_data(), host.size() * sizeof(double), current_stream());
  double total = 0;
  for (double v : host) total += v;  // block order: the same sum every run
  return total;
}

// ---- matrix products ---------------------------------------------------------------------

#ifndef MM_CUDA_EMU
namespace {

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_(other)";
  }
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets the
// operands swapped, B first, with n and m exchanged. bf16/f16 multiply with f32
// accumulation (CUBLAS_COMPUTE_32F), as our own kernel does.
void gemm_cublas(const GemmArgs& g, cudaStream_t s) {
  static std::mutex mu;
  static cublasHandle_t handle = nullptr;
  std::lock_guard<std::mutex> lk(mu);
  auto check = [&](cublasStatus_t st, const char* what) {
    MM_CHECK(st == CUBLAS_STATUS_SUCCESS, "gemm: ", what, " failed: ", cublas_status_name(st), " (", g.m, "x", g.n,
             "x", g.k, ", batch ", g.batch, ", ", dtype_name(g.dtype), ")");
  };
  if (!handle) check(cublasCreate(&handle), "cublasCreate");
  check(cublasSetStream(handle, s), "cublasSetStream");
  cudaDataType_t type;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  switch (g.dtype) {
    case DType::f32: type = CUDA_R_32F; break;
    case DType::f64: type = CUDA_R_64F; compute = CUBLAS_COMPUTE_64F; break;
    case DType::bf16: type = CUDA_R_16BF; break;
    case DType::f16: type = CUDA_R_16F; break;
    default: throw Error(cat("gemm: the cuda backend supports f32, f64, bf16 and f16, not ", dtype_name(g.dtype)));
  }
  const int64_t lim = INT_MAX;
  MM_CHECK(g.m <= lim && g.n <= lim && g.k <= lim && g.lda <= lim && g.ldb <= lim && g.ldc <= lim && g.batch <= lim,
           "gemm: ", g.m, "x", g.n, "x", g.k, " exceeds cuBLAS's 32-bit sizes");
  const double ad = g.alpha, bd = g.beta;
  const float af = float(g.alpha), bf = float(g.beta);
  const void* alpha = compute == CUBLAS_COMPUTE_64F ? static_cast<const void*>(&ad) : &af;
  const void* beta = compute == CUBLAS_COMPUTE_64F ? static_cast<const void*>(&bd) : &bf;
  check(cublasGemmStridedBatchedEx(handle, g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   int(g.n), int(g.m), int(g.k), alpha, g.b, type, int(g.ldb), g.stride_b, g.a, type,
                                   int(g.lda), g.stride_a, beta, g.c, type, int(g.ldc), g.stride_c, int(g.batch),
                                   compute, CUBLAS_GEMM_DEFAULT),
        "cublasGemmStridedBatchedEx");
}

}  // namespace
#endif

void CudaBackend::gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
#ifdef MM_CUDA_EMU
  kernels::gemm_tiled(g, current_stream());
#else
  gemm_cublas(g, current_stream());
#endif
}

// ---- softmax and normalisation -----------------------------------------------------------

void CudaBackend::softmax(const Tensor& x, Tensor& y, bool log) {
  MM_ASSERT(x.dim() == 2 && x.is_contiguous() && y.shape() == x.shape());
  kernels::softmax(x.dtype(), x.raw_data(), y.raw_data(), x.size(0), x.size(1), log, current_stream());
}

void CudaBackend::softmax_backward(const Tensor& y, const Tensor& gy, Tensor& gx, bool log) {
  MM_ASSERT(y.dim() == 2 && y.is_contiguous() && gy.shape() == y.shape() && gx.shape() == y.shape());
  kernels::softmax_backward(y.dtype(), y.raw_data(), gy.raw_data(), gx.raw_data(), y.size(0), y.size(1), log,
                            current_stream());
}

void CudaBackend::layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                             Tensor& rstd) {
  MM_ASSERT(x.dim() == 2 && x.is_contiguous() && y.shape() == x.shape());
  kernels::layer_norm(x.dtype(), x.raw_data(), ptr(w), ptr(b), eps, y.raw_data(), mean.raw_data(), rstd.raw_data(),
                      x.size(0), x.size(1), current_stream());
}

void CudaBackend::layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                      const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) {
  MM_ASSERT(x.dim() == 2 && x.is_contiguous() && gy.shape() == x.shape() && gx.shape() == x.shape());
  const int64_t m = x.size(0), n = x.size(1);
  Tensor scratch;
  if (gw || gb) scratch = device_empty({int64_t(kernels::layer_norm_scratch_bytes(x.dtype(), m, n))}, DType::u8);
  kernels::layer_norm_backward(x.dtype(), x.raw_data(), ptr(w), mean.raw_data(), rstd.raw_data(), gy.raw_data(),
                               gx.raw_data(), mptr(gw), mptr(gb), m, n, scratch.defined() ? scratch.raw_data() : nullptr,
                               current_stream());
}

void CudaBackend::group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups, double eps,
                             Tensor& y, Tensor& mean, Tensor& rstd) {
  MM_ASSERT(x.dim() == 3 && x.is_contiguous() && groups > 0 && x.size(1) % groups == 0);
  kernels::group_norm(x.dtype(), x.raw_data(), ptr(w), ptr(b), x.size(0), x.size(1), x.size(2), groups, eps,
                      y.raw_data(), mean.raw_data(), rstd.raw_data(), current_stream());
}

void CudaBackend::group_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                      int64_t groups, const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) {
  MM_ASSERT(x.dim() == 3 && x.is_contiguous() && gy.shape() == x.shape() && gx.shape() == x.shape());
  const int64_t B = x.size(0), C = x.size(1), S = x.size(2);
  Tensor sums = device_empty({2 * B * C}, DType::f64);
  kernels::group_norm_backward(x.dtype(), x.raw_data(), ptr(w), mean.raw_data(), rstd.raw_data(), gy.raw_data(),
                               gx.raw_data(), mptr(gw), mptr(gb), B, C, S, groups, sums.data<double>(),
                               current_stream());
}

void CudaBackend::batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& running_mean,
                             Tensor& running_var, bool training, double momentum, double eps, Tensor& y, Tensor& mean,
                             Tensor& rstd) {
  MM_ASSERT(x.dim() == 3 && x.is_contiguous() && y.shape() == x.shape());
  MM_ASSERT(training || (running_mean.defined() && running_var.defined()));
  kernels::batch_norm(x.dtype(), x.raw_data(), ptr(w), ptr(b),
                      running_mean.defined() ? running_mean.raw_data() : nullptr,
                      running_var.defined() ? running_var.raw_data() : nullptr, training, momentum, eps, y.raw_data(),
                      mean.raw_data(), rstd.raw_data(), x.size(0), x.size(1), x.size(2), current_stream());
}

void CudaBackend::batch_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                                      bool training, const Tensor& gy, Tensor& gx, Tensor* gw, Tensor* gb) {
  MM_ASSERT(x.dim() == 3 && x.is_contiguous() && gy.shape() == x.shape() && gx.shape() == x.shape());
  kernels::batch_norm_backward(x.dtype(), x.raw_data(), ptr(w), mean.raw_data(), rstd.raw_data(), training,
                               gy.raw_data(), gx.raw_data(), mptr(gw), mptr(gb), x.size(0), x.size(1), x.size(2),
                               current_stream());
}

// ---- indexing ----------------------------------------------------------------------------

void CudaBackend::index_select(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                               Tensor& out) {
  check_index_dtype("index_select", idx);
  BadPosition bad;
  kernels::index_select(int(dtype_size(x.dtype())), x.raw_data(), idx.raw_data(), idx.dtype() == DType::i64,
                        idx.numel(), outer, n, inner, out.raw_data(), bad.ptr(), current_stream());
  report_bad_index("index_select", bad, idx, n);
}

void CudaBackend::index_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                            Tensor& gx) {
  check_index_dtype("index_add", idx);
  BadPosition bad;
  kernels::index_add(g.dtype(), g.raw_data(), idx.raw_data(), idx.dtype() == DType::i64, idx.numel(), outer, n,
                     inner, gx.raw_data(), bad.ptr(), current_stream());
  report_bad_index("index_add", bad, idx, n);
}

void CudaBackend::gather(const Tensor& x, const Tensor& idx, int64_t outer, int64_t n, int64_t inner, Tensor& out) {
  check_index_dtype("gather", idx);
  const int64_t K = idx.numel() / (outer * inner > 0 ? outer * inner : 1);
  BadPosition bad;
  kernels::gather(x.dtype(), x.raw_data(), idx.raw_data(), idx.dtype() == DType::i64, K, outer, n, inner,
                  out.raw_data(), bad.ptr(), current_stream());
  report_bad_index("gather", bad, idx, n);
}

void CudaBackend::scatter_add(const Tensor& g, const Tensor& idx, int64_t outer, int64_t n, int64_t inner,
                              Tensor& gx) {
  check_index_dtype("scatter_add", idx);
  const int64_t K = idx.numel() / (outer * inner > 0 ? outer * inner : 1);
  BadPosition bad;
  kernels::scatter_add(g.dtype(), g.raw_data(), idx.raw_data(), idx.dtype() == DType::i64, K, outer, n, inner,
                       gx.raw_data(), bad.ptr(), current_stream());
  report_bad_index("scatter_add", bad, idx, n);
}

// ---- randomness --------------------------------------------------------------------------

void CudaBackend::dropout(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) {
  kernels::dropout(x.dtype(), x.raw_data(), p, seed, offset, out.raw_data(), x.numel(), current_stream());
}

void CudaBackend::drop_path(const Tensor& x, double p, uint64_t seed, uint64_t offset, Tensor& out) {
  const int64_t B = x.size(0), R = x.dim() > 1 ? x.size(1) : 1;
  kernels::drop_path(x.dtype(), x.raw_data(), p, seed, offset, out.raw_data(), B, R, current_stream());
}

// ---- fused loss --------------------------------------------------------------------------

void CudaBackend::cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& allowed,
                                const CrossEntropyArgs& a, Tensor& loss, Tensor& lse) {
  const int64_t M = logits.size(0), V = logits.size(1);
  MM_ASSERT(logits.is_contiguous() && targets.is_contiguous() && targets.dtype() == DType::i64);
  BadPosition bad;
  kernels::cross_entropy(logits.dtype(), logits.raw_data(), targets.data<int64_t>(),
                         allowed.defined() ? static_cast<const uint8_t*>(allowed.raw_data()) : nullptr,
                         allowed.defined() ? allowed.stride(0) : 0, allowed.defined() ? allowed.stride(1) : 0,
                         a.ignore_index, a.label_smoothing, loss.raw_data(), lse.raw_data(), M, V, bad.ptr(),
                         current_stream());
  const int64_t r = bad.read();
  if (r < 0) return;
  const int64_t t = int64_t(element_at(targets, r));
  MM_CHECK(t >= 0 && t < V, "cross_entropy: row ", r, ": target id ", t, " is out of range [0, ", V,
           ") (and is not ignore_index ", a.ignore_index, ")");
  // The row's mask, brought over to count its allowed tokens for the message.
  Tensor row = allowed.as_strided({V}, {allowed.stride(1)}, allowed.offset() + r * allowed.stride(0));
  Tensor host = Tensor::empty({V}, allowed.dtype());
  copy(row, host);
  int64_t k = 0;
  for (int64_t j = 0; j < V; ++j) k += host.data<uint8_t>()[j] != 0;
  throw Error(cat("cross_entropy: row ", r, ": target id ", t, " is not in the allowed set (", k, " of ", V,
                  " tokens allowed in that row)"));
}

void CudaBackend::cross_entropy_backward(const Tensor& logits, const Tensor& targets, const Tensor& allowed,
                                         const CrossEntropyArgs& a, const Tensor& lse, const Tensor& gloss,
                                         Tensor& glogits) {
  kernels::cross_entropy_backward(logits.dtype(), logits.raw_data(), targets.data<int64_t>(),
                                  allowed.defined() ? static_cast<const uint8_t*>(allowed.raw_data()) : nullptr,
                                  allowed.defined() ? allowed.stride(0) : 0, allowed.defined() ? allowed.stride(1) : 0,
                                  a.ignore_index, a.label_smoothing, lse.raw_data(), gloss.raw_data(),
                                  glogits.raw_data(), logits.size(0), logits.size(1), current_stream());
}

// ---- attention ---------------------------------------------------------------------------

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                            const Tensor& key_pad, bool causal, double scale, Tensor& out, Tensor& probs) {
  kernels::AttentionShape sh;
  sh.B = q.size(0);
  sh.H = q.size(1);
  sh.Tq = q.size(2);
  sh.D = q.size(3);
  sh.Tk = k.size(2);
  if (bias.defined())
    for (int i = 0; i < 4; ++i) sh.bias_stride[i] = bias.stride(i);
  kernels::attention(q.dtype(), sh, q.raw_data(), k.raw_data(), v.raw_data(), ptr(bias),
                     key_pad.defined() ? static_cast<const uint8_t*>(key_pad.raw_data()) : nullptr, causal, scale,
                     out.raw_data(), probs.raw_data(), current_stream());
}

// The chain rule of ops/attention.cpp as four batched products and one row kernel:
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),  dQ = scale dS K,  dK = scale dS^T Q.
void CudaBackend::attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                                     const Tensor& gout, double scale, Tensor& gq, Tensor& gk, Tensor& gv,
                                     Tensor* gbias) {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2);
  Tensor ds = gbias ? *gbias : device_empty({B, H, Tq, Tk}, q.dtype());
  auto mm = [&](bool ta, bool tb, int64_t m, int64_t n, int64_t kk, double alpha, const Tensor& a, int64_t lda,
                int64_t sa, const Tensor& b, int64_t ldb, int64_t sb, Tensor& c) {
    GemmArgs g;
    g.trans_a = ta;
    g.trans_b = tb;
    g.m = m;
    g.n = n;
    g.k = kk;
    g.a = a.raw_data(); g.lda = lda; g.stride_a = sa;
    g.b = b.raw_data(); g.ldb = ldb; g.stride_b = sb;
    g.c = c.raw_data(); g.ldc = n; g.stride_c = m * n;
    g.batch = B * H;
    g.alpha = alpha;
    g.dtype = q.dtype();
    gemm(g);
  };
  mm(true, false, Tk, D, Tq, 1.0, probs, Tk, Tq * Tk, gout, D, Tq * D, gv);   // dV [Tk, D]
  mm(false, true, Tq, Tk, D, 1.0, gout, D, Tq * D, v, D, Tk * D, ds);         // dP [Tq, Tk]
  kernels::softmax_jacobian_rows(q.dtype(), probs.raw_data(), ds.raw_data(), B * H * Tq, Tk, current_stream());
  mm(false, false, Tq, D, Tk, scale, ds, Tk, Tq * Tk, k, D, Tk * D, gq);      // dQ [Tq, D]
  mm(true, false, Tk, D, Tq, scale, ds, Tk, Tq * Tk, q, D, Tq * D, gk);       // dK [Tk, D]
}

// ---- convolution and pooling ------------------------------------------------------------
// Per sample: im2col (skipped for a 1x1, stride-1, unpadded kernel, where col is x), then
// one GEMM batched over the groups (cuda/conv.cu has the layout).

namespace {

kernels::ConvGeometry conv_geometry(const Tensor& x, int64_t kh, int64_t kw, const Tensor& y, const Conv2dArgs& a) {
  kernels::ConvGeometry g;
  g.Cin = x.size(1);
  g.H = x.size(2);
  g.W = x.size(3);
  g.KH = kh;
  g.KW = kw;
  g.OH = y.size(2);
  g.OW = y.size(3);
  g.sh = a.stride_h;
  g.sw = a.stride_w;
  g.ph = a.pad_h;
  g.pw = a.pad_w;
  return g;
}

bool is_pointwise(const kernels::ConvGeometry& g) {
  return g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
}

const char* at(const Tensor& t, int64_t elems) {
  return static_cast<const char*>(t.raw_data()) + elems * int64_t(dtype_size(t.dtype()));
}
char* at(Tensor& t, int64_t elems) { return static_cast<char*>(t.raw_data()) + elems * int64_t(dtype_size(t.dtype())); }

}  // namespace

void CudaBackend::conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a, Tensor& y) {
  const kernels::ConvGeometry geo = conv_geometry(x, w.size(2), w.size(3), y, a);
  const int64_t B = x.size(0), Cout = w.size(0), G = a.groups, Og = Cout / G;
  const int64_t K = geo.Cin / G * geo.KH * geo.KW, P = geo.OH * geo.OW, in = geo.Cin * geo.H * geo.W;
  const bool direct = is_pointwise(geo);
  Tensor col = direct ? Tensor() : device_empty({G * K, P}, x.dtype());
  for (int64_t s = 0; s < B; ++s) {
    if (!direct) kernels::im2col(x.dtype(), at(x, s * in), col.raw_data(), geo, current_stream());
    GemmArgs g;  // y_g [Og, P] = w_g [Og, K] @ col_g [K, P]
    g.m = Og; g.n = P; g.k = K; g.batch = G; g.dtype = x.dtype();
    g.a = w.raw_data(); g.lda = K; g.stride_a = Og * K;
    g.b = direct ? at(x, s * in) : col.raw_data(); g.ldb = P; g.stride_b = K * P;
    g.c = at(y, s * Cout * P); g.ldc = P; g.stride_c = Og * P;
    gemm(g);
  }
  if (b.defined()) kernels::add_channel_bias(x.dtype(), y.raw_data(), b.raw_data(), B, Cout, P, current_stream());
}

void CudaBackend::conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& gy, const Conv2dArgs& a, Tensor* gx,
                                  Tensor* gw, Tensor* gb) {
  const kernels::ConvGeometry geo = conv_geometry(x, w.size(2), w.size(3), gy, a);
  const int64_t B = x.size(0), Cout = w.size(0), G = a.groups, Og = Cout / G;
  const int64_t K = geo.Cin / G * geo.KH * geo.KW, P = geo.OH * geo.OW, in = geo.Cin * geo.H * geo.W;
  const bool direct = is_pointwise(geo);
  const cudaStream_t st = current_stream();
  if (gb) {  // sum gy over positions, then over the batch (in order)
    Tensor per_sample = device_empty({B, Cout}, gy.dtype());
    kernels::reduce(ReduceOp::sum, gy.dtype(), gy.raw_data(), B * Cout, P, 1, per_sample.raw_data(), nullptr, st);
    kernels::reduce(ReduceOp::sum, gy.dtype(), per_sample.raw_data(), 1, B, Cout, gb->raw_data(), nullptr, st);
  }
  if (!gw && !gx) return;
  Tensor col = direct ? Tensor() : device_empty({G * K, P}, x.dtype());
  for (int64_t s = 0; s < B; ++s) {
    if (gw) {  // gw_g [Og, K] (+)= gy_g [Og, P] @ col_g^T
      if (!direct) kernels::im2col(x.dtype(), at(x, s * in), col.raw_data(), geo, st);
      GemmArgs g;
      g.trans_b = true;
      g.m = Og; g.n = K; g.k = P; g.batch = G; g.dtype = x.dtype(); g.beta = s == 0 ? 0.0 : 1.0;
      g.a = at(gy, s * Cout * P); g.lda = P; g.stride_a = Og * P;
      g.b = direct ? at(x, s * in) : col.raw_data(); g.ldb = P; g.stride_b = K * P;
      g.c = gw->raw_data(); g.ldc = K; g.stride_c = Og * K;
      gemm(g);
    }
    if (gx) {  // gcol_g [K, P] = w_g^T @ gy_g, then col2im
      GemmArgs g;
      g.trans_a = true;
      g.m = K; g.n = P; g.k = Og; g.batch = G; g.dtype = x.dtype();
      g.a = w.raw_data(); g.lda = K; g.stride_a = Og * K;
      g.b = at(gy, s * Cout * P); g.ldb = P; g.stride_b = Og * P;
      g.c = direct ? at(*gx, s * in) : col.raw_data(); g.ldc = P; g.stride_c = K * P;
      gemm(g);
      if (!direct) kernels::col2im(x.dtype(), col.raw_data(), at(*gx, s * in), geo, st);
    }
  }
}

void CudaBackend::max_pool2d(const Tensor& x, int64_t kh, int64_t kw, const Conv2dArgs& a, Tensor& y,
                             Tensor& argmax) {
  kernels::max_pool2d(x.dtype(), x.raw_data(), y.raw_data(), argmax.data<int64_t>(), x.size(0) * x.size(1),
                      conv_geometry(x, kh, kw, y, a), current_stream());
}

void CudaBackend::max_pool2d_backward(const Tensor& gy, const Tensor& argmax, Tensor& gx) {
  kernels::max_pool2d_backward(gy.dtype(), gy.raw_data(), argmax.data<int64_t>(), gx.raw_data(),
                               gx.size(0) * gx.size(1), gy.size(2) * gy.size(3), gx.size(2) * gx.size(3),
                               current_stream());
}

// ---- optimizer ---------------------------------------------------------------------------

void CudaBackend::adamw(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2, double eps,
                        double wd, double c1, double c2) {
  MM_ASSERT(p.is_contiguous() && g.is_contiguous() && m.is_contiguous() && v.is_contiguous());
  kernels::adamw(p.dtype(), p.raw_data(), g.raw_data(), m.raw_data(), v.raw_data(), p.numel(), lr, b1, b2, eps, wd, c1,
                 c2, current_stream());
}

}  // namespace mm::cuda
