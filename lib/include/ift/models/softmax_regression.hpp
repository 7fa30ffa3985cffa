// Multinomial logistic regression (softmax, bias as a feature) with exact derivatives.
//
// Parameters are class-major: w[c * F + j] = W[c, j] (DESIGN.md P1), i.e. w is the column-major
// vec of the F × C matrix Wᵀ. Logits Z = X Wᵀ (n × C). The loss is the mean cross-entropy.
// With S_n = diag(p_n) − p_n p_nᵀ the Hessian is H = (1/n) Σ_n S_n ⊗ x_n x_nᵀ: block (c, c') is
// Xᵀ diag(s_cc') X / n. It equals the Gauss-Newton matrix (the logits are linear in w).
#pragma once

#include <vector>

#include "ift/core.hpp"
#include "ift/dataset.hpp"
#include "ift/models/kronecker_factors.hpp"
#include "ift/models/model.hpp"
#include "ift/models/row_block.hpp"

namespace ift {

template <class S>
class SoftmaxRegression {
 public:
  using Scalar = S;

  /// Forward quantities at (data, w), reused by gradient, HVP, Gauss-Newton and Fisher products.
  struct Cache {
    Matrix<S> probs;     ///< n × C softmax probabilities.
    Matrix<S> residual;  ///< n × C, (P − Y) / n: the gradient of the mean loss w.r.t. the logits.
    Matrix<S> work_x;    ///< n × F scratch for the dense Hessian build.
    Matrix<float> work_x_float;  ///< the same for hessian_float.
    Vector<S> work_out;  ///< F·2C scratch of hvp_and_gradient ([H v, ∇]), evaluate_with_hvp ([∇, H v]).
    Vector<S> work_in;   ///< F·2C scratch of evaluate_with_hvp: [w, v] side by side.
    /// Buffers of the fused row-block passes (row_block.hpp), sized on the first call.
    mutable row_block::Workspace<S> blocks;
  };

  SoftmaxRegression(Index num_features, Index num_classes);

  Index num_features() const { return num_features_; }
  Index num_classes() const { return num_classes_; }
  Index num_params() const { return num_features_ * num_classes_; }

  /// Mean cross-entropy at w; fills the cache; writes the gradient when `gradient` is non-null.
  S evaluate(const Dataset<S>& data, const Vector<S>& w, Cache& cache, Vector<S>* gradient) const;
  /// ∇ of the mean loss from a cache filled by evaluate() on `data` (Xᵀ (P − Y) / n: the half of
  /// a gradient that evaluate() skips when called without one).
  void gradient_from_cache(const Dataset<S>& data, const Cache& cache, Vector<S>& gradient) const;

  /// Hessian-vector product H v from a cache filled by evaluate() at the same w (R-operator).
  void hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
           Vector<S>& out) const;
  /// hvp() and gradient_from_cache() in ONE fused pass: the backward Xᵀ [R{∂L/∂Z}, (P − Y)/n]
  /// with 2C columns while X_b is in cache, instead of a second pass over X for the gradient.
  /// `out` and `gradient` equal those two calls' results bitwise (the same kernels per column).
  void hvp_and_gradient(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                        const Vector<S>& v, Vector<S>& out, Vector<S>& gradient) const;
  /// evaluate() with a gradient and hvp() at the new point in ONE pass over X (forward X_b [W, V],
  /// backward X_bᵀ [(P − Y)/n, R{∂L/∂Z}]): the loss, the cache, `gradient` and `hv` equal those
  /// two calls' bitwise. For a product whose vector is known before the point is set (a
  /// warm-started solver's H v_prev; RegularizedProblem::set_point_with_gradient_and_hvp).
  S evaluate_with_hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
                      Vector<S>& gradient, Vector<S>& hv) const;
  /// The cache evaluate(batch, w, to, nullptr) would leave, from `from`, a cache of evaluate()
  /// on the whole data at the same w, where batch = data.gather(rows): a row's probabilities do
  /// not depend on the other rows, so they are gathered, not recomputed (no pass over X_batch),
  /// and the batch's residual (P − Y)/|batch| is formed from them as evaluate() forms it.
  /// Equal to evaluate()'s cache to rounding (bitwise for the whole data in order).
  void cache_rows(const Dataset<S>& batch, const Cache& from, const std::vector<Index>& rows,
                  Cache& to) const;
  /// H V for a D × m block (column j of out = hvp of V.col(j)) in one fused pass over X (row_block.hpp)
  /// instead of m passes. Equal to m hvp calls to rounding.
  void hvp_block(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Matrix<S>& V,
                 Matrix<S>& out) const;
  /// Gauss-Newton product Jᵀ H_out J v; identical to hvp() for this model.
  void gauss_newton_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                            const Vector<S>& v, Vector<S>& out) const;
  /// Empirical Fisher product (1/n) Σ_n g_n g_nᵀ v from per-example gradients, matrix-free.
  void fisher_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
                      Vector<S>& out) const;
  /// Dense Hessian by its Kronecker-block formula (one GEMM per block pair c ≤ c', symmetric fill).
  void hessian(const Dataset<S>& data, const Vector<S>& w, Cache& cache, Matrix<S>& H) const;
  /// The same formula in float (ModelWithFloatHessian): X_float is data.X rounded to float (the
  /// caller's copy, made once), the per-row weights come from the cache's probabilities in S and
  /// are rounded once; the products accumulate in float.
  void hessian_float(const Dataset<S>& data, const Matrix<float>& X_float, const Vector<S>& w,
                     Cache& cache, Matrix<float>& H) const;
  /// KFAC factors: one block, A = XᵀX / n (F × F, the bias is already a feature), G = mean S_n.
  std::vector<KroneckerFactors<S>> kfac_factors(const Dataset<S>& data, const Vector<S>& w,
                                                Cache& cache) const;
  /// EKFAC's eigenvalues of the one block (ModelWithKfacEigenvalues): with H = mean_n S_n ⊗
  /// x_n x_nᵀ (S_n = diag p_n − p_n p_nᵀ), out(j, o) = mean_n (q_oᵀ S_n q_o)(u_jᵀ x_n)² for the
  /// columns u_j of Ua (F × F) and q_o of Ug (C × C): one n × F × F product X Ua and two n × C × C.
  void kfac_corrected_eigenvalues(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                  std::size_t block, const Matrix<S>& Ua, const Matrix<S>& Ug,
                                  Matrix<S>& out) const;
  /// Fraction of rows whose arg-max probability is the label (cache from evaluate()).
  double accuracy(const Dataset<S>& data, const Cache& cache) const;

 private:
  void check_data(const Dataset<S>& data, const Vector<S>& w) const;
  Index num_features_;
  Index num_classes_;
};

static_assert(FullModel<SoftmaxRegression<float>> && FullModel<SoftmaxRegression<double>> &&
                  ModelWithBlockHvp<SoftmaxRegression<float>> &&
                  ModelWithBlockHvp<SoftmaxRegression<double>> &&
                  ModelWithFloatHessian<SoftmaxRegression<double>> &&
                  ModelWithHvpAndGradient<SoftmaxRegression<double>> &&
                  ModelWithEvaluateAndHvp<SoftmaxRegression<float>> &&
                  ModelWithEvaluateAndHvp<SoftmaxRegression<double>> &&
                  ModelWithKfacEigenvalues<SoftmaxRegression<float>> &&
                  ModelWithKfacEigenvalues<SoftmaxRegression<double>>,
              "SoftmaxRegression must provide every model capability (ift/models/model.hpp)");

}  // namespace ift
