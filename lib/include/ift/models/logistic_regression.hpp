// Binary logistic regression (labels 0/1, bias as a feature) with exact derivatives.
// p = σ(X w); loss = mean[softplus(z) − y z]; H = Xᵀ diag(p(1 − p)) X / n (= Gauss-Newton).
#pragma once

#include <vector>

#include "ift/core.hpp"
#include "ift/dataset.hpp"
#include "ift/models/kronecker_factors.hpp"
#include "ift/models/model.hpp"
#include "ift/models/row_block.hpp"

namespace ift {

template <class S>
class LogisticRegression {
 public:
  using Scalar = S;
  struct Cache {
    Vector<S> probs;     ///< n, σ(x_i · w).
    Vector<S> residual;  ///< n, (p − y) / n.
    Matrix<S> work_x;    ///< n × F scratch for the dense Hessian.
    Matrix<float> work_x_float;  ///< the same for hessian_float.
    /// Buffers of the fused row-block passes (row_block.hpp), sized on the first call.
    mutable row_block::Workspace<S> blocks;
  };

  explicit LogisticRegression(Index num_features);
  Index num_features() const { return num_features_; }
  Index num_params() const { return num_features_; }

  S evaluate(const Dataset<S>& data, const Vector<S>& w, Cache& cache, Vector<S>* gradient) const;
  /// ∇ of the mean loss, Xᵀ (p − y) / n, from a cache filled by evaluate() on `data`.
  void gradient_from_cache(const Dataset<S>& data, const Cache& cache, Vector<S>& gradient) const;
  void hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
           Vector<S>& out) const;
  /// H V for a D × m block (column j of out = hvp of V.col(j)) in one fused pass over X (row_block.hpp)
  /// instead of m passes. Equal to m hvp calls to rounding.
  void hvp_block(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Matrix<S>& V,
                 Matrix<S>& out) const;
  void gauss_newton_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                            const Vector<S>& v, Vector<S>& out) const;
  void fisher_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
                      Vector<S>& out) const;
  void hessian(const Dataset<S>& data, const Vector<S>& w, Cache& cache, Matrix<S>& H) const;
  /// The same formula in float (ModelWithFloatHessian): X_float is data.X rounded to float (the
  /// caller's copy, made once), the row weights p(1 − p)/n are formed in S and rounded once.
  void hessian_float(const Dataset<S>& data, const Matrix<float>& X_float, const Vector<S>& w,
                     Cache& cache, Matrix<float>& H) const;
  std::vector<KroneckerFactors<S>> kfac_factors(const Dataset<S>& data, const Vector<S>& w,
                                                Cache& cache) const;
  double accuracy(const Dataset<S>& data, const Cache& cache) const;

 private:
  void check_data(const Dataset<S>& data, const Vector<S>& w) const;
  Index num_features_;
};

static_assert(FullModel<LogisticRegression<float>> && FullModel<LogisticRegression<double>> &&
                  ModelWithBlockHvp<LogisticRegression<float>> &&
                  ModelWithBlockHvp<LogisticRegression<double>> &&
                  ModelWithFloatHessian<LogisticRegression<double>>,
              "LogisticRegression must provide every model capability (ift/models/model.hpp)");

}  // namespace ift
