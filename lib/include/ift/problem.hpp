// The bilevel problem seam (DESIGN.md §1, §4): everything a hypergradient needs at a point (λ, w).
//   inner  L_T(λ, w): loss, ∇_w L_T, Hessian/Gauss-Newton/Fisher products, dense matrices, KFAC
//                     factors, and the mixed partial v ↦ vᵀ ∂²L_T/∂w∂λᵀ;
//   outer  L_V(λ, w): loss, ∇_w L_V and the direct term ∂L_V/∂λ.
// Calls are coarse (one product over a whole data set), so a virtual interface costs nothing
// measurable and lets apps choose the model and the hyperparameter family at run time.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "ift/core.hpp"
#include "ift/dataset.hpp"
#include "ift/hyper/weight_decay.hpp"
#include "ift/models/kronecker_factors.hpp"

namespace ift {

/// Losses (data terms only, without the penalty) and accuracies at the current point; accuracies absent for regression, test absent
/// when the problem has no test set.
struct Metrics {
  double train_loss = 0, val_loss = 0, test_loss = 0;
  double train_accuracy = 0, val_accuracy = 0, test_accuracy = 0;
  bool has_accuracy = false, has_test = false;
};

template <class S>
class BilevelProblem {
 public:
  using Scalar = S;
  virtual ~BilevelProblem() = default;

  virtual Index num_params() const = 0;
  virtual Index num_hyper() const = 0;

  /// Moves to (λ, w): evaluates L_T there (and what its curvature products reuse) and invalidates
  /// the outer caches. ∇_w L_T may be formed lazily, on the first train_gradient() call.
  virtual void set_point(const Vector<S>& lambda, const Vector<S>& w) = 0;
  virtual const Vector<S>& lambda() const = 0;
  virtual const Vector<S>& w() const = 0;

  virtual S train_loss() const = 0;                    ///< L_T (data term + penalty)
  virtual const Vector<S>& train_gradient() const = 0;  ///< ∇_w L_T
  virtual S val_loss() = 0;                             ///< L_V
  virtual const Vector<S>& val_gradient() = 0;          ///< ∇_w L_V
  virtual void val_direct_gradient(Vector<S>& out) = 0;  ///< ∂L_V/∂λ (the direct term)

  virtual void hvp(const Vector<S>& v, Vector<S>& out) = 0;                   ///< ∇²_w L_T v
  virtual void gauss_newton_product(const Vector<S>& v, Vector<S>& out) = 0;  ///< G v (+ penalty)
  virtual void fisher_product(const Vector<S>& v, Vector<S>& out) = 0;  ///< empirical Fisher v (+ penalty)
  virtual void hessian(Matrix<S>& H) = 0;
  virtual void gauss_newton_matrix(Matrix<S>& G) = 0;
  /// KFAC factors of the data term plus the penalty's curvature folded into a per-block shift
  /// (returned in `shift`, one entry per block: the mean of the penalty's Hessian diagonal over
  /// the block; exact for global decay).
  virtual std::vector<KroneckerFactors<S>> kfac_factors(std::vector<S>& shift) = 0;
  virtual void mixed_product(const Vector<S>& v, Vector<S>& out) = 0;  ///< vᵀ ∂²L_T/∂w∂λᵀ
  /// out = ∇²_w R v: the curvature of the hyperparameter-dependent penalty alone (zero for
  /// families without one); kept exact by the outer-product and Fisher curvatures.
  virtual void penalty_hvp(const Vector<S>& v, Vector<S>& out) = 0;

  virtual Metrics metrics() = 0;  ///< losses and accuracies at the current point

  /// Training examples that minibatches may draw from; 0 when the problem supports full-batch
  /// gradients only (the default).
  virtual Index num_train_examples() const { return 0; }
  /// ∇_w L_T at (λ, w) with the data term averaged over the training rows `rows` only (a
  /// minibatch for the inner optimiser of Algorithm 2); returns that L_T. Does not move the
  /// problem's point or touch its caches.
  virtual S batch_train_gradient(const Vector<S>& /*lambda*/, const Vector<S>& /*w*/,
                                 const std::vector<Index>& /*rows*/, Vector<S>& /*gradient*/) {
    throw std::invalid_argument("this problem does not support minibatch gradients");
  }
};

/// L_T = mean loss(train) + weight-decay penalty; L_V = mean loss(val); optional test set for
/// metrics. Works for any model with the evaluate/hvp/... interface of SoftmaxRegression.
template <class Model>
class RegularizedProblem final : public BilevelProblem<typename Model::Scalar> {
 public:
  using S = typename Model::Scalar;

  RegularizedProblem(Model model, WeightDecay<S> decay, std::shared_ptr<const Dataset<S>> train,
                     std::shared_ptr<const Dataset<S>> val,
                     std::shared_ptr<const Dataset<S>> test = nullptr)
      : model_(std::move(model)), decay_(decay), train_(std::move(train)), val_(std::move(val)),
        test_(std::move(test)) {
    require(train_ && val_, "RegularizedProblem: train and validation sets are required");
    require(decay_.num_hyper() == 1 || decay_.num_hyper() == model_.num_params(),
            "RegularizedProblem: the weight-decay family does not match the model's size");
  }

  const Model& model() const { return model_; }
  const Dataset<S>& train_data() const { return *train_; }
  const Dataset<S>& val_data() const { return *val_; }
  const WeightDecay<S>& decay() const { return decay_; }

  Index num_params() const override { return model_.num_params(); }
  Index num_hyper() const override { return decay_.num_hyper(); }

  void set_point(const Vector<S>& lambda, const Vector<S>& w) override {
    require(lambda.size() == num_hyper(), "RegularizedProblem::set_point: λ has the wrong size");
    require(w.size() == num_params(), "RegularizedProblem::set_point: w has the wrong size");
    lambda_ = lambda;
    w_ = w;
    // The forward pass (and an MLP's backpropagated δ) that every curvature product reuses; the
    // weight gradient itself (half of a logistic-regression gradient's flops, 40% of a deep
    // MLP's) only when train_gradient() is called: a hypergradient by cg/neumann/identity/kfac
    // never needs it.
    train_loss_ = model_.evaluate(*train_, w_, train_cache_, nullptr) + decay_.penalty(lambda_, w_);
    decay_.hessian_diagonal(lambda_, penalty_curvature_);  // exp(λ) once, not in every product
    train_gradient_valid_ = false;
    val_valid_ = false;
  }
  const Vector<S>& lambda() const override { return lambda_; }
  const Vector<S>& w() const override { return w_; }

  S train_loss() const override { return train_loss_; }
  const Vector<S>& train_gradient() const override {
    if (!train_gradient_valid_) {
      model_.gradient_from_cache(*train_, train_cache_, train_gradient_);
      train_gradient_.array() += penalty_curvature_.array() * w_.array();  // ∇R = exp(λ) ⊙ w
      train_gradient_valid_ = true;
    }
    return train_gradient_;
  }
  S val_loss() override {
    evaluate_val();
    return val_loss_;
  }
  const Vector<S>& val_gradient() override {
    evaluate_val();
    return val_gradient_;
  }
  void val_direct_gradient(Vector<S>& out) override { out.setZero(num_hyper()); }

  void hvp(const Vector<S>& v, Vector<S>& out) override {
    model_.hvp(*train_, w_, train_cache_, v, out);
    add_penalty_hvp(v, out);
  }
  void gauss_newton_product(const Vector<S>& v, Vector<S>& out) override {
    model_.gauss_newton_product(*train_, w_, train_cache_, v, out);
    add_penalty_hvp(v, out);
  }
  void fisher_product(const Vector<S>& v, Vector<S>& out) override {
    model_.fisher_product(*train_, w_, train_cache_, v, out);
    add_penalty_hvp(v, out);
  }
  void hessian(Matrix<S>& H) override {
    model_.hessian(*train_, w_, train_cache_, H);
    decay_.add_hessian(lambda_, H);
  }
  void gauss_newton_matrix(Matrix<S>& G) override {
    if constexpr (requires { model_.gauss_newton_matrix(*train_, w_, train_cache_, G); })
      model_.gauss_newton_matrix(*train_, w_, train_cache_, G);
    else
      model_.hessian(*train_, w_, train_cache_, G);  // linear logits: Gauss-Newton = Hessian
    decay_.add_hessian(lambda_, G);
  }
  std::vector<KroneckerFactors<S>> kfac_factors(std::vector<S>& shift) override {
    auto factors = model_.kfac_factors(*train_, w_, train_cache_);
    const Vector<S> diag = decay_.hessian_diagonal(lambda_);
    shift.clear();
    for (const auto& f : factors) {
      const Index size = f.A.rows() * f.G.rows();
      shift.push_back(diag.segment(f.offset, size).mean());
    }
    return factors;
  }
  void mixed_product(const Vector<S>& v, Vector<S>& out) override {
    decay_.mixed_product(lambda_, w_, v, out);
  }
  void penalty_hvp(const Vector<S>& v, Vector<S>& out) override {
    out.setZero(v.size());
    add_penalty_hvp(v, out);
  }

  Index num_train_examples() const override { return train_->size(); }
  S batch_train_gradient(const Vector<S>& lambda, const Vector<S>& w,
                         const std::vector<Index>& rows, Vector<S>& gradient) override {
    require(!rows.empty(), "RegularizedProblem::batch_train_gradient: empty batch");
    for (const Index r : rows)
      require(r >= 0 && r < train_->size(),
              "RegularizedProblem::batch_train_gradient: row " + std::to_string(r) +
                  " outside the training set");
    batch_ = train_->gather(rows);
    const S loss = model_.evaluate(batch_, w, batch_cache_, &gradient) + decay_.penalty(lambda, w);
    decay_.add_gradient(lambda, w, gradient);
    return loss;
  }

  Metrics metrics() override {
    Metrics m;
    m.train_loss = static_cast<double>(model_.evaluate(*train_, w_, scratch_cache_, nullptr));
    m.val_loss = static_cast<double>(val_loss());
    m.has_accuracy = train_->labels.size() > 0;
    if (m.has_accuracy) {
      m.train_accuracy = model_.accuracy(*train_, scratch_cache_);
      m.val_accuracy = model_.accuracy(*val_, val_cache_);
    }
    if (test_) {
      m.has_test = true;
      m.test_loss = static_cast<double>(model_.evaluate(*test_, w_, scratch_cache_, nullptr));
      if (m.has_accuracy) m.test_accuracy = model_.accuracy(*test_, scratch_cache_);
    }
    return m;
  }

 private:
  /// out += ∇²_w R v = exp(λ) ⊙ v, from the diagonal formed at set_point.
  void add_penalty_hvp(const Vector<S>& v, Vector<S>& out) const {
    require(v.size() == penalty_curvature_.size() && out.size() == v.size(),
            "RegularizedProblem: curvature product of the wrong size (call set_point first)");
    out.array() += penalty_curvature_.array() * v.array();
  }
  void evaluate_val() {
    if (val_valid_) return;
    val_loss_ = model_.evaluate(*val_, w_, val_cache_, &val_gradient_);
    val_valid_ = true;
  }

  Model model_;
  WeightDecay<S> decay_;
  std::shared_ptr<const Dataset<S>> train_, val_, test_;
  Vector<S> lambda_, w_, val_gradient_;
  mutable Vector<S> train_gradient_;  // formed on demand from train_cache_ (see set_point)
  Vector<S> penalty_curvature_;       // exp(λ) per weight, the penalty's Hessian diagonal
  S train_loss_ = 0, val_loss_ = 0;
  bool val_valid_ = false;
  mutable bool train_gradient_valid_ = false;
  typename Model::Cache train_cache_, val_cache_, scratch_cache_, batch_cache_;
  Dataset<S> batch_;
};

}  // namespace ift
