// OFA model configurations: the sizes of SPEC section 3 plus `micro` for tests.
//
//   OfaConfig c = OfaConfig::preset("tiny");          // 33M parameters at V = 59457
//   c.vocab_size = vocab.size();
//   int64_t n = c.parameter_count();                  // computed, nothing allocated
//   std::string j = c.to_json();  OfaConfig d = OfaConfig::from_json(j);   // checkpoints
//
// | size   | backbone  | d    | FFN  | heads | enc/dec |   (ResNet: stem + stages 1..3)
// | micro  | [1,1,1]x8 | 32   | 64   | 2     | 1/1     |
// | tiny   | ResNet50  | 256  | 1024 | 4     | 4/4     |
// | medium | ResNet101 | 512  | 2048 | 8     | 4/4     |
// | base   | ResNet101 | 768  | 3072 | 12    | 6/6     |
// | large  | ResNet152 | 1024 | 4096 | 16    | 12/12   |
// | huge   | ResNet152 | 1280 | 5120 | 16    | 24/12   |
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/param_table.h"

namespace mm {

struct OfaConfig {
  std::string name = "custom";
  int64_t vocab_size = 59457;  // OFA: 50265 BPE + 8192 image codes + 1000 location bins
  int64_t d_model = 256, ffn_dim = 1024, heads = 4, encoder_layers = 4, decoder_layers = 4;

  // Image adaptor: "resnet" (OFA), "patch" (Gato's per-patch ResNet-v2 block: light, for
  // small images) or "none".
  std::string image_adaptor = "resnet";
  std::vector<int64_t> resnet_blocks{3, 4, 6};
  int64_t resnet_width = 64;  // 1024 output channels at 64
  bool freeze_bn = false;
  int64_t patch_size = 16, patch_channels = 8, patch_groups = 4;

  int64_t audio_channels = 32;  // conv subsampler width; 0 = no audio adaptor
  int64_t n_mels = 80;
  int64_t max_frames = 16;      // video frame-position table; 0 = no video adaptor

  // Value embedding of Gato's mu-law CONTINUOUS tokens (continuous_bins = 0: off). The
  // rows [continuous_begin, continuous_begin + continuous_bins) of the shared token table
  // get continuous_embed(phi(u)) added, u in [-1, 1] the bin centre on the companded
  // axis, phi(u) = [u, sin(pi k u), cos(pi k u)] for k = 1..continuous_frequencies. Those
  // rows start at zero, so a bin's embedding is a smooth function of its value: what one
  // bin learns carries over to its neighbours, in and (the table is tied) out. Without
  // it each of 1024 bins is a separate symbol seen a handful of times in a small dataset.
  int64_t continuous_begin = 0, continuous_bins = 0, continuous_frequencies = 16;

  double dropout = 0.1, attention_dropout = 0.0, activation_dropout = 0.0;
  double drop_path_rate = 0.0, resnet_drop_path_rate = 0.0;  // rising linearly over depth
  double attn_scale_factor = 2.0;  // q *= (head_dim * factor)^-0.5
  // Also add the (LN'd) learned positions to the token, patch and frame embeddings before
  // their embedding LayerNorm, as OFASys does by default (entangle_position_embedding).
  // OFA keeps positions out of the content and uses them only in the attention biases, so
  // a patch's value carries no "where". The biases stay either way. (Tried on the demo's
  // video task: no gain there; docs/canvas_learning.md.)
  bool entangle_positions = false;
  bool normformer = true;
  uint64_t seed = 1;  // initialisation; dropout draws from seed + 1

  static OfaConfig preset(const std::string& size);  // micro tiny medium base large huge
  static std::vector<std::string> preset_names();
  std::string to_json() const;
  static OfaConfig from_json(const std::string& json);  // unknown keys are errors
  void validate() const;
  // Trainable parameters (BatchNorm affine included even when frozen), as OFA counts
  // them: the shared embedding once. The table splits the count by component.
  int64_t parameter_count() const { return sum_params(parameter_table()); }
  std::vector<ParamRow> parameter_table() const;
  int64_t image_channels() const { return 16 * resnet_width; }
  int64_t continuous_features() const { return 2 * continuous_frequencies + 1; }
};

}  // namespace mm
