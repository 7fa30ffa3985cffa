// The hypergradient of DESIGN.md §1 written once for any vector type V with a VectorSpace<V>:
//   dL_V*/dλ = ∂L_V/∂λ − vᵀ ∂²L_T/∂w∂λᵀ,   v ≈ H⁻¹ ∂L_V/∂w,
// with v from cg / neumann / identity / zero (the linalg templates), exact (Eigen vectors with a
// dense Hessian), kfac (when the problem supplies Kronecker factors), shine (the inner L-BFGS's
// pairs in the solver state, refined by CG steps), nystrom (Eigen vectors: k sampled columns by
// one block product, linalg/nystrom.hpp), or unrolled reverse-mode differentiation through i
// gradient steps (Lorraine et al. 2020, §3).
// hypergradient_sweep gives the result for every step count k of a sweep from one run (one
// series for cg and neumann, one trajectory for unrolled), each equal to its single-k call.
//
// The same code runs on Eigen vectors (V = ift::Vector<S>, any ift::BilevelProblem<S>) and on
// flat LibTorch tensors (ift::deep::TorchProblem), so the two backends cannot drift apart: the
// cross-checks compare numbers produced by this one implementation. The arithmetic follows
// lib/src/hypergradient.cpp operation by operation, so on an Eigen problem the results agree with
// HypergradientEngine to rounding (a test asserts 1e-12).
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ift/core.hpp"
#include "ift/format.hpp"
#include "ift/method.hpp"
#include "ift/problem.hpp"
#include "ift/linalg/cg.hpp"
#include "ift/linalg/dense_solver.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/linalg/lbfgs_inverse.hpp"
#include "ift/linalg/matrix_space.hpp"
#include "ift/linalg/neumann.hpp"
#include "ift/linalg/nystrom.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/linalg/ritz.hpp"
#include "ift/linalg/simple_solvers.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"
#include "ift/generic/sampling.hpp"
#include "ift/generic/solver_state.hpp"

namespace ift::generic {

/// The vector type of a problem: what w() returns, without reference or const.
template <class P>
using ProblemVector = std::remove_cvref_t<decltype(std::declval<P&>().w())>;

/// What every hypergradient method needs from a bilevel problem at its current point (λ, w):
///   set_point(λ, w)          move there (evaluates L_T and ∇_w L_T; invalidates outer caches)
///   lambda(), w()            the current point
///   train_gradient()         ∇_w L_T
///   val_gradient()           ∇_w L_V
///   val_direct_gradient(out) ∂L_V/∂λ (out may be reallocated)
///   hvp(v, out)              ∇²_w L_T v
///   mixed_product(v, out)    vᵀ ∂²L_T/∂w∂λᵀ (length = number of hyperparameters)
///   num_params()             D
/// ift::BilevelProblem<S> satisfies it with V = Vector<S>; ift::deep::TorchProblem with
/// V = torch::Tensor.
template <class P>
concept HypergradientProblem =
    HasVectorSpace<ProblemVector<P>> &&
    requires(P& p, const ProblemVector<P>& cv, ProblemVector<P>& v) {
      p.set_point(cv, cv);
      { p.lambda() } -> std::convertible_to<const ProblemVector<P>&>;
      { p.w() } -> std::convertible_to<const ProblemVector<P>&>;
      { p.train_gradient() } -> std::convertible_to<const ProblemVector<P>&>;
      { p.val_gradient() } -> std::convertible_to<const ProblemVector<P>&>;
      p.val_direct_gradient(v);
      p.hvp(cv, v);
      p.mixed_product(cv, v);
      { p.num_params() } -> std::convertible_to<Index>;
    };

/// Optional capabilities, used when present.
template <class P>
concept HasGaussNewton = requires(P& p, const ProblemVector<P>& cv, ProblemVector<P>& v) {
  p.gauss_newton_product(cv, v);
};
template <class P>
concept HasFisher = requires(P& p, const ProblemVector<P>& cv, ProblemVector<P>& v) {
  p.fisher_product(cv, v);
};
/// Minibatch curvature (MethodSpec::sampling fresh / fixed): ∇²_w L_T v at the current point
/// with the data term averaged over the listed training rows (the penalty's curvature once).
template <class P>
concept HasBatchHvp = requires(P& p, const std::vector<Index>& rows, const ProblemVector<P>& cv,
                               ProblemVector<P>& v) {
  { p.num_train_examples() } -> std::convertible_to<Index>;
  p.batch_hvp(rows, cv, v);
};
template <class P>
concept HasPenaltyHvp = requires(P& p, const ProblemVector<P>& cv, ProblemVector<P>& v) {
  p.penalty_hvp(cv, v);
};
/// Dense matrices (exact method) exist only for Eigen vectors.
template <class P>
concept HasDenseHessian =
    std::same_as<ProblemVector<P>, Vector<typename VectorSpace<ProblemVector<P>>::Scalar>> &&
    requires(P& p, Matrix<typename VectorSpace<ProblemVector<P>>::Scalar>& H) { p.hessian(H); };
template <class P>
concept HasDenseGaussNewton =
    HasDenseHessian<P> &&
    requires(P& p, Matrix<typename VectorSpace<ProblemVector<P>>::Scalar>& G) {
      p.gauss_newton_matrix(G);
    };
/// The dense curvature formed in float (capability::FloatCurvature; exact's mixed path, S =
/// double). Statically only through the interface itself (RegularizedProblem derives from it
/// only for the models that form it).
template <class P>
concept HasFloatCurvature =
    std::same_as<ProblemVector<P>, Vector<double>> &&
    std::derived_from<P, capability::FloatCurvature<double>>;
/// Problems that support KFAC export their Kronecker factors at the current point (on the
/// matrices of MatrixSpace<V>) and, in `shift`, one entry per block: the mean of the penalty's
/// Hessian diagonal over the block. The one KFAC inverse (linalg/kfac.hpp) is built here.
template <class P>
concept HasKroneckerFactors =
    HasMatrixSpace<ProblemVector<P>> &&
    requires(P& p, std::vector<typename VectorSpace<ProblemVector<P>>::Scalar>& shift) {
      { p.kfac_factors(shift) } -> std::convertible_to<std::vector<KfacBlock<ProblemVector<P>>>>;
    };

/// EKFAC's corrected eigenvalues (KfacEigenvalues::Corrected): per block, diag(Uᵀ H_b U) in its
/// Kronecker eigenbasis; returns false when the problem's model does not provide them.
template <class P>
concept HasKfacEigenvalues =
    HasMatrixSpace<ProblemVector<P>> &&
    requires(P& p, const typename MatrixSpace<ProblemVector<P>>::MatrixType& U,
             typename MatrixSpace<ProblemVector<P>>::MatrixType& out) {
      { p.kfac_corrected_eigenvalues(std::size_t(0), U, U, out) } -> std::convertible_to<bool>;
    };

/// Block Hessian products H V for a D × m block (nystrom's columns), Eigen vectors only.
template <class P>
concept HasHvpBlock =
    std::same_as<ProblemVector<P>, Vector<typename VectorSpace<ProblemVector<P>>::Scalar>> &&
    requires(P& p, const Matrix<typename VectorSpace<ProblemVector<P>>::Scalar>& V,
             Matrix<typename VectorSpace<ProblemVector<P>>::Scalar>& out) { p.hvp_block(V, out); };

/// The exact method's dense curvature and its factorisation, kept between calls by a caller that
/// wants no D² reallocation per hypergradient and reuse of the factor (HypergradientEngine).
///
/// `solver` reads `matrix` (DenseSolver keeps a pointer to the matrix it factorised), so a
/// memberwise copy would read the source's matrix and a memberwise move a moved-from one. Copy
/// and move therefore rebind the solver to this workspace's own matrix; a solver that was given
/// some other matrix keeps reading that one. A moved-from workspace is empty (no factorisation).
/// On exact's float-H path (DenseSolver::compute_mixed) `matrix` stays empty unless a fallback
/// builds it, and the solver's product and builder refer to the problem and to the workspace
/// that ran the call: solve with it within that call only (as generic::detail::solve does).
template <class S>
struct DenseWorkspace {
  Matrix<S> matrix;
  DenseSolver<S> solver;

  DenseWorkspace() = default;
  DenseWorkspace(const DenseWorkspace& other) : matrix(other.matrix), solver(other.solver) {
    adopt(other);
  }
  DenseWorkspace(DenseWorkspace&& other)
      : matrix(std::move(other.matrix)), solver(std::move(other.solver)) {
    adopt(other);
  }
  DenseWorkspace& operator=(const DenseWorkspace& other) {
    if (this != &other) {
      matrix = other.matrix;
      solver = other.solver;
      adopt(other);
    }
    return *this;
  }
  DenseWorkspace& operator=(DenseWorkspace&& other) {
    if (this != &other) {
      matrix = std::move(other.matrix);
      other.matrix = Matrix<S>();  // Eigen's move assignment swaps: do not leave our old D² there
      solver = std::move(other.solver);
      adopt(other);
    }
    return *this;
  }

 private:
  void adopt(const DenseWorkspace& source) {
    if (solver.matrix() == &source.matrix) solver.rebind(matrix);
  }
};

/// The hypergradient and the solver's diagnostics, on any vector type.
template <class V>
struct Result {
  V hypergradient;  ///< dL_V*/dλ
  V direct;         ///< ∂L_V/∂λ
  V v;              ///< the inverse-Hessian-vector product (undefined/empty for unrolled)
  SolverStatus status = SolverStatus::Converged;
  Index iterations = 0;
  Index hvps = 0;  ///< curvature-vector products, power iterations included
  std::optional<double> relative_residual;
  double alpha = 0;  ///< step size used by neumann / unrolled
  std::optional<double> suggested_alpha;
  std::string message;
  double seconds = 0;
};

namespace detail {

/// A deep copy through the seam (a torch::Tensor copy would share storage).
template <class V>
V clone(const V& x) {
  V y = VectorSpace<V>::zeros_like(x);
  VectorSpace<V>::assign(y, x);
  return y;
}

/// Calls `use(provider)` with the object that provides a capability of `problem`: the problem
/// itself when its static type has it (kStatic: decided at compile time), else, for an Eigen
/// problem seen through the BilevelProblem<S> interface, the capability interface it implements
/// (ift::capability::…, found by dynamic_cast at run time). Returns false, calling nothing, when
/// the problem lacks the capability.
template <template <class> class Interface, bool kStatic, class P, class Use>
bool with_capability(P& problem, Use&& use) {
  using V = ProblemVector<P>;
  using S = typename VectorSpace<V>::Scalar;
  if constexpr (kStatic) {
    use(problem);
    return true;
  } else if constexpr (std::same_as<V, Vector<S>> && std::is_polymorphic_v<P>) {
    if (auto* provider = dynamic_cast<Interface<S>*>(&problem)) {
      use(*provider);
      return true;
    }
  }
  return false;
}

/// The training rows of one solve's curvature products (MethodSpec::sampling): fixed draws its
/// batch once, at construction; fresh draws a new one for every product. Hypergradient number
/// `stream` of a run (SolverState::uses) draws from seeded_engine(spec.sampling_seed, stream).
struct CurvatureRows {
  CurvatureSampling mode = CurvatureSampling::Full;
  Index n = 0, batch = 0;
  std::mt19937_64 engine;
  std::vector<Index> rows;

  CurvatureRows() = default;
  CurvatureRows(const MethodSpec& spec, Index num_rows, std::uint64_t stream)
      : mode(spec.sampling), n(num_rows), batch(spec.curvature_batch),
        engine(seeded_engine(spec.sampling_seed, stream)) {
    if (mode == CurvatureSampling::Full) return;
    require(n > 0, [this] {
      return std::string("curvature sampling ") + to_string(mode) +
             ": this problem has no training rows to sample";
    });
    require(batch >= 1 && batch <= n, [this] {
      return "MethodSpec::curvature_batch (" + std::to_string(batch) + ") must lie in [1, " +
             std::to_string(n) + "] (the training rows)";
    });
    if (mode == CurvatureSampling::Fixed) rows = sample_rows(engine, n, batch);
  }
  /// The rows of the next product.
  const std::vector<Index>& next() {
    if (mode == CurvatureSampling::Fresh) rows = sample_rows(engine, n, batch);
    return rows;
  }
};

/// The rows for a solve of `spec` on `problem` (full: none are drawn).
template <HypergradientProblem P>
CurvatureRows curvature_rows(P& problem, const MethodSpec& spec, std::uint64_t stream) {
  if (spec.sampling == CurvatureSampling::Full) return CurvatureRows{};
  if constexpr (HasBatchHvp<P>) {
    return CurvatureRows(spec, problem.num_train_examples(), stream);
  } else {
    throw std::invalid_argument(std::string("curvature sampling ") + to_string(spec.sampling) +
                                ": this problem has no minibatch Hessian-vector product");
  }
}

/// The curvature chosen by the spec as a matrix-free operator on the problem (plus δI). Throws
/// std::invalid_argument when the problem cannot provide it. With `rows` in mode fresh/fixed the
/// Hessian products are minibatch products (problem.batch_hvp) on rows->next().
template <HypergradientProblem P>
FunctionOperator<ProblemVector<P>> curvature_operator(P& problem, const MethodSpec& spec,
                                                      CurvatureRows* rows = nullptr) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  const double damping = spec.damping;
  const Index n = problem.num_params();
  auto damp = [damping](const V& x, V& y) {
    if (damping != 0) VS::axpy(static_cast<S>(damping), x, y);
  };
  if (rows != nullptr && rows->mode != CurvatureSampling::Full) {
    require(spec.curvature == Curvature::Hessian,
            "curvature sampling needs the Hessian curvature");
    if constexpr (HasBatchHvp<P>) {
      return FunctionOperator<V>(n, [&problem, rows, damp](const V& x, V& y) {
        problem.batch_hvp(rows->next(), x, y);
        damp(x, y);
      });
    } else {
      throw std::invalid_argument("curvature sampling: this problem has no minibatch "
                                  "Hessian-vector product");
    }
  }
  switch (spec.curvature) {
    case Curvature::Hessian:
      return FunctionOperator<V>(n, [&problem, damp](const V& x, V& y) {
        problem.hvp(x, y);
        damp(x, y);
      });
    case Curvature::GaussNewton: {
      std::optional<FunctionOperator<V>> op;
      with_capability<capability::GaussNewton, HasGaussNewton<P>>(problem, [&](auto& c) {
        op.emplace(n, [&c, damp](const V& x, V& y) {
          c.gauss_newton_product(x, y);
          damp(x, y);
        });
      });
      if (op) return std::move(*op);
      break;
    }
    case Curvature::Fisher: {
      std::optional<FunctionOperator<V>> op;
      with_capability<capability::Fisher, HasFisher<P>>(problem, [&](auto& c) {
        op.emplace(n, [&c, damp](const V& x, V& y) {
          c.fisher_product(x, y);
          damp(x, y);
        });
      });
      if (op) return std::move(*op);
      break;
    }
    case Curvature::OuterProduct: {
      // H ≈ g gᵀ + ∇²R with g = ∇_w L_T at the current point: one gradient serves every term.
      std::optional<FunctionOperator<V>> op;
      with_capability<capability::PenaltyCurvature, HasPenaltyHvp<P>>(problem, [&](auto& c) {
        op.emplace(n, [&c, &problem, damp](const V& x, V& y) {
          c.penalty_hvp(x, y);
          const V& g = problem.train_gradient();
          VS::axpy(static_cast<S>(VS::dot(g, x)), g, y);
          damp(x, y);
        });
      });
      if (op) return std::move(*op);
      break;
    }
  }
  throw std::invalid_argument(std::string("curvature ") + to_string(spec.curvature) +
                              " is not provided by this problem");
}

template <class V>
void copy_diagnostics(SolveResult<V>&& r, Result<V>& out) {
  out.v = std::move(r.x);
  out.status = r.status;
  out.iterations = r.iterations;
  out.hvps = r.hvps;
  out.relative_residual = r.relative_residual;
  out.alpha = r.alpha;
  out.suggested_alpha = r.suggested_alpha;
  out.message = std::move(r.message);
}

/// shine's estimate v = H_k g from the L-BFGS pairs in `state` (linalg/lbfgs_inverse.hpp), 0
/// HVPs: MissingState (x = g) when there is no state, no pair, or the pairs end at another w
/// than the problem's (they describe the inverse Hessian there, not here).
template <HypergradientProblem P>
SolveResult<ProblemVector<P>> shine_estimate(P& problem, const ProblemVector<P>& g,
                                             const SolverState<ProblemVector<P>>* state) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  const auto missing = [&g](const std::string& why) {
    SolveResult<V> r;
    r.x = clone(g);
    r.status = SolverStatus::MissingState;
    r.message = "shine: " + why;
    return r;
  };
  if (state == nullptr)
    return missing("no solver state with L-BFGS pairs was passed (shine needs the pairs of an "
                   "L-BFGS solve of the inner problem at this w)");
  const LbfgsPairs<V>& pairs = state->lbfgs;
  if (!pairs.empty()) {
    const bool same_point = VS::size(pairs.point) == VS::size(problem.w()) && [&] {
      V d = clone(pairs.point);
      VS::axpy(typename VS::Scalar(-1), problem.w(), d);
      return VS::norm(d) == 0;
    }();
    if (!same_point)
      return missing("the L-BFGS pairs end at another w than the problem's (solve the inner "
                     "problem with L-BFGS at this w)");
  }
  return lbfgs_inverse_solve(pairs, g);
}

/// Y = A X for a D × m block X, A the spec's curvature WITHOUT its damping (nystrom's ρ plays
/// that role): the problem's hvp_block for the Hessian when it has one (capability::BlockHvp:
/// one pass with an m-column block), else m sequential products. Eigen vectors only.
template <HypergradientProblem P, class S>
void curvature_block(P& problem, const MethodSpec& spec, const Matrix<S>& X, Matrix<S>& Y) {
  using V = ProblemVector<P>;
  static_assert(std::same_as<V, Vector<S>>, "curvature_block: Eigen problems only");
  if (spec.curvature == Curvature::Hessian &&
      with_capability<capability::BlockHvp, HasHvpBlock<P>>(
          problem, [&](auto& c) { c.hvp_block(X, Y); }))
    return;
  MethodSpec undamped = spec;
  undamped.damping = 0;
  const auto op = curvature_operator(problem, undamped);
  Y.resize(X.rows(), X.cols());
  V x, y = V::Zero(X.rows());
  for (Index j = 0; j < X.cols(); ++j) {
    x = X.col(j);
    op.apply(x, y);
    Y.col(j) = y;
  }
}

/// nystrom (linalg/nystrom.hpp) for every rank k in `ks` (ascending, distinct, >= 0) from one
/// sample of K = min(max ks, D) columns and ONE block product: the samples are nested, so the
/// first k columns are the rank-k method's own; ranks above D are clamped to D (said in the
/// message). The penalty's curvature P (capability::PenaltyCurvature: diagonal, as for weight
/// decay; the product with the ones vector) is kept exact and only the data term is
/// approximated: v = (ρI + P + C M⁺ Cᵀ)⁻¹ g. outs[j] is the result for ks[j], with its own cost
/// (k + sampling products, + 1 for compute_residual: ||(H + δI) v − g|| / ||g|| with the spec's
/// damped curvature). Throws std::invalid_argument before any product when ρ + P is not > 0.
template <HypergradientProblem P>
void nystrom_sweep(P& problem, const MethodSpec& spec, const ProblemVector<P>& g,
                   const std::vector<Index>& ks, std::vector<SolveResult<ProblemVector<P>>>& outs) {
  using V = ProblemVector<P>;
  using S = typename VectorSpace<V>::Scalar;
  if constexpr (std::same_as<V, Vector<S>>) {
    const Index D = problem.num_params();
    const double rho = spec.nystrom_rho();
    std::optional<V> penalty;
    with_capability<capability::PenaltyCurvature, HasPenaltyHvp<P>>(problem, [&](auto& c) {
      penalty.emplace(D);
      c.penalty_hvp(V::Ones(D), *penalty);
    });
    const V* p = penalty ? &*penalty : nullptr;
    nystrom_shift<S>(D, rho, p);  // ρ + P > 0, before any product
    const Index K = std::min(ks.back(), D);
    const NystromColumns<S> cols = nystrom_columns<S>(
        D, K, spec.nystrom, rho,
        [&](const Matrix<S>& X, Matrix<S>& Y) { curvature_block(problem, spec, X, Y); }, p);
    std::optional<FunctionOperator<V>> op;
    if (spec.compute_residual) op.emplace(curvature_operator(problem, spec));
    outs.clear();
    for (const Index requested : ks) {
      const Index k = std::min(requested, D);
      SolveResult<V> r = nystrom_solve(cols, k, g, spec.nystrom, rho, p);
      if (k < requested)
        r.message += "; rank " + std::to_string(requested) + " clamped to D = " + std::to_string(D);
      if (op) {
        V Av = V::Zero(D);
        op->apply(r.x, Av);
        ++r.hvps;
        const double gn = static_cast<double>(g.norm());
        r.relative_residual = gn > 0 ? static_cast<double>((Av - g).norm()) / gn : 0.0;
      }
      outs.push_back(std::move(r));
    }
  } else {
    (void)problem, (void)spec, (void)g, (void)ks, (void)outs;
    throw std::invalid_argument(
        "nystrom: not available on this backend (Eigen vectors only; the LibTorch adapter has no "
        "block products yet)");
  }
}

/// The kfac method's approximate inverse at the problem's point (also cg's "+kfac"
/// preconditioner): the problem's Kronecker factors, damped by spec.damping plus the penalty's
/// curvature: its size-weighted mean over the blocks (KfacPenalty::Mean: exact for a global
/// decay), or its diagonal in each block's eigenbasis (KfacPenalty::Eigenbasis, the problem's
/// capability::PenaltyCurvature: the product with the ones vector; the mean for parameters
/// outside every block).
template <HypergradientProblem P>
  requires HasMatrixSpace<ProblemVector<P>>
KfacInverse<ProblemVector<P>> kfac_inverse(P& problem, const MethodSpec& spec) {
  using V = ProblemVector<P>;
  using S = typename VectorSpace<V>::Scalar;
  std::vector<S> shift;
  std::vector<KfacBlock<V>> factors;
  if (!with_capability<capability::KroneckerFactorization, HasKroneckerFactors<P>>(
          problem, [&](auto& c) { factors = c.kfac_factors(shift); }))
    throw std::invalid_argument(std::string(spec.method == Method::Kfac ? "kfac" : "cg+kfac") +
                                ": this problem provides no Kronecker factors "
                                "(capability::KroneckerFactorization)");
  require(shift.size() == factors.size(),
          "kfac: the problem returned " + std::to_string(shift.size()) + " penalty shifts for " +
              std::to_string(factors.size()) + " blocks");
  double shift_sum = 0;
  Index covered = 0;
  for (std::size_t b = 0; b < factors.size(); ++b) {
    shift_sum += static_cast<double>(shift[b]) * static_cast<double>(factors[b].size());
    covered += factors[b].size();
  }
  const double mean = covered ? shift_sum / double(covered) : 0.0;
  using MS = MatrixSpace<V>;
  KfacEigenvalueSource<V> corrected;
  if (spec.kfac.eigenvalues == KfacEigenvalues::Corrected) {
    corrected = [&problem](std::size_t b, const typename MS::MatrixType& Ua,
                           const typename MS::MatrixType& Ug, typename MS::MatrixType& out) {
      bool provided = false;
      with_capability<capability::KroneckerFactorization, HasKfacEigenvalues<P>>(
          problem, [&](auto& c) { provided = c.kfac_corrected_eigenvalues(b, Ua, Ug, out); });
      if (!provided)
        throw std::invalid_argument(
            "--kfac-eigenvalues corrected: this problem's model does not provide EKFAC's "
            "eigenvalues (softmax regression and MLPs do; binary logistic regression and the "
            "LibTorch adapter do not yet)");
    };
  }
  if (spec.kfac.penalty == KfacPenalty::Eigenbasis) {
    std::optional<KfacPenaltyDiagonal<V>> penalty;
    with_capability<capability::PenaltyCurvature, HasPenaltyHvp<P>>(problem, [&](auto& c) {
      V ones = VectorSpace<V>::zeros_like(problem.w());
      MS::add_constant(ones, 1.0);
      penalty.emplace(KfacPenaltyDiagonal<V>{VectorSpace<V>::zeros_like(ones), mean});
      c.penalty_hvp(ones, penalty->diagonal);
    });
    if (!penalty)
      throw std::invalid_argument(
          "--kfac-penalty eigenbasis: this problem does not expose its penalty's curvature "
          "(capability::PenaltyCurvature)");
    return KfacInverse<V>(problem.num_params(), factors, spec.damping, spec.kfac.damping_mode,
                          &*penalty, corrected);
  }
  return KfacInverse<V>(problem.num_params(), factors, spec.damping + mean,
                        spec.kfac.damping_mode, nullptr, corrected);
}

/// Split preconditioning, written once for every preconditioner of cg (+kfac, +ritz and both):
/// with an SPD preconditioner P given by its powers P^(−1/2) (`inverse_root(x, y)`) and P^(1/2)
/// (`root(x, y)`), `solve(B, b, y0, partial)` (CG: conjugate_gradient or ritz_cg) runs on
/// B = P^(−1/2) A P^(−1/2), b = P^(−1/2) g, from y0 = P^(1/2) x0 when warm (else nullptr), and
/// v = P^(−1/2) y. B is symmetric positive definite when A is, so every CG variant (Lanczos with
/// reorthogonalisation included), its partial results and its Lanczos relation (of B) carry
/// over unchanged; the HVP count is cg's, the residual reported is B's (relative to ||b||).
/// Every message gets `prefix`.
template <LinearOperator Op, class InverseRoot, class Root, class Solve>
SolveResult<typename Op::VectorType> split_preconditioned(
    const Op& op, const typename Op::VectorType& g, const typename Op::VectorType* x0,
    const PartialResults<typename Op::VectorType>& partial, const InverseRoot& inverse_root,
    const Root& root, const std::string& prefix, const Solve& solve) {
  using V = typename Op::VectorType;
  using VS = VectorSpace<V>;
  V t = VS::zeros_like(g), u = VS::zeros_like(g);
  FunctionOperator<V> B(VS::size(g), [&](const V& y, V& out) {
    inverse_root(y, t);
    op.apply(t, u);
    inverse_root(u, out);
  });
  V b = VS::zeros_like(g);
  inverse_root(g, b);
  std::optional<V> y0;
  if (x0 != nullptr) {
    y0.emplace(VS::zeros_like(g));
    root(*x0, *y0);
  }
  const auto back = [&](SolveResult<V>& r) {
    V x = VS::zeros_like(g);
    inverse_root(r.x, x);
    r.x = std::move(x);
    r.message = prefix + r.message;
  };
  PartialResults<V> mapped;
  if (partial.active()) {
    mapped.at = partial.at;
    mapped.report = [&](Index k, SolveResult<V>&& r) {
      back(r);
      partial.report(k, std::move(r));
    };
  }
  SolveResult<V> r = solve(B, b, y0 ? &*y0 : nullptr, mapped);
  back(r);
  return r;
}

/// cg (spec.preconditioner = ritz): CG split-preconditioned by the spectral preconditioner of
/// the Ritz pairs in `state` (linalg/ritz.hpp; none, or no state: P = I, plain cg bitwise). When
/// `fresh` is given it receives every Ritz pair of `op` from this solve's Lanczos relation (zero
/// HVPs), for merge_ritz_pairs.
template <LinearOperator Op>
SolveResult<typename Op::VectorType> ritz_cg(
    const Op& op, const MethodSpec& spec, const typename Op::VectorType& g,
    const typename Op::VectorType* x0, const SolverState<typename Op::VectorType>* state,
    const PartialResults<typename Op::VectorType>& partial = {},
    RitzPairs<typename Op::VectorType>* fresh = nullptr) {
  using V = typename Op::VectorType;
  const std::vector<V> no_vectors;
  const std::vector<double> no_values;
  const bool usable = state != nullptr && !state->ritz_values.empty() &&
                      VectorSpace<V>::size(state->ritz_vectors.front()) == VectorSpace<V>::size(g);
  const SpectralPreconditioner<V> P(usable ? state->ritz_vectors : no_vectors,
                                    usable ? state->ritz_values : no_values,
                                    usable ? state->ritz_scale : 0.0);
  LanczosObserver<V> observe;
  if (fresh != nullptr)  // every pair: the ones not recycled still estimate the scale
    observe = [&](const LanczosRelation<V>& rel) { *fresh = ritz_pairs(rel, P, rel.k); };
  return split_preconditioned(
      op, g, x0, partial, [&P](const V& x, V& y) { P.apply_power(x, y, -0.5); },
      [&P](const V& x, V& y) { P.apply_power(x, y, 0.5); },
      "Ritz-preconditioned (" + P.describe() + "): ",
      [&](const FunctionOperator<V>& B, const V& b, const V* y0, const PartialResults<V>& part) {
        return conjugate_gradient(B, b, spec.cg_params(), y0, part, observe);
      });
}

/// cg (spec.preconditioner = kfac, kfac+ritz): CG split-preconditioned by K, the kfac method's
/// damped Kronecker curvature (its powers K^(∓1/2) from KFAC's eigendecompositions); with
/// kfac+ritz the CG on K^(−1/2) H K^(−1/2) is ritz_cg (its Ritz pairs: of that operator). A KFAC
/// inverse that is not defined ends the solve with its NumericalIssue and v = 0.
template <HypergradientProblem P, LinearOperator Op>
SolveResult<ProblemVector<P>> preconditioned_cg(P& problem, const MethodSpec& spec, const Op& op,
                                                const ProblemVector<P>& g,
                                                const ProblemVector<P>* x0,
                                                const PartialResults<ProblemVector<P>>& partial = {},
                                                const SolverState<ProblemVector<P>>* state = nullptr,
                                                RitzPairs<ProblemVector<P>>* fresh = nullptr) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  if constexpr (HasMatrixSpace<V>) {
    const KfacInverse<V> K = kfac_inverse(problem, spec);
    if (K.status() != SolverStatus::Converged) {
      SolveResult<V> failed;
      failed.x = VS::zeros_like(g);
      failed.status = SolverStatus::NumericalIssue;
      failed.message = "cg+kfac: " + K.message();
      if (partial.active()) {  // the same failure for every k: once per distinct k, ascending
        std::vector<Index> ks = partial.at;
        std::sort(ks.begin(), ks.end());
        ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
        for (Index k : ks) {
          SolveResult<V> copy = failed;
          copy.x = VS::zeros_like(g);
          partial.report(k, std::move(copy));
        }
      }
      return failed;
    }
    const bool ritz = spec.preconditioner == Preconditioner::KfacRitz;
    return split_preconditioned(
        op, g, x0, partial,
        [&K](const V& x, V& y) { K.apply_power(x, y, KfacPower::InverseRoot); },
        [&K](const V& x, V& y) { K.apply_power(x, y, KfacPower::Root); },
        "KFAC-preconditioned (" + K.message() + "): ",
        [&](const FunctionOperator<V>& B, const V& b, const V* y0, const PartialResults<V>& part) {
          return ritz ? ritz_cg(B, spec, b, y0, state, part, fresh)
                      : conjugate_gradient(B, b, spec.cg_params(), y0, part);
        });
  } else {
    (void)problem, (void)spec, (void)op, (void)g, (void)x0, (void)partial, (void)state, (void)fresh;
    throw std::invalid_argument("cg+kfac: this backend has no Kronecker factors");
  }
}

/// The state's v to start from when the spec warm-starts and the state holds a v of `size`
/// entries (cg, neumann), else null.
template <class V>
const V* warm_start_point(const MethodSpec& spec, const SolverState<V>* state, Index size) {
  const bool warm = spec.warm_start && state != nullptr && state->has_v &&
                    VectorSpace<V>::size(state->v) == size;
  return warm ? &state->v : nullptr;
}

/// Whether `spec`'s solve from `state` begins with H v_prev, the problem's own full-batch HVP of
/// the state's v (neumann continuing from a nonzero finite v with a known α, on the Hessian):
/// that product does not depend on the hyper-step's g, so the loop forms it in the pass that
/// sets the hypergradient's point (set_point_with_gradient_and_hvp) and neumann_solve takes it
/// from state.product (issue 11, the hyper-step's cost: one pass over the training rows fewer).
template <class V>
bool warm_product_known_in_advance(const MethodSpec& spec, const SolverState<V>& state,
                                   Index size) {
  const V* x0 = warm_start_point(spec, &state, size);
  if (spec.method != Method::Neumann || spec.curvature != Curvature::Hessian ||
      spec.sampling != CurvatureSampling::Full || x0 == nullptr || spec.steps <= 0)
    return false;
  const double alpha = spec.neumann.alpha > 0 ? spec.neumann.alpha : state.alpha;
  return alpha > 0 && VectorSpace<V>::norm(*x0) != 0 && VectorSpace<V>::all_finite(*x0);
}

/// neumann's v ≈ H⁻¹ g on the spec's curvature: the cold series, or Richardson updates from the
/// state's v (warm_start). `rhs()` returns g and is called once. A warm start that continues
/// with a known α (SOBA's v ← v + α(g − H v_prev), docs/methods.md) forms H v_prev BEFORE asking
/// for g: the product does not depend on g, and formed first it reads the training rows while
/// the inner phase's last pass has left them in cache, before the validation pass (another
/// data set as large) evicts them (issue 11, bench/README.md "Warm-started hyper-steps"). The
/// arithmetic is the same in either order.
template <HypergradientProblem P, class Rhs>
void neumann_solve(P& problem, const MethodSpec& spec, Rhs&& rhs, Result<ProblemVector<P>>& out,
                   const SolverState<ProblemVector<P>>* state) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  CurvatureRows rows =
      curvature_rows(problem, spec, state ? static_cast<std::uint64_t>(state->uses) : 0);
  const auto op = curvature_operator(problem, spec, &rows);
  const V* x0 = warm_start_point(spec, state, VS::size(problem.w()));
  NeumannParams params = spec.neumann_params();
  // Continuing from a previous v, the warm form also keeps that step's automatic α (no
  // power iteration per hyper-step); from v = 0 it is the cold series, α included.
  const bool continues = x0 != nullptr && VS::norm(*x0) != 0;
  if (continues && params.alpha == 0 && state->alpha > 0) params.alpha = state->alpha;
  std::optional<V> first;  // H v_prev, formed before g (no power iteration needs g first)
  if (continues && params.alpha > 0 && params.steps > 0 && VS::all_finite(*x0)) {
    first = VS::zeros_like(*x0);
    if (state->has_product && rows.mode == CurvatureSampling::Full &&
        spec.curvature == Curvature::Hessian) {
      // Formed by the loop with the point (warm_product_known_in_advance): op.apply's value.
      VS::assign(*first, state->product);
      if (spec.damping != 0)
        VS::axpy(static_cast<typename VS::Scalar>(spec.damping), *x0, *first);
    } else {
      op.apply(*x0, *first);
    }
  }
  const V& g = rhs();
  copy_diagnostics(neumann(op, g, params, {}, x0, first ? &*first : nullptr), out);
}

/// v ≈ H⁻¹ g by the spec's method (every method but unrolled).
template <HypergradientProblem P>
void solve(P& problem, const MethodSpec& spec, const ProblemVector<P>& g,
           Result<ProblemVector<P>>& out,
           DenseWorkspace<typename VectorSpace<ProblemVector<P>>::Scalar>* workspace,
           const SolverState<ProblemVector<P>>* state, RitzPairs<ProblemVector<P>>* fresh = nullptr) {
  using V = ProblemVector<P>;
  switch (spec.method) {
    case Method::Exact:
      if constexpr (std::same_as<V, Vector<typename VectorSpace<V>::Scalar>>) {
        using S = typename VectorSpace<V>::Scalar;
        DenseWorkspace<S> local;
        DenseWorkspace<S>& ws = workspace ? *workspace : local;
        const bool gauss_newton = spec.curvature == Curvature::GaussNewton;
        // The dense curvature in S, damped: the double path, and the mixed path's fallback.
        const double damping = spec.damping;
        auto build = [&problem, &ws, gauss_newton, damping]() -> const Matrix<S>& {
          if (gauss_newton) {
            if (!with_capability<capability::DenseGaussNewton, HasDenseGaussNewton<P>>(
                    problem, [&ws](auto& c) { c.gauss_newton_matrix(ws.matrix); }))
              throw std::invalid_argument("exact: this problem forms no dense Gauss-Newton "
                                          "matrix (capability::DenseGaussNewton)");
          } else if (!with_capability<capability::DenseHessian, HasDenseHessian<P>>(
                         problem, [&ws](auto& c) { c.hessian(ws.matrix); })) {
            throw std::invalid_argument(
                "exact: this problem forms no dense Hessian (capability::DenseHessian); use cg "
                "with enough steps instead");
          }
          if (damping != 0) ws.matrix.diagonal().array() += static_cast<S>(damping);
          return ws.matrix;
        };
        // Mixed precision (S = double) on a problem that forms its curvature in float: H built
        // in float straight into the float factor's storage, the refinement's residual by the
        // spec's matrix-free curvature product (the same damped H to rounding), the double H
        // built only on a fallback (DenseSolver::compute_mixed).
        if constexpr (std::same_as<S, double>) {
          if (spec.exact.mixed_for<S>(problem.num_params()) &&
              with_capability<capability::FloatCurvature, HasFloatCurvature<P>>(
                  problem, [&](auto& c) {
                    ws.matrix = Matrix<S>();  // not formed: free a previous call's D²
                    ws.solver.compute_mixed(
                        [&c, gauss_newton, damping](Matrix<float>& H) {
                          if (gauss_newton)
                            c.gauss_newton_matrix_float(H);
                          else
                            c.hessian_float(H);
                          if (damping != 0) H.diagonal().array() += static_cast<float>(damping);
                        },
                        [op = curvature_operator(problem, spec)](const Vector<S>& x,
                                                                 Vector<S>& y) { op.apply(x, y); },
                        build, spec.exact);
                  })) {
            copy_diagnostics(ws.solver.solve(g), out);
            return;
          }
        }
        ws.solver.compute(build(), spec.exact);
        copy_diagnostics(ws.solver.solve(g), out);
        return;
      } else {
        throw std::invalid_argument(
            "exact: this backend forms no dense Hessian (use cg with enough steps instead)");
      }
    case Method::Cg: {
      CurvatureRows rows =
          curvature_rows(problem, spec, state ? static_cast<std::uint64_t>(state->uses) : 0);
      const auto op = curvature_operator(problem, spec, &rows);
      const V* x0 = warm_start_point(spec, state, VectorSpace<V>::size(g));
      copy_diagnostics(uses_kfac(spec.preconditioner)
                           ? preconditioned_cg(problem, spec, op, g, x0, {}, state, fresh)
                       : spec.preconditioner == Preconditioner::Ritz
                           ? ritz_cg(op, spec, g, x0, state, {}, fresh)
                           : conjugate_gradient(op, g, spec.cg_params(), x0),
                       out);
      return;
    }
    case Method::Neumann:
      neumann_solve(problem, spec, [&g]() -> const V& { return g; }, out, state);
      return;
    case Method::Identity: copy_diagnostics(identity_solve(g), out); return;
    case Method::Zero: copy_diagnostics(zero_solve(g), out); return;
    case Method::Kfac:
      if constexpr (HasMatrixSpace<V>) {
        const KfacInverse<V> inverse = kfac_inverse(problem, spec);
        if (spec.compute_residual) {
          const auto op = curvature_operator(problem, spec);
          copy_diagnostics(kfac_solve(inverse, g, op), out);
        } else {
          copy_diagnostics(kfac_solve(inverse, g), out);
        }
        return;
      } else {
        throw std::invalid_argument("kfac: this problem provides no Kronecker factors");
      }
    case Method::Shine: {
      // The estimate alone (steps = 0, 0 HVPs), or k = steps CG steps started from it on H:
      // CG's own result, status and HVPs (one more for the initial residual).
      SolveResult<V> estimate = shine_estimate(problem, g, state);
      if (estimate.status != SolverStatus::Converged) {
        copy_diagnostics(std::move(estimate), out);
        return;
      }
      const auto op = curvature_operator(problem, spec);
      if (spec.steps == 0) {
        if (spec.compute_residual) add_relative_residual(op, g, estimate);
        copy_diagnostics(std::move(estimate), out);
        return;
      }
      SolveResult<V> refined = conjugate_gradient(op, g, spec.cg_params(), &estimate.x);
      refined.message = estimate.message + "; refined by " + std::to_string(spec.steps) +
                        " CG steps: " + refined.message;
      copy_diagnostics(std::move(refined), out);
      return;
    }
    case Method::Nystrom: {
      std::vector<SolveResult<V>> results;
      nystrom_sweep(problem, spec, g, std::vector<Index>{spec.steps}, results);
      copy_diagnostics(std::move(results.front()), out);
      return;
    }
    case Method::Unrolled: break;
  }
  throw std::logic_error("generic::solve: unexpected method");
}

/// The same with g from `rhs()`, called once: after neumann's first product where that can come
/// first (neumann_solve), before anything else for every other method.
template <HypergradientProblem P, class Rhs>
  requires std::is_invocable_r_v<const ProblemVector<P>&, Rhs&>
void solve(P& problem, const MethodSpec& spec, Rhs&& rhs, Result<ProblemVector<P>>& out,
           DenseWorkspace<typename VectorSpace<ProblemVector<P>>::Scalar>* workspace,
           const SolverState<ProblemVector<P>>* state, RitzPairs<ProblemVector<P>>* fresh = nullptr) {
  if (spec.method == Method::Neumann) {
    neumann_solve(problem, spec, rhs, out, state);
    return;
  }
  solve(problem, spec, rhs(), out, workspace, state, fresh);
}

/// h = ∂L_V/∂λ − vᵀ ∂²L_T/∂w∂λᵀ from out.direct and out.v.
template <HypergradientProblem P>
void form_hypergradient(P& problem, Result<ProblemVector<P>>& out) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  V mixed = VS::zeros_like(out.direct);
  problem.mixed_product(out.v, mixed);
  out.hypergradient = clone(out.direct);
  VS::axpy(S(-1), mixed, out.hypergradient);
}

/// A non-finite hypergradient is reported, never returned silently.
template <class V>
void check_finite(Result<V>& out) {
  if (!VectorSpace<V>::all_finite(out.hypergradient)) {
    out.status = SolverStatus::NumericalIssue;
    out.message += (out.message.empty() ? "" : "; ") + std::string("hypergradient not finite");
  }
}

/// Deep copies of the vectors of a Result (through the seam) and of its diagnostics.
template <class V>
Result<V> copy_result(const Result<V>& r) {
  Result<V> c;
  c.hypergradient = clone(r.hypergradient);
  c.direct = clone(r.direct);
  if (VectorSpace<V>::size(r.v) > 0) c.v = clone(r.v);
  c.status = r.status;
  c.iterations = r.iterations;
  c.hvps = r.hvps;
  c.relative_residual = r.relative_residual;
  c.alpha = r.alpha;
  c.suggested_alpha = r.suggested_alpha;
  c.message = r.message;
  c.seconds = r.seconds;
  return c;
}

/// Reverse-mode differentiation of L_V(w_i) through w_{t+1} = w_t − α ∇_w L_T(λ, w_t):
///   a_i = ∇_w L_V(w_i);  for t = i−1 … 0:  h −= α a_{t+1}ᵀ ∂²L_T/∂w∂λᵀ(w_t),
///                                          a_t = a_{t+1} − α H(w_t) a_{t+1},
/// for every i in `ks` (ascending, distinct, >= 0) at once; outs[j] is the result for ks[j].
/// One forward trajectory w_0 … w_K (K = max ks; K + 1 vectors of size D) serves every i, and the
/// reverse passes run side by side: at each w_t (visited once, t = K … 0) every pass with i > t
/// takes its step. The reverse passes themselves cannot be shared (each differentiates a
/// different L_V(w_i), and a_t^{(i)} depends on i through a_i), so the sweep costs Σ_{i∈ks} i
/// HVPs and mixed products, but K gradients and 2K + 2 set_points instead of Σ i and Σ (2i + 2).
/// Each i's arithmetic is exactly that of unrolling i steps alone (ks = {i}: the single-k method).
/// Every out's hvps is its own cost, i plus the power iteration for an automatic α (run once).
/// Returns the problem to its original point.
template <HypergradientProblem P>
void unrolled_sweep(P& problem, const MethodSpec& spec, const ProblemVector<P>& start,
                    const std::vector<Index>& ks, std::vector<Result<ProblemVector<P>>>& outs) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  require(!ks.empty() && std::is_sorted(ks.begin(), ks.end()) &&
              std::adjacent_find(ks.begin(), ks.end()) == ks.end() && ks.front() >= 0,
          "unrolled: the step counts must be distinct, ascending and >= 0");
  const V lambda = clone(problem.lambda());
  const V origin = clone(problem.w());
  const V w0 = clone(start);  // start may be problem.w() itself, which set_point overwrites
  const Index steps = ks.back();
  problem.set_point(lambda, w0);
  double alpha = spec.neumann.alpha;
  Index power_hvps = 0;
  if (alpha == 0) {
    const auto op = curvature_operator(problem, spec);
    const PowerIterationResult power = power_iteration(op, w0, spec.power_params());
    power_hvps = power.hvps;
    require(power.eigenvalue > 0, "unrolled: the Hessian's largest eigenvalue is not positive; "
                                  "give --alpha explicitly");
    alpha = spec.neumann.safety / power.eigenvalue;
  }
  const S a_step = static_cast<S>(alpha);
  std::vector<V> trajectory;
  trajectory.reserve(static_cast<std::size_t>(steps) + 1);
  trajectory.push_back(clone(w0));
  for (Index t = 0; t < steps; ++t) {
    const auto h = static_cast<std::size_t>(t);
    if (t > 0) problem.set_point(lambda, trajectory[h]);
    V next = clone(trajectory[h]);
    VS::axpy(-a_step, problem.train_gradient(), next);
    trajectory.push_back(std::move(next));
  }

  const std::size_t n = ks.size();
  outs.clear();
  outs.resize(n);
  std::vector<V> adjoint(n);
  std::vector<bool> running(n, false);
  V mixed, Ha;
  std::size_t first = n;  // passes first … n − 1 have started (ks[first] <= t)
  for (Index t = steps; t >= 0; --t) {
    problem.set_point(lambda, trajectory[static_cast<std::size_t>(t)]);
    if (first > 0 && ks[first - 1] == t) {  // the pass for i = t starts at w_i
      Result<V>& out = outs[--first];
      out.alpha = alpha;
      out.hvps = power_hvps;
      out.status = SolverStatus::Converged;
      adjoint[first] = clone(problem.val_gradient());
      problem.val_direct_gradient(out.direct);  // the direct term at w_i
      out.hypergradient = clone(out.direct);
      if (t == steps) {
        mixed = VS::zeros_like(out.direct);
        Ha = VS::zeros_like(adjoint[first]);
      }
      running[first] = true;
    }
    for (std::size_t j = first; j < n; ++j) {
      if (!running[j] || ks[j] == t) continue;
      Result<V>& out = outs[j];
      V& a = adjoint[j];
      problem.mixed_product(a, mixed);
      VS::axpy(-a_step, mixed, out.hypergradient);
      problem.hvp(a, Ha);
      ++out.hvps;
      VS::axpy(-a_step, Ha, a);
      if (!VS::all_finite(a)) {
        out.status = SolverStatus::Diverged;
        out.message = "unrolled: the reverse pass overflowed (α = " + format_number(alpha) +
                      " too large for the Hessian along the trajectory)";
        running[j] = false;
      }
    }
  }
  for (std::size_t j = 0; j < n; ++j) {
    outs[j].iterations = ks[j];
    // k = 0 differentiates no step at all: the direct term alone, a truncation (the budget of
    // zero steps is spent), not a converged result.
    if (ks[j] == 0 && outs[j].status == SolverStatus::Converged) {
      outs[j].status = SolverStatus::MaxIterations;
      outs[j].message = "unrolled through 0 gradient steps: no step taken, the direct term only";
    }
    if (outs[j].message.empty())
      outs[j].message = "unrolled through " + std::to_string(ks[j]) + " gradient steps";
  }
  problem.set_point(lambda, origin);
}

/// unrolled(i) with i = spec.steps: the sweep over the single step count.
template <HypergradientProblem P>
void unrolled(P& problem, const MethodSpec& spec, const ProblemVector<P>& start,
              Result<ProblemVector<P>>& out) {
  std::vector<Result<ProblemVector<P>>> outs;
  unrolled_sweep(problem, spec, start, std::vector<Index>{spec.steps}, outs);
  out = std::move(outs.front());
}

}  // namespace detail

/// The hypergradient at the problem's current point (set_point) by the spec's method. For
/// `unrolled`, `start` is w_0 of the unrolled trajectory (default: the current w); the problem
/// is returned to its original point afterwards. Misuse (bad spec, a method or curvature the
/// problem cannot provide) throws std::invalid_argument; numerical trouble is a status.
/// `workspace` (optional, Eigen problems) keeps the exact method's matrix and factorisation.
/// `state` (optional) is the solver state carried across hyper-steps (solver_state.hpp): read
/// where the spec asks for it (warm_start), updated with this step's v and α on return.
template <HypergradientProblem P>
Result<ProblemVector<P>> hypergradient(
    P& problem, const MethodSpec& spec, const ProblemVector<P>* start = nullptr,
    DenseWorkspace<typename VectorSpace<ProblemVector<P>>::Scalar>* workspace = nullptr,
    SolverState<ProblemVector<P>>* state = nullptr) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  spec.check();
  const auto t0 = std::chrono::steady_clock::now();
  Result<V> out;
  RitzPairs<V> fresh;  // cg+ritz: this solve's Ritz pairs, merged into the state below
  problem.val_direct_gradient(out.direct);
  if (spec.method == Method::Unrolled) {
    detail::unrolled(problem, spec, start ? *start : problem.w(), out);
  } else {
    std::optional<V> g;  // ∇_w L_V, formed when the solver asks for it (see neumann_solve)
    const auto rhs = [&]() -> const V& {
      if (!g) g = detail::clone(problem.val_gradient());
      return *g;
    };
    detail::solve(problem, spec, rhs, out, workspace, state, &fresh);
    detail::form_hypergradient(problem, out);
  }
  detail::check_finite(out);
  if (state != nullptr) {
    ++state->uses;
    if (out.alpha > 0) state->alpha = out.alpha;
    if (out.alpha > 0 && spec.neumann.alpha == 0)
      state->lambda_max = spec.neumann.safety / out.alpha;
    if (out.status == SolverStatus::Diverged) {  // α too large: the next step estimates afresh
      state->alpha = 0;
      state->lambda_max.reset();
    }
    // Only a usable v is handed on: a warm start from a diverged or non-finite one would
    // carry the failure into the next hyper-step.
    const bool usable = spec.method != Method::Unrolled && VS::size(out.v) > 0 &&
                        VS::all_finite(out.v) && out.status != SolverStatus::Diverged &&
                        out.status != SolverStatus::NumericalIssue;
    if (usable) {
      VS::assign(state->v, out.v);
      state->has_v = true;
      if (uses_ritz(spec.preconditioner))
        merge_ritz_pairs(state->ritz_vectors, state->ritz_values, state->ritz_scale,
                         std::move(fresh), spec.ritz);
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

/// The hypergradient for every step count k in `ks`, from one run: result j equals
/// hypergradient(problem, spec with steps = ks[j], start) (to rounding; the arithmetic is the
/// same, step for step), with that call's status, iterations, hvps (its own cost: what reaching
/// k costs on its own, power iterations and residual HVPs included) and message.
///   neumann (any curvature), cg (either form): ONE series of K = max ks steps (K HVPs, plus
///     power iterations for an automatic α, plus one HVP per reported k with compute_residual);
///     each partial result (linalg/partial_results.hpp) is turned into its hypergradient on the
///     way (one mixed product per k).
///   unrolled: one forward trajectory of K steps and the reverse passes side by side
///     (detail::unrolled_sweep): Σ_{k∈ks} k HVPs, since each k differentiates a different
///     L_V(w_k); what is shared is the trajectory, the visits to each w_t and the power iteration.
///   shine: the estimate once (0 HVPs: k = 0's result) and ONE CG series of K steps started
///     from it for every k > 0 (as cg's series).
///   nystrom: one nested sample of K = max ks columns and ONE block product (K products plus
///     the sampling's), each k from the first k columns (detail::nystrom_sweep).
///   k-independent methods (exact, identity, zero, kfac): computed once, copied for every k.
/// `seconds` is the time from the start of the sweep until that k's result was complete
/// (unrolled: all at the end). ks: any order, duplicates allowed, each >= 0, not empty. No
/// solver state is written; `state` is read only by shine, for its L-BFGS pairs (a warm start
/// needs a state that changes: use hypergradient per step; a warm spec runs cold here). Sampled
/// curvature (fresh / fixed) draws as a single call with no state does (stream 0), so each k
/// still equals its single call.
template <HypergradientProblem P>
std::vector<Result<ProblemVector<P>>> hypergradient_sweep(
    P& problem, const MethodSpec& spec, const std::vector<Index>& ks,
    const ProblemVector<P>* start = nullptr,
    const SolverState<ProblemVector<P>>* state = nullptr) {
  using V = ProblemVector<P>;
  spec.check();
  require(!ks.empty(), "hypergradient_sweep: no step count requested");
  for (Index k : ks)
    require(k >= 0, [k] {
      return "hypergradient_sweep: step counts must be >= 0 (got " + std::to_string(k) + ")";
    });
  std::vector<Index> sorted = ks;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  MethodSpec run = spec;
  run.steps = sorted.back();
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<Result<V>> results(sorted.size());  // results[j] for sorted[j]
  // The series methods (neumann, cg, shine) hand out one solve per distinct k, ascending
  // (sorted's order); each becomes its hypergradient here.
  V direct;
  std::size_t next = 0;
  const auto finish = [&](SolveResult<V>&& r) {
    Result<V>& out = results[next++];
    out.direct = detail::clone(direct);
    detail::copy_diagnostics(std::move(r), out);
    detail::form_hypergradient(problem, out);
    detail::check_finite(out);
    out.seconds = elapsed();
  };

  switch (spec.method) {
    case Method::Neumann:
    case Method::Cg: {
      problem.val_direct_gradient(direct);
      const V g = detail::clone(problem.val_gradient());
      detail::CurvatureRows rows = detail::curvature_rows(problem, run, 0);
      const auto op = detail::curvature_operator(problem, run, &rows);
      PartialResults<V> partial;
      partial.at = sorted;
      partial.report = [&](Index, SolveResult<V>&& r) { finish(std::move(r)); };
      if (spec.method == Method::Neumann)
        neumann(op, g, run.neumann_params(), partial);
      else if (uses_kfac(spec.preconditioner))
        detail::preconditioned_cg(problem, run, op, g, nullptr, partial, state);
      else if (spec.preconditioner == Preconditioner::Ritz)
        detail::ritz_cg(op, run, g, nullptr, state, partial);
      else
        conjugate_gradient(op, g, run.cg_params(), nullptr, partial);
      require(next == sorted.size(), "hypergradient_sweep: a solver skipped a partial result");
      break;
    }
    case Method::Shine: {
      problem.val_direct_gradient(direct);
      const V g = detail::clone(problem.val_gradient());
      SolveResult<V> estimate = detail::shine_estimate(problem, g, state);
      if (estimate.status != SolverStatus::Converged) {  // the same failure for every k
        while (next < sorted.size()) {
          SolveResult<V> copy = estimate;
          copy.x = detail::clone(estimate.x);
          finish(std::move(copy));
        }
        break;
      }
      const auto op = detail::curvature_operator(problem, run);
      if (sorted.front() == 0) {
        SolveResult<V> copy = estimate;
        copy.x = detail::clone(estimate.x);
        if (spec.compute_residual) add_relative_residual(op, g, copy);
        finish(std::move(copy));
      }
      if (next < sorted.size()) {
        PartialResults<V> partial;
        partial.at.assign(sorted.begin() + static_cast<std::ptrdiff_t>(next), sorted.end());
        partial.report = [&](Index k, SolveResult<V>&& r) {
          r.message = estimate.message + "; refined by " + std::to_string(k) +
                      " CG steps: " + r.message;
          finish(std::move(r));
        };
        conjugate_gradient(op, g, run.cg_params(), &estimate.x, partial);
      }
      require(next == sorted.size(), "hypergradient_sweep: a solver skipped a partial result");
      break;
    }
    case Method::Nystrom: {
      problem.val_direct_gradient(direct);
      const V g = detail::clone(problem.val_gradient());
      std::vector<SolveResult<V>> solved;
      detail::nystrom_sweep(problem, spec, g, sorted, solved);
      for (SolveResult<V>& r : solved) finish(std::move(r));
      break;
    }
    case Method::Unrolled: {
      detail::unrolled_sweep(problem, run, start ? *start : problem.w(), sorted, results);
      for (Result<V>& out : results) {
        detail::check_finite(out);
        out.seconds = elapsed();
      }
      break;
    }
    case Method::Exact:
    case Method::Identity:
    case Method::Zero:
    case Method::Kfac: {  // k-independent
      const Result<V> once = hypergradient(problem, spec, start);
      for (Result<V>& out : results) out = detail::copy_result(once);
      break;
    }
  }
  if (sorted == ks) return results;
  std::vector<Result<V>> in_order;
  in_order.reserve(ks.size());
  for (Index k : ks) {
    const auto j = std::lower_bound(sorted.begin(), sorted.end(), k) - sorted.begin();
    in_order.push_back(detail::copy_result(results[static_cast<std::size_t>(j)]));
  }
  return in_order;
}

}  // namespace ift::generic
