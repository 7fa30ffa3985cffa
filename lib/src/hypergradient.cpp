#include "ift/hypergradient.hpp"

#include <chrono>
#include <cmath>

#include "ift/linalg/cg.hpp"
#include "ift/linalg/dense_solver.hpp"
#include "ift/linalg/neumann.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/linalg/simple_solvers.hpp"

namespace ift {

Method parse_method(const std::string& name) {
  if (name == "exact") return Method::Exact;
  if (name == "cg") return Method::Cg;
  if (name == "neumann") return Method::Neumann;
  if (name == "identity") return Method::Identity;
  if (name == "zero") return Method::Zero;
  if (name == "kfac") return Method::Kfac;
  if (name == "unrolled") return Method::Unrolled;
  throw std::invalid_argument("unknown method '" + name +
                              "' (expected exact, cg, neumann, identity, zero, kfac or unrolled)");
}

Curvature parse_curvature(const std::string& name) {
  if (name == "hessian") return Curvature::Hessian;
  if (name == "gauss-newton") return Curvature::GaussNewton;
  if (name == "outer-product") return Curvature::OuterProduct;
  if (name == "fisher") return Curvature::Fisher;
  throw std::invalid_argument("unknown curvature '" + name +
                              "' (expected hessian, gauss-newton, outer-product or fisher)");
}

const char* to_string(Method m) {
  switch (m) {
    case Method::Exact: return "exact";
    case Method::Cg: return "cg";
    case Method::Neumann: return "neumann";
    case Method::Identity: return "identity";
    case Method::Zero: return "zero";
    case Method::Kfac: return "kfac";
    case Method::Unrolled: return "unrolled";
  }
  return "?";
}

const char* to_string(Curvature c) {
  switch (c) {
    case Curvature::Hessian: return "hessian";
    case Curvature::GaussNewton: return "gauss-newton";
    case Curvature::OuterProduct: return "outer-product";
    case Curvature::Fisher: return "fisher";
  }
  return "?";
}

std::string MethodSpec::name() const {
  const bool uses_curvature =
      method == Method::Exact || method == Method::Cg || method == Method::Neumann;
  if (!uses_curvature || curvature == Curvature::Hessian) return to_string(method);
  return std::string(to_string(curvature)) + "/" + to_string(method);
}

void MethodSpec::check() const {
  require(steps >= 0, "MethodSpec::steps must be >= 0 (got " + std::to_string(steps) + ")");
  require(std::isfinite(alpha) && alpha >= 0,
          "MethodSpec::alpha must be > 0, or 0 to choose it from λ_max");
  require(safety > 0 && safety < 2, "MethodSpec::safety must lie in (0, 2)");
  require(std::isfinite(damping) && damping >= 0, "MethodSpec::damping must be finite and >= 0");
  require(tolerance >= 0, "MethodSpec::tolerance must be >= 0");
  require(power_iterations >= 1, "MethodSpec::power_iterations must be >= 1");
  const bool rank_deficient =
      curvature == Curvature::OuterProduct || curvature == Curvature::Fisher;
  require(!(rank_deficient && method != Method::Neumann),
          std::string("curvature ") + to_string(curvature) +
              " is defined for neumann only (DESIGN.md §1), not for " + to_string(method));
  require(!(curvature != Curvature::Hessian &&
            (method == Method::Kfac || method == Method::Unrolled)),
          std::string(to_string(method)) + " takes no --curvature (it defines its own)");
}

template <class S>
HypergradientEngine<S>::HypergradientEngine(MethodSpec spec) : spec_(spec) {
  spec_.check();
}

template <class S>
HypergradientResult<S> HypergradientEngine<S>::compute(BilevelProblem<S>& problem,
                                                       const Vector<S>* start) {
  const auto t0 = std::chrono::steady_clock::now();
  HypergradientResult<S> out;
  problem.val_direct_gradient(out.direct);
  if (spec_.method == Method::Unrolled) {
    unrolled(problem, start ? *start : problem.w(), out);
  } else {
    const Vector<S> g = problem.val_gradient();
    solve(problem, g, out);
    Vector<S> mixed;
    problem.mixed_product(out.v, mixed);
    out.hypergradient = out.direct - mixed;
  }
  if (!out.hypergradient.allFinite()) {
    out.status = SolverStatus::NumericalIssue;
    out.message += (out.message.empty() ? "" : "; ") + std::string("hypergradient not finite");
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

namespace {

/// The curvature chosen by the spec as a matrix-free operator on the problem (plus δI).
template <class S>
FunctionOperator<Vector<S>> curvature_operator(BilevelProblem<S>& problem, const MethodSpec& spec) {
  const double damping = spec.damping;
  const Index n = problem.num_params();
  switch (spec.curvature) {
    case Curvature::Hessian:
      return FunctionOperator<Vector<S>>(n, [&problem, damping](const Vector<S>& x, Vector<S>& y) {
        problem.hvp(x, y);
        if (damping != 0) y.noalias() += static_cast<S>(damping) * x;
      });
    case Curvature::GaussNewton:
      return FunctionOperator<Vector<S>>(n, [&problem, damping](const Vector<S>& x, Vector<S>& y) {
        problem.gauss_newton_product(x, y);
        if (damping != 0) y.noalias() += static_cast<S>(damping) * x;
      });
    case Curvature::Fisher:
      return FunctionOperator<Vector<S>>(n, [&problem, damping](const Vector<S>& x, Vector<S>& y) {
        problem.fisher_product(x, y);
        if (damping != 0) y.noalias() += static_cast<S>(damping) * x;
      });
    case Curvature::OuterProduct:
      // H ≈ g gᵀ + ∇²R with g = ∇_w L_T at the current point: one gradient serves every term.
      return FunctionOperator<Vector<S>>(n, [&problem, damping](const Vector<S>& x, Vector<S>& y) {
        problem.penalty_hvp(x, y);
        const Vector<S>& g = problem.train_gradient();
        y.noalias() += g.dot(x) * g;
        if (damping != 0) y.noalias() += static_cast<S>(damping) * x;
      });
  }
  throw std::logic_error("curvature_operator: unknown curvature");
}

template <class S>
void copy_diagnostics(SolveResult<Vector<S>>&& r, HypergradientResult<S>& out) {
  out.v = std::move(r.x);
  out.status = r.status;
  out.iterations = r.iterations;
  out.hvps = r.hvps;
  out.relative_residual = r.relative_residual;
  out.alpha = r.alpha;
  out.suggested_alpha = r.suggested_alpha;
  out.message = std::move(r.message);
}

}  // namespace

template <class S>
void HypergradientEngine<S>::solve(BilevelProblem<S>& problem, const Vector<S>& g,
                                   HypergradientResult<S>& out) {
  switch (spec_.method) {
    case Method::Exact: {
      if (spec_.curvature == Curvature::GaussNewton)
        problem.gauss_newton_matrix(dense_);
      else
        problem.hessian(dense_);
      if (spec_.damping != 0) dense_.diagonal().array() += static_cast<S>(spec_.damping);
      dense_solver_.compute(dense_);
      copy_diagnostics(dense_solver_.solve(g), out);
      return;
    }
    case Method::Cg: {
      const auto op = curvature_operator(problem, spec_);
      CgParams p;
      p.max_iterations = spec_.steps;
      p.tolerance = spec_.tolerance;
      p.reorthogonalize = spec_.reorthogonalize;
      p.true_residual = spec_.compute_residual;
      copy_diagnostics(conjugate_gradient(op, g, p), out);
      return;
    }
    case Method::Neumann: {
      const auto op = curvature_operator(problem, spec_);
      NeumannParams p;
      p.steps = spec_.steps;
      p.alpha = spec_.alpha;
      p.safety = spec_.safety;
      p.power_iterations = spec_.power_iterations;
      p.compute_residual = spec_.compute_residual;
      copy_diagnostics(neumann(op, g, p), out);
      return;
    }
    case Method::Identity: copy_diagnostics(identity_solve(g), out); return;
    case Method::Zero: copy_diagnostics(zero_solve(g), out); return;
    case Method::Kfac: {
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
      const double damping = spec_.damping + (covered ? shift_sum / double(covered) : 0.0);
      KfacInverseOperator<S> inverse(problem.num_params(), factors, damping,
                                     spec_.kfac_damping_mode);
      if (spec_.compute_residual) {
        const auto op = curvature_operator(problem, spec_);
        copy_diagnostics(kfac_solve(inverse, g, op), out);
      } else {
        copy_diagnostics(kfac_solve(inverse, g), out);
      }
      return;
    }
    case Method::Unrolled: break;
  }
  throw std::logic_error("HypergradientEngine::solve: unexpected method");
}

template <class S>
void HypergradientEngine<S>::unrolled(BilevelProblem<S>& problem, const Vector<S>& start,
                                      HypergradientResult<S>& out) {
  // Reverse-mode differentiation of L_V(w_i) through w_{t+1} = w_t − α ∇_w L_T(λ, w_t):
  //   a_i = ∇_w L_V(w_i);  for t = i−1 … 0:  h −= α a_{t+1}ᵀ ∂²L_T/∂w∂λᵀ(w_t),
  //                                          a_t = a_{t+1} − α H(w_t) a_{t+1}.
  // The trajectory is stored (i vectors of size D).
  const Vector<S> lambda = problem.lambda();
  const Vector<S> origin = problem.w();
  const Index steps = spec_.steps;
  problem.set_point(lambda, start);
  double alpha = spec_.alpha;
  if (alpha == 0) {
    const auto op = curvature_operator(problem, spec_);
    PowerIterationParams p;
    p.max_iterations = spec_.power_iterations;
    const PowerIterationResult power = power_iteration(op, p);
    out.hvps += power.hvps;
    require(power.eigenvalue > 0, "unrolled: the Hessian's largest eigenvalue is not positive; "
                                  "give --alpha explicitly");
    alpha = spec_.safety / power.eigenvalue;
  }
  out.alpha = alpha;
  const S a_step = static_cast<S>(alpha);
  std::vector<Vector<S>> trajectory(static_cast<std::size_t>(steps) + 1);
  trajectory[0] = start;
  for (Index t = 0; t < steps; ++t) {
    if (t > 0) problem.set_point(lambda, trajectory[static_cast<std::size_t>(t)]);
    trajectory[static_cast<std::size_t>(t) + 1] =
        trajectory[static_cast<std::size_t>(t)] - a_step * problem.train_gradient();
  }
  problem.set_point(lambda, trajectory.back());
  Vector<S> a = problem.val_gradient();
  problem.val_direct_gradient(out.direct);  // the direct term at w_i
  out.hypergradient = out.direct;
  Vector<S> mixed, Ha;
  out.status = SolverStatus::Converged;
  for (Index t = steps - 1; t >= 0; --t) {
    problem.set_point(lambda, trajectory[static_cast<std::size_t>(t)]);
    problem.mixed_product(a, mixed);
    out.hypergradient.noalias() -= a_step * mixed;
    problem.hvp(a, Ha);
    ++out.hvps;
    a.noalias() -= a_step * Ha;
    if (!a.allFinite()) {
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

template class HypergradientEngine<float>;
template class HypergradientEngine<double>;

}  // namespace ift
