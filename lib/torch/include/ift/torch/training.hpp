// Data sets as tensors for Algorithm 2 on LibTorch problems. The loop itself, its optimisers and
// its checkpoints are the library's (ift/generic/bilevel.hpp), shared with the Eigen backend.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <torch/torch.h>

#include "ift/torch/problem.hpp"

namespace ift::deep {

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

}  // namespace ift::deep
