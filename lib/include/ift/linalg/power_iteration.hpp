// Power iteration (von Mises 1929) for the largest-magnitude eigenvalue of a symmetric
// operator. Used to pick the Neumann step size α = safety / λ_max (Lorraine et al. 2020).
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>

#include "ift/core.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

struct PowerIterationParams {
  /// Maximum number of operator applications. Default 100, valid >= 1.
  Index max_iterations = 100;
  /// Stop when |ρ_k − ρ_{k−1}| <= tolerance · |ρ_k| for the Rayleigh quotient ρ. Default 1e-6,
  /// valid >= 0.
  double tolerance = 1e-6;
  /// Seed of the deterministic start vector (VectorSpace::fill_random). Default 42.
  std::uint64_t seed = 42;

  void check() const {
    require(max_iterations >= 1, "PowerIterationParams::max_iterations must be >= 1");
    require(tolerance >= 0 && std::isfinite(tolerance),
            "PowerIterationParams::tolerance must be finite and >= 0");
  }
};

struct PowerIterationResult {
  /// Rayleigh quotient of the final vector: the signed eigenvalue of largest magnitude. For a
  /// positive semidefinite operator it approaches λ_max from below.
  double eigenvalue = 0;
  Index iterations = 0;
  Index hvps = 0;
  SolverStatus status = SolverStatus::NumericalIssue;
  std::string message;
};

/// Largest-magnitude eigenvalue of a symmetric operator. `prototype` only supplies the shape
/// (and, for tensors, dtype and device) of the work vectors; its values are not read. Status:
/// Converged when the Rayleigh quotient settled, MaxIterations otherwise (e.g. ±λ pairs or a
/// tiny spectral gap), NumericalIssue on non-finite values. Two work vectors, allocated once.
template <LinearOperator Op>
PowerIterationResult power_iteration(const Op& A, const typename Op::VectorType& prototype,
                                     PowerIterationParams params = {}) {
  using V = typename Op::VectorType;
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  params.check();
  require(A.rows() == A.cols(), "power_iteration: operator must be square");

  PowerIterationResult result;
  if (A.rows() == 0) {
    result.status = SolverStatus::Converged;
    result.message = "empty operator";
    return result;
  }
  require(VS::size(prototype) == A.cols(), "power_iteration: prototype has the wrong size");
  V v = VS::zeros_like(prototype);
  V w = VS::zeros_like(prototype);
  VS::fill_random(v, params.seed);
  VS::scale(S(1) / VS::norm(v), v);

  double previous = 0;
  for (Index k = 0; k < params.max_iterations; ++k) {
    A.apply(v, w);
    ++result.hvps;
    ++result.iterations;
    const double rho = static_cast<double>(VS::dot(v, w));  // ||v|| = 1
    const double norm_w = static_cast<double>(VS::norm(w));
    if (!std::isfinite(rho) || !std::isfinite(norm_w)) {
      result.status = SolverStatus::NumericalIssue;
      result.message = "non-finite operator output at iteration " + std::to_string(k);
      return result;
    }
    result.eigenvalue = rho;
    if (norm_w == 0) {  // v in the null space; with a random start, A is (numerically) zero
      result.status = SolverStatus::Converged;
      result.message = "operator maps the start vector to zero";
      return result;
    }
    if (k > 0 && std::abs(rho - previous) <= params.tolerance * std::abs(rho)) {
      result.status = SolverStatus::Converged;
      return result;
    }
    previous = rho;
    VS::assign(v, w);
    VS::scale(static_cast<S>(1.0 / norm_w), v);
  }
  result.status = SolverStatus::MaxIterations;
  result.message = "Rayleigh quotient still changing after " +
                   std::to_string(params.max_iterations) + " iterations";
  return result;
}

/// Convenience for operators on Eigen vectors, which need no prototype.
template <LinearOperator Op>
  requires std::same_as<typename Op::VectorType, Vector<typename Op::Scalar>>
PowerIterationResult power_iteration(const Op& A, PowerIterationParams params = {}) {
  const Vector<typename Op::Scalar> prototype = Vector<typename Op::Scalar>::Zero(A.cols());
  return power_iteration(A, prototype, params);
}

}  // namespace ift
