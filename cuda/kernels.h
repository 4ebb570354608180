// Host entry points of the handwritten kernels (cuda/*.cu), one family per file. The CUDA
// backend (cuda_backend.cpp) checks shapes and picks these; they only launch.
//
// Every pointer is device memory at a tensor's first element; every launch goes on
// `stream`. `dt` picks the instantiation: f32, f64, bf16, f16 (computed in f32 for the
// 16-bit types, in f64 for f64) unless a comment says otherwise. Shape letters as in
// ops/backend.h: M rows, N the reduced/normalised axis, B batch, H heads, T time,
// D head size, V vocabulary.
#pragma once
#include <cstdint>

#include "cuda/kernel_api.h"
#include "cuda/strided.h"
#include "ops/backend.h"

namespace mm::cuda::kernels {

// ---- memory.cu -----------------------------------------------------------------------
// dst[0, n) = the element whose bytes are `bits` (1, 2, 4 or 8 bytes).
void fill(void* dst, int64_t n, int elem_size, uint64_t bits, cudaStream_t s);
// dst[i] = lo + (hi - lo) u_i (uniform) or lo + hi z_i (normal, lo = mean, hi = std), from
// Philox(seed, offset, i) exactly as the CPU backend draws them.
void fill_random(DType dt, void* dst, int64_t n, bool normal, double lo, double hi, uint64_t seed,
                 uint64_t offset, cudaStream_t s);
// dst[offset 1] = src[offset 0] over the walk d (operand 0: src, 1: dst), converting dtype.
// Any dtypes (integers and bool go through double, as the CPU's copy does).
void copy(DType src_dt, const void* src, DType dst_dt, void* dst, const Strided<2>& d, cudaStream_t s);

// ---- elementwise.cu ----------------------------------------------------------------------
// y[i] = op(x[i]) over contiguous [n].
void unary(UnaryOp op, DType dt, const void* x, void* y, int64_t n, double alpha, cudaStream_t s);
// gx[i] = gy[i] * op'(x[i]) (some derivatives read y = op(x)).
void unary_backward(UnaryOp op, DType dt, const void* x, const void* y, const void* gy, void* gx, int64_t n,
                    double alpha, cudaStream_t s);
// out = a op b over the walk d (0: a, 1: b, 2: out). dt: f32 f64 bf16 f16 i32 i64; comparison
// ops write bool (u8). A contiguous walk takes 128-bit loads and stores.
void binary(BinaryOp op, DType dt, const void* a, const void* b, void* out, const Strided<3>& d, cudaStream_t s);
// out = cond ? a : b over the walk d (0: cond u8, 1: a, 2: b, 3: out).
void where(DType dt, const uint8_t* cond, const void* a, const void* b, void* out, const Strided<4>& d,
           cudaStream_t s);

// ---- reduce.cu ---------------------------------------------------------------------------
// out [outer, inner] = sum or max of x [outer, red, inner] over red; for max, argmax
// [outer, inner] (i64, the first maximum; a NaN wins).
void reduce(ReduceOp op, DType dt, const void* x, int64_t outer, int64_t red, int64_t inner, void* out,
            int64_t* argmax, cudaStream_t s);
// partial[b] (double) for b < sum_squares_blocks(n): sums of x^2 over a fixed split of x [n].
int sum_squares_blocks(int64_t n);
void sum_squares(DType dt, const void* x, int64_t n, double* partial, cudaStream_t s);

// ---- gemm.cu -----------------------------------------------------------------------------
// The tiled shared-memory GEMM of GemmArgs (batched, transposes, alpha, beta; beta == 0
// never reads C). On a real GPU the backend calls cuBLAS instead; this stays the fallback
// and the version to study.
void gemm_tiled(const GemmArgs& g, cudaStream_t s);

// ---- softmax.cu --------------------------------------------------------------------------
// y [M, N] = softmax or log-softmax of x over rows (one block per row).
void softmax(DType dt, const void* x, void* y, int64_t m, int64_t n, bool log, cudaStream_t s);
void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t m, int64_t n, bool log,
                      cudaStream_t s);

// ---- norm.cu -----------------------------------------------------------------------------
// LayerNorm over rows of x [M, N]; w, b [N] or null; mean, rstd [M].
void layer_norm(DType dt, const void* x, const void* w, const void* b, double eps, void* y, void* mean,
                void* rstd, int64_t m, int64_t n, cudaStream_t s);
// gx [M, N]; gw, gb [N] (or null) accumulate (+=). `scratch` holds
// layer_norm_scratch_bytes(dt, m, n) bytes (the per-chunk column partials).
size_t layer_norm_scratch_bytes(DType dt, int64_t m, int64_t n);
void layer_norm_backward(DType dt, const void* x, const void* w, const void* mean, const void* rstd,
                         const void* gy, void* gx, void* gw, void* gb, int64_t m, int64_t n, void* scratch,
                         cudaStream_t s);
// GroupNorm on x [B, C, S] with G groups; mean, rstd [B, G]; w, b [C] or null.
void group_norm(DType dt, const void* x, const void* w, const void* b, int64_t B, int64_t C, int64_t S,
                int64_t G, double eps, void* y, void* mean, void* rstd, cudaStream_t s);
// gx; gw, gb [C] accumulate. scratch: 2 * B * C doubles (per (sample, channel) sums).
void group_norm_backward(DType dt, const void* x, const void* w, const void* mean, const void* rstd,
                         const void* gy, void* gx, void* gw, void* gb, int64_t B, int64_t C, int64_t S, int64_t G,
                         double* scratch, cudaStream_t s);
// BatchNorm on x [B, C, S]: per-channel statistics (training) or running ones (eval).
void batch_norm(DType dt, const void* x, const void* w, const void* b, void* run_mean, void* run_var,
                bool training, double momentum, double eps, void* y, void* mean, void* rstd, int64_t B, int64_t C,
                int64_t S, cudaStream_t s);
void batch_norm_backward(DType dt, const void* x, const void* w, const void* mean, const void* rstd, bool training,
                         const void* gy, void* gx, void* gw, void* gb, int64_t B, int64_t C, int64_t S,
                         cudaStream_t s);

// ---- index.cu ----------------------------------------------------------------------------
// Indices are i64 or i32 (idx_i64). An index outside [0, n) is not used: the position
// of the first such one is written to *bad (atomicMin; the caller sets it to INT64_MAX
// first and reports it).
// out [outer, K, inner] = x [outer, n, inner] rows idx [K]; any dtype (elem_size bytes).
void index_select(int elem_size, const void* x, const void* idx, bool idx_i64, int64_t K, int64_t outer, int64_t n,
                  int64_t inner, void* out, long long* bad, cudaStream_t s);
// gx [outer, n, inner] += g [outer, K, inner] at rows idx [K]. One thread per column
// (o, c) adds the K rows in order: deterministic, no float atomics.
void index_add(DType dt, const void* g, const void* idx, bool idx_i64, int64_t K, int64_t outer, int64_t n,
               int64_t inner, void* gx, long long* bad, cudaStream_t s);
// out [outer, K, inner] = x [outer, n, inner] at idx [outer, K, inner] (torch.gather).
void gather(DType dt, const void* x, const void* idx, bool idx_i64, int64_t K, int64_t outer, int64_t n,
            int64_t inner, void* out, long long* bad, cudaStream_t s);
// gx [outer, n, inner] += g [outer, K, inner] at idx [outer, K, inner]; one thread per
// column (o, c), k in order.
void scatter_add(DType dt, const void* g, const void* idx, bool idx_i64, int64_t K, int64_t outer, int64_t n,
                 int64_t inner, void* gx, long long* bad, cudaStream_t s);

// ---- dropout.cu --------------------------------------------------------------------------
// The CPU backend's masks (ops/cpu/dropout.cpp): element i kept iff
// (philox_u32(seed, offset, i) >> 8) >= ceil(p 2^24); kept values scaled by 1 / (1 - p).
void dropout(DType dt, const void* x, double p, uint64_t seed, uint64_t offset, void* out, int64_t n,
             cudaStream_t s);
// x [B, R]: sample b kept iff (philox_u32(seed, offset, b) >> 8) >= ceil(p 2^24).
void drop_path(DType dt, const void* x, double p, uint64_t seed, uint64_t offset, void* out, int64_t B, int64_t R,
               cudaStream_t s);

// ---- loss.cu -----------------------------------------------------------------------------
// Fused softmax cross-entropy over logits [M, V] (one block per row, online softmax, nothing
// of size V written). allowed: null or u8 with (row, column) strides. A row whose target
// is neither ignore_index nor a valid allowed id writes its index to *bad (atomicMin).
void cross_entropy(DType dt, const void* logits, const int64_t* targets, const uint8_t* allowed, int64_t a_row,
                   int64_t a_col, int64_t ignore_index, double smoothing, void* loss, void* lse, int64_t m,
                   int64_t v, long long* bad, cudaStream_t s);
void cross_entropy_backward(DType dt, const void* logits, const int64_t* targets, const uint8_t* allowed,
                            int64_t a_row, int64_t a_col, int64_t ignore_index, double smoothing, const void* lse,
                            const void* gloss, void* glogits, int64_t m, int64_t v, cudaStream_t s);

// ---- attention.cu ------------------------------------------------------------------------
struct AttentionShape {
  int64_t B = 0, H = 0, Tq = 0, Tk = 0, D = 0;
  int64_t bias_stride[4] = {0, 0, 0, 0};  // of the bias broadcast to [B, H, Tq, Tk]
};
// Largest head size the attention kernel takes.
constexpr int64_t kAttentionMaxD = 256;
// q [B, H, Tq, D], k, v [B, H, Tk, D], bias (null or strided), key_pad (null or u8 [B, Tk]):
// out [B, H, Tq, D] and probs [B, H, Tq, Tk]. One warp per query row; key/value tiles in
// shared memory; online softmax; probs normalised by the final row statistics.
void attention(DType dt, const AttentionShape& a, const void* q, const void* k, const void* v, const void* bias,
               const uint8_t* key_pad, bool causal, double scale, void* out, void* probs, cudaStream_t s);
// In place over probs-shaped rows [rows, Tk]: ds = p * (ds - sum_j p_j ds_j).
void softmax_jacobian_rows(DType dt, const void* p, void* ds, int64_t rows, int64_t tk, cudaStream_t s);

// ---- conv.cu -----------------------------------------------------------------------------
// One sample of an NCHW convolution or pooling window: input [Cin, H, W], kernel KH x KW,
// output [*, OH, OW].
struct ConvGeometry {
  int64_t Cin = 0, H = 0, W = 0, KH = 0, KW = 0, OH = 0, OW = 0, sh = 1, sw = 1, ph = 0, pw = 0;
};
// col [Cin KH KW, OH OW] of one sample x [Cin, H, W] (zeros where the window is padding).
void im2col(DType dt, const void* x, void* col, const ConvGeometry& g, cudaStream_t s);
// x [Cin, H, W] = the adjoint of im2col applied to col (overwrites; one thread per input
// element, deterministic).
void col2im(DType dt, const void* col, void* x, const ConvGeometry& g, cudaStream_t s);
// y [B, C, P] += b [C].
void add_channel_bias(DType dt, void* y, const void* b, int64_t B, int64_t C, int64_t P, cudaStream_t s);
// y, argmax [planes, OH, OW] from x [planes, H, W] (argmax: flat index into H W).
void max_pool2d(DType dt, const void* x, void* y, int64_t* argmax, int64_t planes, const ConvGeometry& g,
                cudaStream_t s);
// gx [planes, HW] += gy [planes, P] at argmax; one thread per plane, outputs in order.
void max_pool2d_backward(DType dt, const void* gy, const int64_t* argmax, void* gx, int64_t planes, int64_t P,
                         int64_t HW, cudaStream_t s);

// ---- adamw.cu ----------------------------------------------------------------------------
// One AdamW step over contiguous p, g, m, v [n] (f32, f64).
void adamw(DType dt, void* p, const void* g, void* m, void* v, int64_t n, double lr, double b1, double b2,
           double eps, double wd, double c1, double c2, cudaStream_t s);

}  // namespace mm::cuda::kernels
