#include "models/resnet.h"

#include "ops/conv.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"

namespace mm {

Downsample::Downsample(int64_t in, int64_t out, int64_t stride, bool frozen_bn, Generator& init)
    : conv(in, out, 1, stride, 0, init), bn(out, frozen_bn) {
  register_module("0", conv);
  register_module("1", bn);
}
Tensor Downsample::forward(const Tensor& x) { return bn.forward(conv.forward(x)); }

Bottleneck::Bottleneck(int64_t in, int64_t planes, int64_t stride, bool frozen_bn, double drop_path_rate,
                       Generator& init, Generator* drop)
    : conv1(in, planes, 1, 1, 0, init), bn1(planes, frozen_bn),
      conv2(planes, planes, 3, stride, 1, init), bn2(planes, frozen_bn),
      conv3(planes, 4 * planes, 1, 1, 0, init), bn3(4 * planes, frozen_bn),
      drop_path_(drop_path_rate), drop_(drop) {
  register_module("conv1", conv1);
  register_module("bn1", bn1);
  register_module("conv2", conv2);
  register_module("bn2", bn2);
  register_module("conv3", conv3);
  register_module("bn3", bn3);
  if (stride != 1 || in != 4 * planes) {
    downsample = std::make_unique<Downsample>(in, 4 * planes, stride, frozen_bn, init);
    register_module("downsample", *downsample);
  }
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor h = relu(bn1.forward(conv1.forward(x)));
  h = relu(bn2.forward(conv2.forward(h)));
  h = bn3.forward(conv3.forward(h));
  if (drop_ && training()) h = drop_path(h, drop_path_, *drop_, true);
  return relu(add(downsample ? downsample->forward(x) : x, h));
}

ResNet::ResNet(const ResNetOptions& o, Generator& init, Generator* drop)
    : opt(o), conv1(3, o.width, 7, 2, 3, init), bn1(o.width, o.frozen_bn) {
  MM_CHECK(o.blocks.size() == 3, "ResNet: expected block counts of 3 stages, got ", o.blocks.size());
  register_module("conv1", conv1);
  register_module("bn1", bn1);
  int64_t total = 0, done = 0;
  for (int64_t b : o.blocks) {
    MM_CHECK(b >= 1, "ResNet: every stage needs at least one block");
    total += b;
  }
  int64_t in = o.width;
  stages.resize(3);
  for (int s = 0; s < 3; ++s) {
    const int64_t planes = o.width << s;
    for (int64_t i = 0; i < o.blocks[size_t(s)]; ++i, ++done) {
      const int64_t stride = (s > 0 && i == 0) ? 2 : 1;
      stages[size_t(s)].push_back(std::make_unique<Bottleneck>(
          in, planes, stride, o.frozen_bn, drop_path_at(o.drop_path_rate, done, total), init, drop));
      register_module("layer" + std::to_string(s + 1) + "." + std::to_string(i), *stages[size_t(s)].back());
      in = 4 * planes;
    }
  }
}

Tensor ResNet::forward(const Tensor& img) {
  MM_CHECK(img.dim() == 4 && img.size(1) == 3, "ResNet: expected images [B, 3, H, W], got ", img.shape());
  Tensor x = max_pool2d(relu(bn1.forward(conv1.forward(img))), 3, 2, 1);
  for (auto& stage : stages)
    for (auto& block : stage) x = block->forward(x);
  return x;
}

int64_t resnet_params(const ResNetOptions& o) {
  const int64_t w = o.width;
  int64_t n = 3 * w * 49 + 2 * w;
  int64_t in = w;
  for (int s = 0; s < 3; ++s) {
    const int64_t p = w << s;
    for (int64_t i = 0; i < o.blocks[size_t(s)]; ++i) {
      n += in * p + p * p * 9 + p * 4 * p + 2 * (p + p + 4 * p);
      if ((s > 0 && i == 0) || in != 4 * p) n += in * 4 * p + 2 * 4 * p;
      in = 4 * p;
    }
  }
  return n;
}

}  // namespace mm
