#include "models/gato.h"

#include <nlohmann/json.hpp>

#include "ops/creation.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/shape.h"

namespace mm {

// ---- config ---------------------------------------------------------------------------

std::vector<std::string> GatoConfig::preset_names() { return {"micro", "79m", "364m", "1.18b", "gpt2-124m"}; }

GatoConfig GatoConfig::preset(const std::string& size) {
  GatoConfig c;
  c.name = size;
  auto dims = [&](int64_t layers, int64_t heads, int64_t d, int64_t ffn) {
    c.layers = layers;
    c.heads = heads;
    c.d_model = d;
    c.ffn_dim = ffn;
  };
  if (size == "micro") {
    dims(1, 2, 32, 64);
    c.patch_channels = 4;
    c.patch_groups = 2;
    c.max_local_positions = 16;
  } else if (size == "79m") {
    dims(8, 24, 768, 3072);
  } else if (size == "364m") {
    dims(12, 12, 1536, 6144);
  } else if (size == "1.18b") {
    dims(24, 16, 2048, 8192);
  } else if (size == "gpt2-124m") {
    dims(12, 12, 768, 3072);
    c.vocab_size = 50257;
    c.max_positions = 1024;
    c.patches = false;
    c.max_local_positions = 0;
    c.dropout = 0.0;
    c.gelu_tanh = true;
  } else {
    std::string known;
    for (auto& n : preset_names()) known += (known.empty() ? "" : " ") + n;
    throw Error(cat("Gato config: unknown size '", size, "' (known: ", known, ")"));
  }
  return c;
}

void GatoConfig::validate() const {
  MM_CHECK(vocab_size > 5, "Gato config: vocab_size ", vocab_size, " is too small");
  MM_CHECK(d_model > 0 && heads > 0 && d_model % heads == 0, "Gato config: d_model ", d_model,
           " must be a positive multiple of heads ", heads);
  MM_CHECK(layers > 0 && ffn_dim > 0, "Gato config: layers and ffn_dim must be positive");
  MM_CHECK(!patches || patch_channels % patch_groups == 0, "Gato config: patch_groups ", patch_groups,
           " must divide patch_channels ", patch_channels);
  for (double p : {dropout, attention_dropout, drop_path_rate})
    MM_CHECK(p >= 0.0 && p < 1.0, "Gato config: dropout rates must be in [0, 1), got ", p);
}

std::string GatoConfig::to_json() const {
  nlohmann::ordered_json j;
  j["model"] = "gato";
  j["name"] = name;
  j["vocab_size"] = vocab_size;
  j["d_model"] = d_model;
  j["heads"] = heads;
  j["layers"] = layers;
  j["ffn_dim"] = ffn_dim;
  j["max_positions"] = max_positions;
  j["patches"] = patches;
  j["patch_size"] = patch_size;
  j["patch_channels"] = patch_channels;
  j["patch_groups"] = patch_groups;
  j["patch_pos_bins"] = patch_pos_bins;
  j["max_local_positions"] = max_local_positions;
  j["dropout"] = dropout;
  j["attention_dropout"] = attention_dropout;
  j["drop_path_rate"] = drop_path_rate;
  j["gelu_tanh"] = gelu_tanh;
  j["seed"] = seed;
  return j.dump();
}

GatoConfig GatoConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("Gato config: invalid JSON: ", e.what()));
  }
  MM_CHECK(j.is_object(), "Gato config: expected a JSON object");
  GatoConfig c;
  try {
    for (auto& [k, v] : j.items()) {
      if (k == "model") MM_CHECK(v.get<std::string>() == "gato", "Gato config: model is '", v.get<std::string>(), "', not gato");
      else if (k == "name") c.name = v.get<std::string>();
      else if (k == "vocab_size") c.vocab_size = v.get<int64_t>();
      else if (k == "d_model") c.d_model = v.get<int64_t>();
      else if (k == "heads") c.heads = v.get<int64_t>();
      else if (k == "layers") c.layers = v.get<int64_t>();
      else if (k == "ffn_dim") c.ffn_dim = v.get<int64_t>();
      else if (k == "max_positions") c.max_positions = v.get<int64_t>();
      else if (k == "patches") c.patches = v.get<bool>();
      else if (k == "patch_size") c.patch_size = v.get<int64_t>();
      else if (k == "patch_channels") c.patch_channels = v.get<int64_t>();
      else if (k == "patch_groups") c.patch_groups = v.get<int64_t>();
      else if (k == "patch_pos_bins") c.patch_pos_bins = v.get<int64_t>();
      else if (k == "max_local_positions") c.max_local_positions = v.get<int64_t>();
      else if (k == "dropout") c.dropout = v.get<double>();
      else if (k == "attention_dropout") c.attention_dropout = v.get<double>();
      else if (k == "drop_path_rate") c.drop_path_rate = v.get<double>();
      else if (k == "gelu_tanh") c.gelu_tanh = v.get<bool>();
      else if (k == "seed") c.seed = v.get<uint64_t>();
      else throw Error(cat("Gato config: unknown key '", k, "'"));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("Gato config: a field has the wrong type: ", e.what()));
  }
  c.validate();
  return c;
}

std::vector<ParamRow> GatoConfig::parameter_table() const {
  const int64_t d = d_model;
  std::vector<ParamRow> t;
  t.push_back({"embed_tokens (tied output)", cat(vocab_size, " x ", d), vocab_size * d});
  if (max_positions > 0) t.push_back({"embed_positions", cat(max_positions, " x ", d), max_positions * d});
  if (patches) {
    t.push_back({"patch_embed (ResNet-v2 block per patch)",
                 cat(patch_size, "x", patch_size, " patches, ", patch_channels, " channels -> ", d),
                 patch_embed_params({patch_size, patch_channels, patch_groups, d})});
    t.push_back({"patch_row/col_embedding", cat("2 x ", patch_pos_bins, " x ", d), 2 * patch_pos_bins * d});
  }
  if (max_local_positions > 0)
    t.push_back({"local_pos_embedding", cat(max_local_positions, " x ", d), max_local_positions * d});
  TransformerLayerOptions lo(d, heads, ffn_dim);
  lo.normformer = false;
  t.push_back({cat("layers (", layers, "x)"), cat("d ", d, ", FFN ", ffn_dim, ", ", heads, " heads, causal"),
               layers * transformer_layer_params(lo)});
  t.push_back({"layer_norm", cat(d), 2 * d});
  return t;
}

// ---- model ----------------------------------------------------------------------------

GatoModel::GatoModel(const GatoConfig& c)
    : cfg((c.validate(), c)), init_gen(c.seed), drop_gen(c.seed + 1), embed_tokens(c.vocab_size, c.d_model, init_gen),
      layer_norm(c.d_model) {
  register_module("embed_tokens", embed_tokens);
  if (c.max_positions > 0) {
    embed_positions = std::make_unique<Embedding>(c.max_positions, c.d_model, init_gen);
    register_module("embed_positions", *embed_positions);
  }
  if (c.patches) {
    patch_embed = std::make_unique<PatchEmbed>(
        PatchEmbedOptions{c.patch_size, c.patch_channels, c.patch_groups, c.d_model}, init_gen);
    patch_row_embedding = std::make_unique<Embedding>(c.patch_pos_bins, c.d_model, init_gen);
    patch_col_embedding = std::make_unique<Embedding>(c.patch_pos_bins, c.d_model, init_gen);
    register_module("patch_embed", *patch_embed);
    register_module("patch_row_embedding", *patch_row_embedding);
    register_module("patch_col_embedding", *patch_col_embedding);
  }
  if (c.max_local_positions > 0) {
    local_pos_embedding = std::make_unique<Embedding>(c.max_local_positions, c.d_model, init_gen);
    register_module("local_pos_embedding", *local_pos_embedding);
  }
  for (int64_t l = 0; l < c.layers; ++l) {
    TransformerLayerOptions lo(c.d_model, c.heads, c.ffn_dim);
    lo.normformer = false;
    lo.scale_factor = 1.0;
    lo.gelu_tanh = c.gelu_tanh;
    lo.drop = {c.dropout, c.attention_dropout, 0.0, drop_path_at(c.drop_path_rate, l, c.layers)};
    layers.push_back(std::make_unique<TransformerLayer>(lo, init_gen, &drop_gen));
    register_module("layers." + std::to_string(l), *layers.back());
  }
  register_module("layer_norm", layer_norm);
}

Tensor GatoModel::forward(const GatoInputs& in, DecoderCache* cache) {
  MM_CHECK(in.tokens.defined() && in.tokens.dim() == 2 && in.tokens.dtype() == DType::i64,
           "Gato: tokens must be [B, T] i64, got ", in.tokens.defined() ? in.tokens.shape() : Shape{});
  const int64_t B = in.tokens.size(0), T = in.tokens.size(1), d = cfg.d_model;
  const int64_t p0 = cache ? cache->steps : 0;
  if (cfg.max_positions > 0)
    MM_CHECK(p0 + T <= cfg.max_positions, "Gato: sequence of ", p0 + T, " tokens is longer than the position table (",
             cfg.max_positions, " positions)");

  // Patch positions hold no token: embed <pad> there, then swap in the patch embedding.
  std::vector<int64_t> ids(size_t(B * T));
  std::vector<double> tv = in.tokens.to_vector();
  std::vector<double> pm = in.patch_mask.defined() ? in.patch_mask.to_vector() : std::vector<double>();
  if (!pm.empty())
    MM_CHECK(in.patch_mask.shape() == in.tokens.shape(), "Gato: patch_mask ", in.patch_mask.shape(),
             " must match tokens ", in.tokens.shape());
  int64_t n_patches = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const bool patch = !pm.empty() && pm[i] != 0.0;
    ids[i] = patch ? 0 : int64_t(tv[i]);
    n_patches += patch;
  }
  Tensor x = embed_tokens.forward(Tensor::from_vector_i(ids, {B, T}));
  if (n_patches > 0) {
    MM_CHECK(patch_embed, "Gato: the batch has image patches but the config has patches off");
    MM_CHECK(in.patches.defined() && in.patches.dim() == 4 && in.patches.size(0) == n_patches,
             "Gato: patch_mask marks ", n_patches, " patches but patches is ",
             in.patches.defined() ? in.patches.shape() : Shape{});
    MM_CHECK(in.patch_row.defined() && in.patch_col.defined() && in.patch_row.numel() == n_patches &&
                 in.patch_col.numel() == n_patches,
             "Gato: patch_row and patch_col must hold ", n_patches, " positions");
    Tensor pe = patch_embed->forward(in.patches);  // [N, d]
    pe = add(pe, add(patch_row_embedding->forward(in.patch_row), patch_col_embedding->forward(in.patch_col)));
    std::vector<int64_t> sel(size_t(B * T));
    for (int64_t i = 0, k = 0; i < B * T; ++i) sel[size_t(i)] = pm[size_t(i)] != 0.0 ? B * T + k++ : i;
    Tensor table = concat({reshape(x, {B * T, d}), pe}, 0);
    x = reshape(index_select(table, 0, Tensor::from_vector_i(sel, {B * T})), {B, T, d});
  }
  if (in.local_pos.defined() && local_pos_embedding) {
    MM_CHECK(in.local_pos.shape() == in.tokens.shape(), "Gato: local_pos ", in.local_pos.shape(),
             " must match tokens ", in.tokens.shape());
    std::vector<double> lp = in.local_pos.to_vector();
    std::vector<int64_t> lid(lp.size());
    std::vector<float> keep(lp.size());
    for (size_t i = 0; i < lp.size(); ++i) {
      MM_CHECK(lp[i] < double(cfg.max_local_positions), "Gato: local position ", lp[i],
               " is outside the local position table (", cfg.max_local_positions, " positions)");
      lid[i] = lp[i] >= 0 ? int64_t(lp[i]) : 0;
      keep[i] = lp[i] >= 0 ? 1.f : 0.f;
    }
    Tensor le = local_pos_embedding->forward(Tensor::from_vector_i(lid, {B, T}));
    x = add(x, mul(le, Tensor::from_vector_f(keep, {B, T, 1})));
  }
  if (embed_positions) {
    std::vector<int64_t> pos;
    for (int64_t t = 0; t < T; ++t) pos.push_back(p0 + t);
    x = add(x, embed_positions->forward(Tensor::from_vector_i(pos, {T})));
  }
  if (training()) x = dropout(x, cfg.dropout, drop_gen, true);

  if (cache && cache->self_attn.size() != layers.size()) {
    MM_CHECK(cache->steps == 0, "Gato: the cache has ", cache->self_attn.size(), " layers, the model ", layers.size());
    cache->self_attn.assign(layers.size(), {});
  }
  for (size_t l = 0; l < layers.size(); ++l)
    x = layers[l]->forward(x, AttentionArgs({}, {}, true), Tensor(), {}, cache ? &cache->self_attn[l] : nullptr);
  if (cache) cache->steps += T;
  return embed_tokens.project(layer_norm.forward(x));
}

std::pair<Tensor, Tensor> GatoModel::next_token_targets(const GatoInputs& in) {
  const int64_t B = in.tokens.size(0), T = in.tokens.size(1);
  std::vector<double> tv = in.tokens.to_vector();
  std::vector<double> lm = in.loss_mask.defined() ? in.loss_mask.to_vector() : std::vector<double>();
  std::vector<double> pm = in.patch_mask.defined() ? in.patch_mask.to_vector() : std::vector<double>();
  std::vector<int64_t> target(size_t(B * T), 0), mask(size_t(B * T), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t + 1 < T; ++t) {
      const size_t next = size_t(b * T + t + 1);
      const bool patch = !pm.empty() && pm[next] != 0.0;
      target[size_t(b * T + t)] = patch ? 0 : int64_t(tv[next]);
      mask[size_t(b * T + t)] = !patch && (lm.empty() || lm[next] != 0.0);
    }
  return {Tensor::from_vector_i(target, {B, T}), Tensor::from_vector_i(mask, {B, T}, DType::boolean)};
}

}  // namespace mm
