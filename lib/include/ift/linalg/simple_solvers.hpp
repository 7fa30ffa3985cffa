// The two trivial inverse approximations of DESIGN.md §1.
#pragma once

#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

/// identity: v = g (T1–T2, Luketina et al. 2016), i.e. H⁻¹ ≈ I: Neumann with no powers up to the
/// factor α (neumann(k = 0, α) = α g). 0 HVPs. Status Converged means "computed exactly as
/// defined", not that H v = g holds; relative_residual is left empty (it would cost an HVP).
template <class V>
SolveResult<V> identity_solve(const V& g) {
  using VS = VectorSpace<V>;
  SolveResult<V> result;
  result.x = VS::zeros_like(g);
  if (!VS::all_finite(g)) {
    result.status = SolverStatus::NumericalIssue;
    result.message = "identity: g is not finite; x = 0";
    return result;
  }
  VS::assign(result.x, g);
  result.status = SolverStatus::Converged;
  result.message = "identity approximation H⁻¹ ≈ I (no solve)";
  return result;
}

/// zero: v = 0, which drops the indirect term of the hypergradient. 0 HVPs; the relative
/// residual ||H·0 − g|| / ||g|| is 1 (0 when g = 0), known for free.
template <class V>
SolveResult<V> zero_solve(const V& g) {
  using VS = VectorSpace<V>;
  SolveResult<V> result;
  result.x = VS::zeros_like(g);
  result.status = SolverStatus::Converged;
  result.relative_residual = VS::norm(g) > 0 ? 1.0 : 0.0;
  result.message = "zero approximation v = 0 (indirect term dropped)";
  return result;
}

}  // namespace ift
