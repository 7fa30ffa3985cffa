#include "ift/inner.hpp"

#include <Eigen/Cholesky>
#include <LBFGS.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace ift {

void NewtonParams::check() const {
  require(gradient_tolerance > 0, "NewtonParams::gradient_tolerance must be > 0");
  require(max_iterations >= 1, "NewtonParams::max_iterations must be >= 1");
  require(armijo > 0 && armijo < 1, "NewtonParams::armijo must lie in (0, 1)");
  require(backtrack > 0 && backtrack < 1, "NewtonParams::backtrack must lie in (0, 1)");
  require(max_backtracks >= 1, "NewtonParams::max_backtracks must be >= 1");
}

void NewtonCgParams::check() const {
  require(gradient_tolerance > 0 && std::isfinite(gradient_tolerance),
          "NewtonCgParams::gradient_tolerance must be finite and > 0");
  require(max_iterations >= 1, "NewtonCgParams::max_iterations must be >= 1");
  require(cg.max_iterations >= 1, "NewtonCgParams::cg.max_iterations must be >= 1");
  require(cg.tolerance >= 0 && cg.tolerance < 1,
          "NewtonCgParams::cg.tolerance must lie in [0, 1)");
  require(forcing_max > 0 && forcing_max < 1, "NewtonCgParams::forcing_max must lie in (0, 1)");
  require(armijo > 0 && armijo < 1, "NewtonCgParams::armijo must lie in (0, 1)");
  require(backtrack > 0 && backtrack < 1, "NewtonCgParams::backtrack must lie in (0, 1)");
  require(max_backtracks >= 1, "NewtonCgParams::max_backtracks must be >= 1");
}

void LbfgsParams::check() const {
  require(gradient_tolerance > 0 && std::isfinite(gradient_tolerance),
          "LbfgsParams::gradient_tolerance must be finite and > 0");
  require(max_iterations >= 1, "LbfgsParams::max_iterations must be >= 1");
  require(max_iterations <= std::numeric_limits<int>::max(),
          "LbfgsParams::max_iterations must fit in an int (LBFGSpp)");
  require(memory >= 1 && memory <= std::numeric_limits<int>::max(),
          "LbfgsParams::memory must be >= 1 (and fit in an int)");
  require(armijo > 0 && armijo < 0.5, "LbfgsParams::armijo must lie in (0, 0.5)");
  require(wolfe > armijo && wolfe < 1, "LbfgsParams::wolfe must lie in (armijo, 1)");
  require(max_linesearch >= 1 && max_linesearch <= std::numeric_limits<int>::max(),
          "LbfgsParams::max_linesearch must be >= 1 (and fit in an int)");
}

template <class S>
InnerResult newton_solve(BilevelProblem<S>& problem, const Vector<S>& lambda, Vector<S>& w,
                         const NewtonParams& params,
                         const std::function<void(Index, double, double)>& progress) {
  params.check();
  auto* dense = dynamic_cast<capability::DenseHessian<S>*>(&problem);
  require(dense != nullptr,
          "newton: this problem forms no dense Hessian (capability::DenseHessian); use newton-cg");
  InnerResult result;
  problem.set_point(lambda, w);
  Matrix<S> H;
  Eigen::LLT<Matrix<S>> llt;
  Vector<S> direction, trial;
  for (Index it = 0;; ++it) {
    const double loss = static_cast<double>(problem.train_loss());
    const Vector<S> g = problem.train_gradient();
    ++result.gradients;
    if (detail::stop_at_iterate(result, "Newton", it, loss, static_cast<double>(g.norm()),
                                params.gradient_tolerance, params.max_iterations, progress))
      return result;
    dense->hessian(H);
    llt.compute(H);
    double mu = 0;
    while (llt.info() != Eigen::Success) {
      // Levenberg shift until positive definite (only away from a minimum of a non-convex L_T).
      mu = mu == 0 ? 1e-6 * std::max(1.0, static_cast<double>(H.diagonal().cwiseAbs().maxCoeff()))
                   : 10 * mu;
      Matrix<S> shifted = H;
      shifted.diagonal().array() += static_cast<S>(mu);
      llt.compute(shifted);
      if (mu > 1e12) {
        result.message = "Newton: Hessian could not be made positive definite";
        return result;
      }
    }
    direction = -llt.solve(g);
    const double slope = static_cast<double>(g.dot(direction));
    const bool accepted =
        detail::armijo_backtrack(problem, lambda, w, direction, loss, slope, params.armijo,
                                 params.backtrack, params.max_backtracks, result, trial);
    if (!accepted) {
      // No sufficient decrease at any step: at the precision floor of the loss. Keep the best
      // point (the problem is back at it) and report the gradient norm reached.
      result.message = "Newton: line search found no decrease at ||grad|| = " +
                       detail::format_e(result.gradient_norm) + " (precision floor)";
      return result;
    }
    w = trial;
  }
}

namespace {

/// Thrown by the line search when it finds no acceptable step: lbfgs_solve then returns the last
/// accepted point.
struct LineSearchFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The objective handed to LBFGSpp: f(x, grad) moves the problem to (λ, x). Remembers the last
/// point accepted by the line search (LBFGSpp's x is a rejected trial point after a failure).
template <class S>
struct LbfgsObjective {
  BilevelProblem<S>& problem;
  const Vector<S>& lambda;
  InnerResult& result;
  const std::function<void(Index, double, double)>& progress;
  Vector<S> accepted;
  double accepted_loss = 0, accepted_norm = 0;
  Index iterations = 0;
  LbfgsPairs<Vector<S>>* pairs = nullptr;  // SHINE: the correction pairs, if recorded
  Index memory = 0;

  S operator()(const Vector<S>& x, Vector<S>& grad) {
    problem.set_point_with_gradient(lambda, x);
    grad = problem.train_gradient();
    ++result.gradients;
    return problem.train_loss();
  }
  /// The line search accepted x (from xp, where the gradient was grad_p): LBFGSpp's next
  /// correction pair is (x − xp, grad − grad_p), the same expressions on the same vectors.
  void accept(const Vector<S>& x, S loss, const Vector<S>& grad, const Vector<S>& xp,
              const Vector<S>& grad_p) {
    if (pairs != nullptr) pairs->push(x - xp, grad - grad_p, x, memory);
    accepted = x;
    accepted_loss = static_cast<double>(loss);
    accepted_norm = static_cast<double>(grad.norm());
    ++iterations;
    if (progress) progress(iterations, accepted_loss, accepted_norm);
  }
};

/// A line-search policy for LBFGSpp::LBFGSSolver: bracketing bisection (expansion by 2 until a
/// bracket exists) for the weak Wolfe conditions (Armijo with param.ftol, curvature with
/// param.wolfe), which guarantee sᵀy > 0. Where the Armijo decrease falls below the loss's
/// rounding error, a step is accepted when the loss is unchanged to rounding (64 ε max(1, |f|)),
/// ||g|| falls and sᵀy > 0 (the precision-floor rule of newton_solve). Non-finite trial values
/// shrink the step. Failure throws LineSearchFailure (LBFGSpp's own policies throw too).
template <class S>
class FloorWolfeLineSearch {
  using Vec = Eigen::Matrix<S, Eigen::Dynamic, 1>;

 public:
  template <class Objective>
  static void LineSearch(Objective& f, S& fx, Vec& x, Vec& grad, S& step, const Vec& drt,
                         const Vec& xp, const LBFGSpp::LBFGSParam<S>& param) {
    const S fx_init = fx;
    const S dg_init = grad.dot(drt);
    const Vec grad_init = grad;  // LBFGSpp's m_gradp: the y of the correction pair
    if (!(dg_init < 0))
      throw LineSearchFailure("L-BFGS direction is not a descent direction (gᵀd = " +
                              detail::format_e(static_cast<double>(dg_init)) + ")");
    const S floor = 64 * std::numeric_limits<S>::epsilon() * std::max(S(1), std::abs(fx_init));
    S lo = 0, hi = std::numeric_limits<S>::infinity();
    for (int i = 0; i < param.max_linesearch; ++i) {
      x.noalias() = xp + step * drt;
      fx = f(x, grad);
      const bool finite = std::isfinite(fx) && grad.allFinite();
      const S dg = finite ? grad.dot(drt) : S(0);
      if (!finite || fx > fx_init + param.ftol * step * dg_init) {
        // Precision floor: the approximate Wolfe conditions of Hager & Zhang (SIAM J. Optim. 16,
        // 2005), σ φ'(0) ≤ φ'(t) ≤ (2c₁ − 1) φ'(0) with the loss unchanged to rounding (Armijo
        // for a quadratic φ written with derivatives only; they imply sᵀy > 0).
        if (finite && fx <= fx_init + floor && dg >= param.wolfe * dg_init &&
            dg <= (2 * param.ftol - 1) * dg_init) {
          f.accept(x, fx, grad, xp, grad_init);
          return;
        }
        hi = step;
      } else if (dg < param.wolfe * dg_init) {
        lo = step;
      } else {
        f.accept(x, fx, grad, xp, grad_init);
        return;
      }
      step = std::isfinite(hi) ? (lo + hi) / 2 : 2 * step;
      if (!(step > 0) || !std::isfinite(step) || step == lo || step == hi) break;
    }
    throw LineSearchFailure("L-BFGS line search found no acceptable step");
  }
};

}  // namespace

template <class S>
InnerResult lbfgs_solve(BilevelProblem<S>& problem, const Vector<S>& lambda, Vector<S>& w,
                        const LbfgsParams& params,
                        const std::function<void(Index, double, double)>& progress,
                        LbfgsPairs<Vector<S>>* pairs) {
  params.check();
  InnerResult result;
  require(w.size() == problem.num_params(),
          "lbfgs_solve: w has " + std::to_string(w.size()) + " entries, the problem " +
              std::to_string(problem.num_params()));
  LbfgsObjective<S> objective{problem, lambda, result, progress, w, 0, 0, 0, pairs, params.memory};
  problem.set_point_with_gradient(lambda, w);
  objective.accepted_loss = static_cast<double>(problem.train_loss());
  objective.accepted_norm = static_cast<double>(problem.train_gradient().norm());
  ++result.gradients;
  if (progress) progress(0, objective.accepted_loss, objective.accepted_norm);
  const auto finish = [&](std::string message) {
    w = objective.accepted;
    problem.set_point(lambda, w);
    result.iterations = objective.iterations;
    result.loss = objective.accepted_loss;
    result.gradient_norm = objective.accepted_norm;
    result.converged = std::isfinite(result.loss) &&
                       result.gradient_norm < params.gradient_tolerance;
    result.message = result.converged ? "L-BFGS converged: ||grad|| = " +
                                            detail::format_e(result.gradient_norm)
                                      : std::move(message);
    return result;
  };
  if (!std::isfinite(objective.accepted_loss) || !std::isfinite(objective.accepted_norm))
    return finish("L-BFGS: loss or gradient not finite at the starting point");
  if (objective.accepted_norm < params.gradient_tolerance) return finish("");

  LBFGSpp::LBFGSParam<S> p;
  p.m = static_cast<int>(params.memory);
  // LBFGSpp stops at ||g|| <= epsilon or ||g|| <= epsilon_rel ||x||: absolute test only, strict.
  p.epsilon = std::nextafter(static_cast<S>(params.gradient_tolerance), S(0));
  p.epsilon_rel = 0;
  p.past = 0;
  p.max_iterations = static_cast<int>(params.max_iterations);
  p.linesearch = LBFGSpp::LBFGS_LINESEARCH_BACKTRACKING_WOLFE;
  p.max_linesearch = static_cast<int>(params.max_linesearch);
  p.ftol = static_cast<S>(params.armijo);
  p.wolfe = static_cast<S>(params.wolfe);
  LBFGSpp::LBFGSSolver<S, FloorWolfeLineSearch> solver(p);
  Vector<S> x = w;
  S fx = 0;
  try {
    solver.minimize(objective, x, fx);
  } catch (const LineSearchFailure& e) {
    return finish(std::string(e.what()) + " at ||grad|| = " +
                  detail::format_e(objective.accepted_norm) + " after " +
                  std::to_string(objective.iterations) + " iterations (precision floor)");
  } catch (...) {
    w = objective.accepted;
    problem.set_point(lambda, w);
    throw;
  }
  return finish("L-BFGS stopped after " + std::to_string(objective.iterations) +
                " iterations with ||grad|| = " + detail::format_e(objective.accepted_norm));
}

template InnerResult newton_solve<float>(BilevelProblem<float>&, const Vector<float>&,
                                         Vector<float>&, const NewtonParams&,
                                         const std::function<void(Index, double, double)>&);
template InnerResult newton_solve<double>(BilevelProblem<double>&, const Vector<double>&,
                                          Vector<double>&, const NewtonParams&,
                                          const std::function<void(Index, double, double)>&);
template InnerResult lbfgs_solve<float>(BilevelProblem<float>&, const Vector<float>&,
                                        Vector<float>&, const LbfgsParams&,
                                        const std::function<void(Index, double, double)>&,
                                        LbfgsPairs<Vector<float>>*);
template InnerResult lbfgs_solve<double>(BilevelProblem<double>&, const Vector<double>&,
                                         Vector<double>&, const LbfgsParams&,
                                         const std::function<void(Index, double, double)>&,
                                        LbfgsPairs<Vector<double>>*);

}  // namespace ift

