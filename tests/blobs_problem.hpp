// A small bilevel problem shared by the loop and SHINE suites: softmax regression with per-weight
// decay on seeded, overlapping blobs (3 classes, d features plus a bias column), n_train training
// rows and n_val validation rows (which also serve as the test set).
#pragma once

#include <memory>

#include "ift/data/synthetic.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace ift::testing {

using BlobsProblem = RegularizedProblem<SoftmaxRegression<double>>;

inline std::unique_ptr<BlobsProblem> blobs_decay_problem(Index n_train, Index n_val, Index d,
                                                         std::uint64_t seed) {
  const Index classes = 3;
  Dataset<double> all = make_blobs<double>(n_train + n_val, d, classes, 2.0, seed);
  all.append_bias_column();
  auto train = std::make_shared<const Dataset<double>>(all.slice(0, n_train));
  auto val = std::make_shared<const Dataset<double>>(all.slice(n_train, n_val));
  SoftmaxRegression<double> model(d + 1, classes);
  return std::make_unique<BlobsProblem>(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()), train, val, val);
}

}  // namespace ift::testing
