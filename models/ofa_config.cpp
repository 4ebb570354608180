#include "models/ofa_config.h"

#include <nlohmann/json.hpp>

#include "models/layers.h"
#include "models/patch_embed.h"
#include "models/positions.h"
#include "models/resnet.h"
#include "runtime/error.h"

namespace mm {

namespace {

OfaConfig sized(const char* name, int64_t d, int64_t ffn, int64_t heads, int64_t enc, int64_t dec,
                std::vector<int64_t> blocks) {
  OfaConfig c;
  c.name = name;
  c.d_model = d;
  c.ffn_dim = ffn;
  c.heads = heads;
  c.encoder_layers = enc;
  c.decoder_layers = dec;
  c.resnet_blocks = std::move(blocks);
  return c;
}

}  // namespace

std::vector<std::string> OfaConfig::preset_names() { return {"micro", "tiny", "medium", "base", "large", "huge"}; }

OfaConfig OfaConfig::preset(const std::string& size) {
  if (size == "micro") {
    OfaConfig c = sized("micro", 32, 64, 2, 1, 1, {1, 1, 1});
    c.resnet_width = 8;
    c.audio_channels = 4;
    c.max_frames = 4;
    c.patch_channels = 4;
    c.patch_groups = 2;
    return c;
  }
  if (size == "tiny") return sized("tiny", 256, 1024, 4, 4, 4, {3, 4, 6});
  if (size == "medium") return sized("medium", 512, 2048, 8, 4, 4, {3, 4, 23});
  if (size == "base") return sized("base", 768, 3072, 12, 6, 6, {3, 4, 23});
  if (size == "large") return sized("large", 1024, 4096, 16, 12, 12, {3, 8, 36});
  if (size == "huge") return sized("huge", 1280, 5120, 16, 24, 12, {3, 8, 36});
  std::string known;
  for (auto& n : preset_names()) known += (known.empty() ? "" : " ") + n;
  throw Error(cat("OFA config: unknown size '", size, "' (known: ", known, ")"));
}

void OfaConfig::validate() const {
  MM_CHECK(vocab_size > 5, "OFA config: vocab_size ", vocab_size, " is too small");
  MM_CHECK(d_model > 0 && heads > 0 && d_model % heads == 0, "OFA config: d_model ", d_model,
           " must be a positive multiple of heads ", heads);
  MM_CHECK(ffn_dim > 0 && encoder_layers >= 0 && decoder_layers > 0, "OFA config: bad ffn_dim/layer counts");
  MM_CHECK(image_adaptor == "resnet" || image_adaptor == "patch" || image_adaptor == "none",
           "OFA config: image_adaptor must be resnet, patch or none, got '", image_adaptor, "'");
  MM_CHECK(resnet_blocks.size() == 3, "OFA config: resnet_blocks needs 3 stage counts, got ", resnet_blocks.size());
  MM_CHECK(patch_channels % patch_groups == 0, "OFA config: patch_groups ", patch_groups,
           " must divide patch_channels ", patch_channels);
  MM_CHECK(n_mels % 4 == 0, "OFA config: n_mels ", n_mels, " must be a multiple of 4 (the subsampler's stride)");
  MM_CHECK(continuous_bins >= 0 && continuous_begin >= 0 && continuous_begin + continuous_bins <= vocab_size,
           "OFA config: continuous range [", continuous_begin, ", ", continuous_begin + continuous_bins,
           ") must lie in the vocabulary of ", vocab_size);
  MM_CHECK(continuous_frequencies >= 1, "OFA config: continuous_frequencies must be >= 1, got ", continuous_frequencies);
  for (double p : {dropout, attention_dropout, activation_dropout, drop_path_rate, resnet_drop_path_rate})
    MM_CHECK(p >= 0.0 && p < 1.0, "OFA config: dropout rates must be in [0, 1), got ", p);
}

std::string OfaConfig::to_json() const {
  nlohmann::ordered_json j;
  j["model"] = "ofa";
  j["name"] = name;
  j["vocab_size"] = vocab_size;
  j["d_model"] = d_model;
  j["ffn_dim"] = ffn_dim;
  j["heads"] = heads;
  j["encoder_layers"] = encoder_layers;
  j["decoder_layers"] = decoder_layers;
  j["image_adaptor"] = image_adaptor;
  j["resnet_blocks"] = resnet_blocks;
  j["resnet_width"] = resnet_width;
  j["freeze_bn"] = freeze_bn;
  j["patch_size"] = patch_size;
  j["patch_channels"] = patch_channels;
  j["patch_groups"] = patch_groups;
  j["audio_channels"] = audio_channels;
  j["n_mels"] = n_mels;
  j["max_frames"] = max_frames;
  j["continuous_begin"] = continuous_begin;
  j["continuous_bins"] = continuous_bins;
  j["continuous_frequencies"] = continuous_frequencies;
  j["dropout"] = dropout;
  j["attention_dropout"] = attention_dropout;
  j["activation_dropout"] = activation_dropout;
  j["drop_path_rate"] = drop_path_rate;
  j["resnet_drop_path_rate"] = resnet_drop_path_rate;
  j["attn_scale_factor"] = attn_scale_factor;
  j["normformer"] = normformer;
  j["entangle_positions"] = entangle_positions;
  j["seed"] = seed;
  return j.dump();
}

OfaConfig OfaConfig::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("OFA config: invalid JSON: ", e.what()));
  }
  MM_CHECK(j.is_object(), "OFA config: expected a JSON object");
  OfaConfig c;
  try {
    for (auto& [k, v] : j.items()) {
      if (k == "model") MM_CHECK(v.get<std::string>() == "ofa", "OFA config: model is '", v.get<std::string>(), "', not ofa");
      else if (k == "name") c.name = v.get<std::string>();
      else if (k == "vocab_size") c.vocab_size = v.get<int64_t>();
      else if (k == "d_model") c.d_model = v.get<int64_t>();
      else if (k == "ffn_dim") c.ffn_dim = v.get<int64_t>();
      else if (k == "heads") c.heads = v.get<int64_t>();
      else if (k == "encoder_layers") c.encoder_layers = v.get<int64_t>();
      else if (k == "decoder_layers") c.decoder_layers = v.get<int64_t>();
      else if (k == "image_adaptor") c.image_adaptor = v.get<std::string>();
      else if (k == "resnet_blocks") c.resnet_blocks = v.get<std::vector<int64_t>>();
      else if (k == "resnet_width") c.resnet_width = v.get<int64_t>();
      else if (k == "freeze_bn") c.freeze_bn = v.get<bool>();
      else if (k == "patch_size") c.patch_size = v.get<int64_t>();
      else if (k == "patch_channels") c.patch_channels = v.get<int64_t>();
      else if (k == "patch_groups") c.patch_groups = v.get<int64_t>();
      else if (k == "audio_channels") c.audio_channels = v.get<int64_t>();
      else if (k == "n_mels") c.n_mels = v.get<int64_t>();
      else if (k == "max_frames") c.max_frames = v.get<int64_t>();
      else if (k == "continuous_begin") c.continuous_begin = v.get<int64_t>();
      else if (k == "continuous_bins") c.continuous_bins = v.get<int64_t>();
      else if (k == "continuous_frequencies") c.continuous_frequencies = v.get<int64_t>();
      else if (k == "dropout") c.dropout = v.get<double>();
      else if (k == "attention_dropout") c.attention_dropout = v.get<double>();
      else if (k == "activation_dropout") c.activation_dropout = v.get<double>();
      else if (k == "drop_path_rate") c.drop_path_rate = v.get<double>();
      else if (k == "entangle_positions") c.entangle_positions = v.get<bool>();
      else if (k == "resnet_drop_path_rate") c.resnet_drop_path_rate = v.get<double>();
      else if (k == "attn_scale_factor") c.attn_scale_factor = v.get<double>();
      else if (k == "normformer") c.normformer = v.get<bool>();
      else if (k == "seed") c.seed = v.get<uint64_t>();
      else throw Error(cat("OFA config: unknown key '", k, "'"));
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(cat("OFA config: a field has the wrong type: ", e.what()));
  }
  c.validate();
  return c;
}

std::vector<ParamRow> OfaConfig::parameter_table() const {
  const int64_t d = d_model, H = heads, V = vocab_size;
  const int64_t ln = 2 * d, lin = d * d + d;
  const int64_t text_pos = (kMaxTextPositions + 2) * d;
  const int64_t image_pos = (kImageBucketSize * kImageBucketSize + 1) * d;
  auto blocks = [&] {
    return cat("[", resnet_blocks[0], ",", resnet_blocks[1], ",", resnet_blocks[2], "]");
  };
  TransformerLayerOptions lo(d, H, ffn_dim);
  lo.normformer = normformer;
  const std::string layer = cat("d ", d, ", FFN ", ffn_dim, ", ", H, " heads", normformer ? ", NormFormer" : "");
  std::vector<ParamRow> t;
  t.push_back({"embed_tokens (shared: encoder, decoder, output)", cat(V, " x ", d), V * d});
  if (continuous_bins > 0)
    t.push_back({"continuous_embed (value embedding of continuous bins)",
                 cat(continuous_features(), " features -> ", d), continuous_features() * d + d});

  // encoder
  t.push_back({"encoder.type_embedding + layernorm_embedding", "4 types (text image audio video)", 4 * d + ln});
  if (image_adaptor == "resnet") {
    t.push_back({"encoder.embed_images (ResNet stem + stages 1..3)",
                 cat("blocks ", blocks(), ", width ", resnet_width, " -> ", image_channels(), " channels"),
                 resnet_params(ResNetOptions{resnet_blocks, resnet_width, freeze_bn, 0.0})});
    t.push_back({"encoder.image_proj", cat(image_channels(), " -> ", d), image_channels() * d + d});
  } else if (image_adaptor == "patch") {
    t.push_back({"encoder.patch_embed (Gato ResNet-v2 block per patch)",
                 cat(patch_size, "x", patch_size, " patches, ", patch_channels, " channels -> ", d),
                 patch_embed_params(PatchEmbedOptions{patch_size, patch_channels, patch_groups, d})});
  }
  if (image_adaptor != "none") {
    t.push_back({"encoder image positions + LNs", cat(kImageBucketSize, "x", kImageBucketSize, "+1 table"),
                 ln + image_pos + ln});
    t.push_back({cat("encoder.image_rel_pos_table_list (", encoder_layers, "x)"),
                 cat(image_rel_table_size(), " x ", H), encoder_layers * image_rel_table_size() * H});
  }
  if (audio_channels > 0) {
    const int64_t C = audio_channels;
    t.push_back({"encoder.audio_embed + LN", cat("2 convs stride 2, ", C, " channels, ", n_mels, " mels -> ", d),
                 (9 * C + C) + (9 * C * C + C) + (C * (n_mels / 4) * d + d) + ln});
  }
  if (max_frames > 0) t.push_back({"encoder.frame_embedding", cat(max_frames, " frames x ", d), max_frames * d});
  t.push_back({"encoder text positions + pos_ln + pos_q/k_linear", cat(kMaxTextPositions + 2, " table"),
               text_pos + ln + 2 * lin});
  t.push_back({cat("encoder.token_rel_pos_table_list (", encoder_layers, "x)"),
               cat(token_rel_table_size(), " x ", H), encoder_layers * token_rel_table_size() * H});
  t.push_back({cat("encoder.layers (", encoder_layers, "x)"), layer, encoder_layers * transformer_layer_params(lo)});
  t.push_back({"encoder.layer_norm", cat(d), ln});

  // decoder
  lo.cross_attention = true;
  t.push_back({"decoder LN emb + positions + pos_ln + self/cross pos_q/k",
               cat(kMaxTextPositions + 2, " table"), ln + text_pos + ln + 4 * lin});
  t.push_back({cat("decoder.token_rel_pos_table_list (", decoder_layers, "x)"),
               cat(token_rel_table_size(), " x ", H), decoder_layers * token_rel_table_size() * H});
  t.push_back({cat("decoder.layers (", decoder_layers, "x)"), layer + ", cross-attention",
               decoder_layers * transformer_layer_params(lo)});
  t.push_back({"decoder.layer_norm", cat(d), ln});
  return t;
}

}  // namespace mm
