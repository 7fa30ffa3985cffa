// Dataset distillation as a bilevel problem (DESIGN.md P5; Lorraine et al. 2020, Fig. 6;
// Wang et al. 2018): the hyperparameters λ are the pixels of m = C learned images, one per
// class, and the inner problem trains multinomial logistic regression on those images alone.
//
//   x_n   = [λ_{nP .. nP+P−1}; 1]                    (image n, row-major pixels, bias appended)
//   L_T   = (1/m) Σ_n CE(W x_n, y_n = n) + ½ μ ||w||²   (μ fixed: a unique minimiser w*(λ))
//   L_V   = mean CE of W on real validation data       (∂L_V/∂λ = 0: λ enters through w* only)
//
// Every w-derivative of L_T is SoftmaxRegression's on the synthetic data set plus μI. The
// mixed partial (DESIGN.md §1, the term vᵀ ∂²L_T/∂w∂λᵀ of the hypergradient) is derived in
// mixed_product(). Parameter layout as SoftmaxRegression: w[c·F + j] = W[c, j], F = P + 1.
#pragma once

#include <memory>
#include <vector>

#include "ift/core.hpp"
#include "ift/dataset.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/parallel/communicator.hpp"
#include "ift/problem.hpp"

namespace ift {

template <class S>
class DistillationProblem final : public BilevelProblem<S>, public capability::All<S> {
 public:
  /// `val` (and optional `test`) are real data with num_pixels + 1 features (bias column last,
  /// Dataset::append_bias_column) and labels in [0, num_classes). `weight_decay` is μ > 0.
  DistillationProblem(Index num_classes, Index num_pixels, std::shared_ptr<const Dataset<S>> val,
                      std::shared_ptr<const Dataset<S>> test = nullptr, S weight_decay = S(1e-3));

  Index num_classes() const { return num_classes_; }
  Index num_pixels() const { return num_pixels_; }
  S weight_decay() const { return weight_decay_; }
  const SoftmaxRegression<S>& model() const { return model_; }
  /// The m synthetic examples at the current λ (bias column appended, labels 0..C−1).
  const Dataset<S>& synthetic_data() const { return synthetic_; }
  const Dataset<S>& val_data() const { return *val_; }

  /// λ as an m × P matrix, one image per row (the layout io::write_image_grid_png takes).
  Matrix<S> images(const Vector<S>& lambda) const;
  /// The mean image of each class in `data` (P or P + 1 features; a bias column is dropped),
  /// flattened into λ: the usual initialisation. Throws when a class has no example.
  Vector<S> class_means(const Dataset<S>& data) const;

  /// Makes this problem one rank's part of a data-parallel problem: the real data given to the
  /// constructor are this rank's rows `val` and `test` (shards of the full sets), and the
  /// real-data terms (L_V, ∇_w L_V, the validation and test metrics) are summed over `comm`'s
  /// ranks. The training examples are the λ images, the same on every rank: not sharded, so
  /// every w-derivative of L_T and the mixed product stay local. Every rank must then make the
  /// same calls in the same order (they are collective).
  void distribute(std::shared_ptr<parallel::Communicator> comm, parallel::Shard val,
                  parallel::Shard test = {});

  Index num_params() const override { return model_.num_params(); }
  Index num_hyper() const override { return num_classes_ * num_pixels_; }

  void set_point(const Vector<S>& lambda, const Vector<S>& w) override;
  const Vector<S>& lambda() const override { return lambda_; }
  const Vector<S>& w() const override { return w_; }

  S train_loss() const override { return train_loss_; }
  const Vector<S>& train_gradient() const override { return train_gradient_; }
  S val_loss() override;
  const Vector<S>& val_gradient() override;
  void val_direct_gradient(Vector<S>& out) override { out.setZero(num_hyper()); }

  void hvp(const Vector<S>& v, Vector<S>& out) override;
  void gauss_newton_product(const Vector<S>& v, Vector<S>& out) override;
  void fisher_product(const Vector<S>& v, Vector<S>& out) override;
  void hessian(Matrix<S>& H) override;
  void gauss_newton_matrix(Matrix<S>& G) override;
  /// One block (SoftmaxRegression's A ⊗ G on the synthetic images); shift = μ, exact.
  std::vector<KroneckerFactors<S>> kfac_factors(std::vector<S>& shift) override;
  void mixed_product(const Vector<S>& v, Vector<S>& out) override;
  /// μ v: the fixed L2's curvature (it does not depend on λ, but the outer-product and Fisher
  /// curvatures keep it exactly, as they do a weight-decay penalty).
  void penalty_hvp(const Vector<S>& v, Vector<S>& out) override;

  /// Train = the synthetic images (data term only), val, and test when given.
  Metrics metrics() override;

 private:
  void evaluate_val();

  Index num_classes_, num_pixels_;
  SoftmaxRegression<S> model_;
  std::shared_ptr<const Dataset<S>> val_, test_;
  S weight_decay_;
  Dataset<S> synthetic_;
  Vector<S> lambda_, w_, train_gradient_, val_gradient_;
  S train_loss_ = 0, val_loss_ = 0;
  bool val_valid_ = false;
  std::shared_ptr<parallel::Communicator> comm_;  // null: one process
  parallel::Shard val_shard_, test_shard_;
  typename SoftmaxRegression<S>::Cache train_cache_, val_cache_, scratch_cache_;
  Matrix<S> work_u_, work_d_;  // mixed_product scratch (m × C, m × F)
};

}  // namespace ift
