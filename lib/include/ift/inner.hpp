// Inner-problem solvers: w*(λ) = argmin_w L_T(λ, w).
//
//   newton_solve     Newton with the dense Hessian and Cholesky (D² memory, D³/3 flops per step)
//   newton_cg_solve  truncated Newton / Newton-CG: CG on the matrix-free HVP (header-only, generic
//                    over any generic::HypergradientProblem: Eigen vectors and LibTorch tensors)
//   lbfgs_solve      L-BFGS from LBFGSpp (gradients only)
//
// Every solver updates w in place, leaves the problem at (λ, w) on return, and reports honestly
// in InnerResult: converged is true only when ||∇_w L_T||₂ < gradient_tolerance at the returned
// w; otherwise message says why (iteration cap, no decrease at the loss's rounding floor,
// non-finite values). No solver returns NaN silently.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>

#include "ift/generic/hypergradient.hpp"
#include "ift/linalg/cg.hpp"
#include "ift/linalg/lbfgs_inverse.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/vector_space.hpp"
#include "ift/problem.hpp"

namespace ift {

/// Newton's method with the exact (dense) Hessian and an Armijo backtracking line search
/// (DESIGN.md P1: pure Newton steps can cycle on this problem). Where the Hessian is not positive
/// definite, μI is added (Levenberg) until Cholesky succeeds, so every step is a descent step.
struct NewtonParams {
  double gradient_tolerance = 1e-10;  ///< stop when ||∇_w L_T||₂ < this; > 0
  Index max_iterations = 100;         ///< ≥ 1
  double armijo = 1e-4;               ///< sufficient-decrease constant c₁ in (0, 1)
  double backtrack = 0.5;             ///< step shrink factor in (0, 1)
  Index max_backtracks = 60;          ///< ≥ 1
  void check() const;
};

struct InnerResult {
  bool converged = false;
  Index iterations = 0;
  double gradient_norm = 0;  ///< ||∇_w L_T||₂ at the returned w
  double loss = 0;           ///< L_T at the returned w
  std::string message;
  Index gradients = 0;  ///< ∇_w L_T evaluations (line-search ones included)
  Index hvps = 0;       ///< Hessian-vector products (0 for the dense and gradient-only solvers)
};

/// Runs Newton from w (updated in place) at λ; leaves the problem at (λ, w). Calls `progress`
/// (if given) after every iteration with (iteration, loss, gradient norm).
template <class S>
InnerResult newton_solve(BilevelProblem<S>& problem, const Vector<S>& lambda, Vector<S>& w,
                         const NewtonParams& params = {},
                         const std::function<void(Index, double, double)>& progress = {});

// ---- Newton-CG ----------------------------------------------------------------------------------

/// Truncated Newton (Newton-CG; Nocedal & Wright, Numerical Optimization, Algorithm 7.1): each
/// direction solves H d = −∇L_T by conjugate gradients on the matrix-free HVP, then an Armijo
/// backtracking line search from the unit step.
struct NewtonCgParams {
  double gradient_tolerance = 1e-10;  ///< stop when ||∇_w L_T||₂ < this; > 0
  Index max_iterations = 100;         ///< Newton iterations, ≥ 1
  /// The inner CG (ift/linalg/cg.hpp). max_iterations ≥ 1 HVPs per direction (200 by default);
  /// tolerance: the relative residual ||H d + g|| / ||g|| asked of every direction without
  /// `forcing`, and the floor of the forcing term with it (1e-10 by default); reorthogonalize:
  /// Lanczos form with full reorthogonalisation (on by default: reproducible directions at κ in
  /// the thousands, DESIGN.md §5).
  CgParams cg = [] {
    CgParams p;
    p.max_iterations = 200;
    p.tolerance = 1e-10;
    p.reorthogonalize = true;
    return p;
  }();
  /// Inexact Newton with the Eisenstat–Walker forcing term (choice 2, γ = 0.9, exponent 2,
  /// with their safeguard; SIAM J. Sci. Comput. 17, 1996): CG stops at relative residual
  /// η_k = max(cg.tolerance, min(forcing_max, 0.9 (||g_k|| / ||g_{k−1}||)²)), so far from w*
  /// a direction costs a few HVPs, and near it η_k shrinks with the quadratic convergence.
  /// The stopping test is ||g|| < gradient_tolerance either way. Measured on P1 (n = 1,000,
  /// to ||g|| < 7e-15): 323 HVPs in 15 iterations, against 959 in 11 with forcing = false.
  bool forcing = true;
  double forcing_max = 0.5;  ///< η_0 and the cap of η_k, in (0, 1)
  double armijo = 1e-4;      ///< sufficient-decrease constant c₁ in (0, 1)
  double backtrack = 0.5;    ///< step shrink factor in (0, 1)
  Index max_backtracks = 60; ///< ≥ 1
  void check() const;
};

namespace detail {
inline std::string format_e(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3e", x);
  return buf;
}

/// The iterate bookkeeping every inner solver shares: records iteration `it` (its L_T and
/// ||∇L_T||) in `result`, reports it to `progress`, and says whether the solver stops there:
/// non-finite values (a message, converged = false), ||∇L_T|| below `tolerance` (converged), or
/// the iteration cap. `name` starts the message and `suffix` ends it.
inline bool stop_at_iterate(InnerResult& result, const char* name, Index it, double loss,
                            double gradient_norm, double tolerance, Index max_iterations,
                            const std::function<void(Index, double, double)>& progress,
                            const std::string& suffix = "") {
  result.gradient_norm = gradient_norm;
  result.loss = loss;
  result.iterations = it;
  if (progress) progress(it, loss, gradient_norm);
  if (!std::isfinite(loss) || !std::isfinite(gradient_norm)) {
    result.message = std::string(name) + ": loss or gradient not finite at iteration " +
                     std::to_string(it);
    return true;
  }
  if (gradient_norm < tolerance) {
    result.converged = true;
    result.message = std::string(name) + " converged: ||grad|| = " + format_e(gradient_norm) + suffix;
    return true;
  }
  if (it == max_iterations) {
    result.message = std::string(name) + " stopped after " + std::to_string(it) +
                     " iterations with ||grad|| = " + format_e(gradient_norm) + suffix;
    return true;
  }
  return false;
}

/// The Armijo backtracking line search every Newton-type inner solver shares: trial points
/// w + t d for t = 1, backtrack, backtrack², … (at most max_backtracks), accepting the first with
/// L_T ≤ loss + armijo · t · slope (slope = ∇L_Tᵀd < 0), or, near the optimum where that decrease
/// falls below the loss's rounding error (64 ε max(1, |L_T|)) and cannot be decided, the first
/// that keeps the loss to rounding and lowers ||∇L_T|| below result.gradient_norm. Returns true
/// with the problem at (λ, trial); false with the problem back at (λ, w).
template <class P, class V>
bool armijo_backtrack(P& problem, const V& lambda, const V& w, const V& direction, double loss,
                      double slope, double armijo, double backtrack, Index max_backtracks,
                      InnerResult& result, V& trial) {
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  const double floor =
      64 * static_cast<double>(std::numeric_limits<S>::epsilon()) * std::max(1.0, std::abs(loss));
  double step = 1;
  for (Index b = 0; b < max_backtracks; ++b, step *= backtrack) {
    VS::assign(trial, w);
    VS::axpy(static_cast<S>(step), direction, trial);
    problem.set_point(lambda, trial);
    const double trial_loss = static_cast<double>(problem.train_loss());
    if (!std::isfinite(trial_loss)) continue;
    if (trial_loss <= loss + armijo * step * slope) return true;
    if (trial_loss <= loss + floor) {
      ++result.gradients;
      if (static_cast<double>(VS::norm(problem.train_gradient())) < result.gradient_norm)
        return true;
    }
  }
  problem.set_point(lambda, w);
  return false;
}
}  // namespace detail

/// Runs Newton-CG from w (updated in place) at λ on any problem satisfying
/// generic::HypergradientProblem that also provides train_loss(); leaves the problem at (λ, w).
/// Calls `progress` (if given) after every iteration with (iteration, loss, gradient norm).
///
/// Directions: CG on H + μI (μ = 0 while H is positive definite along the Krylov space). Where CG
/// meets negative curvature (pᵀHp ≤ 0), μ is raised (Levenberg, like newton_solve's shift: from
/// 1e-6 ||Hg||/||g||, ×10 per retry) and the direction solved again; after each accepted step μ
/// falls tenfold, to 0 below its starting value, so near a minimum the steps are Newton steps.
/// Where no direction of descent results (non-finite products, μ beyond 1e12 ||Hg||/||g||) the
/// step falls back to steepest descent −t g, t = ||g||² / |gᵀHg|. The numbers of shifts and
/// fallbacks are in the message.
/// Line search: Armijo from the unit step; where the decrease c₁·t·gᵀd falls below the loss's
/// rounding error (64 ε max(1, |L_T|)), a step that leaves the loss unchanged to rounding and
/// lowers ||g|| is accepted (as newton_solve does).
template <class P>
  requires generic::HypergradientProblem<P> && requires(const P& p) {
    { p.train_loss() } -> std::convertible_to<double>;
  }
InnerResult newton_cg_solve(P& problem, const generic::ProblemVector<P>& lambda,
                            generic::ProblemVector<P>& w, const NewtonCgParams& params = {},
                            const std::function<void(Index, double, double)>& progress = {}) {
  using V = generic::ProblemVector<P>;
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  params.check();
  InnerResult result;
  require(VS::size(w) == problem.num_params(),
          "newton_cg_solve: w has " + std::to_string(VS::size(w)) + " entries, the problem " +
              std::to_string(problem.num_params()));
  problem.set_point(lambda, w);
  // H + μI: μ = 0 unless CG meets negative curvature (Levenberg, as newton_solve).
  double mu = 0, mu_floor = 0, mu_cap = 0;
  const FunctionOperator<V> hessian(problem.num_params(), [&problem, &mu](const V& x, V& y) {
    problem.hvp(x, y);
    if (mu != 0) VS::axpy(static_cast<S>(mu), x, y);
  });
  V g = VS::zeros_like(w), rhs = VS::zeros_like(w), trial = VS::zeros_like(w);
  double eta = params.forcing_max, previous_norm = 0;
  Index fallbacks = 0, shifts = 0;
  const auto note = [&] {
    std::string s;
    if (shifts > 0)
      s += " (" + std::to_string(shifts) + " Levenberg shifts where CG met negative curvature)";
    if (fallbacks > 0)
      s += " (" + std::to_string(fallbacks) +
           " steepest-descent fallbacks where CG gave no descent direction)";
    return s;
  };
  for (Index it = 0;; ++it) {
    const double loss = static_cast<double>(problem.train_loss());
    VS::assign(g, problem.train_gradient());
    ++result.gradients;
    if (detail::stop_at_iterate(result, "Newton-CG", it, loss, static_cast<double>(VS::norm(g)),
                                params.gradient_tolerance, params.max_iterations, progress,
                                note()))
      return result;
    // The forcing term: how accurately this direction is solved.
    CgParams cg = params.cg;
    if (params.forcing) {
      if (it > 0) {
        const double ratio = result.gradient_norm / previous_norm;
        double next = 0.9 * ratio * ratio;
        const double safeguard = 0.9 * eta * eta;
        if (safeguard > 0.1) next = std::max(next, safeguard);
        eta = std::min(params.forcing_max, next);
      }
      cg.tolerance = std::max(params.cg.tolerance, eta);
    }
    previous_norm = result.gradient_norm;
    VS::assign(rhs, g);
    VS::scale(S(-1), rhs);
    SolveResult<V> solve;
    double slope = 0;
    for (;;) {
      solve = conjugate_gradient(hessian, rhs, cg);
      result.hvps += solve.hvps;
      slope = static_cast<double>(VS::dot(g, solve.x));
      const bool descent = std::isfinite(slope) && slope < 0;
      if (solve.status != SolverStatus::NegativeCurvature && descent) break;
      if (solve.status == SolverStatus::NegativeCurvature) {
        // H is not positive definite here: add μI (μ from 1e-6 of the curvature scale
        // ||Hg|| / ||g||, one HVP, ×10 per retry) until CG sees a positive definite operator.
        if (mu_floor == 0) {
          problem.hvp(g, trial);
          ++result.hvps;
          const double scale = static_cast<double>(VS::norm(trial)) / result.gradient_norm;
          const double base = std::isfinite(scale) && scale > 0 ? scale : 1.0;
          mu_floor = 1e-6 * base;
          mu_cap = 1e12 * base;
        }
        mu = mu == 0 ? mu_floor : 10 * mu;
        ++shifts;
        if (mu <= mu_cap) continue;
        mu = 0;
      }
      if (descent) break;
      // No descent direction (non-finite products, or no shift made H positive definite):
      // steepest descent, d = −t g with t = ||g||² / |gᵀHg| (one HVP), the step at which the
      // curvature term of the quadratic model matches its linear term (the Cauchy step where
      // gᵀHg > 0); t = 1 where gᵀHg is 0 or not finite.
      problem.hvp(g, trial);
      ++result.hvps;
      const double curvature = static_cast<double>(VS::dot(g, trial));
      const double gg = result.gradient_norm * result.gradient_norm;
      const double t = std::isfinite(curvature) && curvature != 0 ? gg / std::abs(curvature) : 1.0;
      VS::assign(solve.x, rhs);
      VS::scale(static_cast<S>(t), solve.x);
      slope = -t * gg;
      ++fallbacks;
      break;
    }
    const V& direction = solve.x;
    const bool accepted =
        detail::armijo_backtrack(problem, lambda, w, direction, loss, slope, params.armijo,
                                 params.backtrack, params.max_backtracks, result, trial);
    if (!accepted) {
      result.message = "Newton-CG: line search found no decrease at ||grad|| = " +
                       detail::format_e(result.gradient_norm) + " (precision floor; CG " +
                       to_string(solve.status) + ")" + note();
      return result;
    }
    VS::assign(w, trial);
    if (mu != 0) mu = mu / 10 < mu_floor ? 0.0 : mu / 10;  // back towards the pure Newton step
  }
}

// ---- L-BFGS -------------------------------------------------------------------------------------

/// L-BFGS (Nocedal 1980; Liu & Nocedal 1989) by LBFGSpp (Debian liblbfgspp-dev) with the
/// library's own line-search policy (LBFGSpp's LineSearch template parameter): bracketing for
/// the weak Wolfe conditions, and at the loss's rounding floor, where Armijo's decrease is below
/// 64 ε max(1, |L_T|) and cannot be decided, the approximate Wolfe conditions of Hager & Zhang
/// (derivatives only; they keep sᵀy > 0 so the BFGS update stays defined). Without them L-BFGS
/// stalls near ||g|| ~ 1e-9 on P1. The gradient test is absolute, ||∇_w L_T||₂ <
/// gradient_tolerance (LBFGSpp's relative test is switched off). L-BFGS converges linearly to
/// superlinearly, so unlike Newton its final ||g|| sits just under the tolerance.
struct LbfgsParams {
  double gradient_tolerance = 1e-10;  ///< stop when ||∇_w L_T||₂ < this; > 0
  Index max_iterations = 1000;        ///< L-BFGS iterations, ≥ 1
  Index memory = 10;                  ///< correction pairs kept (m), ≥ 1
  double armijo = 1e-4;               ///< sufficient-decrease constant, in (0, 0.5)
  double wolfe = 0.9;                 ///< curvature constant, in (armijo, 1)
  Index max_linesearch = 40;          ///< trial steps per line search, ≥ 1
  void check() const;
};

/// Runs L-BFGS from w (updated in place) at λ; leaves the problem at (λ, w). Calls `progress`
/// (if given) at the start and after every iteration with (iteration, loss, gradient norm).
///
/// `pairs` (optional; SHINE, generic::SolverState::lbfgs): every accepted step appends its
/// correction pair s = x_{k+1} − x_k, y = g_{k+1} − g_k, computed as LBFGSpp computes the pair it
/// passes to BFGSMat::add_correction (from the same vectors, in the same order), keeping the
/// newest params.memory; pairs already there are kept (a continued solve of the same L_T extends
/// them; clear them when λ changed). LBFGSpp adds every pair (BFGSMat never skips one) except the
/// last, as it stops first: the recorded pairs are its memory at its last direction plus the
/// final step's pair, i.e. the memory its next direction would use, ending at the returned w.
template <class S>
InnerResult lbfgs_solve(BilevelProblem<S>& problem, const Vector<S>& lambda, Vector<S>& w,
                        const LbfgsParams& params = {},
                        const std::function<void(Index, double, double)>& progress = {},
                        LbfgsPairs<Vector<S>>* pairs = nullptr);

}  // namespace ift
