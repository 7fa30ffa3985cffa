// Solver outcome and diagnostics shared by every inverse-Hessian approximation.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ift/core.hpp"

namespace ift {

/// Why a solver stopped. Only Converged means "the method did what it was asked to the
/// requested accuracy"; hitting an iteration cap is never reported as success.
enum class SolverStatus {
  Converged,            ///< tolerance met (or the method's closed form was computed exactly)
  MaxIterations,        ///< iteration/term budget exhausted before the tolerance: truncated
  Diverged,             ///< iterates grew without bound (e.g. Neumann with α > 2/λ_max)
  NegativeCurvature,    ///< CG met pᵀAp ≤ 0: the operator is not positive definite
  NotPositiveDefinite,  ///< a factorisation found negative pivots / the operator is indefinite
  NumericalIssue,       ///< non-finite values, singular matrix, invalid damping
  MissingState,         ///< the method reuses state that is not there (shine: no L-BFGS pairs)
};

/// Stable lower-case names used in CSV files and logs.
constexpr const char* to_string(SolverStatus status) {
  switch (status) {
    case SolverStatus::Converged: return "converged";
    case SolverStatus::MaxIterations: return "max-iterations";
    case SolverStatus::Diverged: return "diverged";
    case SolverStatus::NegativeCurvature: return "negative-curvature";
    case SolverStatus::NotPositiveDefinite: return "not-positive-definite";
    case SolverStatus::NumericalIssue: return "numerical-issue";
    case SolverStatus::MissingState: return "missing-state";
  }
  return "unknown";
}

/// Result of one approximate solve v ≈ H⁻¹ g. `x` is always finite; when a method produced
/// non-finite values, `x` is its last finite iterate and `status` is NumericalIssue or Diverged.
template <class V>
struct SolveResult {
  V x;                                       ///< the approximation to H⁻¹ g
  SolverStatus status = SolverStatus::NumericalIssue;
  Index iterations = 0;                      ///< method iterations (CG steps, Neumann terms)
  Index hvps = 0;                            ///< every operator application, all included
  std::optional<double> relative_residual;   ///< ||H x − g|| / ||g|| when known
  std::vector<double> residual_history;      ///< per-iteration relative residual, if recorded
  double alpha = 0;                          ///< Neumann step size actually used (0 otherwise)
  std::optional<double> suggested_alpha;     ///< a safer step size after divergence
  std::string message;                       ///< human-readable explanation of the status
};

}  // namespace ift
