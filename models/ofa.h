// The OFA encoder-decoder (Wang et al. 2022), the default universal model.
//
//   OfaModel m(OfaConfig::preset("tiny"));
//   OfaInputs in;  in.src_tokens = ids;  in.images = img;  in.prev_tokens = prev;
//   Tensor logits = m.forward(in);                              // [B, Tt, V]
//   // incremental decoding (generation): same logits, one step at a time
//   EncoderOut enc = m.encode(in);  DecoderCache cache;
//   Tensor step = m.decode(enc, prev_step /* [B, 1] */, &cache);  // [B, 1, V]
//
// Encoder sequence: [image patches | video frames' patches | audio tokens | text tokens],
// each part present when its input is given. Per part: an adaptor to width d, a type
// embedding (0 text, 1 image, 2 audio, 3 video), a LayerNorm, dropout. Positions never
// enter the embeddings (OFA's --disable-entangle); they enter attention as biases:
//   abs bias  = (pos_q_linear(P) * s)(pos_k_linear(P))^T, P = LN'd learned positions
//               (text/audio: 1-D table of 1026; image/video: 2-D table 42x42+1)
//   rel bias  = per layer and head, learned, on the diagonal blocks only: text/audio
//               1-D log buckets (models/positions.h), image/video frames 2-D offsets
// Decoder: shared embedding, LayerNorm, causal self-attention with the same two biases
// over target positions, cross-attention with the abs bias between target and source
// positions, final LayerNorm, output = embedding^T (tied).
//
// Parameter names (the checkpoint format; L = layer index):
//   embed_tokens.weight [V, d]
//   encoder.type_embedding.weight [4, d]      encoder.layernorm_embedding.{weight,bias}
//   encoder.embed_images.* (ResNet, models/resnet.h) + encoder.image_proj.{weight,bias}
//     or encoder.patch_embed.* (models/patch_embed.h)
//   encoder.patch_layernorm_embedding.*       encoder.embed_image_positions.weight [1765, d]
//   encoder.image_pos_ln.*                    encoder.image_rel_pos_table_list.L.weight [6892, H]
//   encoder.audio_embed.{conv1,conv2,proj}.*  encoder.audio_layernorm_embedding.*
//   encoder.frame_embedding.weight [max_frames, d]
//   continuous_embed.{weight [d, F], bias [d]}   (only with OfaConfig::continuous_bins > 0)
//   encoder.embed_positions.weight [1026, d]  encoder.pos_ln.*
//   encoder.pos_q_linear.*, encoder.pos_k_linear.*
//   encoder.token_rel_pos_table_list.L.weight [511, H]
//   encoder.layers.L.* (models/layers.h TransformerLayer)   encoder.layer_norm.*
//   decoder.layernorm_embedding.*  decoder.embed_positions.weight [1026, d]  decoder.pos_ln.*
//   decoder.self_pos_q_linear.*, decoder.self_pos_k_linear.*, decoder.cross_pos_q_linear.*,
//   decoder.cross_pos_k_linear.*   decoder.token_rel_pos_table_list.L.weight [511, H]
//   decoder.layers.L.*   decoder.layer_norm.*
// BatchNorm running statistics are buffers under the same prefixes.
#pragma once
#include <memory>
#include <vector>

#include "models/layers.h"
#include "models/ofa_config.h"
#include "models/patch_embed.h"
#include "models/resnet.h"

namespace mm {

// One batch for the model: tensors only (tasks/ builds it). Masks are bool, true = a
// real element (tasks/batch.h's convention); an undefined mask means "all real".
struct OfaInputs {
  Tensor src_tokens;     // [B, Ts] i64, 0-padded; undefined: no text part
  Tensor src_mask;       // [B, Ts] bool (undefined: tokens != 0)
  Tensor images;         // [B, 3, H, W] f32 in [-1, 1]; undefined: no image part
  Tensor image_present;  // [B] bool: rows without an image mask its patches out
  Tensor audio;          // [B, F, n_mels] f32 log-mel filterbanks; undefined: no audio
  Tensor audio_mask;     // [B, F] bool
  Tensor video;          // [B, N, 3, H, W] f32 in [-1, 1]; undefined: no video
  Tensor video_present;  // [B] bool
  Tensor prev_tokens;    // [B, Tt] i64 decoder input: <bos> y_0 ... y_{Tt-2}
};

// What the decoder reads from the encoder.
struct EncoderOut {
  Tensor x;          // [B, Ts, d] encoder states (after the final LayerNorm)
  Tensor padding;    // [B, Ts] bool, true = padding (never attended)
  Tensor pos_embed;  // [1, Ts, d] source position embeddings (for the cross-attention bias)
};
// Rows rows[i] of an encoder output (beam search: each sentence repeated per beam).
EncoderOut select_rows(const EncoderOut& e, const std::vector<int64_t>& rows);

// Audio subsampler: x [B, F, M] -> [B, ceil(F/4), d].
//   conv1: Conv2d(1, C, 3, stride 2, pad 1) + GELU, conv2: Conv2d(C, C, 3, 2, 1) + GELU,
//   proj: Linear(C * M/4, d) over the (channel, mel) features of each time step.
class AudioSubsampler : public Module {
 public:
  AudioSubsampler(int64_t channels, int64_t n_mels, int64_t d, Generator& init);
  Tensor forward(const Tensor& x);
  int64_t n_mels;
  Conv2d conv1, conv2;
  Linear proj;
};

// Value embedding of continuous bins (OfaConfig::continuous_bins > 0; see there):
//   table(w) = w, its rows [begin, begin + bins) plus linear(phi(u_bin), weight, bias).
// w [V, d] -> [V, d]; phi [bins, F] is a constant, F = 2 * frequencies + 1.
class ContinuousValueEmbed : public Module {
 public:
  ContinuousValueEmbed(const OfaConfig& c, Generator& init);
  Tensor table(const Tensor& w) const;
  int64_t begin, bins;
  Tensor weight, bias;  // [d, F], [d]
  mutable Tensor features;  // [bins, F] phi(u) per bin, not a parameter; follows the table's
                           // device on first use (Module::to moves registered tensors only)
};

class OfaEncoder : public Module {
 public:
  OfaEncoder(const OfaConfig& c, Embedding& embed_tokens, Generator& init, Generator* drop);
  EncoderOut forward(const OfaInputs& in);

  OfaConfig cfg;
  Embedding& embed_tokens;  // shared, owned by OfaModel
  const ContinuousValueEmbed* value_embed = nullptr;  // set by OfaModel when configured
  Embedding type_embedding;
  LayerNorm layernorm_embedding;
  std::unique_ptr<ResNet> embed_images;
  std::unique_ptr<Linear> image_proj;
  std::unique_ptr<PatchEmbed> patch_embed;
  std::unique_ptr<LayerNorm> patch_layernorm_embedding;
  std::unique_ptr<Embedding> embed_image_positions;
  std::unique_ptr<LayerNorm> image_pos_ln;
  std::unique_ptr<AudioSubsampler> audio_embed;
  std::unique_ptr<LayerNorm> audio_layernorm_embedding;
  std::unique_ptr<Embedding> frame_embedding;
  Embedding embed_positions;
  LayerNorm pos_ln;
  Linear pos_q_linear, pos_k_linear;
  std::vector<std::unique_ptr<Embedding>> token_rel_pos_table_list, image_rel_pos_table_list;
  std::vector<std::unique_ptr<TransformerLayer>> layers;
  LayerNorm layer_norm;

 private:
  // images [B', 3, H, W] -> [B', h*w, d] and the patch grid (h, w).
  Tensor embed_image_grid(const Tensor& images, int64_t& h, int64_t& w);
  Generator* drop_;
};

class OfaDecoder : public Module {
 public:
  OfaDecoder(const OfaConfig& c, Embedding& embed_tokens, Generator& init, Generator* drop);
  // prev_tokens [B, Tt] -> logits [B, Tt, V]. With a cache, prev_tokens are the next
  // Tt positions after cache->steps and the cache is extended.
  Tensor forward(const EncoderOut& enc, const Tensor& prev_tokens, DecoderCache* cache);

  OfaConfig cfg;
  Embedding& embed_tokens;
  const ContinuousValueEmbed* value_embed = nullptr;
  LayerNorm layernorm_embedding;
  Embedding embed_positions;
  LayerNorm pos_ln;
  Linear self_pos_q_linear, self_pos_k_linear, cross_pos_q_linear, cross_pos_k_linear;
  std::vector<std::unique_ptr<Embedding>> token_rel_pos_table_list;
  std::vector<std::unique_ptr<TransformerLayer>> layers;
  LayerNorm layer_norm;

 private:
  Generator* drop_;
};

class OfaModel : public Module {
 public:
  explicit OfaModel(const OfaConfig& c);
  EncoderOut encode(const OfaInputs& in) { return encoder.forward(in); }
  Tensor decode(const EncoderOut& enc, const Tensor& prev_tokens, DecoderCache* cache = nullptr) {
    return decoder.forward(enc, prev_tokens, cache);
  }
  // Teacher forcing: logits [B, Tt, V] for in.prev_tokens.
  Tensor forward(const OfaInputs& in) { return decode(encode(in), in.prev_tokens); }
  const OfaConfig& config() const { return cfg; }
  // The generator dropout and drop path draw from (seeded by config.seed + 1).
  Generator& dropout_generator() { return drop_gen; }

 private:
  OfaConfig cfg;
  Generator init_gen, drop_gen;

 public:
  Embedding embed_tokens;
  OfaEncoder encoder;
  OfaDecoder decoder;
  std::unique_ptr<ContinuousValueEmbed> continuous_embed;  // null unless configured
};

// The token table the model embeds with and projects onto: embed_tokens.weight, with the
// continuous rows' value embedding added when there is one.
Tensor token_table(const Embedding& embed_tokens, const ContinuousValueEmbed* value_embed);

}  // namespace mm
