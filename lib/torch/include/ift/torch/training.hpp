// Pieces of Algorithm 2 on flat tensors: SGD/Adam whose state is plain tensors (so a checkpoint
// restores them bit for bit), data sets as tensors, and atomic checkpoints (torch::save format).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <torch/torch.h>

#include "ift/torch/problem.hpp"

namespace ift::deep {

/// sgd: x ← x − η g.  adam: Kingma & Ba 2015 with bias correction.
struct FlatOptimizer {
  std::string kind = "adam";  ///< "sgd" or "adam"
  double learning_rate = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  Tensor m, v;        ///< Adam moments (undefined until the first step)
  std::int64_t t = 0;  ///< steps taken

  void check() const;
  /// x ← x − step(g), in place.
  void step(Tensor& x, const Tensor& g);
  /// State under names prefix.m, prefix.v, prefix.t (for checkpoints).
  void save(std::map<std::string, Tensor>& state, const std::string& prefix) const;
  void load(const std::map<std::string, Tensor>& state, const std::string& prefix,
            const ::torch::TensorOptions& options);
};

struct TensorSplits {
  TensorData train, val, test;
};

/// Fashion-MNIST (DESIGN.md P1 split rules, through ift::load_fashion_mnist) as images
/// n × 1 × 28 × 28 with pixel / 255 in double on the CPU; labels int64.
TensorSplits load_fashion_mnist_images(std::int64_t n_train, std::int64_t n_val,
                                       std::int64_t n_test, const std::string& dir);
/// Seeded synthetic 28 × 28 images, ten classes of noisy class-specific patterns, for machines
/// without the data set (the GPU check) and for tests.
TensorSplits synthetic_images(std::int64_t n_train, std::int64_t n_val, std::int64_t n_test,
                              std::uint64_t seed);

/// Writes the named tensors with torch::serialize (temp file, then rename: a crash never leaves
/// a half-written checkpoint). Tensors are saved from the CPU.
void save_checkpoint(const std::string& path, const std::map<std::string, Tensor>& state);
/// Reads a checkpoint written by save_checkpoint; throws std::runtime_error naming the file.
std::map<std::string, Tensor> load_checkpoint(const std::string& path,
                                              const std::vector<std::string>& names);

}  // namespace ift::deep
