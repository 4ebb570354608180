#include "models/patch_embed.h"

#include "ops/elementwise.h"
#include "ops/shape.h"

namespace mm {

PatchEmbed::PatchEmbed(const PatchEmbedOptions& o, Generator& init)
    : opt(o),
      conv_in(3, o.channels, 3, 1, 1, init, true),
      norm1(o.groups, o.channels),
      conv1(o.channels, o.channels, 3, 1, 1, init, true),
      norm2(o.groups, o.channels),
      conv2(o.channels, o.channels, 3, 1, 1, init, true),
      proj(o.channels * o.patch * o.patch, o.d, init) {
  register_module("conv_in", conv_in);
  register_module("norm1", norm1);
  register_module("conv1", conv1);
  register_module("norm2", norm2);
  register_module("conv2", conv2);
  register_module("proj", proj);
}

Tensor PatchEmbed::forward(const Tensor& patches) {
  const int64_t P = opt.patch;
  MM_CHECK(patches.dim() == 4 && patches.size(1) == 3 && patches.size(2) == P && patches.size(3) == P,
           "PatchEmbed: expected patches [N, 3, ", P, ", ", P, "], got ", patches.shape());
  Tensor h = conv_in.forward(patches);
  Tensor r = conv1.forward(gelu(norm1.forward(h), false));
  r = conv2.forward(gelu(norm2.forward(r), false));
  h = add(h, r);
  return proj.forward(flatten(h, 1));
}

int64_t patch_embed_params(const PatchEmbedOptions& o) {
  const int64_t C = o.channels;
  return (3 * C * 9 + C) + 2 * C + (C * C * 9 + C) + 2 * C + (C * C * 9 + C) + (C * o.patch * o.patch * o.d + o.d);
}

Tensor image_to_patches(const Tensor& images, int64_t P) {
  MM_CHECK(images.dim() == 4 && images.size(1) == 3, "image_to_patches: expected images [B, 3, H, W], got ",
           images.shape());
  const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
  MM_CHECK(H % P == 0 && W % P == 0, "image_to_patches: image size ", H, "x", W, " is not a multiple of the patch size ",
           P);
  const int64_t h = H / P, w = W / P;
  Tensor x = reshape(images, {B, 3, h, P, w, P});
  x = permute(x, {0, 2, 4, 1, 3, 5});  // [B, h, w, 3, P, P]
  return reshape(x, {B * h * w, 3, P, P});
}

}  // namespace mm
