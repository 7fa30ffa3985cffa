// Compute budgets in gradient-equivalents (issue 13): one full-batch gradient of L_T = 1.
//
// CountingProblem<S> wraps any BilevelProblem<S> and counts what the methods ask of it: points
// visited (the training forward pass of set_point), training gradients formed, curvature
// products (HVP, Gauss-Newton, Fisher), validation evaluations, dense Hessians, Kronecker-factor
// builds, minibatch rows. CostModel turns the counts into gradient-equivalents with ratios
// measured once on the actual problem (measure_cost_model: wall time of each operation divided
// by the time of a full gradient). metrics() is forwarded uncounted: it is reporting, not work
// a method needs (a method that needs L_V calls val_loss/val_gradient, which are counted).
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "ift/core.hpp"
#include "ift/problem.hpp"

namespace ift::baselines {

/// What a method asked of the problem.
struct CostCounts {
  double forwards = 0;   ///< set_point: the training loss (forward pass) at a new point
  double gradients = 0;  ///< ∇_w L_T formed at a point (the backward pass after set_point)
  double hvps = 0;       ///< Hessian-, Gauss-Newton- or Fisher-vector products
  double vals = 0;       ///< L_V and ∇_w L_V at a point (validation forward + backward)
  double hessians = 0;   ///< dense Hessians or Gauss-Newton matrices
  double kfacs = 0;      ///< Kronecker-factor builds
  double batch_rows = 0; ///< minibatch gradients, in training rows (a full batch = n rows)
};

/// The cost of each operation in gradient-equivalents (a full training gradient = 1: forward
/// + gradient = 1), measured by measure_cost_model or set by hand.
struct CostModel {
  double forward = 0.5;
  double hvp = 2;
  double val = 1;
  double hessian = 0;  ///< dense Hessian + its Cholesky; 0 when not measured (too large to time)
  double kfac = 1;
  double train_rows = 1;  ///< the training set's rows (for batch_rows)

  double cost(const CostCounts& c) const {
    return c.forwards * forward + c.gradients * (1 - forward) + c.hvps * hvp + c.vals * val +
           c.hessians * hessian + c.kfacs * kfac + c.batch_rows / std::max(1.0, train_rows);
  }
  /// "forward=0.41 hvp=1.93 val=1.02 hessian=… kfac=…": the CSV header comment.
  std::string describe() const;
};

template <class S>
class CountingProblem final : public BilevelProblem<S>, public capability::All<S> {
 public:
  explicit CountingProblem(BilevelProblem<S>& inner) : inner_(inner) {}

  const CostCounts& counts() const { return counts_; }
  void reset() { counts_ = {}; }
  BilevelProblem<S>& inner() { return inner_; }

  Index num_params() const override { return inner_.num_params(); }
  Index num_hyper() const override { return inner_.num_hyper(); }
  void set_point(const Vector<S>& lambda, const Vector<S>& w) override {
    inner_.set_point(lambda, w);
    counts_.forwards += 1;
    gradient_counted_ = val_counted_ = false;
  }
  void set_point_with_gradient(const Vector<S>& lambda, const Vector<S>& w) override {
    inner_.set_point_with_gradient(lambda, w);
    counts_.forwards += 1;
    counts_.gradients += 1;
    val_counted_ = false;
    gradient_counted_ = true;
  }
  void set_point_with_gradient_and_hvp(const Vector<S>& lambda, const Vector<S>& w,
                                       const Vector<S>& v, Vector<S>& hv) override {
    inner_.set_point_with_gradient_and_hvp(lambda, w, v, hv);
    counts_.forwards += 1;
    counts_.gradients += 1;
    counts_.hvps += 1;
    val_counted_ = false;
    gradient_counted_ = true;
  }
  const Vector<S>& lambda() const override { return inner_.lambda(); }
  const Vector<S>& w() const override { return inner_.w(); }
  S train_loss() const override { return inner_.train_loss(); }
  const Vector<S>& train_gradient() const override {
    if (!gradient_counted_) counts_.gradients += 1;
    gradient_counted_ = true;
    return inner_.train_gradient();
  }
  S val_loss() override {
    count_val();
    return inner_.val_loss();
  }
  const Vector<S>& val_gradient() override {
    count_val();
    return inner_.val_gradient();
  }
  void val_direct_gradient(Vector<S>& out) override { inner_.val_direct_gradient(out); }
  void hvp(const Vector<S>& v, Vector<S>& out) override {
    counts_.hvps += 1;
    inner_.hvp(v, out);
  }
  void mixed_product(const Vector<S>& v, Vector<S>& out) override { inner_.mixed_product(v, out); }
  Metrics metrics() override { return inner_.metrics(); }
  Index num_train_examples() const override { return inner_.num_train_examples(); }
  S batch_train_gradient(const Vector<S>& lambda, const Vector<S>& w, const std::vector<Index>& rows,
                         Vector<S>& gradient) override {
    counts_.batch_rows += static_cast<double>(rows.size());
    return inner_.batch_train_gradient(lambda, w, rows, gradient);
  }

  // Capabilities: forwarded where the wrapped problem has them (else the method's own error).
  void gauss_newton_product(const Vector<S>& v, Vector<S>& out) override {
    counts_.hvps += 1;
    as<capability::GaussNewton<S>>("Gauss-Newton products").gauss_newton_product(v, out);
  }
  void fisher_product(const Vector<S>& v, Vector<S>& out) override {
    counts_.hvps += 1;
    as<capability::Fisher<S>>("Fisher products").fisher_product(v, out);
  }
  void penalty_hvp(const Vector<S>& v, Vector<S>& out) override {
    as<capability::PenaltyCurvature<S>>("the penalty's curvature").penalty_hvp(v, out);
  }
  void hessian(Matrix<S>& H) override {
    counts_.hessians += 1;
    as<capability::DenseHessian<S>>("a dense Hessian").hessian(H);
  }
  void gauss_newton_matrix(Matrix<S>& G) override {
    counts_.hessians += 1;
    as<capability::DenseGaussNewton<S>>("a dense Gauss-Newton matrix").gauss_newton_matrix(G);
  }
  std::vector<KroneckerFactors<S>> kfac_factors(std::vector<S>& shift) override {
    counts_.kfacs += 1;
    return as<capability::KroneckerFactorization<S>>("Kronecker factors").kfac_factors(shift);
  }

 private:
  void count_val() {
    if (!val_counted_) counts_.vals += 1;
    val_counted_ = true;
  }
  template <class C>
  C& as(const char* what) {
    auto* c = dynamic_cast<C*>(&inner_);
    require(c != nullptr, std::string("CountingProblem: the wrapped problem has no ") + what);
    return *c;
  }

  BilevelProblem<S>& inner_;
  mutable CostCounts counts_;
  mutable bool gradient_counted_ = false;
  bool val_counted_ = false;
};

/// Times each operation on `problem` at (λ, w) (the fastest of `repeats` runs; the problem is
/// left at (λ, w)) and returns the ratios to a full gradient. The dense Hessian is timed only when
/// `time_hessian` (it is D² memory); KFAC only when the problem has Kronecker factors.
CostModel measure_cost_model(BilevelProblem<double>& problem, const Vector<double>& lambda,
                             const Vector<double>& w, Index repeats = 10, bool time_hessian = false);

}  // namespace ift::baselines
