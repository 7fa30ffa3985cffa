#include "ift/models/softmax_regression.hpp"

#include <cmath>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ift {

template <class S>
SoftmaxRegression<S>::SoftmaxRegression(Index num_features, Index num_classes)
    : num_features_(num_features), num_classes_(num_classes) {
  require(num_features > 0, "SoftmaxRegression: num_features must be positive");
  require(num_classes >= 2, "SoftmaxRegression: num_classes must be at least 2");
}

template <class S>
void SoftmaxRegression<S>::check_data(const Dataset<S>& data, const Vector<S>& w) const {
  require(data.num_features() == num_features_, [&] {
    return std::string("SoftmaxRegression: data has " + std::to_string(data.num_features()) +
                       " features, the model expects " + std::to_string(num_features_));
  });
  require(data.labels.size() == data.size(), "SoftmaxRegression: data needs one label per row");
  require(w.size() == num_params(), [&] {
    return std::string("SoftmaxRegression: w has " + std::to_string(w.size()) +
                       " entries, expected " + std::to_string(num_params()));
  });
  require(data.size() > 0, "SoftmaxRegression: empty data set");
  require(data.labels.minCoeff() >= 0 && data.labels.maxCoeff() < num_classes_, [&] {
    return "SoftmaxRegression: " + label_range_error(data.labels, num_classes_);
  });
}

template <class S>
S SoftmaxRegression<S>::evaluate(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                 Vector<S>* gradient) const {
  check_data(data, w);
  const Index n = data.size(), C = num_classes_;
  Eigen::Map<const Matrix<S>> Wt(w.data(), num_features_, C);
  cache.probs.resize(n, C);
  cache.probs.noalias() = data.X * Wt;
  cache.residual.resize(n, C);
  double total = 0;
  const S inv_n = S(1) / S(n);
#pragma omp parallel for reduction(+ : total) schedule(static) if (n * C > 20000)
  for (Index i = 0; i < n; ++i) {
    const S zmax = cache.probs.row(i).maxCoeff();
    const Index y = data.labels(i);
    const S shifted_true_logit = cache.probs(i, y) - zmax;
    S sum = 0;
    for (Index c = 0; c < C; ++c) {
      const S e = std::exp(cache.probs(i, c) - zmax);
      cache.probs(i, c) = e;
      sum += e;
    }
    // Cross-entropy = log Σ exp(z − z_max) − (z_y − z_max): no overflow, no log(0).
    total += static_cast<double>(std::log(sum) - shifted_true_logit);
    const S inv_sum = S(1) / sum;
    for (Index c = 0; c < C; ++c) {
      cache.probs(i, c) *= inv_sum;
      cache.residual(i, c) = (cache.probs(i, c) - (c == y ? S(1) : S(0))) * inv_n;
    }
  }
  if (gradient) gradient_from_cache(data, cache, *gradient);
  return static_cast<S>(total / static_cast<double>(n));
}

template <class S>
void SoftmaxRegression<S>::gradient_from_cache(const Dataset<S>& data, const Cache& cache,
                                               Vector<S>& gradient) const {
  require(cache.residual.rows() == data.size() && data.num_features() == num_features_,
          "SoftmaxRegression::gradient_from_cache: call evaluate() on this data first");
  gradient.resize(num_params());
  Eigen::Map<Matrix<S>> G(gradient.data(), num_features_, num_classes_);
  G.noalias() = data.X.transpose() * cache.residual;
}

template <class S>
void SoftmaxRegression<S>::hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                               const Vector<S>& v, Vector<S>& out) const {
  check_data(data, w);
  require(v.size() == num_params(), "SoftmaxRegression::hvp: v has the wrong size");
  const Index n = data.size(), C = num_classes_;
  require(cache.probs.rows() == n, "SoftmaxRegression::hvp: call evaluate() first");
  Eigen::Map<const Matrix<S>> V(v.data(), num_features_, C);
  // R{Z} = X V; R{∂L/∂Z} = (P ⊙ (R{Z} − rowsum(P ⊙ R{Z}))) / n; H v = Xᵀ R{∂L/∂Z}.
  cache.work.resize(n, C);
  cache.work.noalias() = data.X * V;
  const S inv_n = S(1) / S(n);
  for (Index i = 0; i < n; ++i) {
    S mean = 0;
    for (Index c = 0; c < C; ++c) mean += cache.probs(i, c) * cache.work(i, c);
    for (Index c = 0; c < C; ++c)
      cache.work(i, c) = cache.probs(i, c) * (cache.work(i, c) - mean) * inv_n;
  }
  out.resize(num_params());
  Eigen::Map<Matrix<S>> Out(out.data(), num_features_, C);
  Out.noalias() = data.X.transpose() * cache.work;
}

template <class S>
void SoftmaxRegression<S>::hvp_block(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                     const Matrix<S>& V, Matrix<S>& out) const {
  check_data(data, w);
  require(V.rows() == num_params(), "SoftmaxRegression::hvp_block: V has the wrong height");
  const Index n = data.size(), C = num_classes_, m = V.cols();
  require(cache.probs.rows() == n, "SoftmaxRegression::hvp_block: call evaluate() first");
  // Column j of V is an F × C matrix V_j (column-major), so V is the F × (C·m) matrix
  // [V_1 … V_m]: hvp()'s two products with the data become two GEMMs with C·m columns.
  Eigen::Map<const Matrix<S>> Vs(V.data(), num_features_, C * m);
  cache.work_block.resize(n, C * m);
  cache.work_block.noalias() = data.X * Vs;
  const S inv_n = S(1) / S(n);
  for (Index j = 0; j < m; ++j) {
    auto Z = cache.work_block.middleCols(j * C, C);
    for (Index i = 0; i < n; ++i) {
      S mean = 0;
      for (Index c = 0; c < C; ++c) mean += cache.probs(i, c) * Z(i, c);
      for (Index c = 0; c < C; ++c) Z(i, c) = cache.probs(i, c) * (Z(i, c) - mean) * inv_n;
    }
  }
  out.resize(num_params(), m);
  Eigen::Map<Matrix<S>> Out(out.data(), num_features_, C * m);
  Out.noalias() = data.X.transpose() * cache.work_block;
}

template <class S>
void SoftmaxRegression<S>::gauss_newton_product(const Dataset<S>& data, const Vector<S>& w,
                                                Cache& cache, const Vector<S>& v,
                                                Vector<S>& out) const {
  hvp(data, w, cache, v, out);
}

template <class S>
void SoftmaxRegression<S>::fisher_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                          const Vector<S>& v, Vector<S>& out) const {
  check_data(data, w);
  const Index n = data.size(), C = num_classes_;
  require(cache.residual.rows() == n, "SoftmaxRegression::fisher_product: call evaluate() first");
  // Per-example gradient g_i = (p_i − y_i) ⊗ x_i = n · residual_i ⊗ x_i, so
  // g_iᵀ v = n · residual_iᵀ (X V)_i and (1/n) Σ g_i (g_iᵀ v) = Xᵀ diag(n s) residual.
  Eigen::Map<const Matrix<S>> V(v.data(), num_features_, C);
  cache.work.resize(n, C);
  cache.work.noalias() = data.X * V;
  for (Index i = 0; i < n; ++i) {
    const S s = S(n) * cache.residual.row(i).dot(cache.work.row(i));
    cache.work.row(i) = s * cache.residual.row(i);
  }
  out.resize(num_params());
  Eigen::Map<Matrix<S>> Out(out.data(), num_features_, C);
  Out.noalias() = data.X.transpose() * cache.work;
}

template <class S>
void SoftmaxRegression<S>::hessian(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                   Matrix<S>& H) const {
  check_data(data, w);
  const Index n = data.size(), C = num_classes_, F = num_features_;
  require(cache.probs.rows() == n, "SoftmaxRegression::hessian: call evaluate() first");
  H.resize(num_params(), num_params());
  // Block (c, c') = Xᵀ diag(s) X with s_i = (δ_cc' p_ic − p_ic p_ic') / n is symmetric and of one
  // sign (s ≥ 0 on the diagonal, s ≤ 0 off it), so it is a symmetric rank-n update (SYRK) of
  // Y = diag(√|s|) X: half the flops of a GEMM. The C(C+1)/2 lower blocks are shared among the
  // OpenMP threads (Eigen runs sequentially inside a parallel region: one thread pool, DESIGN.md
  // §5); each thread mirrors its own block into the upper triangle.
  const Index pairs = C * (C + 1) / 2;
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  cache.work_x.resize(n, F * threads);
  const S inv_n = S(1) / S(n);
#pragma omp parallel num_threads(threads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    auto Y = cache.work_x.middleCols(static_cast<Index>(tid) * F, F);
    Vector<S> scale(n);
#pragma omp for schedule(dynamic, 1)
    for (Index pair = 0; pair < pairs; ++pair) {
      Index c = 0, c2 = pair;  // pair ↦ (c, c2), c ≤ c2, row-major over the upper triangle
      while (c2 >= C - c) {
        c2 -= C - c;
        ++c;
      }
      c2 += c;
      if (c == c2)
        scale.array() =
            (cache.probs.col(c).array() * (S(1) - cache.probs.col(c).array()) * inv_n).sqrt();
      else
        scale.array() = (cache.probs.col(c).array() * cache.probs.col(c2).array() * inv_n).sqrt();
      Y.noalias() = scale.asDiagonal() * data.X;
      auto block = H.block(c2 * F, c * F, F, F);  // lower block triangle (c2 ≥ c)
      block.setZero();
      block.template selfadjointView<Eigen::Lower>().rankUpdate(Y.transpose(),
                                                                c == c2 ? S(1) : S(-1));
      for (Index j = 1; j < F; ++j)
        for (Index i = 0; i < j; ++i) block(i, j) = block(j, i);
      if (c2 != c) H.block(c * F, c2 * F, F, F) = block.transpose();
    }
  }
}

template <class S>
std::vector<KroneckerFactors<S>> SoftmaxRegression<S>::kfac_factors(const Dataset<S>& data,
                                                                    const Vector<S>& w,
                                                                    Cache& cache) const {
  check_data(data, w);
  const Index n = data.size();
  require(cache.probs.rows() == n, "SoftmaxRegression::kfac_factors: call evaluate() first");
  KroneckerFactors<S> f;
  f.offset = 0;
  f.A.setZero(num_features_, num_features_);
  f.A.template selfadjointView<Eigen::Lower>().rankUpdate(data.X.transpose(), S(1) / S(n));
  f.A = f.A.template selfadjointView<Eigen::Lower>();
  // G = mean_i (diag p_i − p_i p_iᵀ).
  f.G = Matrix<S>(cache.probs.colwise().sum().transpose().asDiagonal());
  f.G.noalias() -= cache.probs.transpose() * cache.probs;
  f.G /= S(n);
  return {f};
}

template <class S>
double SoftmaxRegression<S>::accuracy(const Dataset<S>& data, const Cache& cache) const {
  require(cache.probs.rows() == data.size(), "SoftmaxRegression::accuracy: call evaluate() first");
  Index correct = 0;
  for (Index i = 0; i < data.size(); ++i) {
    Index best;
    cache.probs.row(i).maxCoeff(&best);
    correct += (best == data.labels(i));
  }
  return static_cast<double>(correct) / static_cast<double>(data.size());
}

template class SoftmaxRegression<float>;
template class SoftmaxRegression<double>;

}  // namespace ift
