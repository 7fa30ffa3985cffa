#include "ift/models/logistic_regression.hpp"

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
  cache.probs.noalias() = data.X * w;
  cache.residual.resize(n);
  double total = 0;
  for (Index i = 0; i < n; ++i) {
    const S z = cache.probs(i);
    const S y = static_cast<S>(data.labels(i));
    // softplus(z) = max(z, 0) + log1p(exp(−|z|)), stable for any z.
    total += static_cast<double>(std::max(z, S(0)) + std::log1p(std::exp(-std::abs(z))) - y * z);
    const S p = z >= 0 ? S(1) / (S(1) + std::exp(-z)) : std::exp(z) / (S(1) + std::exp(z));
    cache.probs(i) = p;
    cache.residual(i) = (p - y) / S(n);
  }
  if (gradient) gradient_from_cache(data, cache, *gradient);
  return static_cast<S>(total / static_cast<double>(n));
}

template <class S>
void LogisticRegression<S>::gradient_from_cache(const Dataset<S>& data, const Cache& cache,
                                                Vector<S>& gradient) const {
  require(cache.residual.size() == data.size() && data.num_features() == num_features_,
          "LogisticRegression::gradient_from_cache: call evaluate() on this data first");
  gradient.resize(num_params());
  gradient.noalias() = data.X.transpose() * cache.residual;
}

template <class S>
void LogisticRegression<S>::hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                const Vector<S>& v, Vector<S>& out) const {
  check_data(data, w);
  require(cache.probs.size() == data.size(), "LogisticRegression::hvp: call evaluate() first");
  const Index n = data.size();
  cache.work.resize(n);
  cache.work.noalias() = data.X * v;
  cache.work.array() *= cache.probs.array() * (S(1) - cache.probs.array()) / S(n);
  out.resize(num_params());
  out.noalias() = data.X.transpose() * cache.work;
}

template <class S>
void LogisticRegression<S>::hvp_block(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                      const Matrix<S>& V, Matrix<S>& out) const {
  check_data(data, w);
  require(cache.probs.size() == data.size(), "LogisticRegression::hvp_block: call evaluate() first");
  require(V.rows() == num_params(), "LogisticRegression::hvp_block: V has the wrong height");
  const Index n = data.size();
  // H V = Xᵀ diag(p(1 − p)/n) X V: the m columns of hvp() in two GEMMs.
  cache.work_block.resize(n, V.cols());
  cache.work_block.noalias() = data.X * V;
  cache.work_block.array().colwise() *= cache.probs.array() * (S(1) - cache.probs.array()) / S(n);
  out.resize(num_params(), V.cols());
  out.noalias() = data.X.transpose() * cache.work_block;
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
  const Index n = data.size();
  // g_i = (p_i − y_i) x_i = n r_i x_i;  (1/n) Σ g_i g_iᵀ v = Xᵀ (n r ⊙ r ⊙ X v).
  cache.work.resize(n);
  cache.work.noalias() = data.X * v;
  cache.work.array() *= S(n) * cache.residual.array().square();
  out.resize(num_params());
  out.noalias() = data.X.transpose() * cache.work;
}

template <class S>
void LogisticRegression<S>::hessian(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                    Matrix<S>& H) const {
  check_data(data, w);
  const Index n = data.size();
  cache.work_x = data.X;
  for (Index i = 0; i < n; ++i)
    cache.work_x.row(i) *= cache.probs(i) * (S(1) - cache.probs(i)) / S(n);
  H.resize(num_params(), num_params());
  H.noalias() = data.X.transpose() * cache.work_x;
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
