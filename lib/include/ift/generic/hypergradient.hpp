// The hypergradient of DESIGN.md §1 written once for any vector type V with a VectorSpace<V>:
//   dL_V*/dλ = ∂L_V/∂λ − vᵀ ∂²L_T/∂w∂λᵀ,   v ≈ H⁻¹ ∂L_V/∂w,
// with v from cg / neumann / identity / zero (the linalg templates), exact (Eigen vectors with a
// dense Hessian), kfac (when the problem supplies Kronecker factors or its own KFAC inverse), or
// unrolled reverse-mode differentiation through i gradient steps (Lorraine et al. 2020, §3).
//
// The same code runs on Eigen vectors (V = ift::Vector<S>, any ift::BilevelProblem<S>) and on
// flat LibTorch tensors (ift::deep::TorchProblem), so the two backends cannot drift apart: the
// cross-checks compare numbers produced by this one implementation. The arithmetic follows
// lib/src/hypergradient.cpp operation by operation, so on an Eigen problem the results agree with
// HypergradientEngine to rounding (a test asserts 1e-12).
#pragma once

#include <chrono>
#include <concepts>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ift/core.hpp"
#include "ift/method.hpp"
#include "ift/linalg/cg.hpp"
#include "ift/linalg/dense_solver.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/linalg/neumann.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/linalg/simple_solvers.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"
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
/// Eigen problems expose their Kronecker factors; the KFAC inverse is then built here.
template <class P>
concept HasKroneckerFactors =
    std::same_as<ProblemVector<P>, Vector<typename VectorSpace<ProblemVector<P>>::Scalar>> &&
    requires(P& p, std::vector<typename VectorSpace<ProblemVector<P>>::Scalar>& shift) {
      p.kfac_factors(shift);
    };
/// Other backends (LibTorch) apply their own KFAC inverse: v = (KFAC + damping)⁻¹ g.
template <class P>
concept HasKfacSolve = requires(P& p, const ProblemVector<P>& cv, const MethodSpec& spec) {
  { p.kfac_solve(cv, spec) } -> std::same_as<SolveResult<ProblemVector<P>>>;
};

/// The exact method's dense curvature and its factorisation, kept between calls by a caller that
/// wants no D² reallocation per hypergradient and reuse of the factor (HypergradientEngine).
///
/// `solver` reads `matrix` (DenseSolver keeps a pointer to the matrix it factorised), so a
/// memberwise copy would read the source's matrix and a memberwise move a moved-from one. Copy
/// and move therefore rebind the solver to this workspace's own matrix; a solver that was given
/// some other matrix keeps reading that one. A moved-from workspace is empty (no factorisation).
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

/// The curvature chosen by the spec as a matrix-free operator on the problem (plus δI). Throws
/// std::invalid_argument when the problem cannot provide it.
template <HypergradientProblem P>
FunctionOperator<ProblemVector<P>> curvature_operator(P& problem, const MethodSpec& spec) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  const double damping = spec.damping;
  const Index n = problem.num_params();
  auto damp = [damping](const V& x, V& y) {
    if (damping != 0) VS::axpy(static_cast<S>(damping), x, y);
  };
  switch (spec.curvature) {
    case Curvature::Hessian:
      return FunctionOperator<V>(n, [&problem, damp](const V& x, V& y) {
        problem.hvp(x, y);
        damp(x, y);
      });
    case Curvature::GaussNewton:
      if constexpr (HasGaussNewton<P>) {
        return FunctionOperator<V>(n, [&problem, damp](const V& x, V& y) {
          problem.gauss_newton_product(x, y);
          damp(x, y);
        });
      }
      break;
    case Curvature::Fisher:
      if constexpr (HasFisher<P>) {
        return FunctionOperator<V>(n, [&problem, damp](const V& x, V& y) {
          problem.fisher_product(x, y);
          damp(x, y);
        });
      }
      break;
    case Curvature::OuterProduct:
      if constexpr (HasPenaltyHvp<P>) {
        // H ≈ g gᵀ + ∇²R with g = ∇_w L_T at the current point: one gradient serves every term.
        return FunctionOperator<V>(n, [&problem, damp](const V& x, V& y) {
          problem.penalty_hvp(x, y);
          const V& g = problem.train_gradient();
          VS::axpy(static_cast<S>(VS::dot(g, x)), g, y);
          damp(x, y);
        });
      }
      break;
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

/// v ≈ H⁻¹ g by the spec's method (every method but unrolled).
template <HypergradientProblem P>
void solve(P& problem, const MethodSpec& spec, const ProblemVector<P>& g,
           Result<ProblemVector<P>>& out,
           DenseWorkspace<typename VectorSpace<ProblemVector<P>>::Scalar>* workspace,
           const SolverState<ProblemVector<P>>* state) {
  using V = ProblemVector<P>;
  switch (spec.method) {
    case Method::Exact:
      if constexpr (HasDenseHessian<P>) {
        using S = typename VectorSpace<V>::Scalar;
        DenseWorkspace<S> local;
        DenseWorkspace<S>& ws = workspace ? *workspace : local;
        if (spec.curvature == Curvature::GaussNewton) {
          if constexpr (HasDenseGaussNewton<P>) {
            problem.gauss_newton_matrix(ws.matrix);
          } else {
            throw std::invalid_argument("exact: this problem has no dense Gauss-Newton matrix");
          }
        } else {
          problem.hessian(ws.matrix);
        }
        if (spec.damping != 0) ws.matrix.diagonal().array() += static_cast<S>(spec.damping);
        ws.solver.compute(ws.matrix);
        copy_diagnostics(ws.solver.solve(g), out);
        return;
      } else {
        throw std::invalid_argument(
            "exact: this backend forms no dense Hessian (use cg with enough steps instead)");
      }
    case Method::Cg: {
      const auto op = curvature_operator(problem, spec);
      CgParams p;
      p.max_iterations = spec.steps;
      p.tolerance = spec.tolerance;
      p.reorthogonalize = spec.reorthogonalize;
      p.true_residual = spec.compute_residual;
      const bool warm = spec.warm_start && state != nullptr && state->has_v &&
                        VectorSpace<V>::size(state->v) == VectorSpace<V>::size(g);
      copy_diagnostics(conjugate_gradient(op, g, p, warm ? &state->v : nullptr), out);
      return;
    }
    case Method::Neumann: {
      const auto op = curvature_operator(problem, spec);
      NeumannParams p;
      p.steps = spec.steps;
      p.alpha = spec.alpha;
      p.safety = spec.safety;
      p.power_iterations = spec.power_iterations;
      p.compute_residual = spec.compute_residual;
      copy_diagnostics(neumann(op, g, p), out);
      return;
    }
    case Method::Identity: copy_diagnostics(identity_solve(g), out); return;
    case Method::Zero: copy_diagnostics(zero_solve(g), out); return;
    case Method::Kfac:
      if constexpr (HasKfacSolve<P>) {
        copy_diagnostics(problem.kfac_solve(g, spec), out);
        return;
      } else if constexpr (HasKroneckerFactors<P>) {
        using S = typename VectorSpace<V>::Scalar;
        std::vector<S> shift;
        const auto factors = problem.kfac_factors(shift);
        double shift_sum = 0;
        Index covered = 0;
        for (std::size_t b = 0; b < factors.size(); ++b) {
          shift_sum += static_cast<double>(shift[b]) * static_cast<double>(factors[b].size());
          covered += factors[b].size();
        }
        // The penalty's curvature enters as damping, by its size-weighted mean over the blocks
        // (exact for global decay); the explicit damping is added on top.
        const double damping = spec.damping + (covered ? shift_sum / double(covered) : 0.0);
        KfacInverseOperator<S> inverse(problem.num_params(), factors, damping,
                                       spec.kfac_damping_mode);
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
    case Method::Unrolled: break;
  }
  throw std::logic_error("generic::solve: unexpected method");
}

/// Reverse-mode differentiation of L_V(w_i) through w_{t+1} = w_t − α ∇_w L_T(λ, w_t):
///   a_i = ∇_w L_V(w_i);  for t = i−1 … 0:  h −= α a_{t+1}ᵀ ∂²L_T/∂w∂λᵀ(w_t),
///                                          a_t = a_{t+1} − α H(w_t) a_{t+1}.
/// Stores the trajectory (i + 1 vectors of size D); returns the problem to its original point.
template <HypergradientProblem P>
void unrolled(P& problem, const MethodSpec& spec, const ProblemVector<P>& start,
              Result<ProblemVector<P>>& out) {
  using V = ProblemVector<P>;
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  const V lambda = clone(problem.lambda());
  const V origin = clone(problem.w());
  const Index steps = spec.steps;
  problem.set_point(lambda, start);
  double alpha = spec.alpha;
  if (alpha == 0) {
    const auto op = curvature_operator(problem, spec);
    PowerIterationParams p;
    p.max_iterations = spec.power_iterations;
    const PowerIterationResult power = power_iteration(op, start, p);
    out.hvps += power.hvps;
    require(power.eigenvalue > 0, "unrolled: the Hessian's largest eigenvalue is not positive; "
                                  "give --alpha explicitly");
    alpha = spec.safety / power.eigenvalue;
  }
  out.alpha = alpha;
  const S a_step = static_cast<S>(alpha);
  std::vector<V> trajectory;
  trajectory.reserve(static_cast<std::size_t>(steps) + 1);
  trajectory.push_back(clone(start));
  for (Index t = 0; t < steps; ++t) {
    const auto h = static_cast<std::size_t>(t);
    if (t > 0) problem.set_point(lambda, trajectory[h]);
    V next = clone(trajectory[h]);
    VS::axpy(-a_step, problem.train_gradient(), next);
    trajectory.push_back(std::move(next));
  }
  problem.set_point(lambda, trajectory.back());
  V a = clone(problem.val_gradient());
  problem.val_direct_gradient(out.direct);  // the direct term at w_i
  out.hypergradient = clone(out.direct);
  V mixed = VS::zeros_like(out.direct);
  V Ha = VS::zeros_like(a);
  out.status = SolverStatus::Converged;
  for (Index t = steps - 1; t >= 0; --t) {
    problem.set_point(lambda, trajectory[static_cast<std::size_t>(t)]);
    problem.mixed_product(a, mixed);
    VS::axpy(-a_step, mixed, out.hypergradient);
    problem.hvp(a, Ha);
    ++out.hvps;
    VS::axpy(-a_step, Ha, a);
    if (!VS::all_finite(a)) {
      out.status = SolverStatus::Diverged;
      out.message = "unrolled: the reverse pass overflowed (α = " + std::to_string(alpha) +
                    " too large for the Hessian along the trajectory)";
      break;
    }
  }
  out.iterations = steps;
  if (out.message.empty())
    out.message = "unrolled through " + std::to_string(steps) + " gradient steps";
  problem.set_point(lambda, origin);
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
  using S = typename VS::Scalar;
  spec.check();
  const auto t0 = std::chrono::steady_clock::now();
  Result<V> out;
  problem.val_direct_gradient(out.direct);
  if (spec.method == Method::Unrolled) {
    detail::unrolled(problem, spec, start ? *start : problem.w(), out);
  } else {
    const V g = detail::clone(problem.val_gradient());
    detail::solve(problem, spec, g, out, workspace, state);
    V mixed = VS::zeros_like(out.direct);
    problem.mixed_product(out.v, mixed);
    out.hypergradient = detail::clone(out.direct);
    VS::axpy(S(-1), mixed, out.hypergradient);
  }
  if (!VS::all_finite(out.hypergradient)) {
    out.status = SolverStatus::NumericalIssue;
    out.message += (out.message.empty() ? "" : "; ") + std::string("hypergradient not finite");
  }
  if (state != nullptr) {
    ++state->uses;
    if (out.alpha > 0) state->alpha = out.alpha;
    if (out.alpha > 0 && spec.alpha == 0) state->lambda_max = spec.safety / out.alpha;
    // Only a usable v is handed on: a warm start from a diverged or non-finite one would
    // carry the failure into the next hyper-step.
    const bool usable = spec.method != Method::Unrolled && VS::size(out.v) > 0 &&
                        VS::all_finite(out.v) && out.status != SolverStatus::Diverged &&
                        out.status != SolverStatus::NumericalIssue;
    if (usable) {
      VS::assign(state->v, out.v);
      state->has_v = true;
    }
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace ift::generic
