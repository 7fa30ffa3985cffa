#include <cstdio>
#include <filesystem>
#include <random>

#include "ift/data/fashion_mnist.hpp"
#include "ift/torch/models.hpp"
#include "ift/torch/training.hpp"

namespace ift::deep {

namespace F = ::torch::nn::functional;

// ---- Models ---------------------------------------------------------------------------------

AffineLayerImpl::AffineLayerImpl(std::int64_t in_, std::int64_t out_) : in(in_), out(out_) {
  require(in > 0 && out > 0, "AffineLayer: widths must be positive");
  // Glorot-uniform weights and zero bias (ift::Mlp::initial_weights draws its own stream; the
  // cross-checks copy weights across instead of relying on equal initialisation).
  const double bound = std::sqrt(6.0 / static_cast<double>(in + out));
  Tensor init = ::torch::empty({out, in + 1}).uniform_(-bound, bound);
  init.select(1, in).zero_();
  weight = register_parameter("weight", init);
}

Tensor AffineLayerImpl::forward(const Tensor& x) {
  Tensor y = ::torch::addmm(weight.select(1, in), x, weight.narrow(1, 0, in).t());
  if (KfacTape* tape = KfacTape::active()) {
    TapeEntry e;
    e.kind = TapeEntry::Kind::Linear;
    e.weight = weight;
    e.bias_merged = true;
    e.input = x.detach();
    e.output = y;
    tape->record(std::move(e));
  }
  return y;
}

AffineMlpImpl::AffineMlpImpl(const std::vector<std::int64_t>& widths, Activation activation)
    : activation_(activation) {
  require(widths.size() >= 2, "AffineMlp: at least an input and an output width");
  for (std::size_t l = 0; l + 1 < widths.size(); ++l)
    layers_.push_back(register_module("layer" + std::to_string(l),
                                      AffineLayer(widths[l], widths[l + 1])));
}

Tensor AffineMlpImpl::forward(const Tensor& x) {
  Tensor a = x.flatten(1);
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    a = layers_[l]->forward(a);
    if (l + 1 == layers_.size()) break;
    switch (activation_) {
      case Activation::Tanh: a = ::torch::tanh(a); break;
      case Activation::Sigmoid: a = ::torch::sigmoid(a); break;
      case Activation::Softplus: a = F::softplus(a); break;
      case Activation::Relu: a = ::torch::relu(a); break;
    }
  }
  return a;
}

SoftmaxRegressionNetImpl::SoftmaxRegressionNetImpl(std::int64_t features, std::int64_t classes) {
  linear = register_module(
      "linear", ::torch::nn::Linear(::torch::nn::LinearOptions(features, classes).bias(false)));
  ::torch::NoGradGuard no_grad;
  linear->weight.zero_();  // w = 0, the start of P1's Newton solve
}

Tensor SoftmaxRegressionNetImpl::forward(const Tensor& x) { return tapped(linear, x.flatten(1)); }

SmallCnnImpl::SmallCnnImpl(std::int64_t channels, std::int64_t height, std::int64_t width,
                           std::int64_t classes, std::int64_t filters, bool smooth_)
    : smooth(smooth_) {
  require(height % 4 == 0 && width % 4 == 0, "SmallCnn: image sides must be multiples of 4");
  conv1 = register_module(
      "conv1", ::torch::nn::Conv2d(::torch::nn::Conv2dOptions(channels, filters, 3).padding(1)));
  conv2 = register_module(
      "conv2", ::torch::nn::Conv2d(::torch::nn::Conv2dOptions(filters, 2 * filters, 3).padding(1)));
  fc = register_module("fc", ::torch::nn::Linear(2 * filters * (height / 4) * (width / 4), classes));
}

Tensor SmallCnnImpl::forward(const Tensor& x) {
  auto block = [this](const Tensor& z) {
    return smooth ? F::avg_pool2d(F::softplus(z), F::AvgPool2dFuncOptions(2))
                  : F::max_pool2d(::torch::relu(z), F::MaxPool2dFuncOptions(2));
  };
  Tensor a = block(tapped(conv1, x));
  a = block(tapped(conv2, a));
  return tapped(fc, a.flatten(1));
}

ResNetImpl::ResNetImpl(std::int64_t channels, std::int64_t classes, std::int64_t filters,
                       bool smooth_)
    : smooth(smooth_) {
  using ::torch::nn::Conv2d;
  using ::torch::nn::Conv2dOptions;
  require(channels >= 1 && classes >= 2 && filters >= 1, "ResNet: bad sizes");
  stem_ = register_module("stem", Conv2d(Conv2dOptions(channels, filters, 3).padding(1)));
  std::int64_t in = filters;
  const std::int64_t widths[3] = {filters, 2 * filters, 4 * filters};
  const std::int64_t strides[3] = {1, 2, 2};
  for (int stage = 0; stage < 3; ++stage) {
    for (int b = 0; b < 2; ++b) {
      const std::int64_t out = widths[stage], stride = b == 0 ? strides[stage] : 1;
      // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "s" + std::to_string(…).
      std::string name = "s";
      name += std::to_string(stage);
      name += 'b';
      name += std::to_string(b);
      Block block;
      block.first = register_module(name + "a", Conv2d(Conv2dOptions(in, out, 3).padding(1).stride(stride)));
      block.second = register_module(name + "b", Conv2d(Conv2dOptions(out, out, 3).padding(1)));
      if (stride != 1 || in != out)
        block.shortcut = register_module(name + "s", Conv2d(Conv2dOptions(in, out, 1).stride(stride)));
      {
        ::torch::NoGradGuard no_grad;
        block.second->weight.mul_(0.1);
      }
      blocks_.push_back(block);
      in = out;
    }
  }
  fc_ = register_module("fc", ::torch::nn::Linear(in, classes));
}

std::int64_t ResNetImpl::num_weights(std::int64_t channels, std::int64_t classes,
                                     std::int64_t filters) {
  auto conv = [](std::int64_t in, std::int64_t out, std::int64_t k) { return in * out * k * k + out; };
  std::int64_t n = conv(channels, filters, 3), in = filters;
  for (const std::int64_t out : {filters, 2 * filters, 4 * filters}) {
    for (int b = 0; b < 2; ++b) {
      n += conv(in, out, 3) + conv(out, out, 3);
      if (in != out) n += conv(in, out, 1);
      in = out;
    }
  }
  return n + in * classes + classes;
}

Tensor ResNetImpl::forward(const Tensor& x) {
  auto act = [this](const Tensor& z) { return smooth ? F::softplus(z) : ::torch::relu(z); };
  Tensor a = act(tapped(stem_, x));
  for (Block& block : blocks_) {
    const Tensor skip = block.shortcut ? tapped(block.shortcut, a) : a;
    a = act(tapped(block.second, act(tapped(block.first, a))) + skip);
  }
  return tapped(fc_, a.mean({2, 3}));
}

UNetImpl::UNetImpl(std::int64_t channels, std::int64_t filters, bool smooth_) : smooth(smooth_) {
  using ::torch::nn::Conv2d;
  using ::torch::nn::Conv2dOptions;
  enc1 = register_module("enc1", Conv2d(Conv2dOptions(2 * channels, filters, 3).padding(1)));
  enc2 = register_module("enc2", Conv2d(Conv2dOptions(filters, 2 * filters, 3).padding(1)));
  dec = register_module("dec", Conv2d(Conv2dOptions(3 * filters, filters, 3).padding(1)));
  out = register_module("out", Conv2d(Conv2dOptions(filters, channels, 1)));
  // Start near the identity augmentation x' ≈ x, but not exactly at it: a zero last layer
  // would make every hypergradient entry of the earlier layers vanish at the first step.
  ::torch::NoGradGuard no_grad;
  out->weight.mul_(0.01);
  out->bias.zero_();
}

Tensor UNetImpl::forward(const Tensor& x, const Tensor& noise) {
  auto act = [this](const Tensor& z) { return smooth ? F::softplus(z) : ::torch::relu(z); };
  const Tensor input = ::torch::cat({x, noise}, 1);
  const Tensor e1 = act(enc1->forward(input));
  const Tensor e2 = act(enc2->forward(F::avg_pool2d(e1, F::AvgPool2dFuncOptions(2))));
  const Tensor up = F::interpolate(
      e2, F::InterpolateFuncOptions().size(std::vector<std::int64_t>{e1.size(2), e1.size(3)})
              .mode(::torch::kNearest));
  const Tensor d = act(dec->forward(::torch::cat({up, e1}, 1)));
  return x + out->forward(d);
}

// ---- Data -----------------------------------------------------------------------------------

namespace {

TensorData images_from(const Dataset<float>& data) {
  const std::int64_t n = data.size();
  require(data.num_features() == 784, "Fashion-MNIST: expected 784 pixels per image");
  // X is n × 784 column-major: the transposed view is row-major per image.
  Tensor x = ::torch::from_blob(const_cast<float*>(data.X.data()), {784, n}, ::torch::kFloat)
                 .t()
                 .to(::torch::kDouble)
                 .contiguous()
                 .view({n, 1, 28, 28});
  Tensor y = ::torch::empty({n}, ::torch::kLong);
  for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<std::int64_t>(data.labels(i));
  return {x, y};
}

}  // namespace

TensorSplits load_fashion_mnist_images(std::int64_t n_train, std::int64_t n_val,
                                       std::int64_t n_test, const std::string& dir) {
  const Splits<float> s = load_fashion_mnist<float>(n_train, n_val, n_test, false, dir);
  return {images_from(s.train), images_from(s.val), images_from(s.test)};
}

TensorSplits synthetic_images(std::int64_t n_train, std::int64_t n_val, std::int64_t n_test,
                              std::uint64_t seed) {
  auto generator = at::detail::createCPUGenerator(seed);
  const auto options = ::torch::TensorOptions().dtype(::torch::kDouble);
  // One smooth random template per class; examples are template + noise, clipped to [0, 1].
  const Tensor templates =
      F::avg_pool2d(::torch::rand({10, 1, 28, 28}, generator, options),
                    F::AvgPool2dFuncOptions(5).stride(1).padding(2));
  auto make = [&](std::int64_t n) {
    Tensor labels = ::torch::randint(0, 10, {n}, generator, ::torch::TensorOptions().dtype(::torch::kLong));
    Tensor x = templates.index_select(0, labels) +
               0.35 * ::torch::randn({n, 1, 28, 28}, generator, options);
    return TensorData{x.clamp(0, 1), labels};
  };
  return {make(n_train), make(n_val), make(n_test)};
}

}  // namespace ift::deep
