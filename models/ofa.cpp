#include "models/ofa.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "models/positions.h"
#include "ops/creation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/matmul.h"
#include "ops/shape.h"

namespace mm {

namespace {

constexpr int64_t kTypeText = 0, kTypeImage = 1, kTypeAudio = 2, kTypeVideo = 3, kNumTypes = 4;

// Masks and index tensors are small host-side data: they are built and rearranged here
// element by element on the CPU, then moved to the model's device where an op reads them.
// Inputs may come on either device; the model moves them to its own (OfaModel::to).

Tensor on(const Tensor& t, Device dev) { return t.defined() ? to(t, dev) : t; }

// bool tensor of m's shape (on the CPU), true where pred(value of m).
template <typename Pred>
Tensor mask_where(const Tensor& m, Pred pred) {
  std::vector<double> v = to(m, Device::cpu()).to_vector();
  std::vector<int64_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = pred(v[i]);
  return Tensor::from_vector_i(out, m.shape(), DType::boolean);
}
// true where the mask is false: "real" masks -> attention's padding masks.
Tensor invert_mask(const Tensor& m) { return mask_where(m, [](double x) { return x == 0.0; }); }

Tensor ids_tensor(const std::vector<int64_t>& ids) { return Tensor::from_vector_i(ids, {int64_t(ids.size())}); }

Tensor range_ids(int64_t begin, int64_t end) {
  std::vector<int64_t> v;
  for (int64_t i = begin; i < end; ++i) v.push_back(i);
  return ids_tensor(v);
}

// [1, T, d] -> [1, H, T, Dh]
Tensor heads_of(const Tensor& x, int64_t H) {
  return permute(reshape(x, {x.size(0), x.size(1), H, x.size(2) / H}), {0, 2, 1, 3});
}

// The absolute position bias (TUPE): (Pq Wq + bq) s (Pk Wk + bk)^T per head -> [1, H, Tq, Tk].
Tensor abs_pos_bias(const Linear& q_lin, const Linear& k_lin, const Tensor& pq, const Tensor& pk, int64_t H,
                    double scaling) {
  Tensor q = mul(heads_of(q_lin.forward(pq), H), scaling);
  Tensor k = heads_of(k_lin.forward(pk), H);
  return matmul(q, transpose(k, 2, 3));
}

// table [N, H], idx [Tq, Tk] -> [1, H, Tq, Tk] (a view).
Tensor rel_bias(const Tensor& table, const Tensor& idx) {
  return unsqueeze(permute(embedding(table, idx), {2, 0, 1}), 0);
}

// x [B, n, d] plus its positions [1, n, d] when they also go into the content
// (OfaConfig::entangle_positions); x as it is otherwise. Encoder and decoder alike.
Tensor entangled(const OfaConfig& c, const Tensor& x, const Tensor& pos) {
  return c.entangle_positions ? add(x, pos) : x;
}

Tensor type_row(const Embedding& types, int64_t t) {  // [1, d]
  return types.forward(to(ids_tensor({t}), types.weight.device()));
}

Tensor present_to_padding(const Tensor& present, int64_t B, int64_t n, const char* what) {
  if (!present.defined()) return Tensor::zeros({B, n}, DType::boolean);
  MM_CHECK(present.dim() == 1 && present.size(0) == B, "OFA encoder: ", what, " must be [B] = [", B, "], got ",
           present.shape());
  return contiguous(expand(reshape(invert_mask(present), {B, 1}), {B, n}));
}

void check_batch(int64_t& B, const Tensor& t, const char* what) {
  if (B < 0) B = t.size(0);
  MM_CHECK(t.size(0) == B, "OFA encoder: ", what, " has batch ", t.size(0), " but other inputs have ", B);
}

}  // namespace

EncoderOut select_rows(const EncoderOut& e, const std::vector<int64_t>& rows) {
  const Device dev = e.x.device();
  Tensor idx = to(ids_tensor(rows), dev);
  for (int64_t r : rows)
    MM_CHECK(r >= 0 && r < e.x.size(0), "select_rows: row ", r, " is outside the encoder batch of ", e.x.size(0));
  const int64_t S = e.padding.size(1);
  std::vector<double> pad = to(e.padding, Device::cpu()).to_vector();
  std::vector<int64_t> sel;
  for (int64_t r : rows)
    for (int64_t j = 0; j < S; ++j) sel.push_back(pad[size_t(r * S + j)] != 0.0);
  return {index_select(e.x, 0, idx), to(Tensor::from_vector_i(sel, {int64_t(rows.size()), S}, DType::boolean), dev),
          e.pos_embed};
}

// ---- audio ----------------------------------------------------------------------------

AudioSubsampler::AudioSubsampler(int64_t C, int64_t n_mels_, int64_t d, Generator& init)
    : n_mels(n_mels_), conv1(1, C, 3, 2, 1, init, true), conv2(C, C, 3, 2, 1, init, true), proj(C * (n_mels_ / 4), d, init) {
  register_module("conv1", conv1);
  register_module("conv2", conv2);
  register_module("proj", proj);
}

Tensor AudioSubsampler::forward(const Tensor& x) {
  const int64_t M = n_mels;
  MM_CHECK(x.dim() == 3 && x.size(2) == M, "audio adaptor: expected filterbanks [B, F, ", M, "], got ", x.shape());
  Tensor h = gelu(conv1.forward(unsqueeze(x, 1)), false);
  h = gelu(conv2.forward(h), false);  // [B, C, F/4, M/4]
  h = permute(h, {0, 2, 1, 3});
  return proj.forward(reshape(h, {h.size(0), h.size(1), h.size(2) * h.size(3)}));
}

// ---- encoder --------------------------------------------------------------------------

OfaEncoder::OfaEncoder(const OfaConfig& c, Embedding& tokens, Generator& init, Generator* drop)
    : cfg(c), embed_tokens(tokens), type_embedding(kNumTypes, c.d_model, init), layernorm_embedding(c.d_model),
      embed_positions(kMaxTextPositions + 2, c.d_model, init), pos_ln(c.d_model),
      pos_q_linear(c.d_model, c.d_model, init), pos_k_linear(c.d_model, c.d_model, init), layer_norm(c.d_model),
      drop_(drop) {
  const int64_t d = c.d_model;
  register_module("type_embedding", type_embedding);
  register_module("layernorm_embedding", layernorm_embedding);
  if (c.image_adaptor == "resnet") {
    embed_images = std::make_unique<ResNet>(
        ResNetOptions{c.resnet_blocks, c.resnet_width, c.freeze_bn, c.resnet_drop_path_rate}, init, drop);
    image_proj = std::make_unique<Linear>(c.image_channels(), d, init);
    register_module("embed_images", *embed_images);
    register_module("image_proj", *image_proj);
  } else if (c.image_adaptor == "patch") {
    patch_embed = std::make_unique<PatchEmbed>(
        PatchEmbedOptions{c.patch_size, c.patch_channels, c.patch_groups, d}, init);
    register_module("patch_embed", *patch_embed);
  }
  if (c.image_adaptor != "none") {
    patch_layernorm_embedding = std::make_unique<LayerNorm>(d);
    embed_image_positions = std::make_unique<Embedding>(kImageBucketSize * kImageBucketSize + 1, d, init);
    image_pos_ln = std::make_unique<LayerNorm>(d);
    register_module("patch_layernorm_embedding", *patch_layernorm_embedding);
    register_module("embed_image_positions", *embed_image_positions);
    register_module("image_pos_ln", *image_pos_ln);
  }
  if (c.audio_channels > 0) {
    audio_embed = std::make_unique<AudioSubsampler>(c.audio_channels, c.n_mels, d, init);
    audio_layernorm_embedding = std::make_unique<LayerNorm>(d);
    register_module("audio_embed", *audio_embed);
    register_module("audio_layernorm_embedding", *audio_layernorm_embedding);
  }
  if (c.max_frames > 0) {
    frame_embedding = std::make_unique<Embedding>(c.max_frames, d, init);
    register_module("frame_embedding", *frame_embedding);
  }
  register_module("embed_positions", embed_positions);
  register_module("pos_ln", pos_ln);
  register_module("pos_q_linear", pos_q_linear);
  register_module("pos_k_linear", pos_k_linear);
  for (int64_t l = 0; l < c.encoder_layers; ++l) {
    // Relative biases start at zero (OFA's zero_init): the model begins position-blind.
    token_rel_pos_table_list.push_back(std::make_unique<Embedding>(token_rel_table_size(), c.heads, init, 0.0));
    register_module("token_rel_pos_table_list." + std::to_string(l), *token_rel_pos_table_list.back());
  }
  if (c.image_adaptor != "none")
    for (int64_t l = 0; l < c.encoder_layers; ++l) {
      image_rel_pos_table_list.push_back(std::make_unique<Embedding>(image_rel_table_size(), c.heads, init, 0.0));
      register_module("image_rel_pos_table_list." + std::to_string(l), *image_rel_pos_table_list.back());
    }
  for (int64_t l = 0; l < c.encoder_layers; ++l) {
    TransformerLayerOptions lo(d, c.heads, c.ffn_dim);
    lo.normformer = c.normformer;
    lo.scale_factor = c.attn_scale_factor;
    lo.drop = {c.dropout, c.attention_dropout, c.activation_dropout,
               drop_path_at(c.drop_path_rate, l, c.encoder_layers)};
    layers.push_back(std::make_unique<TransformerLayer>(lo, init, drop));
    register_module("layers." + std::to_string(l), *layers.back());
  }
  register_module("layer_norm", layer_norm);
}

Tensor OfaEncoder::embed_image_grid(const Tensor& images, int64_t& h, int64_t& w) {
  MM_CHECK(cfg.image_adaptor != "none", "OFA encoder: got images but the config has image_adaptor none");
  MM_CHECK(images.dim() == 4 && images.size(1) == 3, "OFA encoder: expected images [B, 3, H, W], got ",
           images.shape());
  const int64_t B = images.size(0);
  Tensor x;
  if (embed_images) {
    Tensor f = embed_images->forward(images);  // [B, C, h, w]
    h = f.size(2);
    w = f.size(3);
    x = image_proj->forward(transpose(flatten(f, 2), 1, 2));
  } else {
    const int64_t P = cfg.patch_size;
    MM_CHECK(images.size(2) % P == 0 && images.size(3) % P == 0, "OFA encoder: image size ", images.size(2), "x",
             images.size(3), " is not a multiple of the patch size ", P);
    h = images.size(2) / P;
    w = images.size(3) / P;
    // Gato's input scaling: pixels in [-1, 1] divided by sqrt(P).
    Tensor p = image_to_patches(mul(images, 1.0 / std::sqrt(double(P))), P);
    x = reshape(patch_embed->forward(p), {B, h * w, cfg.d_model});
  }
  MM_CHECK(h <= kImageBucketSize && w <= kImageBucketSize, "OFA encoder: an image of ", images.size(2), "x",
           images.size(3), " gives a ", h, "x", w, " patch grid, larger than the ", kImageBucketSize, "x",
           kImageBucketSize, " image position table");
  return x;
}

EncoderOut OfaEncoder::forward(const OfaInputs& in) {
  const int64_t d = cfg.d_model, H = cfg.heads;
  const bool train = training() && drop_;
  auto drop = [&](const Tensor& x) { return train ? dropout(x, cfg.dropout, *drop_, true) : x; };
  std::vector<Tensor> xs, pads, poss;
  struct Block { int64_t start, len; bool grid; int64_t w; };  // a diagonal block of the rel bias
  std::vector<Block> blocks;
  int64_t B = -1, S = 0;
  const Device dev = embed_tokens.weight.device();  // pads are built on the CPU, moved once at the end

  auto image_positions = [&](int64_t h, int64_t w, int64_t repeats) {
    std::vector<int64_t> ids;
    for (int64_t f = 0; f < repeats; ++f)
      for (int64_t r = 0; r < h; ++r)
        for (int64_t c = 0; c < w; ++c) ids.push_back(r * kImageBucketSize + c + 1);
    return unsqueeze(image_pos_ln->forward(embed_image_positions->forward(on(ids_tensor(ids), dev))), 0);
  };
  auto text_positions = [&](int64_t T, const char* what) {
    MM_CHECK(T <= kMaxTextPositions, "OFA encoder: ", what, " of ", T, " tokens is longer than the position table (",
             kMaxTextPositions, " positions)");
    return unsqueeze(pos_ln.forward(embed_positions.forward(on(range_ids(0, T), dev))), 0);
  };

  if (in.images.defined()) {
    check_batch(B, in.images, "images");
    int64_t h = 0, w = 0;
    Tensor x = add(embed_image_grid(on(in.images, dev), h, w), type_row(type_embedding, kTypeImage));
    poss.push_back(image_positions(h, w, 1));
    xs.push_back(drop(patch_layernorm_embedding->forward(entangled(cfg, x, poss.back()))));
    pads.push_back(present_to_padding(in.image_present, B, h * w, "image_present"));
    blocks.push_back({S, h * w, true, w});
    S += h * w;
  }
  if (in.video.defined()) {
    MM_CHECK(frame_embedding, "OFA encoder: got video but the config has max_frames 0");
    MM_CHECK(in.video.dim() == 5 && in.video.size(2) == 3, "OFA encoder: expected video [B, N, 3, H, W], got ",
             in.video.shape());
    check_batch(B, in.video, "video");
    const int64_t N = in.video.size(1);
    MM_CHECK(N <= cfg.max_frames, "OFA encoder: video of ", N, " frames is longer than the frame position table (",
             cfg.max_frames, " frames)");
    int64_t h = 0, w = 0;
    Tensor f = embed_image_grid(reshape(on(in.video, dev), {B * N, 3, in.video.size(3), in.video.size(4)}), h, w);
    const int64_t P = h * w;
    std::vector<int64_t> frame_ids;
    for (int64_t i = 0; i < N * P; ++i) frame_ids.push_back(i / P);
    Tensor x = add(reshape(f, {B, N * P, d}), frame_embedding->forward(on(ids_tensor(frame_ids), dev)));
    x = add(x, type_row(type_embedding, kTypeVideo));
    poss.push_back(image_positions(h, w, N));
    xs.push_back(drop(patch_layernorm_embedding->forward(entangled(cfg, x, poss.back()))));
    pads.push_back(present_to_padding(in.video_present, B, N * P, "video_present"));
    for (int64_t i = 0; i < N; ++i) blocks.push_back({S + i * P, P, true, w});
    S += N * P;
  }
  if (in.audio.defined()) {
    MM_CHECK(audio_embed, "OFA encoder: got audio but the config has audio_channels 0");
    check_batch(B, in.audio, "audio");
    Tensor x = add(audio_embed->forward(on(in.audio, dev)), type_row(type_embedding, kTypeAudio));
    const int64_t T = x.size(1), F = in.audio.size(1);
    poss.push_back(text_positions(T, "audio (after 4x subsampling)"));
    xs.push_back(drop(audio_layernorm_embedding->forward(entangled(cfg, x, poss.back()))));
    // Token t covers frames 4t .. 4t+3: it is real when its first frame is.
    std::vector<int64_t> pad(size_t(B * T), 0);
    if (in.audio_mask.defined()) {
      MM_CHECK(in.audio_mask.dim() == 2 && in.audio_mask.size(0) == B && in.audio_mask.size(1) == F,
               "OFA encoder: audio_mask must be [B, F] = [", B, ", ", F, "], got ", in.audio_mask.shape());
      const Tensor mask = mm::to(in.audio_mask, Device::cpu());
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t) pad[size_t(b * T + t)] = mask.at({b, 4 * t}) == 0.0;
    }
    pads.push_back(Tensor::from_vector_i(pad, {B, T}, DType::boolean));
    blocks.push_back({S, T, false, 0});
    S += T;
  }
  if (in.src_tokens.defined()) {
    MM_CHECK(in.src_tokens.dim() == 2, "OFA encoder: src_tokens must be [B, Ts], got ", in.src_tokens.shape());
    check_batch(B, in.src_tokens, "src_tokens");
    const int64_t T = in.src_tokens.size(1);
    Tensor x = add(embedding(token_table(embed_tokens, value_embed), on(in.src_tokens, dev)),
                   type_row(type_embedding, kTypeText));
    poss.push_back(text_positions(T, "source text"));
    xs.push_back(drop(layernorm_embedding.forward(entangled(cfg, x, poss.back()))));
    if (in.src_mask.defined()) {
      MM_CHECK(in.src_mask.shape() == in.src_tokens.shape(), "OFA encoder: src_mask ", in.src_mask.shape(),
               " must match src_tokens ", in.src_tokens.shape());
      pads.push_back(invert_mask(in.src_mask));
    } else {
      pads.push_back(mask_where(in.src_tokens, [](double id) { return id == 0.0; }));
    }
    blocks.push_back({S, T, false, 0});
    S += T;
  }
  MM_CHECK(S > 0, "OFA encoder: the batch has no encoder input (no text, image, audio or video)");

  EncoderOut out;
  Tensor x = xs.size() == 1 ? xs[0] : concat(xs, 1);
  out.padding = on(pads.size() == 1 ? pads[0] : concat(pads, 1), dev);
  out.pos_embed = poss.size() == 1 ? poss[0] : concat(poss, 1);  // [1, S, d]

  const double scaling = 1.0 / std::sqrt(double(d / H) * cfg.attn_scale_factor);
  Tensor abs_bias = abs_pos_bias(pos_q_linear, pos_k_linear, out.pos_embed, out.pos_embed, H, scaling);

  // One index matrix into [token table; image table; a zero row] for every layer: the
  // relative biases of all diagonal blocks in one gather; off-block pairs read the zero.
  const int64_t n_tok = token_rel_table_size(), n_img = image_rel_pos_table_list.empty() ? 0 : image_rel_table_size();
  std::vector<int64_t> idx(size_t(S * S), n_tok + n_img);
  for (const Block& blk : blocks)
    for (int64_t i = 0; i < blk.len; ++i)
      for (int64_t j = 0; j < blk.len; ++j)
        idx[size_t((blk.start + i) * S + blk.start + j)] =
            blk.grid ? n_tok + image_rel_bucket(i / blk.w, i % blk.w, j / blk.w, j % blk.w) : token_rel_bucket(i, j);
  Tensor idx_t = on(Tensor::from_vector_i(idx, {S, S}), dev);
  Tensor zero_row = zeros({1, H}, DType::f32, dev);

  for (size_t l = 0; l < layers.size(); ++l) {
    std::vector<Tensor> parts{token_rel_pos_table_list[l]->weight};
    if (n_img) parts.push_back(image_rel_pos_table_list[l]->weight);
    parts.push_back(zero_row);
    Tensor bias = add(abs_bias, rel_bias(concat(parts, 0), idx_t));
    x = layers[l]->forward(x, AttentionArgs(bias, out.padding, false));
  }
  out.x = layer_norm.forward(x);
  return out;
}

// ---- decoder --------------------------------------------------------------------------

OfaDecoder::OfaDecoder(const OfaConfig& c, Embedding& tokens, Generator& init, Generator* drop)
    : cfg(c), embed_tokens(tokens), layernorm_embedding(c.d_model),
      embed_positions(kMaxTextPositions + 2, c.d_model, init), pos_ln(c.d_model),
      self_pos_q_linear(c.d_model, c.d_model, init), self_pos_k_linear(c.d_model, c.d_model, init),
      cross_pos_q_linear(c.d_model, c.d_model, init), cross_pos_k_linear(c.d_model, c.d_model, init),
      layer_norm(c.d_model), drop_(drop) {
  register_module("layernorm_embedding", layernorm_embedding);
  register_module("embed_positions", embed_positions);
  register_module("pos_ln", pos_ln);
  register_module("self_pos_q_linear", self_pos_q_linear);
  register_module("self_pos_k_linear", self_pos_k_linear);
  register_module("cross_pos_q_linear", cross_pos_q_linear);
  register_module("cross_pos_k_linear", cross_pos_k_linear);
  for (int64_t l = 0; l < c.decoder_layers; ++l) {
    token_rel_pos_table_list.push_back(std::make_unique<Embedding>(token_rel_table_size(), c.heads, init, 0.0));
    register_module("token_rel_pos_table_list." + std::to_string(l), *token_rel_pos_table_list.back());
  }
  for (int64_t l = 0; l < c.decoder_layers; ++l) {
    TransformerLayerOptions lo(c.d_model, c.heads, c.ffn_dim);
    lo.cross_attention = true;
    lo.normformer = c.normformer;
    lo.scale_factor = c.attn_scale_factor;
    lo.drop = {c.dropout, c.attention_dropout, c.activation_dropout,
               drop_path_at(c.drop_path_rate, l, c.decoder_layers)};
    layers.push_back(std::make_unique<TransformerLayer>(lo, init, drop));
    register_module("layers." + std::to_string(l), *layers.back());
  }
  register_module("layer_norm", layer_norm);
}

Tensor OfaDecoder::forward(const EncoderOut& enc, const Tensor& prev_tokens, DecoderCache* cache) {
  MM_CHECK(prev_tokens.dim() == 2, "OFA decoder: prev_tokens must be [B, Tt], got ", prev_tokens.shape());
  MM_CHECK(enc.x.defined() && enc.x.size(0) == prev_tokens.size(0), "OFA decoder: prev_tokens batch ",
           prev_tokens.size(0), " does not match the encoder output ", enc.x.defined() ? enc.x.shape() : Shape{});
  const int64_t H = cfg.heads, Tt = prev_tokens.size(1);
  const int64_t p0 = cache ? cache->steps : 0, Tk = p0 + Tt;
  MM_CHECK(Tk <= kMaxTextPositions, "OFA decoder: target of ", Tk, " tokens is longer than the position table (",
           kMaxTextPositions, " positions)");

  const Device dev = embed_tokens.weight.device();
  // [V, d]; when decoding step by step, built once per generation (DecoderCache)
  const Tensor table = cache && cache->token_table.defined() ? cache->token_table : token_table(embed_tokens, value_embed);
  if (cache) cache->token_table = table;
  Tensor all_pos = unsqueeze(pos_ln.forward(embed_positions.forward(on(range_ids(0, Tk), dev))), 0);  // [1, Tk, d]
  Tensor q_pos = p0 ? narrow(all_pos, 1, p0, Tt) : all_pos;
  Tensor x = layernorm_embedding.forward(entangled(cfg, embedding(table, on(prev_tokens, dev)), q_pos));
  if (training() && drop_) x = dropout(x, cfg.dropout, *drop_, true);

  const double scaling = 1.0 / std::sqrt(double(cfg.d_model / H) * cfg.attn_scale_factor);
  Tensor self_abs = abs_pos_bias(self_pos_q_linear, self_pos_k_linear, q_pos, all_pos, H, scaling);
  Tensor cross_abs = abs_pos_bias(cross_pos_q_linear, cross_pos_k_linear, q_pos, enc.pos_embed, H, scaling);

  std::vector<int64_t> idx(size_t(Tt * Tk));
  for (int64_t i = 0; i < Tt; ++i)
    for (int64_t j = 0; j < Tk; ++j) idx[size_t(i * Tk + j)] = token_rel_bucket(p0 + i, j);
  Tensor idx_t = on(Tensor::from_vector_i(idx, {Tt, Tk}), dev);

  if (cache && cache->self_attn.size() != layers.size()) {
    MM_CHECK(cache->steps == 0, "OFA decoder: the cache has ", cache->self_attn.size(), " layers, the model ",
             layers.size());
    cache->self_attn.assign(layers.size(), {});
    cache->cross_attn.assign(layers.size(), {});
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    Tensor bias = add(self_abs, rel_bias(token_rel_pos_table_list[l]->weight, idx_t));
    x = layers[l]->forward(x, AttentionArgs(bias, {}, true), enc.x, AttentionArgs(cross_abs, enc.padding, false),
                           cache ? &cache->self_attn[l] : nullptr, cache ? &cache->cross_attn[l] : nullptr);
  }
  if (cache) cache->steps += Tt;
  return linear(layer_norm.forward(x), table);  // tied output projection
}

// ---- model ----------------------------------------------------------------------------

OfaModel::OfaModel(const OfaConfig& c)
    : cfg((c.validate(), c)), init_gen(c.seed), drop_gen(c.seed + 1),
      embed_tokens(c.vocab_size, c.d_model, init_gen),
      encoder(c, embed_tokens, init_gen, &drop_gen),
      decoder(c, embed_tokens, init_gen, &drop_gen) {
  register_module("embed_tokens", embed_tokens);
  register_module("encoder", encoder);
  register_module("decoder", decoder);
  if (c.continuous_bins > 0) {
    // Created last so the other parameters draw the same initial values with or without it.
    continuous_embed = std::make_unique<ContinuousValueEmbed>(c, init_gen);
    register_module("continuous_embed", *continuous_embed);
    float* w = embed_tokens.weight.data<float>();
    std::fill(w + c.continuous_begin * c.d_model, w + (c.continuous_begin + c.continuous_bins) * c.d_model, 0.0f);
    encoder.value_embed = decoder.value_embed = continuous_embed.get();
  }
}

// ---- continuous value embedding -------------------------------------------------------

ContinuousValueEmbed::ContinuousValueEmbed(const OfaConfig& c, Generator& init)
    : begin(c.continuous_begin), bins(c.continuous_bins) {
  const int64_t F = c.continuous_features();
  weight = randn({c.d_model, F}, init, 0.0, 0.02);
  bias = zeros({c.d_model});
  register_parameter("weight", weight);
  register_parameter("bias", bias);
  std::vector<float> phi(size_t(bins * F));
  for (int64_t i = 0; i < bins; ++i) {
    const double u = (double(i) + 0.5) / double(bins) * 2.0 - 1.0;  // bin centre, companded axis
    float* row = phi.data() + i * F;
    row[0] = float(u);
    for (int64_t k = 1; k <= c.continuous_frequencies; ++k) {
      row[2 * k - 1] = float(std::sin(std::numbers::pi * double(k) * u));
      row[2 * k] = float(std::cos(std::numbers::pi * double(k) * u));
    }
  }
  features = Tensor::from_vector_f(phi, {bins, F});
}

Tensor ContinuousValueEmbed::table(const Tensor& w) const {
  const int64_t V = w.size(0), end = begin + bins;
  MM_CHECK(end <= V, "continuous_embed: range [", begin, ", ", end, ") outside the token table of ", V, " rows");
  std::vector<Tensor> parts;
  if (begin > 0) parts.push_back(narrow(w, 0, 0, begin));
  if (features.device() != w.device()) features = mm::to(features, w.device());
  parts.push_back(add(narrow(w, 0, begin, bins), linear(features, weight, bias)));
  if (end < V) parts.push_back(narrow(w, 0, end, V - end));
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

Tensor token_table(const Embedding& embed_tokens, const ContinuousValueEmbed* value_embed) {
  return value_embed ? value_embed->table(embed_tokens.weight) : embed_tokens.weight;
}

}  // namespace mm
