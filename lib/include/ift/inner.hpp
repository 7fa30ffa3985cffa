// Inner-problem solvers: w*(λ) = argmin_w L_T(λ, w).
#pragma once

#include <functional>
#include <string>

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
  double gradient_norm = 0;
  double loss = 0;
  std::string message;
};

/// Runs Newton from w (updated in place) at λ; leaves the problem at (λ, w). Calls `progress`
/// (if given) after every iteration with (iteration, loss, gradient norm).
template <class S>
InnerResult newton_solve(BilevelProblem<S>& problem, const Vector<S>& lambda, Vector<S>& w,
                         const NewtonParams& params = {},
                         const std::function<void(Index, double, double)>& progress = {});

}  // namespace ift
