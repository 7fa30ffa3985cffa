#include "ift/models/softmax_regression.hpp"

#include "ift/linalg/parallel_gemm.hpp"

#include <cmath>
#include <type_traits>

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

namespace {

/// evaluate()'s per-block map on the block's logits Z_b(:, 0..C) (columns `scratch` and
/// `scratch` + 1 are scratch): the softmax into cache.probs, the residual (P − Y)/n into
/// cache.residual and in place of the logits, and the block's cross-entropy added to `partial`.
template <class S, class Cache>
void softmax_block(const Dataset<S>& data, Cache& cache, Index C, Index scratch, Index i0,
                   row_block::BlockMap<S> Z, S inv_n, double& partial) {
  const Index rows = Z.rows();
  auto zmax = Z.col(scratch);
  auto sum = Z.col(scratch + 1);
  zmax = Z.col(0);
  for (Index c = 1; c < C; ++c) zmax = zmax.cwiseMax(Z.col(c));
  // Cross-entropy = log Σ exp(z − z_max) − (z_y − z_max): no overflow, no log(0).
  double total = 0;
  for (Index r = 0; r < rows; ++r) total -= static_cast<double>(Z(r, data.labels(i0 + r)) - zmax(r));
  sum.setZero();
  for (Index c = 0; c < C; ++c) {
    Z.col(c).array() = (Z.col(c) - zmax).array().exp();
    sum += Z.col(c);
  }
  for (Index r = 0; r < rows; ++r) total += static_cast<double>(std::log(sum(r)));
  partial += total;
  sum = sum.cwiseInverse();
  for (Index c = 0; c < C; ++c) {
    Z.col(c).array() *= sum.array();
    cache.probs.col(c).segment(i0, rows) = Z.col(c);
  }
  for (Index r = 0; r < rows; ++r) Z(r, data.labels(i0 + r)) -= S(1);
  for (Index c = 0; c < C; ++c) {
    Z.col(c) *= inv_n;
    cache.residual.col(c).segment(i0, rows) = Z.col(c);
  }
}

/// The Hessian's per-row map on C columns R{Z} = X_b V in Z(:, first..first + C), with the
/// block's probabilities P: R{∂L/∂Z} = P ⊙ (R{Z} − rowsum(P ⊙ R{Z})) / n, in place (column
/// `scratch` is scratch).
template <class S, class Probs>
void hessian_block(const Probs& P, Index C, Index first, Index scratch, row_block::BlockMap<S> Z,
                   S inv_n) {
  auto Zj = Z.middleCols(first, C);
  auto mean = Z.col(scratch);
  mean = P.col(0).cwiseProduct(Zj.col(0));
  for (Index c = 1; c < C; ++c) mean += P.col(c).cwiseProduct(Zj.col(c));
  for (Index c = 0; c < C; ++c)
    Zj.col(c).array() = P.col(c).array() * (Zj.col(c) - mean).array() * inv_n;
}

}  // namespace

template <class S>
S SoftmaxRegression<S>::evaluate(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                 Vector<S>* gradient) const {
  check_data(data, w);
  const Index n = data.size(), C = num_classes_;
  cache.probs.resize(n, C);
  cache.residual.resize(n, C);
  if (gradient) gradient->resize(num_params());
  const S inv_n = S(1) / S(n);
  // One pass over row blocks (row_block.hpp): Z_b = X_b Wᵀ, the softmax, the residual, and with a
  // gradient Xᵀ (P − Y) / n accumulated while X_b is in cache. Extra columns: row max, row sum.
  row_block::fused_pass(data.X, w.data(), C, gradient ? gradient->data() : nullptr, C, 2,
                        cache.blocks, [&](Index g, Index i0, row_block::BlockMap<S> Z) {
                          softmax_block(data, cache, C, C, i0, Z, inv_n,
                                        cache.blocks.partial[static_cast<std::size_t>(g)]);
                        });
  double total = 0;
  for (const double t : cache.blocks.partial) total += t;  // group order: deterministic
  return static_cast<S>(total / static_cast<double>(n));
}

template <class S>
S SoftmaxRegression<S>::evaluate_with_hvp(const Dataset<S>& data, const Vector<S>& w,
                                          Cache& cache, const Vector<S>& v, Vector<S>& gradient,
                                          Vector<S>& hv) const {
  check_data(data, w);
  require(v.size() == num_params(), "SoftmaxRegression::evaluate_with_hvp: v has the wrong size");
  const Index n = data.size(), C = num_classes_, D = num_params();
  if (C > row_block::kMaxWidth && C % row_block::kMaxWidth != 0) {
    // Chunks of kMaxWidth would mix W's and V's columns: two passes keep each one's bits.
    const S loss = evaluate(data, w, cache, &gradient);
    hvp(data, w, cache, v, hv);
    return loss;
  }
  cache.probs.resize(n, C);
  cache.residual.resize(n, C);
  const S inv_n = S(1) / S(n);
  // One pass: forward X_b [W, V] (2C columns), the softmax on the first C, the Hessian's map on
  // the next C with the block's fresh P, backward X_bᵀ [(P − Y)/n, R{∂L/∂Z}]. In chunks of C
  // columns: per column the same kernels, row blocks and group sums as evaluate() and hvp()
  // (whose passes have C columns): their bits.
  cache.work_in.resize(2 * D);
  cache.work_in.head(D) = w;
  cache.work_in.tail(D) = v;
  cache.work_out.resize(2 * D);
  row_block::fused_pass(data.X, cache.work_in.data(), 2 * C, cache.work_out.data(), 2 * C, 2,
                        cache.blocks, [&](Index g, Index i0, row_block::BlockMap<S> Z) {
                          softmax_block(data, cache, C, 2 * C, i0, Z, inv_n,
                                        cache.blocks.partial[static_cast<std::size_t>(g)]);
                          hessian_block(cache.probs.middleRows(i0, Z.rows()), C, C, 2 * C, Z,
                                        inv_n);
                        },
                        std::min(C, row_block::kMaxWidth));
  gradient = cache.work_out.head(D);
  hv = cache.work_out.tail(D);
  double total = 0;
  for (const double t : cache.blocks.partial) total += t;  // group order: deterministic
  return static_cast<S>(total / static_cast<double>(n));
}

template <class S>
void SoftmaxRegression<S>::cache_rows(const Dataset<S>& batch, const Cache& from,
                                      const std::vector<Index>& rows, Cache& to) const {
  const auto b = static_cast<Index>(rows.size());
  const Index C = num_classes_, n = from.probs.rows();
  require(b > 0 && batch.size() == b && batch.labels.size() == b && from.probs.cols() == C,
          "SoftmaxRegression::cache_rows: the batch must hold the listed rows, with labels, and "
          "`from` a cache of evaluate() on the whole data");
  for (const Index r : rows)
    require(r >= 0 && r < n, "SoftmaxRegression::cache_rows: row outside the cached data");
  gather_rows(from.probs, rows, to.probs);
  const S inv_b = S(1) / S(b);
  // As softmax_block forms the residual: P − Y, then times 1/|batch|, column by column.
  to.residual = to.probs;
  for (Index i = 0; i < b; ++i) to.residual(i, batch.labels(i)) -= S(1);
  for (Index c = 0; c < C; ++c) to.residual.col(c) *= inv_b;
}

template <class S>
void SoftmaxRegression<S>::gradient_from_cache(const Dataset<S>& data, const Cache& cache,
                                               Vector<S>& gradient) const {
  require(cache.residual.rows() == data.size() && data.num_features() == num_features_,
          "SoftmaxRegression::gradient_from_cache: call evaluate() on this data first");
  gradient.resize(num_params());
  const Index C = num_classes_;
  row_block::fused_pass(data.X, static_cast<const S*>(nullptr), C, gradient.data(), C, 0,
                        cache.blocks, [&](Index, Index i0, row_block::BlockMap<S> Z) {
                          Z.leftCols(C) = cache.residual.middleRows(i0, Z.rows());
                        });
}

namespace {

/// Out (F × C·m) = Xᵀ R(X V) for V: F × C·m (m vectors of F × C, column-major), with the per-row
/// map of the Hessian (R{∂L/∂Z} = P ⊙ (R{Z} − rowsum(P ⊙ R{Z})) / n) or of the empirical Fisher
/// ((1/n) Σ g_i g_iᵀ v = Xᵀ diag(n s) residual, s_i = residual_iᵀ (X V)_i), in one fused pass.
/// with_gradient (Hessian, m = 1 only): `out` is F × 2C, its last C columns the data gradient
/// Xᵀ residual, as gradient_from_cache's pass forms it (the residual copied into Z_b's columns
/// C..2C, the same backward kernel per 10-column chunk): hvp_and_gradient.
template <class S, class Cache>
void curvature_product(const Dataset<S>& data, const Cache& cache, Index C, const S* V, Index m,
                       S* out, bool fisher, bool with_gradient = false) {
  const Index n = data.size();
  const S inv_n = S(1) / S(n);
  const Index m_out = with_gradient ? 2 * C : C * m;
  row_block::fused_pass(
      data.X, V, C * m, out, m_out, 1, cache.blocks,
      [&](Index, Index i0, row_block::BlockMap<S> Z) {
        const Index rows = Z.rows();
        if (with_gradient) Z.middleCols(C, C) = cache.residual.middleRows(i0, rows);
        auto mean = Z.col(m_out);
        if (fisher) {
          const auto Res = cache.residual.middleRows(i0, rows);
          for (Index j = 0; j < m; ++j) {
            auto Zj = Z.middleCols(j * C, C);
            mean = Res.col(0).cwiseProduct(Zj.col(0));
            for (Index c = 1; c < C; ++c) mean += Res.col(c).cwiseProduct(Zj.col(c));
            mean *= S(n);
            for (Index c = 0; c < C; ++c) Zj.col(c) = mean.cwiseProduct(Res.col(c));
          }
          return;
        }
        const auto P = cache.probs.middleRows(i0, rows);
        for (Index j = 0; j < m; ++j) hessian_block(P, C, j * C, m_out, Z, inv_n);
      });
}

}  // namespace

template <class S>
void SoftmaxRegression<S>::hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                               const Vector<S>& v, Vector<S>& out) const {
  check_data(data, w);
  require(v.size() == num_params(), "SoftmaxRegression::hvp: v has the wrong size");
  require(cache.probs.rows() == data.size(), "SoftmaxRegression::hvp: call evaluate() first");
  // R{Z} = X V; R{∂L/∂Z} = (P ⊙ (R{Z} − rowsum(P ⊙ R{Z}))) / n; H v = Xᵀ R{∂L/∂Z}: one pass.
  out.resize(num_params());
  curvature_product(data, cache, num_classes_, v.data(), 1, out.data(), false);
}

template <class S>
void SoftmaxRegression<S>::hvp_and_gradient(const Dataset<S>& data, const Vector<S>& w,
                                            Cache& cache, const Vector<S>& v, Vector<S>& out,
                                            Vector<S>& gradient) const {
  check_data(data, w);
  require(v.size() == num_params(), "SoftmaxRegression::hvp_and_gradient: v has the wrong size");
  require(cache.probs.rows() == data.size() && cache.residual.rows() == data.size(),
          "SoftmaxRegression::hvp_and_gradient: call evaluate() first");
  const Index D = num_params();
  cache.work_out.resize(2 * D);
  curvature_product(data, cache, num_classes_, v.data(), 1, cache.work_out.data(), false, true);
  out = cache.work_out.head(D);
  gradient = cache.work_out.tail(D);
}

template <class S>
void SoftmaxRegression<S>::hvp_block(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                     const Matrix<S>& V, Matrix<S>& out) const {
  check_data(data, w);
  require(V.rows() == num_params(), "SoftmaxRegression::hvp_block: V has the wrong height");
  require(cache.probs.rows() == data.size(), "SoftmaxRegression::hvp_block: call evaluate() first");
  // Column j of V is an F × C matrix V_j (column-major), so V is the F × (C·m) matrix
  // [V_1 … V_m]: hvp()'s pass with C·m columns, X read once for all m vectors.
  out.resize(num_params(), V.cols());
  curvature_product(data, cache, num_classes_, V.data(), V.cols(), out.data(), false);
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
  require(v.size() == num_params(), "SoftmaxRegression::fisher_product: v has the wrong size");
  require(cache.residual.rows() == data.size(),
          "SoftmaxRegression::fisher_product: call evaluate() first");
  // Per-example gradient g_i = (p_i − y_i) ⊗ x_i = n · residual_i ⊗ x_i, so
  // g_iᵀ v = n · residual_iᵀ (X V)_i and (1/n) Σ g_i (g_iᵀ v) = Xᵀ diag(n s) residual.
  out.resize(num_params());
  curvature_product(data, cache, num_classes_, v.data(), 1, out.data(), true);
}

namespace {

/// H = (1/n) Σ_n S_n ⊗ x_n x_nᵀ formed in precision T from X in T and the probabilities in S
/// (hessian: T = S; hessian_float: T = float). Block (c, c') = Xᵀ diag(s) X with
/// s_i = (δ_cc' p_ic − p_ic p_ic') / n is symmetric and of one sign (s ≥ 0 on the diagonal, s ≤ 0
/// off it), so it is a symmetric rank-n update (SYRK) of Y = diag(√|s|) X: half the flops of a
/// GEMM (gemm_lower: its lower triangle only). The C(C+1)/2 lower blocks are shared among the
/// OpenMP threads (ift::gemm runs sequentially inside a parallel region: one thread pool,
/// DESIGN.md §5); each thread mirrors its own block into the upper triangle. √|s| is formed in S
/// and rounded to T once.
template <class T, class S>
void softmax_hessian(const Matrix<T>& X, const Matrix<S>& probs, Index C, Matrix<T>& work,
                     Matrix<T>& H) {
  const Index n = X.rows(), F = X.cols();
  H.resize(F * C, F * C);
  const Index pairs = C * (C + 1) / 2;
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  work.resize(n, F * threads);
  const S inv_n = S(1) / S(n);
#pragma omp parallel num_threads(threads)
  {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    auto Y = work.middleCols(static_cast<Index>(tid) * F, F);
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
        scale.array() = (probs.col(c).array() * (S(1) - probs.col(c).array()) * inv_n).sqrt();
      else
        scale.array() = (probs.col(c).array() * probs.col(c2).array() * inv_n).sqrt();
      if constexpr (std::is_same_v<T, S>)
        Y.noalias() = scale.asDiagonal() * X;
      else
        Y.noalias() = scale.template cast<T>().asDiagonal() * X;
      auto block = H.block(c2 * F, c * F, F, F);  // lower block triangle (c2 ≥ c)
      gemm_lower(block, Y.transpose(), Y, /*accumulate=*/false, c == c2 ? T(1) : T(-1));
      for (Index j = 1; j < F; ++j)
        for (Index i = 0; i < j; ++i) block(i, j) = block(j, i);
      if (c2 != c) H.block(c * F, c2 * F, F, F) = block.transpose();
    }
  }
}

}  // namespace

template <class S>
void SoftmaxRegression<S>::hessian(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                   Matrix<S>& H) const {
  check_data(data, w);
  require(cache.probs.rows() == data.size(), "SoftmaxRegression::hessian: call evaluate() first");
  softmax_hessian(data.X, cache.probs, num_classes_, cache.work_x, H);
}

template <class S>
void SoftmaxRegression<S>::hessian_float(const Dataset<S>& data, const Matrix<float>& X_float,
                                         const Vector<S>& w, Cache& cache,
                                         Matrix<float>& H) const {
  check_data(data, w);
  require(cache.probs.rows() == data.size(),
          "SoftmaxRegression::hessian_float: call evaluate() first");
  require(X_float.rows() == data.X.rows() && X_float.cols() == data.X.cols(),
          "SoftmaxRegression::hessian_float: X_float is not the data's design matrix");
  softmax_hessian(X_float, cache.probs, num_classes_, cache.work_x_float, H);
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
void SoftmaxRegression<S>::kfac_corrected_eigenvalues(const Dataset<S>& data, const Vector<S>& w,
                                                      Cache& cache, std::size_t block,
                                                      const Matrix<S>& Ua, const Matrix<S>& Ug,
                                                      Matrix<S>& out) const {
  check_data(data, w);
  const Index n = data.size();
  require(block == 0, "SoftmaxRegression::kfac_corrected_eigenvalues: the model has one block");
  require(cache.probs.rows() == n,
          "SoftmaxRegression::kfac_corrected_eigenvalues: call evaluate() first");
  require(Ua.rows() == num_features_ && Ua.cols() == num_features_ && Ug.rows() == num_classes_ &&
              Ug.cols() == num_classes_,
          "SoftmaxRegression::kfac_corrected_eigenvalues: the bases must be F × F and C × C");
  // (u_jᵀ x_n)²: the rows projected on the input basis, squared.
  Matrix<S> Y(n, num_features_);
  gemm(Y, data.X, Ua);
  Y = Y.array().square().matrix();
  // q_oᵀ S_n q_o = Σ_c p_nc q_co² − (Σ_c p_nc q_co)².
  Matrix<S> Z = cache.probs * Ug.array().square().matrix();
  const Matrix<S> PQ = cache.probs * Ug;
  Z.array() -= PQ.array().square();
  out.resize(num_features_, num_classes_);
  out.noalias() = Y.transpose() * Z;
  out /= S(n);
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
