// Gato's image tokenizer on the model side: each P x P patch (pixels in [-1, 1] divided
// by sqrt(P), tasks/image.h's gato_patches) is embedded on its own by one pre-activation
// (v2) ResNet block with GroupNorm and GELU, then a linear map to the model width.
//
//   PatchEmbed pe(PatchEmbedOptions{16, 8, 4, 768}, init);   // patch, channels, groups, d
//   Tensor e = pe.forward(patches);          // [N, 3, 16, 16] -> [N, 768]
//
// Names: conv_in (3 -> C, 3x3), norm1, conv1, norm2, conv2 (the block), proj (C*P*P -> d).
//   h = conv_in(x);  h = h + conv2(gelu(norm2(conv1(gelu(norm1(h))))));  out = proj(flatten(h))
// Convolutions are padded 3x3 within the patch: patches never see their neighbours.
#pragma once
#include "models/layers.h"

namespace mm {

struct PatchEmbedOptions {
  int64_t patch = 16, channels = 8, groups = 4, d = 0;
};

class PatchEmbed : public Module {
 public:
  PatchEmbed(const PatchEmbedOptions& o, Generator& init);
  Tensor forward(const Tensor& patches);  // [N, 3, P, P] -> [N, d]
  PatchEmbedOptions opt;
  Conv2d conv_in;
  GroupNorm norm1;
  Conv2d conv1;
  GroupNorm norm2;
  Conv2d conv2;
  Linear proj;
};

int64_t patch_embed_params(const PatchEmbedOptions& o);

// images [B, 3, H, W] -> patches [B * (H/P) * (W/P), 3, P, P] in raster order per image.
// H and W must be multiples of P (the error names both).
Tensor image_to_patches(const Tensor& images, int64_t P);

}  // namespace mm
