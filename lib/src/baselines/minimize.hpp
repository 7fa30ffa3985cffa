// Private to lib/src/baselines: LBFGSpp's L-BFGS-B with the best evaluated point kept (LBFGSpp
// throws when a line search fails; the best point so far is returned then). Bounds may be ±∞.
#pragma once

#include <LBFGSB.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "ift/core.hpp"

namespace ift::baselines::detail {

/// Minimises f(x, grad) from x inside [lb, ub]; x becomes the best point evaluated; returns
/// f there (+∞ when no evaluation was finite).
template <class F>
double minimize_in_box(F&& f, Vector<double>& x, const Vector<double>& lb,
                       const Vector<double>& ub, Index max_iterations, double epsilon = 1e-8) {
  double best = std::numeric_limits<double>::infinity();
  Vector<double> best_x = x;
  auto tracked = [&](const Vector<double>& z, Vector<double>& g) {
    const double value = f(z, g);
    if (std::isfinite(value) && value < best) {
      best = value;
      best_x = z;
    }
    if (!std::isfinite(value) || !g.allFinite()) {
      g.setZero(z.size());
      return std::numeric_limits<double>::max();
    }
    return value;
  };
  LBFGSpp::LBFGSBParam<double> param;
  param.max_iterations = static_cast<int>(max_iterations);
  param.epsilon = epsilon;
  param.epsilon_rel = epsilon;
  param.max_linesearch = 40;
  LBFGSpp::LBFGSBSolver<double> solver(param);
  double fx = 0;
  try {
    solver.minimize(tracked, x, fx, lb, ub);
  } catch (const std::exception&) {
    // a line search that found no acceptable step: keep the best point evaluated
  }
  // LBFGSpp's iterates may leave the box by rounding (1e-18 outside): project back.
  x = best_x.cwiseMax(lb).cwiseMin(ub);
  return best;
}

}  // namespace ift::baselines::detail
