#include "ift/inner.hpp"

#include <Eigen/Cholesky>
#include <cmath>
#include <cstdio>
#include <limits>

namespace ift {

namespace {
std::string format(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3e", x);
  return buf;
}
}  // namespace

void NewtonParams::check() const {
  require(gradient_tolerance > 0, "NewtonParams::gradient_tolerance must be > 0");
  require(max_iterations >= 1, "NewtonParams::max_iterations must be >= 1");
  require(armijo > 0 && armijo < 1, "NewtonParams::armijo must lie in (0, 1)");
  require(backtrack > 0 && backtrack < 1, "NewtonParams::backtrack must lie in (0, 1)");
  require(max_backtracks >= 1, "NewtonParams::max_backtracks must be >= 1");
}

template <class S>
InnerResult newton_solve(BilevelProblem<S>& problem, const Vector<S>& lambda, Vector<S>& w,
                         const NewtonParams& params,
                         const std::function<void(Index, double, double)>& progress) {
  params.check();
  InnerResult result;
  problem.set_point(lambda, w);
  Matrix<S> H;
  Eigen::LLT<Matrix<S>> llt;
  Vector<S> direction, trial;
  for (Index it = 0;; ++it) {
    const double loss = static_cast<double>(problem.train_loss());
    const Vector<S> g = problem.train_gradient();
    result.gradient_norm = static_cast<double>(g.norm());
    result.loss = loss;
    result.iterations = it;
    if (progress) progress(it, loss, result.gradient_norm);
    if (!std::isfinite(loss) || !std::isfinite(result.gradient_norm)) {
      result.message = "Newton: loss or gradient not finite at iteration " + std::to_string(it);
      return result;
    }
    if (result.gradient_norm < params.gradient_tolerance) {
      result.converged = true;
      result.message = "Newton converged: ||grad|| = " + format(result.gradient_norm);
      return result;
    }
    if (it == params.max_iterations) {
      result.message = "Newton stopped after " + std::to_string(it) +
                       " iterations with ||grad|| = " + format(result.gradient_norm);
      return result;
    }
    problem.hessian(H);
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
    double step = 1;
    bool accepted = false;
    for (Index b = 0; b < params.max_backtracks; ++b, step *= params.backtrack) {
      trial = w + static_cast<S>(step) * direction;
      problem.set_point(lambda, trial);
      const double trial_loss = static_cast<double>(problem.train_loss());
      if (!std::isfinite(trial_loss)) continue;
      if (trial_loss <= loss + params.armijo * step * slope) {
        accepted = true;
        break;
      }
      // Near the optimum the decrease c₁·slope falls below the loss's rounding error and
      // Armijo cannot be decided; accept the step when the loss is unchanged to rounding and
      // the gradient norm falls (the quadratic-convergence regime of Newton).
      const double floor = 64 * std::numeric_limits<S>::epsilon() * std::max(1.0, std::abs(loss));
      if (trial_loss <= loss + floor &&
          static_cast<double>(problem.train_gradient().norm()) < result.gradient_norm) {
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      // No sufficient decrease at any step: at the precision floor of the loss. Keep the best
      // point and report the gradient norm reached.
      problem.set_point(lambda, w);
      result.message = "Newton: line search found no decrease at ||grad|| = " +
                       format(result.gradient_norm) + " (precision floor)";
      return result;
    }
    w = trial;
  }
}

template InnerResult newton_solve<float>(BilevelProblem<float>&, const Vector<float>&,
                                         Vector<float>&, const NewtonParams&,
                                         const std::function<void(Index, double, double)>&);
template InnerResult newton_solve<double>(BilevelProblem<double>&, const Vector<double>&,
                                          Vector<double>&, const NewtonParams&,
                                          const std::function<void(Index, double, double)>&);

}  // namespace ift
