// Networks for the LibTorch adapter. Layers that KFAC should see are called through tapped()
// (LibTorch's C++ modules have no forward hooks), so these are "explicit forward passes".
//   AffineMlp          ift::Mlp's parameter layout exactly (per layer the out × (in+1) matrix
//                      [W; bᵀ]ᵀ, bias last), for the cross-checks against the Eigen models.
//   SoftmaxRegressionNet  ift::SoftmaxRegression's layout (class-major W, no separate bias:
//                      the bias is a feature of the data).
//   SmallCnn           conv-relu-pool ×2 + linear: the P6 classifier.
//   ResNet             three stages of residual blocks, no normalisation: P6 at a million weights.
//   UNet               a small U-Net x' = x + U(x, ε) (paper Fig. 1): the augmentation network.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "ift/models/mlp.hpp"  // ift::Activation
#include "ift/torch/problem.hpp"

namespace ift::deep {

/// y = x W[:, :in]ᵀ + W[:, in]: one parameter of shape out × (in+1) whose row-major vec is
/// ift::Mlp's column-major (in+1) × out block.
class AffineLayerImpl : public ::torch::nn::Module {
 public:
  AffineLayerImpl(std::int64_t in, std::int64_t out);
  Tensor forward(const Tensor& x);
  Tensor weight;
  std::int64_t in, out;
};
TORCH_MODULE(AffineLayer);

class AffineMlpImpl : public ::torch::nn::Module {
 public:
  AffineMlpImpl(const std::vector<std::int64_t>& widths, Activation activation);
  Tensor forward(const Tensor& x);

 private:
  std::vector<AffineLayer> layers_;
  Activation activation_;
};
TORCH_MODULE(AffineMlp);

class SoftmaxRegressionNetImpl : public ::torch::nn::Module {
 public:
  SoftmaxRegressionNetImpl(std::int64_t features, std::int64_t classes);
  Tensor forward(const Tensor& x);
  ::torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(SoftmaxRegressionNet);

/// conv(c→k, 3×3) relu maxpool2 conv(k→2k, 3×3) relu maxpool2 linear(2k·(h/4)·(w/4) → classes).
/// `smooth` swaps in softplus and average pooling (twice differentiable everywhere, for
/// finite-difference tests).
class SmallCnnImpl : public ::torch::nn::Module {
 public:
  SmallCnnImpl(std::int64_t channels, std::int64_t height, std::int64_t width,
               std::int64_t classes, std::int64_t filters = 8, bool smooth = false);
  Tensor forward(const Tensor& x);
  bool smooth;
  ::torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  ::torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(SmallCnn);

/// A residual network (He et al. 2016; the paper's P6 uses a ResNet) without normalisation
/// layers — batch norm couples the examples of a batch, so L_T would no longer be a mean over
/// examples (minibatches, shards and HVPs would see different functions): a 3×3 stem, three
/// stages of two basic blocks (two 3×3 convolutions with relu, an identity or 1×1 strided
/// shortcut) with F, 2F, 4F filters at strides 1, 2, 2, global average pooling and a linear
/// classifier. Each block's second convolution starts scaled by 0.1 (Fixup-like), so the net
/// starts near its shortcuts. num_weights(1, 10, F): F = 40 gives 1,084,970 weights (over a
/// million per-weight decays); F = 8, 43,946. `smooth`: softplus instead of relu.
class ResNetImpl : public ::torch::nn::Module {
 public:
  ResNetImpl(std::int64_t channels, std::int64_t classes, std::int64_t filters = 16,
             bool smooth = false);
  Tensor forward(const Tensor& x);
  /// Weights of a ResNet with these sizes (without building it).
  static std::int64_t num_weights(std::int64_t channels, std::int64_t classes, std::int64_t filters);
  bool smooth;

 private:
  struct Block {
    ::torch::nn::Conv2d first{nullptr}, second{nullptr}, shortcut{nullptr};
  };
  ::torch::nn::Conv2d stem_{nullptr};
  std::vector<Block> blocks_;
  ::torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNet);

/// Two-level U-Net on [x, ε] (2·channels in) with a skip connection; its output is added to x,
/// and the last 1×1 convolution starts near zero so U starts near the identity map. `smooth`:
/// softplus instead of relu.
class UNetImpl : public ::torch::nn::Module {
 public:
  UNetImpl(std::int64_t channels, std::int64_t filters = 8, bool smooth = false);
  Tensor forward(const Tensor& x, const Tensor& noise);
  bool smooth;
  ::torch::nn::Conv2d enc1{nullptr}, enc2{nullptr}, dec{nullptr}, out{nullptr};
};
TORCH_MODULE(UNet);

}  // namespace ift::deep
