// The bilevel problem seam on Eigen vectors (DESIGN.md §1, §4): the interface only; the
// implementations are in ift/problems/ (RegularizedProblem: a model plus weight decay;
// DistillationProblem).
//
// Required (BilevelProblem<S>): what every hypergradient method and the bilevel loop need at a
// point (λ, w): L_T and ∇_w L_T, L_V and ∇_w L_V, the direct term ∂L_V/∂λ, the HVP
// ∇²_w L_T v, the mixed partial vᵀ ∂²L_T/∂w∂λᵀ and metrics. Optional capabilities are separate
// interfaces (namespace capability) that a problem class opts into by deriving from them:
// Gauss-Newton and Fisher products, the penalty's curvature, dense Hessian and Gauss-Newton
// matrices, Kronecker factors. The generic hypergradient uses a capability through the problem's
// static type when it has it (checked at compile time), and through a dynamic_cast when the
// problem is seen as a BilevelProblem<S> (an app choosing its model at run time); a method whose
// capability is missing throws std::invalid_argument naming it.
// Calls are coarse (one product over a whole data set), so virtual dispatch costs nothing
// measurable.
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
  /// set_point(λ, w) when ∇_w L_T at w is wanted next (an inner optimiser step, the point of a
  /// hypergradient whose next inner step starts there): a problem may form the gradient in the
  /// same pass over the data as L_T. Afterwards every value is what set_point(λ, w) followed by
  /// train_gradient() gives, bitwise; this default is exactly that.
  virtual void set_point_with_gradient(const Vector<S>& lambda, const Vector<S>& w) {
    set_point(lambda, w);
    train_gradient();
  }
  /// set_point_with_gradient(λ, w) and hvp(v, hv) at that point, for a product whose vector is
  /// known before the point is set (a warm-started solver's H v_prev): a problem may form all
  /// three in one pass over the data. Afterwards every value, and hv, are what those two calls
  /// give, bitwise; this default is exactly them.
  virtual void set_point_with_gradient_and_hvp(const Vector<S>& lambda, const Vector<S>& w,
                                               const Vector<S>& v, Vector<S>& hv) {
    set_point_with_gradient(lambda, w);
    hvp(v, hv);
  }
  virtual const Vector<S>& lambda() const = 0;
  virtual const Vector<S>& w() const = 0;

  virtual S train_loss() const = 0;                    ///< L_T (data term + penalty)
  virtual const Vector<S>& train_gradient() const = 0;  ///< ∇_w L_T
  virtual S val_loss() = 0;                             ///< L_V
  virtual const Vector<S>& val_gradient() = 0;          ///< ∇_w L_V
  virtual void val_direct_gradient(Vector<S>& out) = 0;  ///< ∂L_V/∂λ (the direct term)

  virtual void hvp(const Vector<S>& v, Vector<S>& out) = 0;            ///< ∇²_w L_T v
  virtual void mixed_product(const Vector<S>& v, Vector<S>& out) = 0;  ///< vᵀ ∂²L_T/∂w∂λᵀ

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
  /// ∇²_w L_T v at the current point with the data term averaged over the training rows `rows`
  /// only and the penalty's curvature added once (stochastic curvature: MethodSpec::sampling).
  /// With every row in order it equals hvp(v, out) bitwise. Does not move the problem's point.
  virtual void batch_hvp(const std::vector<Index>& /*rows*/, const Vector<S>& /*v*/,
                         Vector<S>& /*out*/) {
    throw std::invalid_argument("this problem does not support minibatch Hessian-vector products");
  }
};

namespace capability {

/// G v + ∇²R v: the Gauss-Newton matrix JᵀH_out J of the data term plus the penalty's exact
/// curvature.
template <class S>
class GaussNewton {
 public:
  virtual ~GaussNewton() = default;
  virtual void gauss_newton_product(const Vector<S>& v, Vector<S>& out) = 0;
};

/// F v + ∇²R v: the empirical Fisher (1/n) Σ g_i g_iᵀ plus the penalty's curvature.
template <class S>
class Fisher {
 public:
  virtual ~Fisher() = default;
  virtual void fisher_product(const Vector<S>& v, Vector<S>& out) = 0;
};

/// ∇²_w R v: the curvature of the hyperparameter-dependent penalty alone (zero for families
/// without one); kept exact by the outer-product and Fisher curvatures.
template <class S>
class PenaltyCurvature {
 public:
  virtual ~PenaltyCurvature() = default;
  virtual void penalty_hvp(const Vector<S>& v, Vector<S>& out) = 0;
};

/// The dense Hessian ∇²_w L_T (exact method, Newton).
template <class S>
class DenseHessian {
 public:
  virtual ~DenseHessian() = default;
  virtual void hessian(Matrix<S>& H) = 0;
};

/// The dense Gauss-Newton matrix plus the penalty's curvature (gauss-newton/exact).
template <class S>
class DenseGaussNewton {
 public:
  virtual ~DenseGaussNewton() = default;
  virtual void gauss_newton_matrix(Matrix<S>& G) = 0;
};

/// The dense training curvature formed directly in float (the exact method's mixed path for
/// S = double, DenseSolver::compute_mixed): the Hessian ∇²_w L_T, and the Gauss-Newton matrix plus
/// the penalty's curvature, each equal to hessian() / gauss_newton_matrix() to float rounding.
/// Offered only where both are formed in float (for the linear-logit models they coincide).
template <class S>
class FloatCurvature {
 public:
  virtual ~FloatCurvature() = default;
  virtual void hessian_float(Matrix<float>& H) = 0;
  virtual void gauss_newton_matrix_float(Matrix<float>& G) = 0;
};

/// No capability: the base a problem derives from where a capability is conditional.
template <class S>
class Nothing {};

/// KFAC factors of the data term plus the penalty's curvature folded into a per-block shift
/// (returned in `shift`, one entry per block: the mean of the penalty's Hessian diagonal over
/// the block; exact for global decay).
template <class S>
class KroneckerFactorization {
 public:
  virtual ~KroneckerFactorization() = default;
  virtual std::vector<KroneckerFactors<S>> kfac_factors(std::vector<S>& shift) = 0;
  /// EKFAC's eigenvalues of block `block` (George et al. 2018): diag(Uᵀ H_b U) of the data
  /// term's curvature in the basis U = Ug ⊗ Ua, as an in × out matrix in `out`, at the current
  /// point (the penalty not included). false when the model does not provide them.
  virtual bool kfac_corrected_eigenvalues(std::size_t /*block*/, const Matrix<S>& /*Ua*/,
                                          const Matrix<S>& /*Ug*/, Matrix<S>& /*out*/) {
    return false;
  }
};

/// H V for a D × m block V of directions (column j of `out` = ∇²_w L_T V.col(j)) in one pass:
/// for linear models one product of the data with an m-column block (GEMMs) instead of m thin
/// passes. Used by nystrom (its k column products, its probes and sketch); problems without it
/// get m sequential hvp calls.
template <class S>
class BlockHvp {
 public:
  virtual ~BlockHvp() = default;
  virtual void hvp_block(const Matrix<S>& V, Matrix<S>& out) = 0;
};

/// Every capability at once: what the problems of the paper provide.
template <class S>
class All : public GaussNewton<S>,
            public Fisher<S>,
            public PenaltyCurvature<S>,
            public DenseHessian<S>,
            public DenseGaussNewton<S>,
            public KroneckerFactorization<S> {};

}  // namespace capability

}  // namespace ift
