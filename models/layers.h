// The building blocks of the models: Modules (autograd/module.h) with stable parameter
// names (the names checkpoints use, listed next to each layer) over the functional ops.
//
//   Generator init(1), drop(2);                            // the model owns both
//   Linear fc(256, 1024, init);                            // fc.weight [1024, 256], fc.bias [1024]
//   TransformerLayer layer(TransformerLayerOptions(256, 4, 1024), init, &drop);
//   Tensor y = layer.forward(x, AttentionArgs(bias, pad, /*causal=*/false));   // x [B, T, 256]
//
// Shape letters: B batch, T sequence (Tq queries, Tk keys), C/d model width, H heads,
// Dh = d / H head width, V vocabulary.
// Initialisation follows BERT/fairseq: Normal(0, 0.02) for Linear and Embedding weights,
// zero biases, LayerNorm 1/0, Kaiming-normal (fan_out) convolutions as torchvision's
// ResNet. Loading a checkpoint overwrites all of it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/module.h"
#include "runtime/philox.h"
#include "runtime/tensor.h"

namespace mm {

// Linear: x [..., in] -> [..., out].   weight [out, in], bias [out] (optional)
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, Generator& init, bool bias = true, double std = 0.02);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
};

// Embedding: ids [...] -> [..., C].   weight [V, C]
// Tied use (OFA's shared encoder/decoder/output table): the model holds one Embedding and
// calls both forward() and project(); the gradient of both uses accumulates in weight.
class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Generator& init, double std = 0.02);
  Tensor forward(const Tensor& ids) const;
  // x [..., C] -> [..., V]: x weight^T, the tied output projection.
  Tensor project(const Tensor& x) const;
  Tensor weight;
};

// LayerNorm over the last dim: x [..., C] -> [..., C].   weight [C], bias [C]
class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  double eps;
};

// GroupNorm: x [B, C, ...] -> same.   weight [C], bias [C]
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t groups, int64_t channels, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  int64_t groups;
  double eps;
};

// BatchNorm2d: x [B, C, H, W] -> same.   weight, bias [C]; buffers running_mean,
// running_var [C]. frozen = OFA's --freeze-resnet: always the running statistics, and
// weight/bias are buffers (saved under the same names, never trained).
class BatchNorm2d : public Module {
 public:
  BatchNorm2d(int64_t channels, bool frozen = false, double momentum = 0.1, double eps = 1e-5);
  Tensor forward(const Tensor& x);
  Tensor weight, bias, running_mean, running_var;
  bool frozen;
  double momentum, eps;
};

// Conv2d: x [B, Cin, H, W] -> [B, Cout, OH, OW].   weight [Cout, Cin, K, K], bias [Cout] (optional)
class Conv2d : public Module {
 public:
  Conv2d(int64_t cin, int64_t cout, int64_t kernel, int64_t stride, int64_t padding, Generator& init,
         bool bias = false);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  int64_t stride, padding;
};

// Keys and values of one attention layer for incremental decoding, [B, H, T, Dh] each.
// Self-attention appends one step per call; cross-attention fills it once from the
// encoder output and then only reads it.
struct KVCache {
  Tensor k, v;
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
  void append(const Tensor& k_new, const Tensor& v_new);
  // Keeps rows rows[i] (beam search: the beams that survive, repeated as needed).
  void reorder(const std::vector<int64_t>& rows);
};

// The incremental state of a whole decoder: one self- and (encoder-decoder) one cross-
// attention cache per layer, and the number of positions already decoded.
struct DecoderCache {
  std::vector<KVCache> self_attn, cross_attn;
  int64_t steps = 0;
  // The decoder's token table [V, d] (embedding and tied output projection) when it is
  // computed (OFA's value embedding): built at the first step, not at every token.
  Tensor token_table;
  void reorder(const std::vector<int64_t>& rows);
};

// Dropout settings of one layer; rates apply only in training mode.
struct DropoutRates {
  double dropout = 0.0;       // on sublayer outputs and embeddings
  double attention = 0.0;     // on the attention probabilities
  double activation = 0.0;    // on the FFN hidden after GELU
  double drop_path = 0.0;     // stochastic depth of this layer's residual branches
};

// What a multi-head attention call takes besides q/k/v.
struct AttentionArgs {
  Tensor bias;         // undefined or broadcastable to [B, H, Tq, Tk] (learned position biases)
  Tensor key_padding;  // undefined or u8/bool [B, Tk], 1 = padding (never attended)
  bool causal = false; // key j visible to query i iff j <= i + (Tk - Tq)
  AttentionArgs() = default;
  AttentionArgs(Tensor b, Tensor pad, bool c) : bias(std::move(b)), key_padding(std::move(pad)), causal(c) {}
};

// Multi-head attention: query [B, Tq, d], kv_input [B, Tk, d] -> [B, Tq, d].
//   q_proj, k_proj, v_proj, out_proj: Linear(d, d);  c_attn [H]: per-head output scale
//   (NormFormer's head scale, present when head_scale).
// Scores are (q * (Dh * scale_factor)^-0.5) k^T + bias: scale_factor 2 is OFA's content
// scaling, 1 the usual 1/sqrt(Dh).
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t d, int64_t heads, Generator& init, bool head_scale, double scale_factor);
  // cache (optional): self-attention (static_kv false) appends this call's k/v and
  // attends over everything cached; cross-attention (static_kv true) computes k/v from
  // kv_input once, on the first call, and reuses them.
  Tensor forward(const Tensor& query, const Tensor& kv_input, const AttentionArgs& a, KVCache* cache,
                 bool static_kv, double attn_dropout, Generator* gen);
  Linear q_proj, k_proj, v_proj, out_proj;
  Tensor c_attn;
  int64_t d, heads, head_dim;
  double scaling;

 private:
  Tensor split_heads(const Tensor& x) const;  // [B, T, d] -> [B, H, T, Dh] (a view)
};

// Position-wise feed-forward: x [B, T, d] -> [B, T, d].
//   fc1: Linear(d, ffn), GELU, dropout, ffn_layernorm (NormFormer, optional), fc2: Linear(ffn, d)
// Held inside TransformerLayer (whose names fc1/fc2/ffn_layernorm it registers).

struct TransformerLayerOptions {
  int64_t d = 0, heads = 0, ffn = 0;
  TransformerLayerOptions() = default;
  TransformerLayerOptions(int64_t d_, int64_t heads_, int64_t ffn_) : d(d_), heads(heads_), ffn(ffn_) {}
  bool cross_attention = false;  // decoder of an encoder-decoder model
  bool normformer = true;        // attention-output LN, FFN-hidden LN, per-head scale
  double scale_factor = 2.0;     // content scaling (OFA 2, GPT-2 1)
  bool gelu_tanh = false;        // GELU form: exact erf (OFA) or tanh (GPT-2)
  DropoutRates drop;
};

// A pre-LN transformer layer (encoder, decoder or decoder-only): x [B, T, d] -> [B, T, d].
//   self_attn, self_attn_layer_norm, self_attn_ln (NormFormer)
//   encoder_attn, encoder_attn_layer_norm, cross_attn_ln (NormFormer)   (cross_attention)
//   final_layer_norm, fc1, ffn_layernorm (NormFormer), fc2
// Each sublayer: x = x + drop_path(dropout(post_ln(sublayer(pre_ln(x))))).
class TransformerLayer : public Module {
 public:
  TransformerLayer(const TransformerLayerOptions& o, Generator& init, Generator* drop);
  // self_args: bias / padding / causal of self-attention. enc, cross_args: the encoder
  // output [B, Ts, d] and its bias/padding (cross_attention layers). cache: incremental.
  Tensor forward(const Tensor& x, const AttentionArgs& self_args, const Tensor& enc = Tensor(),
                 const AttentionArgs& cross_args = {}, KVCache* self_cache = nullptr,
                 KVCache* cross_cache = nullptr);
  TransformerLayerOptions opt;
  MultiheadAttention self_attn;
  LayerNorm self_attn_layer_norm;
  std::unique_ptr<LayerNorm> self_attn_ln;
  std::unique_ptr<MultiheadAttention> encoder_attn;
  std::unique_ptr<LayerNorm> encoder_attn_layer_norm, cross_attn_ln;
  LayerNorm final_layer_norm;
  Linear fc1;
  std::unique_ptr<LayerNorm> ffn_layernorm;
  Linear fc2;

 private:
  Tensor residual(const Tensor& x, const Tensor& branch);
  Generator* drop_;
};

// Rate of layer i of n when stochastic depth rises linearly from 0 to `rate` over depth
// (the first layer 0, the last `rate`).
double drop_path_at(double rate, int64_t i, int64_t n);

// Parameter count of a TransformerLayer, computed without building it.
int64_t transformer_layer_params(const TransformerLayerOptions& o);

}  // namespace mm
