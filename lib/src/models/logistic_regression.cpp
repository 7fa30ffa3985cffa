#include "ift/models/logistic_regression.hpp"

#include "ift/linalg/parallel_gemm.hpp"

#include <cmath>

namespace ift {

template <class S>
LogisticRegression<S>::LogisticRegression(Index num_features) : num_features_(num_features) {
  require(num_features > 0, "LogisticRegression: num_features must be positive");
}

template <class S>
void LogisticRegression<S>::check_data(const Dataset<S>& data, const Vector<S>& w) const {
  require(data.num_features() == num_features_, [&] {
    return std::string("LogisticRegression: data has " + std::to_string(data.num_features()) +
                       " features, the model expects " + std::to_string(num_features_));
  });
  require(data.size() > 0 && data.labels.size() == data.size(),
          "LogisticRegression: data needs at least one row and one label per row");
  require(data.labels.minCoeff() >= 0 && data.labels.maxCoeff() <= 1,
          "LogisticRegression: labels must be 0 or 1");
  require(w.size() == num_params(), "LogisticRegression: w has the wrong size");
}

template <class S>
S LogisticRegression<S>::evaluate(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                  Vector<S>* gradient) const {
  check_data(data, w);
  const Index n = data.size();
  cache.probs.resize(n);
  cache.residual.resize(n);
  if (gradient) gradient->resize(num_params());
  // One pass over row blocks (row_block.hpp): z_b = X_b w, the loss, p and the residual, and with
  // a gradient Xᵀ (p − y) / n accumulated while X_b is in cache.
  row_block::fused_pass(
      data.X, w.data(), 1, gradient ? gradient->data() : nullptr, 1, 0, cache.blocks,
      [&](Index g, Index i0, row_block::BlockMap<S> Z) {
        double total = 0;
        for (Index r = 0; r < Z.rows(); ++r) {
          const Index i = i0 + r;
          const S z = Z(r, 0);
          const S y = static_cast<S>(data.labels(i));
          // softplus(z) = max(z, 0) + log1p(exp(−|z|)), stable for any z.
          total += static_cast<double>(std::max(z, S(0)) + std::log1p(std::exp(-std::abs(z))) -
                                       y * z);
          const S p = z >= 0 ? S(1) / (S(1) + std::exp(-z)) : std::exp(z) / (S(1) + std::exp(z));
          cache.probs(i) = p;
          cache.residual(i) = (p - y) / S(n);
          Z(r, 0) = cache.residual(i);
        }
        cache.blocks.partial[static_cast<std::size_t>(g)] += total;
      });
  double total = 0;
  for (const double t : cache.blocks.partial) total += t;  // group order: deterministic
  return static_cast<S>(total / static_cast<double>(n));
}

template <class S>
void LogisticRegression<S>::gradient_from_cache(const Dataset<S>& data, const Cache& cache,
                                                Vector<S>& gradient) const {
  require(cache.residual.size() == data.size() && data.num_features() == num_features_,
          "LogisticRegression::gradient_from_cache: call evaluate() on this data first");
  gradient.resize(num_params());
  row_block::fused_pass(data.X, static_cast<const S*>(nullptr), 1, gradient.data(), 1, 0,
                        cache.blocks, [&](Index, Index i0, row_block::BlockMap<S> Z) {
                          Z.col(0) = cache.residual.segment(i0, Z.rows());
                        });
}

namespace {

/// Out (F × m) = Xᵀ diag(d) X V in one fused pass, d = p(1 − p)/n (Hessian = Gauss-Newton) or
/// d = n r² (empirical Fisher: g_i = (p_i − y_i) x_i = n r_i x_i).
template <class S, class Cache>
void curvature_product(const Dataset<S>& data, const Cache& cache, const S* V, Index m, S* out,
                       bool fisher) {
  const Index n = data.size();
  row_block::fused_pass(data.X, V, m, out, m, 0, cache.blocks,
                        [&](Index, Index i0, row_block::BlockMap<S> Z) {
                          const auto p = cache.probs.segment(i0, Z.rows()).array();
                          const auto r = cache.residual.segment(i0, Z.rows()).array();
                          for (Index j = 0; j < m; ++j) {
                            if (fisher)
                              Z.col(j).array() *= S(n) * r.square();
                            else
                              Z.col(j).array() *= p * (S(1) - p) / S(n);
                          }
                        });
}

}  // namespace

template <class S>
void LogisticRegression<S>::hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                const Vector<S>& v, Vector<S>& out) const {
  check_data(data, w);
  require(v.size() == num_params(), "LogisticRegression::hvp: v has the wrong size");
  require(cache.probs.size() == data.size(), "LogisticRegression::hvp: call evaluate() first");
  out.resize(num_params());
  curvature_product(data, cache, v.data(), 1, out.data(), false);
}

template <class S>
void LogisticRegression<S>::hvp_block(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                      const Matrix<S>& V, Matrix<S>& out) const {
  check_data(data, w);
  require(cache.probs.size() == data.size(),
          "LogisticRegression::hvp_block: call evaluate() first");
  require(V.rows() == num_params(), "LogisticRegression::hvp_block: V has the wrong height");
  // H V = Xᵀ diag(p(1 − p)/n) X V: the m columns of hvp() in one pass over X.
  out.resize(num_params(), V.cols());
  curvature_product(data, cache, V.data(), V.cols(), out.data(), false);
}

template <class S>
void LogisticRegression<S>::gauss_newton_product(const Dataset<S>& data, const Vector<S>& w,
                                                 Cache& cache, const Vector<S>& v,
                                                 Vector<S>& out) const {
  hvp(data, w, cache, v, out);
}

template <class S>
void LogisticRegression<S>::fisher_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                           const Vector<S>& v, Vector<S>& out) const {
  check_data(data, w);
  require(v.size() == num_params(), "LogisticRegression::fisher_product: v has the wrong size");
  require(cache.residual.size() == data.size(),
          "LogisticRegression::fisher_product: call evaluate() first");
  // (1/n) Σ g_i g_iᵀ v = Xᵀ (n r ⊙ r ⊙ X v).
  out.resize(num_params());
  curvature_product(data, cache, v.data(), 1, out.data(), true);
}

namespace {

/// H = Xᵀ diag(p(1 − p)/n) X formed in precision T from X in T and p in S (hessian: T = S;
/// hessian_float: T = float); each row weight is formed in S and rounded to T once.
template <class T, class S>
void logistic_hessian(const Matrix<T>& X, const Vector<S>& probs, Matrix<T>& work, Matrix<T>& H) {
  const Index n = X.rows();
  work = X;
  for (Index i = 0; i < n; ++i)
    work.row(i) *= static_cast<T>(probs(i) * (S(1) - probs(i)) / S(n));
  H.resize(X.cols(), X.cols());
  gemm(H, X.transpose(), work);  // ift's kernel on the OpenMP pool (parallel_gemm.hpp)
}

}  // namespace

template <class S>
void LogisticRegression<S>::hessian(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                    Matrix<S>& H) const {
  check_data(data, w);
  logistic_hessian(data.X, cache.probs, cache.work_x, H);
}

template <class S>
void LogisticRegression<S>::hessian_float(const Dataset<S>& data, const Matrix<float>& X_float,
                                          const Vector<S>& w, Cache& cache,
                                          Matrix<float>& H) const {
  check_data(data, w);
  require(cache.probs.size() == data.size(),
          "LogisticRegression::hessian_float: call evaluate() first");
  require(X_float.rows() == data.X.rows() && X_float.cols() == data.X.cols(),
          "LogisticRegression::hessian_float: X_float is not the data's design matrix");
  logistic_hessian(X_float, cache.probs, cache.work_x_float, H);
}

template <class S>
std::vector<KroneckerFactors<S>> LogisticRegression<S>::kfac_factors(const Dataset<S>& data,
                                                                     const Vector<S>& w,
                                                                     Cache& cache) const {
  check_data(data, w);
  const Index n = data.size();
  KroneckerFactors<S> f;
  f.A.noalias() = data.X.transpose() * data.X / S(n);
  f.G.resize(1, 1);
  f.G(0, 0) = (cache.probs.array() * (S(1) - cache.probs.array())).mean();
  return {f};
}

template <class S>
double LogisticRegression<S>::accuracy(const Dataset<S>& data, const Cache& cache) const {
  Index correct = 0;
  for (Index i = 0; i < data.size(); ++i)
    correct += ((cache.probs(i) >= S(0.5)) == (data.labels(i) == 1));
  return static_cast<double>(correct) / static_cast<double>(data.size());
}

template class LogisticRegression<float>;
template class LogisticRegression<double>;

}  // namespace ift
