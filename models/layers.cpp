#include "models/layers.h"

#include <cmath>
#include <limits>

#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/creation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/matmul.h"
#include "ops/norm.h"
#include "ops/shape.h"
#include "ops/softmax.h"

namespace mm {

// ---- Linear / Embedding / norms / conv ------------------------------------------------

Linear::Linear(int64_t in, int64_t out, Generator& init, bool has_bias, double std) {
  weight = randn({out, in}, init, 0.0, std);
  register_parameter("weight", weight);
  if (has_bias) {
    bias = zeros({out});
    register_parameter("bias", bias);
  }
}
Tensor Linear::forward(const Tensor& x) const { return linear(x, weight, bias); }

Embedding::Embedding(int64_t num, int64_t dim, Generator& init, double std) {
  weight = randn({num, dim}, init, 0.0, std);
  register_parameter("weight", weight);
}
Tensor Embedding::forward(const Tensor& ids) const { return embedding(weight, ids); }
Tensor Embedding::project(const Tensor& x) const { return linear(x, weight); }

LayerNorm::LayerNorm(int64_t dim, double eps_) : eps(eps_) {
  weight = ones({dim});
  bias = zeros({dim});
  register_parameter("weight", weight);
  register_parameter("bias", bias);
}
Tensor LayerNorm::forward(const Tensor& x) const { return layer_norm(x, weight, bias, eps); }

GroupNorm::GroupNorm(int64_t groups_, int64_t channels, double eps_) : groups(groups_), eps(eps_) {
  MM_CHECK(groups > 0 && channels % groups == 0, "GroupNorm: ", groups, " groups do not divide ", channels,
           " channels");
  weight = ones({channels});
  bias = zeros({channels});
  register_parameter("weight", weight);
  register_parameter("bias", bias);
}
Tensor GroupNorm::forward(const Tensor& x) const { return group_norm(x, groups, weight, bias, eps); }

BatchNorm2d::BatchNorm2d(int64_t channels, bool frozen_, double momentum_, double eps_)
    : frozen(frozen_), momentum(momentum_), eps(eps_) {
  weight = ones({channels});
  bias = zeros({channels});
  running_mean = zeros({channels});
  running_var = ones({channels});
  if (frozen) {
    register_buffer("weight", weight);
    register_buffer("bias", bias);
  } else {
    register_parameter("weight", weight);
    register_parameter("bias", bias);
  }
  register_buffer("running_mean", running_mean);
  register_buffer("running_var", running_var);
}
Tensor BatchNorm2d::forward(const Tensor& x) {
  return batch_norm2d(x, weight, bias, running_mean, running_var, training() && !frozen, momentum, eps);
}

Conv2d::Conv2d(int64_t cin, int64_t cout, int64_t kernel, int64_t stride_, int64_t padding_, Generator& init,
               bool has_bias)
    : stride(stride_), padding(padding_) {
  // Kaiming normal, fan_out mode, ReLU gain (torchvision's ResNet init).
  const double std = std::sqrt(2.0 / double(cout * kernel * kernel));
  weight = randn({cout, cin, kernel, kernel}, init, 0.0, std);
  register_parameter("weight", weight);
  if (has_bias) {
    bias = zeros({cout});
    register_parameter("bias", bias);
  }
}
Tensor Conv2d::forward(const Tensor& x) const { return conv2d(x, weight, bias, stride, padding); }

// ---- caches ---------------------------------------------------------------------------

void KVCache::append(const Tensor& k_new, const Tensor& v_new) {
  if (!k.defined()) {
    k = contiguous(k_new);
    v = contiguous(v_new);
    return;
  }
  MM_CHECK(k_new.size(0) == k.size(0) && k_new.size(1) == k.size(1) && k_new.size(3) == k.size(3),
           "KVCache::append: new keys ", k_new.shape(), " do not match the cache ", k.shape());
  k = concat({k, k_new}, 2);
  v = concat({v, v_new}, 2);
}

void KVCache::reorder(const std::vector<int64_t>& rows) {
  if (!k.defined()) return;
  for (int64_t r : rows)
    MM_CHECK(r >= 0 && r < k.size(0), "KVCache::reorder: row ", r, " is outside the cache's batch of ", k.size(0));
  Tensor idx = mm::to(Tensor::from_vector_i(rows, {int64_t(rows.size())}), k.device());
  k = index_select(k, 0, idx);
  v = index_select(v, 0, idx);
}

void DecoderCache::reorder(const std::vector<int64_t>& rows) {
  for (auto& c : self_attn) c.reorder(rows);
  for (auto& c : cross_attn) c.reorder(rows);
}

// ---- attention ------------------------------------------------------------------------

MultiheadAttention::MultiheadAttention(int64_t d_, int64_t heads_, Generator& init, bool head_scale,
                                       double scale_factor)
    : q_proj(d_, d_, init), k_proj(d_, d_, init), v_proj(d_, d_, init), out_proj(d_, d_, init),
      d(d_), heads(heads_), head_dim(heads_ > 0 ? d_ / heads_ : 0) {
  MM_CHECK(heads > 0 && d % heads == 0, "MultiheadAttention: width ", d, " is not divisible by ", heads, " heads");
  scaling = 1.0 / std::sqrt(double(head_dim) * scale_factor);
  register_module("q_proj", q_proj);
  register_module("k_proj", k_proj);
  register_module("v_proj", v_proj);
  register_module("out_proj", out_proj);
  if (head_scale) {
    c_attn = ones({heads});
    register_parameter("c_attn", c_attn);
  }
}

Tensor MultiheadAttention::split_heads(const Tensor& x) const {
  return permute(reshape(x, {x.size(0), x.size(1), heads, head_dim}), {0, 2, 1, 3});
}

Tensor MultiheadAttention::forward(const Tensor& query, const Tensor& kv_input, const AttentionArgs& a,
                                   KVCache* cache, bool static_kv, double attn_dropout, Generator* gen) {
  MM_CHECK(query.dim() == 3 && query.size(2) == d, "attention layer: query must be [B, T, ", d, "], got ",
           query.shape());
  const int64_t B = query.size(0), Tq = query.size(1);
  Tensor q = split_heads(q_proj.forward(query));
  Tensor k, v;
  if (cache && static_kv && cache->length() > 0) {
    k = cache->k;
    v = cache->v;
  } else {
    MM_CHECK(kv_input.dim() == 3 && kv_input.size(0) == B && kv_input.size(2) == d,
             "attention layer: keys/values must be [", B, ", T, ", d, "], got ", kv_input.shape());
    k = split_heads(k_proj.forward(kv_input));
    v = split_heads(v_proj.forward(kv_input));
    if (cache) {
      if (static_kv) {
        cache->k = contiguous(k);
        cache->v = contiguous(v);
      } else {
        cache->append(k, v);
      }
      k = cache->k;
      v = cache->v;
    }
  }

  Tensor o;
  if (training() && attn_dropout > 0.0 && gen) {
    // Dropout on the probabilities needs them materialised: the unfused path.
    const int64_t Tk = k.size(2);
    Tensor s = matmul(mul(q, scaling), transpose(k, 2, 3));  // [B, H, Tq, Tk]
    if (a.bias.defined()) s = add(s, a.bias);
    const double ninf = -std::numeric_limits<double>::infinity();
    if (a.key_padding.defined())
      s = masked_fill(s, reshape(cast(a.key_padding, DType::boolean), {B, 1, 1, Tk}), ninf);
    if (a.causal) {
      std::vector<int64_t> m(size_t(Tq * Tk));
      for (int64_t i = 0; i < Tq; ++i)
        for (int64_t j = 0; j < Tk; ++j) m[size_t(i * Tk + j)] = j > i + (Tk - Tq);
      s = masked_fill(s, mm::to(Tensor::from_vector_i(m, {Tq, Tk}, DType::boolean), s.device()), ninf);
    }
    Tensor p = dropout(softmax(s, -1), attn_dropout, *gen, true);
    o = matmul(p, v);
  } else {
    AttentionOptions ao;
    ao.bias = a.bias;
    ao.key_padding_mask = a.key_padding;
    ao.causal = a.causal;
    ao.scale = scaling;
    o = attention(q, k, v, ao);  // [B, H, Tq, Dh]
  }
  if (c_attn.defined()) o = mul(o, reshape(c_attn, {1, heads, 1, 1}));
  o = reshape(permute(o, {0, 2, 1, 3}), {B, Tq, d});
  return out_proj.forward(o);
}

// ---- transformer layer ----------------------------------------------------------------

TransformerLayer::TransformerLayer(const TransformerLayerOptions& o, Generator& init, Generator* drop)
    : opt(o),
      self_attn(o.d, o.heads, init, o.normformer, o.scale_factor),
      self_attn_layer_norm(o.d),
      final_layer_norm(o.d),
      fc1(o.d, o.ffn, init),
      fc2(o.ffn, o.d, init),
      drop_(drop) {
  register_module("self_attn", self_attn);
  register_module("self_attn_layer_norm", self_attn_layer_norm);
  if (o.normformer) register_module("self_attn_ln", *(self_attn_ln = std::make_unique<LayerNorm>(o.d)));
  if (o.cross_attention) {
    encoder_attn = std::make_unique<MultiheadAttention>(o.d, o.heads, init, o.normformer, o.scale_factor);
    encoder_attn_layer_norm = std::make_unique<LayerNorm>(o.d);
    register_module("encoder_attn", *encoder_attn);
    register_module("encoder_attn_layer_norm", *encoder_attn_layer_norm);
    if (o.normformer) register_module("cross_attn_ln", *(cross_attn_ln = std::make_unique<LayerNorm>(o.d)));
  }
  register_module("final_layer_norm", final_layer_norm);
  register_module("fc1", fc1);
  if (o.normformer) register_module("ffn_layernorm", *(ffn_layernorm = std::make_unique<LayerNorm>(o.ffn)));
  register_module("fc2", fc2);
}

Tensor TransformerLayer::residual(const Tensor& x, const Tensor& branch) {
  Tensor h = branch;
  if (drop_ && training()) {
    h = dropout(h, opt.drop.dropout, *drop_, true);
    h = drop_path(h, opt.drop.drop_path, *drop_, true);
  }
  return add(x, h);
}

Tensor TransformerLayer::forward(const Tensor& x_in, const AttentionArgs& self_args, const Tensor& enc,
                                 const AttentionArgs& cross_args, KVCache* self_cache, KVCache* cross_cache) {
  Tensor x = x_in;
  Tensor h = self_attn_layer_norm.forward(x);
  h = self_attn.forward(h, h, self_args, self_cache, false, opt.drop.attention, drop_);
  if (self_attn_ln) h = self_attn_ln->forward(h);
  x = residual(x, h);

  if (encoder_attn) {
    h = encoder_attn_layer_norm->forward(x);
    h = encoder_attn->forward(h, enc, cross_args, cross_cache, true, opt.drop.attention, drop_);
    if (cross_attn_ln) h = cross_attn_ln->forward(h);
    x = residual(x, h);
  }

  h = gelu(fc1.forward(final_layer_norm.forward(x)), opt.gelu_tanh);
  if (drop_ && training()) h = dropout(h, opt.drop.activation, *drop_, true);
  if (ffn_layernorm) h = ffn_layernorm->forward(h);
  return residual(x, fc2.forward(h));
}

double drop_path_at(double rate, int64_t i, int64_t n) { return n > 1 ? rate * double(i) / double(n - 1) : 0.0; }

int64_t transformer_layer_params(const TransformerLayerOptions& o) {
  const int64_t d = o.d, f = o.ffn;
  const int64_t attn = 4 * (d * d + d) + (o.normformer ? o.heads : 0);
  const int64_t ln = 2 * d;
  int64_t n = attn + ln + (o.normformer ? ln : 0);
  if (o.cross_attention) n += attn + ln + (o.normformer ? ln : 0);
  n += (d * f + f) + (f * d + d) + ln + (o.normformer ? 2 * f : 0);
  return n;
}

}  // namespace mm
