// The CUDA backend (cuda/) on the emulated device cuda:0: every kernel against the CPU
// backend through the public op API (forward, and backward through autograd on both
// devices), at shapes that are not multiples of the block size or of the 4-wide vector
// loads; bf16 and f16 against the f32 CPU result; the allocator, streams and transfers;
// and the errors a user can meet (mixed devices, out of memory, too much shared memory).
// Built with MM_CUDA_REAL against a real GPU, the same comparisons run there (the
// emulator-only parts are under MM_CUDA_EMU).
#include <climits>
#include <cmath>
#include <functional>
#include <limits>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "autograd/optim.h"
#include "cuda/cuda_backend.h"
#include "cuda/kernel_api.h"
#include "cuda/stream.h"
#include "cuda/transfer.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/creation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/reduce.h"
#include "ops/shape.h"
#include "ops/softmax.h"
#include "test_util.h"

using namespace mm;
using mm::test::check_close;
using mm::test::check_throws_with;
using mm::test::random;
using V = std::vector<Tensor>;

namespace {

// Registers the emulated device for one test case and unregisters it after, so other
// suites still see the CPU-only behaviour.
struct CudaDevice {
  CudaDevice() { mm::cuda::init(); }
  ~CudaDevice() { mm::cuda::shutdown(); }
};

const Device kCuda = Device::cuda(0);
Tensor dev(const Tensor& t) { return to(t, kCuda); }
Tensor host(const Tensor& t) { return to(t, Device::cpu()); }

// A leaf copy of t on `d` that requires grad (a copy: optimizers update it in place).
Tensor leaf(const Tensor& t, Device d) {
  Tensor x = (d == t.device() ? clone(t) : to(t, d)).detach();
  x.set_requires_grad();
  return x;
}

struct Tol {
  double atol, rtol;
};
Tol tol_for(DType dt) {
  switch (dt) {
    case DType::f64: return {1e-11, 1e-11};
    case DType::bf16: return {2e-2, 2e-2};
    case DType::f16: return {2e-3, 2e-3};
    default: return {2e-5, 2e-5};
  }
}

// Runs f on CPU leaves and on cuda leaves, compares the outputs, then backpropagates
// sum(out * r) (r random, the same on both) and compares every input's gradient.
void check_fwd_bwd(const std::string& what, const std::function<Tensor(const V&)>& f, const V& inputs,
                   Tol tol = {2e-5, 2e-5}, bool grads = true) {
  V xc, xd;
  for (const Tensor& t : inputs) {
    xc.push_back(grads ? leaf(t, Device::cpu()) : t);
    xd.push_back(grads ? leaf(t, kCuda) : dev(t));
  }
  Tensor yc = f(xc), yd = f(xd);
  REQUIRE(yd.device() == kCuda);
  check_close(host(yd), yc, tol.atol, tol.rtol, what + " forward");
  if (!grads) return;
  Tensor r = random(yc.shape(), 977, yc.dtype());
  autograd::backward(sum(mul(yc, r)));
  autograd::backward(sum(mul(yd, dev(r))));
  for (size_t i = 0; i < inputs.size(); ++i) {
    REQUIRE_MESSAGE(xd[i].grad().defined(), what, ": no gradient for input ", i);
    CHECK(xd[i].grad().device() == kCuda);
    check_close(host(xd[i].grad()), xc[i].grad(), tol.atol, tol.rtol, what + " grad of input " + std::to_string(i));
  }
}

// The same op on 16-bit device inputs (bf16 or f16) against f32 on the CPU, the inputs
// rounded to the 16-bit type first.
void check_half(DType dt, const std::string& what, const std::function<Tensor(const V&)>& f, const V& inputs,
                double tol) {
  V xc, xd;
  for (const Tensor& t : inputs) {
    const bool fl = is_floating(t.dtype());
    xc.push_back(fl ? cast(cast(t, dt), DType::f32) : t);  // the values the 16-bit type can hold
    xd.push_back(fl ? cast(dev(t), dt) : dev(t));
  }
  Tensor yd = f(xd);
  CHECK(yd.dtype() == dt);
  check_close(host(cast(yd, DType::f32)), f(xc), tol, tol, cat(what, " ", dtype_name(dt)));
}
void check_bf16(const std::string& what, const std::function<Tensor(const V&)>& f, const V& inputs, double tol) {
  check_half(DType::bf16, what, f, inputs, tol);
}

#ifdef MM_CUDA_EMU
// Fills n floats of dynamic shared memory (the launch decides how many bytes there are).
__global__ void dyn_smem_probe_kernel(float* out, int n) {
  MM_DYN_SHARED(float, buf);
  for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) buf[i] = 1.0f;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = buf[n - 1];
}
#endif

}  // namespace

TEST_SUITE("cuda") {

TEST_CASE("cuda: the emulated device registers, and copies work in every direction") {
  CudaDevice cuda_device;
#ifdef MM_CUDA_EMU
  CHECK(mm::cuda::emulated());
#endif
  CHECK(mm::cuda::select_device("cuda:0") == kCuda);
  Tensor x = random({3, 5, 7}, 1);
  Tensor d = dev(x);
  CHECK(d.device() == kCuda);
  CHECK(host(d).to_vector() == x.to_vector());
  // Every dtype round-trips; integers keep all their bits.
  for (DType dt : {DType::f64, DType::bf16, DType::f16, DType::i32, DType::u8}) {
    Tensor c = cast(x, dt);
    CHECK(host(dev(c)).to_vector() == c.to_vector());
  }
  Tensor big = Tensor::from_vector_i({(int64_t(1) << 60) + 3, -7}, {2});
  CHECK(host(dev(big)).to_vector() == big.to_vector());
  // Strided sources and destinations on both sides, cuda -> cuda, and casts on the device.
  Tensor xt = transpose(x, 0, 2);  // a non-contiguous view
  CHECK(host(dev(xt)).to_vector() == contiguous(xt).to_vector());
  CHECK(host(contiguous(transpose(d, 0, 2))).to_vector() == contiguous(xt).to_vector());
  CHECK(host(narrow(d, 1, 2, 3)).to_vector() == contiguous(narrow(x, 1, 2, 3)).to_vector());
  for (DType dt : {DType::bf16, DType::f16, DType::f64, DType::i64}) {
    check_close(host(cast(transpose(d, 1, 2), dt)), cast(transpose(x, 1, 2), dt), 0, 0, "cast on the device");
    check_close(host(cast(cast(d, dt), DType::f32)), cast(cast(x, dt), DType::f32), 0, 0, "cast back");
  }
  Tensor slot = zeros({3, 5, 7}, DType::f32, Device::cpu());
  Tensor view = slot.as_strided({3, 7, 5}, {35, 1, 7}, 0);
  backend_for(kCuda).copy(transpose(d, 1, 2), view);  // cuda -> strided cpu view
  CHECK(slot.to_vector() == x.to_vector());
  Tensor dslot = zeros({3, 5, 7}, DType::bf16, kCuda);
  Tensor dview = dslot.as_strided({3, 7, 5}, {35, 1, 7}, 0);
  backend_for(kCuda).copy(transpose(x, 1, 2), dview);  // strided cpu f32 -> strided cuda bf16
  CHECK(host(dslot).to_vector() == cast(x, DType::bf16).to_vector());
  // Large copies go through the pinned staging buffers, in several chunks.
  const size_t staged = mm::cuda::staged_bytes();
  Tensor large = random({3, 1000, 1001}, 2);  // 12 MB: three 4 MiB chunks
  Tensor back = host(dev(large));
  CHECK(mm::cuda::staged_bytes() >= staged + 2 * size_t(large.numel()) * 4);
  CHECK(back.to_vector() == large.to_vector());
}

TEST_CASE("cuda: fill and Philox random fills give the CPU's numbers") {
  CudaDevice cuda_device;
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i64, DType::u8, DType::boolean}) {
    CHECK(host(full({37}, 3.0, dt, kCuda)).to_vector() == full({37}, 3.0, dt).to_vector());
    CHECK(host(zeros({5}, dt, kCuda)).to_vector() == std::vector<double>(5, 0.0));
  }
  for (DType dt : {DType::f32, DType::f64}) {
    Generator gc(7), gd(7);
    // Uniform: integer arithmetic, bit-identical on any GPU. Normal: sinf/cosf/logf, the
    // same functions under the emulator (a GPU's differ in the last bits).
    CHECK(host(rand({1001}, gd, -2.0, 3.0, dt, kCuda)).to_vector() == rand({1001}, gc, -2.0, 3.0, dt).to_vector());
#ifdef MM_CUDA_EMU
    CHECK(host(randn({999}, gd, 0.5, 2.0, dt, kCuda)).to_vector() == randn({999}, gc, 0.5, 2.0, dt).to_vector());
#else
    check_close(host(randn({999}, gd, 0.5, 2.0, dt, kCuda)), randn({999}, gc, 0.5, 2.0, dt), 1e-5, 1e-5, "randn");
#endif
  }
}

TEST_CASE("cuda: unary ops and their derivatives match the CPU") {
  CudaDevice cuda_device;
  using F = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, F>> ops = {
      {"neg", [](const Tensor& x) { return neg(x); }},
      {"exp", [](const Tensor& x) { return exp(x); }},
      {"log", [](const Tensor& x) { return log(abs(x)); }},
      {"tanh", [](const Tensor& x) { return tanh(x); }},
      {"sqrt", [](const Tensor& x) { return sqrt(abs(x)); }},
      {"rsqrt", [](const Tensor& x) { return rsqrt(add(abs(x), 0.5)); }},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }},
      {"relu", [](const Tensor& x) { return relu(x); }},
      {"gelu_tanh", [](const Tensor& x) { return gelu(x, true); }},
      {"gelu_erf", [](const Tensor& x) { return gelu(x, false); }},
      {"silu", [](const Tensor& x) { return silu(x); }},
      {"pow", [](const Tensor& x) { return pow(add(abs(x), 0.1), 2.5); }},
      {"scale", [](const Tensor& x) { return mul(x, -1.75); }},
  };
  // 1, 5 and 131 elements: below, between and off multiples of the 4-wide packs.
  for (const Shape& s : {Shape{1}, Shape{5}, Shape{4, 131}})
    for (const auto& [name, f] : ops)
      check_fwd_bwd(std::string(name) + " " + cat(s), [f](const V& t) { return f(t[0]); }, {random(s, 11)},
                    {1e-5, 1e-5});
  // A view starting one element in: not 16-byte aligned, so the packed path is skipped.
  Tensor base = random({67}, 12);
  check_fwd_bwd("gelu of an unaligned view", [](const V& t) { return gelu(narrow(t[0], 0, 1, 66), true); }, {base});
  check_fwd_bwd("exp f64", [](const V& t) { return exp(t[0]); }, {random({33}, 13, DType::f64)}, tol_for(DType::f64));
  check_bf16("gelu", [](const V& t) { return gelu(t[0], true); }, {random({77}, 14)}, 2e-2);
}

TEST_CASE("cuda: broadcasting binary ops, comparisons and where match the CPU") {
  CudaDevice cuda_device;
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{33}, {33}}, {{4, 5, 6}, {6}}, {{3, 1, 7}, {1, 5, 7}}, {{2, 3}, {}}, {{5, 1}, {5, 9}}};
  for (const auto& [sa, sb] : shapes) {
    const std::string tag = cat(sa, " ", sb);
    const Tensor a = random(sa, 21), b = add(abs(random(sb, 22)), 0.5);
    check_fwd_bwd("add " + tag, [](const V& t) { return add(t[0], t[1]); }, {a, b});
    check_fwd_bwd("sub " + tag, [](const V& t) { return sub(t[0], t[1]); }, {a, b});
    check_fwd_bwd("mul " + tag, [](const V& t) { return mul(t[0], t[1]); }, {a, b});
    check_fwd_bwd("div " + tag, [](const V& t) { return div(t[0], t[1]); }, {a, b});
    check_fwd_bwd("maximum " + tag, [](const V& t) { return maximum(t[0], t[1]); }, {a, b});
    check_fwd_bwd("minimum " + tag, [](const V& t) { return minimum(t[0], t[1]); }, {a, b});
    check_fwd_bwd("lt " + tag, [](const V& t) { return lt(t[0], t[1]); }, {a, b}, {0, 0}, false);
    check_fwd_bwd("where " + tag, [](const V& t) { return where(gt(t[0], t[1]), t[0], t[1]); }, {a, b});
  }
  // A transposed (strided) operand, f64, integer comparisons (as the loss's ignore count uses).
  check_fwd_bwd("add transposed", [](const V& t) { return add(transpose(t[0], 0, 1), t[1]); },
                {random({7, 5}, 23), random({5, 7}, 24)});
  check_fwd_bwd("mul f64", [](const V& t) { return mul(t[0], t[1]); },
                {random({3, 10}, 25, DType::f64), random({10}, 26, DType::f64)}, tol_for(DType::f64));
  Tensor ids = Tensor::from_vector_i({1, -100, 3, -100, 5}, {5});
  Tensor minus = full({}, -100.0, DType::i64);
  CHECK(host(eq(dev(ids), dev(minus))).to_vector() == eq(ids, minus).to_vector());
  check_bf16("add", [](const V& t) { return add(t[0], t[1]); }, {random({9, 17}, 27), random({17}, 28)}, 1e-2);
  check_bf16("mul", [](const V& t) { return mul(t[0], t[1]); }, {random({35}, 29), random({35}, 30)}, 1e-2);
}

TEST_CASE("cuda: sum, mean, max with argmax, and the gradient norm match the CPU") {
  CudaDevice cuda_device;
  const Tensor x = random({6, 37, 5}, 31);
  for (const std::vector<int>& dims : std::vector<std::vector<int>>{{0}, {1}, {2}, {0, 1}, {1, 2}, {}})
    check_fwd_bwd(cat("sum over ", dims.size(), " dims"), [dims](const V& t) { return sum(t[0], dims); }, {x},
                  {1e-5, 1e-5});
  check_fwd_bwd("mean", [](const V& t) { return mean(t[0], {1}, true); }, {x});
  check_fwd_bwd("sum of a long row", [](const V& t) { return sum(t[0], {1}); }, {random({3, 3001}, 32)},
                {1e-4, 1e-5});
  for (int d : {0, 1, 2})
    check_fwd_bwd(cat("max over dim ", d), [d](const V& t) { return max(t[0], d); }, {x});
  // Ties: the first maximum wins on both backends.
  Tensor ties = Tensor::from_vector({1, 3, 3, 2, 3, 0, 5, 5}, {2, 4});
  check_fwd_bwd("max with ties", [](const V& t) { return max(t[0], 1); }, {ties});
  check_fwd_bwd("max of a long row", [](const V& t) { return max(t[0], 1); }, {random({2, 1000}, 33)});
  check_bf16("sum", [](const V& t) { return sum(t[0], {1}); }, {random({4, 100}, 34)}, 5e-2);
  // The gradient norm behind clip_grad_norm: partial sums per block on the device.
  Tensor g = random({10007}, 35);
  const double cpu = backend_for(Device::cpu()).sum_squares(g);
  CHECK(backend_for(kCuda).sum_squares(dev(g)) == doctest::Approx(cpu).epsilon(1e-6));
}

TEST_CASE("cuda: the tiled GEMM (batched, transposed, alpha/beta) matches the CPU") {
  CudaDevice cuda_device;
  check_fwd_bwd("matmul 37x45 @ 45x29", [](const V& t) { return matmul(t[0], t[1]); },
                {random({37, 45}, 41), random({45, 29}, 42)}, {1e-4, 1e-4});
  check_fwd_bwd("batched matmul", [](const V& t) { return matmul(t[0], t[1]); },
                {random({3, 17, 70}, 43), random({3, 70, 65}, 44)}, {1e-4, 1e-4});
  check_fwd_bwd("matmul with a transposed operand", [](const V& t) { return matmul(t[0], transpose(t[1], 0, 1)); },
                {random({20, 9}, 45), random({66, 9}, 46)}, {1e-4, 1e-4});
  check_fwd_bwd("linear", [](const V& t) { return linear(t[0], t[1], t[2]); },
                {random({2, 5, 24}, 47), random({19, 24}, 48), random({19}, 49)}, {1e-4, 1e-4});
  check_fwd_bwd("matmul f64", [](const V& t) { return matmul(t[0], t[1]); },
                {random({13, 70}, 50, DType::f64), random({70, 3}, 51, DType::f64)}, tol_for(DType::f64));
  check_bf16("matmul", [](const V& t) { return matmul(t[0], t[1]); }, {random({16, 40}, 52), random({40, 24}, 53)},
             3e-2);
  check_half(DType::f16, "matmul", [](const V& t) { return matmul(t[0], t[1]); },
             {random({16, 40}, 52), random({40, 24}, 53)}, 5e-3);
  // alpha, beta and both transposes straight through the backend.
  Tensor a = random({2, 9, 7}, 54), b = random({2, 11, 9}, 55), c = random({2, 7, 11}, 56);
  Tensor cc = clone(c), cd = dev(c);
  GemmArgs g;
  g.trans_a = g.trans_b = true;
  g.m = 7; g.n = 11; g.k = 9; g.batch = 2; g.alpha = 0.5; g.beta = -2.0;
  g.lda = 7; g.stride_a = 63; g.ldb = 9; g.stride_b = 99; g.ldc = 11; g.stride_c = 77;
  g.a = a.raw_data(); g.b = b.raw_data(); g.c = cc.raw_data();
  backend_for(Device::cpu()).gemm(g);
  Tensor ad = dev(a), bd = dev(b);
  g.a = ad.raw_data(); g.b = bd.raw_data(); g.c = cd.raw_data();
  backend_for(kCuda).gemm(g);
  check_close(host(cd), cc, 1e-5, 1e-5, "gemm A^T B^T with alpha, beta");
}

TEST_CASE("cuda: softmax and log-softmax (masked rows too) match the CPU") {
  CudaDevice cuda_device;
#ifdef MM_CUDA_EMU
  {  // one block per row, run by the emulator with its race / uninitialised-read checks on
    Tensor x = dev(random({9, 100}, 60));
    mm::emu::reset_stats();
    Tensor y = softmax(x);
    CHECK(mm::emu::stats().launches == 1);
    CHECK(mm::emu::stats().blocks == 9);
    CHECK(mm::emu::checks_enabled());
  }
#endif
  for (const Shape& s : {Shape{3, 5}, Shape{4, 300}, Shape{2, 3, 1029}}) {
    check_fwd_bwd("softmax " + cat(s), [](const V& t) { return softmax(t[0]); }, {random(s, 61)}, {1e-6, 1e-5});
    check_fwd_bwd("log_softmax " + cat(s), [](const V& t) { return log_softmax(t[0]); }, {random(s, 62)},
                  {1e-5, 1e-5});
  }
  check_fwd_bwd("softmax over dim 0", [](const V& t) { return softmax(t[0], 0); }, {random({7, 3}, 63)});
  // -inf entries (masked) and a fully masked row: zeros (log: -inf) and zero gradients.
  const double inf = std::numeric_limits<double>::infinity();
  Tensor m = Tensor::from_vector({1, -inf, 2, 0.5, -inf, -inf, -inf, -inf, 3, 1, -inf, 0}, {3, 4});
  check_fwd_bwd("softmax with masks", [](const V& t) { return softmax(t[0]); }, {m}, {1e-6, 1e-6});
  // (-inf entries compared through exp: -inf - -inf is no distance)
  check_fwd_bwd("log_softmax with masks", [](const V& t) { return exp(log_softmax(t[0])); }, {m}, {1e-6, 1e-6}, false);
  check_fwd_bwd("softmax f64", [](const V& t) { return softmax(t[0]); }, {random({5, 77}, 64, DType::f64)},
                tol_for(DType::f64));
  check_bf16("softmax", [](const V& t) { return softmax(t[0]); }, {random({6, 200}, 65)}, 1e-2);
  check_half(DType::f16, "log_softmax", [](const V& t) { return log_softmax(t[0]); }, {random({6, 200}, 66)}, 5e-3);
}

TEST_CASE("cuda: LayerNorm, GroupNorm and BatchNorm forward and backward match the CPU") {
  CudaDevice cuda_device;
  for (int64_t n : {5, 64, 771}) {
    const Tensor x = add(mul(random({7, n}, 71), 2.0), 3.0);  // |mean| > std
    check_fwd_bwd(cat("layer_norm N=", n), [](const V& t) { return layer_norm(t[0], t[1], t[2]); },
                  {x, random({n}, 72), random({n}, 73)}, {2e-5, 2e-4});
    check_fwd_bwd(cat("layer_norm no affine N=", n), [](const V& t) { return layer_norm(t[0]); }, {x},
                  {2e-5, 2e-4});
  }
  // Enough rows for several gw/gb chunks (32 rows each).
  check_fwd_bwd("layer_norm 3-D", [](const V& t) { return layer_norm(t[0], t[1], t[2]); },
                {random({5, 19, 33}, 74), random({33}, 75), random({33}, 76)}, {5e-5, 2e-4});
  check_fwd_bwd("layer_norm f64", [](const V& t) { return layer_norm(t[0], t[1], t[2]); },
                {random({9, 40}, 77, DType::f64), random({40}, 78, DType::f64), random({40}, 79, DType::f64)},
                tol_for(DType::f64));
  check_bf16("layer_norm", [](const V& t) { return layer_norm(t[0], t[1], t[2]); },
             {random({6, 96}, 80), random({96}, 81), random({96}, 82)}, 5e-2);
  check_fwd_bwd("group_norm", [](const V& t) { return group_norm(t[0], 3, t[1], t[2]); },
                {random({2, 6, 5, 7}, 83), random({6}, 84), random({6}, 85)}, {5e-5, 2e-4});
  check_fwd_bwd("group_norm no affine", [](const V& t) { return group_norm(t[0], 2, Tensor(), Tensor()); },
                {random({3, 4, 33}, 86)}, {5e-5, 2e-4});
  // BatchNorm: training (batch statistics, running stats updated) and eval.
  for (bool training : {true, false}) {
    Tensor rm_c = random({5}, 87), rv_c = add(abs(random({5}, 88)), 0.5);
    Tensor rm_d = dev(rm_c), rv_d = dev(rv_c);
    const Tensor x = random({4, 5, 3, 3}, 89), w = random({5}, 90), b = random({5}, 91);
    check_fwd_bwd(cat("batch_norm training=", training),
                  [&, training](const V& t) {
                    const bool on_cuda = t[0].device().is_cuda();
                    return batch_norm2d(t[0], t[1], t[2], on_cuda ? rm_d : rm_c, on_cuda ? rv_d : rv_c, training);
                  },
                  {x, w, b}, {5e-5, 2e-4});
    check_close(host(rm_d), rm_c, 1e-6, 1e-6, "running mean");
    check_close(host(rv_d), rv_c, 1e-6, 1e-6, "running var");
  }
}

TEST_CASE("cuda: embedding, index_select and gather (repeated ids) match the CPU, bad ids are reported") {
  CudaDevice cuda_device;
  const Tensor table = random({11, 37}, 101);
  const Tensor ids = Tensor::from_vector_i({3, 0, 3, 10, 7, 3, 1}, {7});
  check_fwd_bwd("embedding", [ids](const V& t) { return embedding(t[0], t[0].device().is_cpu() ? ids : dev(ids)); },
                {table}, {0, 0});  // one thread per column adds in order: bit-identical
  const Tensor ids32 = cast(ids, DType::i32);
  check_fwd_bwd("index_select dim 1 (i32)",
                [ids32](const V& t) { return index_select(t[0], 1, t[0].device().is_cpu() ? ids32 : dev(ids32)); },
                {random({3, 11, 5}, 102)}, {0, 0});
  Tensor gidx = Tensor::from_vector_i({0, 2, 2, 1, 0, 0, 1, 2, 2, 2, 1, 0}, {3, 4});
  check_fwd_bwd("gather dim 1", [gidx](const V& t) { return gather(t[0], 1, t[0].device().is_cpu() ? gidx : dev(gidx)); },
                {random({3, 3}, 103)}, {0, 0});
  check_bf16("embedding", [](const V& t) { return embedding(t[0], t[1]); }, {table, ids}, 0);
  Tensor bad = Tensor::from_vector_i({1, 11, 2}, {3});
  check_throws_with([&] { embedding(dev(table), dev(bad)); }, {"embedding", "index 11 at position 1", "[0, 11)"});
  check_throws_with([&] { embedding(table, dev(ids)); }, {"embedding", "cpu", "cuda:0"});
}

TEST_CASE("cuda: dropout and drop_path drop exactly the CPU's elements") {
  CudaDevice cuda_device;
  for (double p : {0.1, 0.5, 1.0}) {
    const Tensor x = random({7, 131}, 111);
    Generator gc(5), gd(5);
    Tensor xc = leaf(x, Device::cpu()), xd = leaf(x, kCuda);
    Tensor yc = dropout(xc, p, gc), yd = dropout(xd, p, gd);
    CHECK(host(yd).to_vector() == yc.to_vector());
    Tensor zc = drop_path(xc, p, gc), zd = drop_path(xd, p, gd);
    CHECK(host(zd).to_vector() == zc.to_vector());
    autograd::backward(sum(add(yc, zc)));
    autograd::backward(sum(add(yd, zd)));
    CHECK(host(xd.grad()).to_vector() == xc.grad().to_vector());
  }
}

TEST_CASE("cuda: fused cross-entropy (smoothing, ignore_index, allowed masks) matches the CPU") {
  CudaDevice cuda_device;
  const int64_t M = 6, Vv = 1031;
  const Tensor logits = mul(random({M, Vv}, 121), 3.0);
  const Tensor targets = Tensor::from_vector_i({5, -100, 1030, 0, 517, -100}, {M});
  Tensor mask = zeros({Vv}, DType::u8);
  for (int64_t j = 0; j < Vv; j += 3) mask.data<uint8_t>()[j] = 1;
  mask.data<uint8_t>()[5] = mask.data<uint8_t>()[1030] = mask.data<uint8_t>()[517] = 1;
  Tensor row_mask = Tensor::empty({M, Vv}, DType::u8);
  for (int64_t i = 0; i < M * Vv; ++i) row_mask.data<uint8_t>()[i] = uint8_t((i * 7919) % 5 != 0);
  for (int64_t r = 0; r < M; ++r)
    for (int64_t t : {5, 1030, 0, 517}) row_mask.data<uint8_t>()[r * Vv + t] = 1;
  for (double eps : {0.0, 0.1})
    for (int m = 0; m < 3; ++m) {
      const Tensor allowed = m == 0 ? Tensor() : (m == 1 ? mask : row_mask);
      for (Reduction red : {Reduction::mean, Reduction::none}) {
        auto f = [&, eps, red](const V& t) {
          CrossEntropyOptions o;
          o.label_smoothing = eps;
          o.reduction = red;
          const bool cpu = t[0].device().is_cpu();
          if (allowed.defined()) o.allowed = cpu ? allowed : dev(allowed);
          return cross_entropy(t[0], cpu ? targets : dev(targets), o);
        };
        check_fwd_bwd(cat("cross_entropy eps=", eps, " mask=", m, " reduction=", int(red)), f, {logits}, {2e-5, 2e-5});
      }
    }
  check_bf16("cross_entropy", [&](const V& t) { return cross_entropy(t[0], t[1]); }, {logits, targets}, 2e-2);
  check_half(DType::f16, "cross_entropy", [&](const V& t) { return cross_entropy(t[0], t[1]); }, {logits, targets},
             5e-3);
  // A target outside the allowed set, and one outside the vocabulary.
  Tensor bad = Tensor::from_vector_i({5, 1}, {2});
  CrossEntropyOptions o;
  o.allowed = dev(mask);
  check_throws_with([&] { cross_entropy(dev(narrow(logits, 0, 0, 2)), dev(bad), o); },
                    {"cross_entropy", "row 1", "target id 1", "not in the allowed set", "of 1031"});
  check_throws_with([&] { cross_entropy(dev(narrow(logits, 0, 0, 2)), dev(Tensor::from_vector_i({5, 2000}, {2}))); },
                    {"cross_entropy", "row 1", "2000", "out of range"});
}

TEST_CASE("cuda: tiled attention with bias, padding and causal masks matches the CPU, forward and backward") {
  CudaDevice cuda_device;
  const int64_t B = 2, H = 3, Tq = 5, Tk = 37, D = 16;  // Tk: one full key tile and a partial one
  const Tensor q = random({B, H, Tq, D}, 131), k = random({B, H, Tk, D}, 132), v = random({B, H, Tk, D}, 133);
  const Tensor bias = random({H, Tq, Tk}, 134);
  Tensor pad = zeros({B, Tk}, DType::u8);
  for (int64_t j = 30; j < Tk; ++j) pad.data<uint8_t>()[Tk + j] = 1;  // sample 1: keys 30.. are padding
  auto opts = [&](const V& t, bool causal, bool with_bias, bool with_pad) {
    AttentionOptions o;
    o.causal = causal;
    const bool cpu = t[0].device().is_cpu();
    if (with_bias) o.bias = t[3];
    if (with_pad) o.key_padding_mask = cpu ? pad : dev(pad);
    return o;
  };
  for (bool causal : {false, true})
    for (bool with_bias : {false, true}) {
      const bool with_pad = !causal || with_bias;
      check_fwd_bwd(cat("attention causal=", causal, " bias=", with_bias, " pad=", with_pad),
                    [&, causal, with_bias, with_pad](const V& t) {
                      return attention(t[0], t[1], t[2], opts(t, causal, with_bias, with_pad));
                    },
                    with_bias ? V{q, k, v, bias} : V{q, k, v}, {1e-5, 1e-4});
    }
  // Causal with Tq > Tk: the first query rows see no key at all (zeros, zero gradient).
  check_fwd_bwd("attention, rows with no visible key",
                [](const V& t) {
                  AttentionOptions o;
                  o.causal = true;
                  return attention(t[0], t[1], t[2], o);
                },
                {random({1, 2, 9, 8}, 135), random({1, 2, 6, 8}, 136), random({1, 2, 6, 8}, 137)}, {1e-5, 1e-4});
  check_fwd_bwd("attention f64, D=40", [](const V& t) { return attention(t[0], t[1], t[2]); },
                {random({1, 2, 3, 40}, 138, DType::f64), random({1, 2, 33, 40}, 139, DType::f64),
                 random({1, 2, 33, 40}, 140, DType::f64)},
                tol_for(DType::f64));
  check_bf16("attention", [](const V& t) { return attention(t[0], t[1], t[2]); }, {q, k, v}, 3e-2);
  check_half(DType::f16, "attention", [](const V& t) { return attention(t[0], t[1], t[2]); }, {q, k, v}, 5e-3);
  check_throws_with([] { attention(dev(random({1, 1, 2, 300}, 1)), dev(random({1, 1, 2, 300}, 2)),
                                   dev(random({1, 1, 2, 300}, 3))); },
                    {"attention", "D = 300", "256"});
}

TEST_CASE("cuda: convolution (im2col + GEMM, groups, stride, padding, 1x1) and max pooling match the CPU") {
  CudaDevice cuda_device;
  check_fwd_bwd("conv2d 3x3 stride 2 pad 1 groups 2",
                [](const V& t) { return conv2d(t[0], t[1], t[2], Size2(2, 1), Size2(1, 2), 2); },
                {random({2, 4, 7, 9}, 141), random({6, 2, 3, 3}, 142), random({6}, 143)}, {1e-4, 1e-4});
  check_fwd_bwd("conv2d 1x1", [](const V& t) { return conv2d(t[0], t[1]); },
                {random({3, 5, 4, 6}, 144), random({7, 5, 1, 1}, 145)}, {1e-4, 1e-4});
  check_fwd_bwd("depthwise conv2d", [](const V& t) { return conv2d(t[0], t[1], Tensor(), 1, 1, 3); },
                {random({1, 3, 6, 5}, 146), random({3, 1, 3, 3}, 147)}, {1e-4, 1e-4});
  // Overlapping windows (3x3, stride 2): inputs shared by two windows collect both gradients.
  check_fwd_bwd("max_pool2d 3x3 stride 2 pad 1", [](const V& t) { return max_pool2d(t[0], 3, 2, 1); },
                {random({2, 3, 9, 8}, 148)}, {0, 0});
  check_bf16("conv2d", [](const V& t) { return conv2d(t[0], t[1], t[2], 1, 1); },
             {random({1, 4, 5, 5}, 149), random({3, 4, 3, 3}, 150), random({3}, 151)}, 5e-2);
}

TEST_CASE("cuda: AdamW and a small training step track the CPU") {
  CudaDevice cuda_device;
  {  // the optimizer alone, three steps on fixed gradients
    const Tensor p0 = random({1031}, 150), g0 = random({1031}, 149);
    V ps;
    for (Device d : {Device::cpu(), kCuda}) {
      Tensor p = leaf(p0, d);
      AdamW opt({{{p}, 0.1}}, {.lr = 1e-2});
      for (int i = 0; i < 3; ++i) {
        p.impl()->grad = to(mul(g0, double(i + 1)), d).impl_ptr();
        opt.step();
      }
      ps.push_back(p);
    }
    check_close(host(ps[1]), ps[0], 1e-6, 1e-6, "AdamW");
  }
  const Tensor w1 = random({16, 12}, 151, DType::f32, 0.3), b1 = random({16}, 152), w2 = random({10, 16}, 153, DType::f32, 0.3);
  const Tensor x = random({4, 7, 12}, 154);
  const Tensor y = Tensor::from_vector_i({1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, -100, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5,
                                          6, 7, 8},
                                         {4, 7});
  auto run = [&](Device d) {
    V params = {leaf(w1, d), leaf(b1, d), leaf(w2, d)};
    AdamW opt({{params, 0.01}}, {.lr = 1e-2});
    Generator gen(3);
    for (int step = 0; step < 3; ++step) {
      Tensor h = dropout(gelu(linear(to(x, d), params[0], params[1]), true), 0.1, gen);
      CrossEntropyOptions o;
      o.label_smoothing = 0.1;
      Tensor loss = cross_entropy(linear(layer_norm(h), params[2]), to(y, d), o);
      autograd::backward(loss);
      clip_grad_norm(params, 0.5);
      opt.step();
      opt.zero_grad();
    }
    return params;
  };
  V pc = run(Device::cpu()), pd = run(kCuda);
  for (size_t i = 0; i < pc.size(); ++i) check_close(host(pd[i]), pc[i], 1e-5, 1e-4, cat("parameter ", i));
}

TEST_CASE("cuda: the caching allocator reuses blocks per stream and reports its state") {
  CudaDevice cuda_device;
  auto& al = mm::cuda::allocator();
  CHECK(mm::cuda::CudaCachingAllocator::size_class(1) == 512);
  CHECK(mm::cuda::CudaCachingAllocator::size_class(4097) == 5120);
  CHECK(mm::cuda::CudaCachingAllocator::size_class(1000000) == 1048576);
  al.empty_cache();
  const auto s0 = al.detailed_stats();
  { Tensor t = Tensor::empty({1000}, DType::f32, kCuda); }
  const auto s1 = al.detailed_stats();
  CHECK(s1.n_device_malloc == s0.n_device_malloc + 1);
  CHECK(s1.cached == s0.cached + 4096);
  { Tensor t = Tensor::empty({990}, DType::f32, kCuda); }  // the same size class: reused
  const auto s2 = al.detailed_stats();
  CHECK(s2.n_device_malloc == s1.n_device_malloc);
  CHECK(s2.n_reused == s1.n_reused + 1);
  CHECK(s2.fragmentation() > 0.0);
  {  // another stream does not get the block; it mallocs its own
    mm::cuda::Stream side;
    mm::cuda::StreamGuard g(side);
    CHECK(mm::cuda::current_stream() == side.handle());
    Tensor t = Tensor::empty({1000}, DType::f32, kCuda);
    CHECK(al.detailed_stats().n_device_malloc == s2.n_device_malloc + 1);
    Tensor y = host(add(dev(Tensor::ones({3})), 1.0));  // ops run on the guarded stream
    CHECK(y.to_vector() == std::vector<double>{2, 2, 2});
  }
  {  // a block used on a second stream returns to its bin only after that stream's work
    mm::cuda::Stream side;
    Tensor t = Tensor::empty({5000}, DType::f32, kCuda);
    void* p = t.raw_data();
    al.record_stream(p, side.handle());
    t = Tensor();
    Tensor u = Tensor::empty({5000}, DType::f32, kCuda);  // the emulator's events are complete at once
    CHECK(u.raw_data() == p);
  }
  al.reset_peak();
  { Tensor big = Tensor::empty({1 << 18}, DType::f32, kCuda); }
  const auto s3 = al.detailed_stats();
  CHECK(s3.peak_allocated >= size_t(1 << 20));
  CHECK(s3.largest_free >= size_t(1 << 20));
  al.empty_cache();
  CHECK(al.detailed_stats().cached == 0);
  CHECK(al.detailed_stats().reserved == al.detailed_stats().allocated);
  mm::cuda::Event e0, e1;
  e0.record(mm::cuda::current_stream());
  e1.record(mm::cuda::current_stream());
  CHECK(e1.elapsed_ms(e0) >= 0.0f);
  CHECK(e1.ready());
}

TEST_CASE("cuda: clear errors for mixed devices, out of memory, too much shared memory, missing kernels") {
  CudaDevice cuda_device;
  const Tensor a = random({2, 3}, 161);
  check_throws_with([&] { add(a, dev(a)); }, {"add", "cpu", "cuda:0"});
  check_throws_with([&] { matmul(dev(a), transpose(a, 0, 1)); }, {"matmul", "cuda:0", "cpu"});
  // A device of 1 MiB: 4 MiB cannot fit; the message says what was asked and what is held.
  auto& al = mm::cuda::allocator();
  Tensor held = zeros({1000}, DType::f32, kCuda);
  al.set_limit(size_t(1) << 20);
  check_throws_with([] { zeros({1 << 20}, DType::f32, kCuda); },
                    {"CUDA out of memory on cuda:0", "4.00 MiB", "tensors hold", "limit 1.00 MiB"});
  al.set_limit(0);
  CHECK(host(zeros({1 << 20}, DType::f32, kCuda)).numel() == 1 << 20);
#ifdef MM_CUDA_EMU
  // Shared memory beyond what a launch may use, named with the kernel and sizes.
  float* out = static_cast<float*>(held.raw_data());
  check_throws_with([out] { MM_LAUNCH(dyn_smem_probe_kernel, dim3(1), dim3(32), 64 * 1024, nullptr, out, 16384); },
                    {"dyn_smem_probe_kernel", "dynamic shared memory 65536 bytes", "limit of 49152 bytes"});
  check_throws_with([out] { MM_LAUNCH(dyn_smem_probe_kernel, dim3(1), dim3(32), 300000, nullptr, out, 75000); },
                    {"dyn_smem_probe_kernel", "300000 bytes", "232448"});
#endif
}

}  // TEST_SUITE
