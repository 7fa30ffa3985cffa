// The Model concept: what a model with exact derivatives provides to RegularizedProblem and the
// hypergradient (DESIGN.md §4: "a model knows its loss and exact derivatives"), checked at
// compile time with readable errors (in the spirit of ensmallen's function type checks), plus
// the optional capabilities a model may add. Each model header ends with static_asserts of what
// it claims, so a change that breaks a signature fails where the model is defined.
//
// Required (Model<M>), with S = M::Scalar and every product reusing a Cache filled by evaluate()
// on the same data and w:
//   typename M::Scalar, typename M::Cache (default-constructible)
//   Index num_params() const
//   S evaluate(const Dataset<S>&, const Vector<S>& w, Cache&, Vector<S>* gradient) const
//       mean loss at w; fills the cache; writes ∇ when gradient is non-null
//   void gradient_from_cache(const Dataset<S>&, const Cache&, Vector<S>& gradient) const
//   void hvp(const Dataset<S>&, const Vector<S>& w, Cache&, const Vector<S>& v, Vector<S>& out) const
//   double accuracy(const Dataset<S>&, const Cache&) const
// Optional:
//   ModelWithGaussNewton   gauss_newton_product(data, w, cache, v, out)
//   ModelWithFisher        fisher_product(data, w, cache, v, out)
//   ModelWithDenseHessian  hessian(data, w, cache, H)
//   ModelWithGaussNewtonMatrix  gauss_newton_matrix(data, w, cache, G)
//   ModelWithKroneckerFactors   kfac_factors(data, w, cache) → std::vector<KroneckerFactors<S>>
//   ModelWithBlockHvp      hvp_block(data, w, cache, V, out): out.col(j) = H V.col(j), one pass
//   ModelWithKfacEigenvalues  kfac_corrected_eigenvalues(data, w, cache, block, Ua, Ug, out):
//                          diag(Uᵀ H_b U) of the data term's block b in its Kronecker eigenbasis
//                          U = Ug ⊗ Ua, as an in × out matrix (EKFAC's eigenvalues)
//   ModelWithHvpAndGradient  hvp_and_gradient(data, w, cache, v, out, gradient): hvp() and
//                          gradient_from_cache() in one pass over the data, each bitwise theirs
//   ModelWithEvaluateAndHvp  evaluate_with_hvp(data, w, cache, v, gradient, hv): evaluate()
//                          with a gradient and hvp() at that point in one pass, each bitwise theirs
#pragma once

#include <concepts>
#include <vector>

#include "ift/core.hpp"
#include "ift/dataset.hpp"
#include "ift/models/kronecker_factors.hpp"

namespace ift {

template <class M>
concept Model = requires { typename M::Scalar; typename M::Cache; } &&
                std::default_initializable<typename M::Cache> &&
                requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         const typename M::Cache& ccache, Vector<typename M::Scalar>& out,
                         Vector<typename M::Scalar>* gradient) {
                  { m.num_params() } -> std::convertible_to<Index>;
                  { m.evaluate(data, w, cache, gradient) } -> std::same_as<typename M::Scalar>;
                  m.gradient_from_cache(data, ccache, out);
                  m.hvp(data, w, cache, w, out);
                  { m.accuracy(data, ccache) } -> std::convertible_to<double>;
                };

template <class M>
concept ModelWithGaussNewton =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         Vector<typename M::Scalar>& out) {
      m.gauss_newton_product(data, w, cache, w, out);
    };

template <class M>
concept ModelWithFisher =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         Vector<typename M::Scalar>& out) { m.fisher_product(data, w, cache, w, out); };

template <class M>
concept ModelWithDenseHessian =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         Matrix<typename M::Scalar>& H) { m.hessian(data, w, cache, H); };

template <class M>
concept ModelWithGaussNewtonMatrix =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         Matrix<typename M::Scalar>& G) { m.gauss_newton_matrix(data, w, cache, G); };

/// The dense Hessian formed directly in float from a float copy of the design matrix (the exact
/// method's mixed path, S = double: half the bytes and about twice the speed of the double build,
/// and no rounding pass over H afterwards). Equal to hessian()'s to float rounding.
template <class M>
concept ModelWithFloatHessian =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Matrix<float>& X_float, const Vector<typename M::Scalar>& w,
                         typename M::Cache& cache, Matrix<float>& H) {
      m.hessian_float(data, X_float, w, cache, H);
    };

template <class M>
concept ModelWithKroneckerFactors =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache) {
      { m.kfac_factors(data, w, cache) } -> std::same_as<std::vector<KroneckerFactors<typename M::Scalar>>>;
    };

/// EKFAC's eigenvalue correction (George et al. 2018): for block `block` of kfac_factors() and
/// orthonormal Ua (in × in), Ug (out × out), out(j, o) = (q_o ⊗ u_j)ᵀ H_b (q_o ⊗ u_j), the data
/// term's exact curvature (the Hessian; for linear-logit models also the Gauss-Newton matrix)
/// along the Kronecker basis vectors.
template <class M>
concept ModelWithKfacEigenvalues =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         const Matrix<typename M::Scalar>& U, Matrix<typename M::Scalar>& out) {
      m.kfac_corrected_eigenvalues(data, w, cache, std::size_t(0), U, U, out);
    };

template <class M>
concept ModelWithBlockHvp =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         const Matrix<typename M::Scalar>& V, Matrix<typename M::Scalar>& out) {
      m.hvp_block(data, w, cache, V, out);
    };

/// H v and the data gradient (what hvp() and gradient_from_cache() return, bitwise) from one pass
/// over the data: a problem whose gradient at the point is not formed yet gets it with its first
/// curvature product instead of a second pass (RegularizedProblem::hvp).
template <class M>
concept ModelWithHvpAndGradient =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         Vector<typename M::Scalar>& out, Vector<typename M::Scalar>& gradient) {
      m.hvp_and_gradient(data, w, cache, w, out, gradient);
    };

/// A model that sets a point, forms its gradient and one Hessian-vector product there in one pass
/// (RegularizedProblem::set_point_with_gradient_and_hvp).
template <class M>
concept ModelWithEvaluateAndHvp =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& data,
                         const Vector<typename M::Scalar>& w, typename M::Cache& cache,
                         Vector<typename M::Scalar>& gradient, Vector<typename M::Scalar>& hv) {
      { m.evaluate_with_hvp(data, w, cache, w, gradient, hv) } -> std::same_as<typename M::Scalar>;
    };

/// A model whose cache after evaluate() on a gathered batch follows from the cache of
/// evaluate() on the whole data at the same w, row by row, without a pass over the batch
/// (RegularizedProblem::batch_hvp: a minibatch curvature product at the current point).
template <class M>
concept ModelWithCacheRows =
    Model<M> && requires(const M& m, const Dataset<typename M::Scalar>& batch,
                         const typename M::Cache& from, const std::vector<Index>& rows,
                         typename M::Cache& to) {
      { m.cache_rows(batch, from, rows, to) } -> std::same_as<void>;
    };

/// Every capability the paper's models have (softmax and binary logistic regression, MLPs).
template <class M>
concept FullModel = ModelWithGaussNewton<M> && ModelWithFisher<M> && ModelWithDenseHessian<M> &&
                    ModelWithKroneckerFactors<M>;

}  // namespace ift
