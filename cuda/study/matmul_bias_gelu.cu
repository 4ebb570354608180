// Kernel study: a matrix product with its epilogue fused, the first layer of a
// transformer FFN (f32 unless noted),
//
//   out[m, n] = gelu(sum_k inp[m, k] W[n, k] + bias[n])       inp [M, K], W [N, K], bias [N]
//   gelu(x)   = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (the tanh form, as cuBLASLt's)
//
// W is stored as a Linear layer stores it ([out features, in features]), so both operands
// run along K. The shape timed is OFA-base's FFN: M = B*T = 2048 tokens, K = C = 768,
// N = 4C = 3072. The backend itself calls cuBLAS (cuda/cuda_backend.cpp) and keeps the
// tiled kernel of cuda/gemm.cu for the emulator.
//
//   v1  one thread per output, K loop from global memory; then a second kernel adds the
//       bias and applies GELU: out makes an extra round trip through memory (2 M N floats).
//   v2  v1 with the epilogue fused into the store: the round trip is gone; the product is
//       still bound by global loads (every output reads 2K floats).
//   v3  16x16 tiles of inp and W staged in shared memory: each global element is loaded
//       once per tile instead of 16 times (W's tile padded to 17 columns: no bank
//       conflicts when 16 threads read 16 different rows).
//   v4  register blocking: a 64x64 output tile per 256-thread block, 4x4 outputs per
//       thread (strided by 16 so stores stay coalesced), K in steps of 8 through shared
//       memory stored k-major. Each shared load feeds 4 multiply-adds instead of 1.
//   v5  (GPU only) cuBLASLt in bf16 with f32 accumulation and its GELU_BIAS epilogue:
//       tensor cores, the ceiling the handwritten versions are measured against.
//
// Build: `make study` (emulator: checks v1-v4) or `make study-gpu` (all; links cuBLASLt).
#include "cuda/study/common.cuh"

#ifndef MM_CUDA_EMU
#include <cublasLt.h>
#endif

namespace mm::study::matmul_bias_gelu {

struct Shape {
  int M, N, K;
};

__host__ __device__ __forceinline__ float gelu(float x) {
  const float c = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.f + tanhf(c * (x + 0.044715f * x * x * x)));
}

// ---- CPU reference (double) ----------------------------------------------------------------
inline std::vector<double> reference(const std::vector<float>& inp, const std::vector<float>& w,
                                     const std::vector<float>& bias, const Shape& s) {
  std::vector<double> out(size_t(s.M) * s.N);
  const double c = std::sqrt(2.0 / M_PI);
  for (int m = 0; m < s.M; ++m)
    for (int n = 0; n < s.N; ++n) {
      double acc = bias[size_t(n)];
      for (int k = 0; k < s.K; ++k) acc += double(inp[size_t(m) * s.K + k]) * w[size_t(n) * s.K + k];
      out[size_t(m) * s.N + n] = 0.5 * acc * (1.0 + std::tanh(c * (acc + 0.044715 * acc * acc * acc)));
    }
  return out;
}

// ---- v1 / v2: one thread per output ----------------------------------------------------------
template <bool kFused>
__global__ void matmul_naive(const float* __restrict__ inp, const float* __restrict__ w,
                             const float* __restrict__ bias, float* __restrict__ out, int M, int N, int K) {
  const int n = int(blockIdx.x * blockDim.x + threadIdx.x), m = int(blockIdx.y * blockDim.y + threadIdx.y);
  if (m >= M || n >= N) return;
  const float* a = inp + int64_t(m) * K;
  const float* b = w + int64_t(n) * K;
  float acc = 0.f;
  for (int k = 0; k < K; ++k) acc += a[k] * b[k];
  out[int64_t(m) * N + n] = kFused ? gelu(acc + bias[n]) : acc;
}

// v1's second kernel: out = gelu(out + bias), a grid-stride loop over M*N.
__global__ void bias_gelu(float* __restrict__ out, const float* __restrict__ bias, int64_t MN, int N) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < MN; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = gelu(out[i] + bias[i % N]);
}

// ---- v3: 16x16 shared-memory tiles -----------------------------------------------------------
constexpr int kT = 16;

__global__ void matmul_tiled(const float* __restrict__ inp, const float* __restrict__ w,
                             const float* __restrict__ bias, float* __restrict__ out, int M, int N, int K) {
  MM_SHARED_2D(float, As, kT, kT);      // As[row of inp][k]
  MM_SHARED_2D(float, Ws, kT, kT + 1);  // Ws[row of W][k], padded
  const int tx = int(threadIdx.x), ty = int(threadIdx.y);
  const int m0 = int(blockIdx.y) * kT, n0 = int(blockIdx.x) * kT;
  float acc = 0.f;
  for (int k0 = 0; k0 < K; k0 += kT) {
    // Thread (ty, tx) loads element k0 + tx of row ty of each tile (zeros past the edges).
    const int k = k0 + tx;
    As[ty][tx] = m0 + ty < M && k < K ? inp[int64_t(m0 + ty) * K + k] : 0.f;
    Ws[ty][tx] = n0 + ty < N && k < K ? w[int64_t(n0 + ty) * K + k] : 0.f;
    __syncthreads();
    MM_UNROLL
    for (int kk = 0; kk < kT; ++kk) acc += As[ty][kk] * Ws[tx][kk];
    __syncthreads();  // before the next tile overwrites these
  }
  const int m = m0 + ty, n = n0 + tx;
  if (m < M && n < N) out[int64_t(m) * N + n] = gelu(acc + bias[n]);
}

// ---- v4: 64x64 block tile, 4x4 per thread ----------------------------------------------------
constexpr int kBM = 64, kBN = 64, kBK = 8, kV4Threads = 256, kR = 4;  // 16 x 16 threads, 4 x 4 each

__global__ void __launch_bounds__(kV4Threads)
    matmul_blocked(const float* __restrict__ inp, const float* __restrict__ w, const float* __restrict__ bias,
                   float* __restrict__ out, int M, int N, int K) {
  MM_SHARED_2D(float, As, kBK, kBM);  // k-major: As[k][m]
  MM_SHARED_2D(float, Ws, kBK, kBN);  // Ws[k][n]
  const int tid = int(threadIdx.x), tx = tid % 16, ty = tid / 16;
  const int m0 = int(blockIdx.y) * kBM, n0 = int(blockIdx.x) * kBN;
  float acc[kR][kR] = {};
  for (int k0 = 0; k0 < K; k0 += kBK) {
    // 64 x 8 elements per operand, 2 per thread: element e is row e / 8, column e % 8.
    MM_UNROLL
    for (int r = 0; r < kBM * kBK / kV4Threads; ++r) {
      const int e = tid + r * kV4Threads, row = e / kBK, kk = e % kBK, k = k0 + kk;
      As[kk][row] = m0 + row < M && k < K ? inp[int64_t(m0 + row) * K + k] : 0.f;
      Ws[kk][row] = n0 + row < N && k < K ? w[int64_t(n0 + row) * K + k] : 0.f;
    }
    __syncthreads();
    MM_UNROLL
    for (int kk = 0; kk < kBK; ++kk) {
      float a[kR], b[kR];
      MM_UNROLL
      for (int i = 0; i < kR; ++i) {
        a[i] = As[kk][ty + 16 * i];  // 16 threads share a row: a broadcast
        b[i] = Ws[kk][tx + 16 * i];  // consecutive threads, consecutive banks
      }
      MM_UNROLL
      for (int i = 0; i < kR; ++i)
        MM_UNROLL
        for (int j = 0; j < kR; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  MM_UNROLL
  for (int j = 0; j < kR; ++j) {
    const int n = n0 + tx + 16 * j;
    if (n >= N) continue;
    const float bn = bias[n];
    MM_UNROLL
    for (int i = 0; i < kR; ++i) {
      const int m = m0 + ty + 16 * i;
      if (m < M) out[int64_t(m) * N + n] = gelu(acc[i][j] + bn);
    }
  }
}

// ---- launchers -------------------------------------------------------------------------------
struct Args {
  const float *inp, *w, *bias;
  float* out;
  const __nv_bfloat16 *inp16, *w16, *bias16;  // v5's operands (the same values, rounded)
  __nv_bfloat16* out16;
  Shape s;
};

inline unsigned div_up(int64_t a, int64_t b) { return unsigned((a + b - 1) / b); }

inline void launch_v1(const Args& a) {
  MM_LAUNCH((matmul_naive<false>), dim3(div_up(a.s.N, 16), div_up(a.s.M, 16)), dim3(16, 16), 0, 0, a.inp, a.w,
            a.bias, a.out, a.s.M, a.s.N, a.s.K);
  const int64_t mn = int64_t(a.s.M) * a.s.N;
  MM_LAUNCH(bias_gelu, dim3(div_up(mn, 256) < 65535 ? div_up(mn, 256) : 65535), dim3(256), 0, 0, a.out, a.bias, mn,
            a.s.N);
}
inline void launch_v2(const Args& a) {
  MM_LAUNCH((matmul_naive<true>), dim3(div_up(a.s.N, 16), div_up(a.s.M, 16)), dim3(16, 16), 0, 0, a.inp, a.w, a.bias,
            a.out, a.s.M, a.s.N, a.s.K);
}
inline void launch_v3(const Args& a) {
  MM_LAUNCH(matmul_tiled, dim3(div_up(a.s.N, kT), div_up(a.s.M, kT)), dim3(kT, kT), 0, 0, a.inp, a.w, a.bias, a.out,
            a.s.M, a.s.N, a.s.K);
}
inline void launch_v4(const Args& a) {
  MM_LAUNCH(matmul_blocked, dim3(div_up(a.s.N, kBN), div_up(a.s.M, kBM)), dim3(kV4Threads), 0, 0, a.inp, a.w,
            a.bias, a.out, a.s.M, a.s.N, a.s.K);
}

#ifndef MM_CUDA_EMU
// ---- v5: cuBLASLt, bf16, GELU_BIAS epilogue ---------------------------------------------------
#define MM_LT_CHECK(call)                                                                              \
  do {                                                                                                 \
    const cublasStatus_t mm_lt_st_ = (call);                                                           \
    MM_CHECK(mm_lt_st_ == CUBLAS_STATUS_SUCCESS, "matmul study v5: ", #call, " failed: ",             \
             cublasGetStatusString(mm_lt_st_));                                                        \
  } while (0)

// The descriptors of one shape, built once (building them per call would add host time
// to what is timed). Row-major out [M, N] = inp [M, K] W[N, K]^T is, column-major,
// out^T [N, M] = W^T inp^T with W seen as [K, N] (transposed: op A = T) and inp as [K, M];
// the bias runs along the N rows of the column-major result, as GELU_BIAS expects.
struct LtPlan {
  static constexpr size_t kWorkspace = size_t(32) << 20;
  Shape s{0, 0, 0};
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulHeuristicResult_t heuristic{};
};

inline LtPlan& lt_plan(const Shape& s) {
  static LtPlan p;
  if (!p.handle) {
    MM_LT_CHECK(cublasLtCreate(&p.handle));
    MM_CUDA_CHECK(cudaMalloc(&p.workspace, LtPlan::kWorkspace), "matmul study v5: workspace");
  }
  if (p.s.M == s.M && p.s.N == s.N && p.s.K == s.K) return p;
  if (p.op) {
    cublasLtMatmulDescDestroy(p.op);
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.d);
  }
  MM_LT_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_GELU_BIAS;
  MM_LT_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  MM_LT_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  MM_LT_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  MM_LT_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(s.K), uint64_t(s.N), int64_t(s.K)));
  MM_LT_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(s.K), uint64_t(s.M), int64_t(s.K)));
  MM_LT_CHECK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_16BF, uint64_t(s.N), uint64_t(s.M), int64_t(s.N)));
  cublasLtMatmulPreference_t pref = nullptr;
  MM_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = LtPlan::kWorkspace;
  MM_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(p.handle, p.op, p.a, p.b, p.d, p.d, pref, 1, &p.heuristic, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  MM_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0, "matmul study v5: cuBLASLt has no algorithm for ", s.M, "x",
           s.N, "x", s.K, " bf16 with GELU_BIAS (", cublasGetStatusString(st), ")");
  p.s = s;
  return p;
}

inline void launch_v5(const Args& a) {
  LtPlan& p = lt_plan(a.s);
  MM_LT_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &a.bias16, sizeof a.bias16));
  const float alpha = 1.f, beta = 0.f;
  MM_LT_CHECK(cublasLtMatmul(p.handle, p.op, &alpha, a.w16, p.a, a.inp16, p.b, &beta, a.out16, p.d, a.out16, p.d,
                             &p.heuristic.algo, p.workspace, LtPlan::kWorkspace, 0));
}
#endif

struct Version {
  const char* name;
  void (*launch)(const Args&);
  bool bf16;  // runs on the bf16 operands (v5)
};
inline const Version kVersions[] = {
    {"v1 naive, then a bias+GELU kernel", launch_v1, false},
    {"v2 naive, fused epilogue", launch_v2, false},
    {"v3 16x16 shared-memory tiles", launch_v3, false},
    {"v4 64x64 tiles, 4x4 per thread", launch_v4, false},
#ifndef MM_CUDA_EMU
    {"v5 cuBLASLt bf16, GELU_BIAS epilogue", launch_v5, true},
#endif
};

inline std::vector<float> round_bf16(const std::vector<float>& x) {
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = __bfloat162float(__float2bfloat16(x[i]));
  return r;
}
inline std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& x) {
  std::vector<__nv_bfloat16> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = __float2bfloat16(x[i]);
  return r;
}

// Inputs of one shape, their references (from the f32 values and from the values rounded
// to bf16, what v5 sees) and the device buffers every version reads.
struct Problem {
  Shape s;
  std::vector<double> ref, ref16;
  DeviceBuffer<float> inp, w, bias, out;
  DeviceBuffer<__nv_bfloat16> inp16, w16, bias16, out16;

  Problem(const Shape& sh, const std::vector<float>& i, const std::vector<float>& wv, const std::vector<float>& b)
      : s(sh),
        ref(reference(i, wv, b, sh)),
        ref16(on_gpu() ? reference(round_bf16(i), round_bf16(wv), round_bf16(b), sh) : std::vector<double>()),
        inp(i), w(wv), bias(b), out{ref.size()}, inp16(to_bf16(i)), w16(to_bf16(wv)), bias16(to_bf16(b)),
        out16{ref.size()} {}
  // Random inputs; W scaled by 1/sqrt(K) keeps the pre-activations O(1).
  static Problem random(const Shape& sh) {
    const float scale = 1.f / std::sqrt(float(sh.K));
    return Problem(sh, random_vector(size_t(sh.M) * sh.K, uint64_t(sh.M + 3 * sh.K)),
                   random_vector(size_t(sh.N) * sh.K, uint64_t(sh.N + 5 * sh.K), -2.f * scale, 2.f * scale),
                   random_vector(size_t(sh.N), uint64_t(sh.N)));
  }
  Args args() const {
    return Args{inp.get(), w.get(), bias.get(), out.get(), inp16.get(), w16.get(), bias16.get(), out16.get(), s};
  }

  bool check(const Version& ver, bool quiet_name = false) {
    const std::string what =
        quiet_name ? std::string(ver.name) : cat(ver.name, " [", s.M, ", ", s.N, ", ", s.K, "]");
    if (ver.bf16 && (s.K % 8 != 0 || s.N % 8 != 0)) {  // cuBLASLt wants 16-byte aligned rows
      if (g_verbose) std::printf("  skip %s: K and N must be multiples of 8\n", what.c_str());
      return true;
    }
    out.poison();
    out16.poison();
    ver.launch(args());
    if (!ver.bf16) return check_close(what, out.download(), ref, 1e-5, 1e-4);
    std::vector<float> got;
    for (const __nv_bfloat16& v : out16.download()) got.push_back(__bfloat162float(v));
    return check_close(what, got, ref16, 1e-2, 1e-2);  // a bf16 output has 8 mantissa bits
  }
};

// Sizes that are not multiples of any tile (16, 64, 8), one row, one output column,
// K below one k-step, and a shape v5 accepts.
inline bool run_checks() {
  const Shape shapes[] = {{37, 50, 29}, {1, 70, 5}, {66, 1, 17}, {64, 96, 80}};
  bool ok = true;
  if (g_verbose) std::printf("matmul + bias + GELU: every version against the CPU reference\n");
  for (const Shape& s : shapes) {
    Problem p = Problem::random(s);
    for (const Version& v : kVersions) ok &= p.check(v);
  }
  if (!on_gpu() && g_verbose) std::printf("  (v5, cuBLASLt, needs a GPU: not in the emulator build)\n");
  return ok;
}

// OFA-base FFN up-projection: M = B*T = 2048, K = C = 768, N = 4C = 3072.
inline void run_timing(int only) {
  const Shape s{2048, 3072, 768};
  const double elems = double(s.M) * s.K + double(s.N) * s.K + s.N + double(s.M) * s.N;  // inp, W, bias, out
  Cost c32, c16;
  c32.flops = c16.flops = 2.0 * s.M * s.N * s.K;  // the epilogue's ~10 FLOPs per output are < 1% of it
  c32.bytes = elems * 4;
  c16.bytes = elems * 2;
  print_cost("matmul+bias+GELU", cat("M=", s.M, " N=", s.N, " K=", s.K, " f32"), c32);
  print_cost("matmul+bias+GELU", cat("M=", s.M, " N=", s.N, " K=", s.K, " bf16"), c16);
  if (only < 0) return;
  Problem p = Problem::random(s);  // the reference takes a few seconds: once for all versions
  for (int i = 0; i < int(std::size(kVersions)); ++i) {
    const Version& ver = kVersions[i];
    if (only && only != i + 1) continue;
    if (!p.check(ver, true)) continue;
    const Args a = p.args();
    report(ver.name, time_us([&] { ver.launch(a); }, 10, 2), ver.bf16 ? c16 : c32);
  }
}

}  // namespace mm::study::matmul_bias_gelu

MM_STUDY_MAIN(mm::study::matmul_bias_gelu::run_checks, mm::study::matmul_bias_gelu::run_timing)
