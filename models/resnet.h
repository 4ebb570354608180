// The ResNet image backbone of OFA: the stem and stages 1..3 of a bottleneck ResNet
// (He et al.; torchvision v1.5: the stride sits on the 3x3 conv), stride 16 overall, so
// one output position per 16x16 pixel region with 16 * width channels (1024 at width 64).
//
//   ResNet r(ResNetOptions{}, init, &drop);           // ResNet50's first three stages
//   Tensor f = r.forward(img);                        // [B, 3, H, W] -> [B, 1024, H/16, W/16]
//
// Names (torchvision's, so its weights load): conv1, bn1, layer{1,2,3}.{i}.conv{1,2,3},
// layer{1,2,3}.{i}.bn{1,2,3}, layer{1,2,3}.0.downsample.0 (1x1 conv), .downsample.1 (BN).
#pragma once
#include <memory>
#include <vector>

#include "models/layers.h"

namespace mm {

struct ResNetOptions {
  std::vector<int64_t> blocks{3, 4, 6};  // R50 [3,4,6], R101 [3,4,23], R152 [3,8,36]
  int64_t width = 64;                    // stem channels; stage s has width*2^s planes
  bool frozen_bn = false;                // OFA --freeze-resnet
  double drop_path_rate = 0.0;           // stochastic depth, rising linearly over blocks
};

// The 1x1 conv + BN that matches the shortcut's shape when a block changes it.
class Downsample : public Module {
 public:
  Downsample(int64_t in, int64_t out, int64_t stride, bool frozen_bn, Generator& init);
  Tensor forward(const Tensor& x);
  Conv2d conv;
  BatchNorm2d bn;
};

// Bottleneck: x [B, in, H, W] -> [B, 4*planes, H/stride, W/stride].
//   relu(x' + drop_path(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))))
//   with x' = downsample(x) when the shape changes.
class Bottleneck : public Module {
 public:
  Bottleneck(int64_t in, int64_t planes, int64_t stride, bool frozen_bn, double drop_path, Generator& init,
             Generator* drop);
  Tensor forward(const Tensor& x);
  Conv2d conv1;
  BatchNorm2d bn1;
  Conv2d conv2;
  BatchNorm2d bn2;
  Conv2d conv3;
  BatchNorm2d bn3;
  std::unique_ptr<Downsample> downsample;

 private:
  double drop_path_;
  Generator* drop_;
};

// img [B, 3, H, W] -> [B, 16*width, ceil(H/16), ceil(W/16)] (for H, W multiples of 16: H/16).
class ResNet : public Module {
 public:
  ResNet(const ResNetOptions& o, Generator& init, Generator* drop);
  Tensor forward(const Tensor& img);
  int64_t out_channels() const { return 16 * opt.width; }
  ResNetOptions opt;
  Conv2d conv1;
  BatchNorm2d bn1;
  std::vector<std::vector<std::unique_ptr<Bottleneck>>> stages;
};

// Parameter count (BatchNorm affine included, buffers excluded) without building it.
int64_t resnet_params(const ResNetOptions& o);

}  // namespace mm
