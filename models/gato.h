// The Gato-style decoder-only model (Reed et al. 2022) over the shared vocabulary, and
// a GPT-2-124M-shaped config of the same code for benchmarking.
//
//   GatoModel m(GatoConfig::preset("79m"));
//   GatoInputs in;  in.tokens = ids;  in.loss_mask = scored;   // + patches, local_pos
//   Tensor logits = m.forward(in);                             // [B, T, V]
//   auto [target, mask] = GatoModel::next_token_targets(in);   // for models/loss.h
//
// A sequence mixes token ids and image patches (tasks/image.h gato_patches): where
// patch_mask is true the position holds the next patch of `patches` (row-major over
// (b, t)) embedded by PatchEmbed plus learned row and column embeddings of its quantised
// position (128 intervals); elsewhere the token's embedding. Control data adds learned
// local positions (index of the token within its timestep's observation). A learned
// absolute position table is optional (GPT-2: 1024; Gato: none). Then causal pre-LN
// GPT blocks (no NormFormer extras, q scaled by 1/sqrt(Dh)), a final LayerNorm and the
// tied output projection. Loss on the next token where it is text or an action
// (loss_mask), never on a patch.
//
// Parameter names: embed_tokens.weight [V, d], embed_positions.weight [max_positions, d],
// patch_embed.* (models/patch_embed.h), patch_row_embedding.weight [128, d],
// patch_col_embedding.weight [128, d], local_pos_embedding.weight [max_local_positions, d],
// layers.L.* (models/layers.h TransformerLayer), layer_norm.{weight,bias}.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/layers.h"
#include "models/param_table.h"
#include "models/patch_embed.h"

namespace mm {

struct GatoConfig {
  std::string name = "custom";
  int64_t vocab_size = 59457;
  int64_t d_model = 768, heads = 24, layers = 8, ffn_dim = 3072;
  int64_t max_positions = 0;          // learned absolute positions (0 = none)
  bool patches = true;                // image patch embedding
  int64_t patch_size = 16, patch_channels = 8, patch_groups = 4, patch_pos_bins = 128;
  int64_t max_local_positions = 512;  // local positions within a timestep (0 = none)
  double dropout = 0.1, attention_dropout = 0.0, drop_path_rate = 0.0;
  bool gelu_tanh = false;
  uint64_t seed = 1;

  // micro, 79m (8 layers, 24 heads, 768, FFN 3072), 364m (12/12/1536/6144),
  // 1.18b (24/16/2048/8192), gpt2-124m (12/12/768/3072, V 50257, 1024 positions)
  static GatoConfig preset(const std::string& size);
  static std::vector<std::string> preset_names();
  std::string to_json() const;
  static GatoConfig from_json(const std::string& json);
  void validate() const;
  int64_t parameter_count() const { return sum_params(parameter_table()); }
  std::vector<ParamRow> parameter_table() const;
};

struct GatoInputs {
  Tensor tokens;                // [B, T] i64 (the value at patch positions is ignored)
  Tensor patch_mask;            // [B, T] bool, true = an image patch (undefined: none)
  Tensor patches;               // [N, 3, P, P] f32, N = number of true patch_mask entries
  Tensor patch_row, patch_col;  // [N] i64 in [0, patch_pos_bins)
  Tensor local_pos;             // [B, T] i64, -1 = no local position (undefined: none)
  Tensor loss_mask;             // [B, T] bool: text and action tokens
};

class GatoModel : public Module {
 public:
  explicit GatoModel(const GatoConfig& c);
  // logits [B, T, V]. With a cache, the inputs are the next T positions after
  // cache->steps (incremental decoding) and the cache is extended.
  Tensor forward(const GatoInputs& in, DecoderCache* cache = nullptr);
  // target[b, t] = tokens[b, t+1]; mask[b, t] = loss_mask[b, t+1] and t+1 is no patch;
  // the last position is never scored. Both [B, T].
  static std::pair<Tensor, Tensor> next_token_targets(const GatoInputs& in);
  const GatoConfig& config() const { return cfg; }
  Generator& dropout_generator() { return drop_gen; }

 private:
  GatoConfig cfg;
  Generator init_gen, drop_gen;

 public:
  Embedding embed_tokens;
  std::unique_ptr<Embedding> embed_positions;
  std::unique_ptr<PatchEmbed> patch_embed;
  std::unique_ptr<Embedding> patch_row_embedding, patch_col_embedding;
  std::unique_ptr<Embedding> local_pos_embedding;
  std::vector<std::unique_ptr<TransformerLayer>> layers;
  LayerNorm layer_norm;
};

}  // namespace mm
