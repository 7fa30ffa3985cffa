// Extreme eigenvalues and condition number of a symmetric operator: Lanczos through Spectra
// (implicitly restarted, Lehoucq & Sorensen 1996), or power iteration for any vector backend.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <string>

#include <Eigen/Eigenvalues>
#include <Spectra/SymEigsSolver.h>

#include "ift/core.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/linalg/status.hpp"

namespace ift {

struct SpectraParams {
  /// Lanczos basis size (Spectra's ncv), clamped to the operator size. Default 20, valid >= 2.
  Index ncv = 20;
  /// Maximum implicit restarts per eigenvalue (Spectra's maxit). Default 1000, valid >= 1.
  Index max_restarts = 1000;
  /// Spectra's relative accuracy of a Ritz value. Default 1e-10, valid > 0; floored at
  /// 100·eps of the operator's scalar type.
  double tolerance = 1e-10;

  void check() const {
    require(ncv >= 2, "SpectraParams::ncv must be >= 2");
    require(max_restarts >= 1, "SpectraParams::max_restarts must be >= 1");
    require(tolerance > 0 && std::isfinite(tolerance), "SpectraParams::tolerance must be finite and > 0");
  }
};

/// λ_max, λ_min and κ = λ_max / λ_min of a symmetric operator. κ is +∞ when λ_min <= 0 (the
/// status stays Converged: the eigenvalues themselves are fine; the message says so).
struct Spectrum {
  double lambda_max = 0;
  double lambda_min = 0;
  double condition_number = 0;
  SolverStatus status = SolverStatus::NumericalIssue;
  Index hvps = 0;  ///< operator applications, both eigenvalues together
  std::string message;
};

namespace detail {

inline void finish_spectrum(Spectrum& s) {
  if (!std::isfinite(s.lambda_max) || !std::isfinite(s.lambda_min)) {
    s.status = SolverStatus::NumericalIssue;
    s.message += (s.message.empty() ? "" : "; ") + std::string("non-finite eigenvalue estimate");
    s.condition_number = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  if (s.lambda_min > 0) {
    s.condition_number = s.lambda_max / s.lambda_min;
  } else {
    s.condition_number = std::numeric_limits<double>::infinity();
    s.message += (s.message.empty() ? "" : "; ") +
                 std::string("λ_min <= 0: operator is not positive definite, κ = ∞");
  }
}

template <class Adapter>
SolverStatus largest_algebraic(Adapter& op, const SpectraParams& params, double& value,
                               std::string& message) {
  using S = typename Adapter::Scalar;
  const Index ncv = std::min<Index>(params.ncv, op.rows());
  Spectra::SymEigsSolver<Adapter> eigs(op, 1, ncv);
  eigs.init();
  // A Ritz residual cannot fall below rounding, so the tolerance is floored at 100·eps of the
  // scalar type (otherwise float runs could never report convergence at the 1e-10 default).
  const S tolerance = std::max<S>(static_cast<S>(params.tolerance),
                                  S(100) * std::numeric_limits<S>::epsilon());
  eigs.compute(Spectra::SortRule::LargestAlge, params.max_restarts, tolerance);
  if (eigs.info() != Spectra::CompInfo::Successful) {
    message = "Spectra did not converge within max_restarts";
    value = std::numeric_limits<double>::quiet_NaN();
    return SolverStatus::MaxIterations;
  }
  value = static_cast<double>(eigs.eigenvalues()[0]);
  return SolverStatus::Converged;
}

}  // namespace detail

/// The largest (algebraic) eigenvalue of a symmetric operator through Spectra, with its status
/// and operator applications. With the operator x ↦ H⁻¹x it gives 1/λ_min(H) in a few solves.
template <LinearOperator Op>
  requires std::same_as<typename Op::VectorType, Vector<typename Op::Scalar>>
Spectrum largest_eigenvalue(const Op& A, SpectraParams params = {}) {
  params.check();
  Spectrum s;
  SpectraAdapter<Op> adapter(A);
  s.status = detail::largest_algebraic(adapter, params, s.lambda_max, s.message);
  s.hvps = adapter.applications();
  s.lambda_min = std::numeric_limits<double>::quiet_NaN();
  s.condition_number = std::numeric_limits<double>::quiet_NaN();
  return s;
}

/// λ_max and λ_min through Spectra::SymEigsSolver (largest algebraic). λ_min is found as
/// λ_max − μ with μ the largest eigenvalue of λ_max·I − A: an exterior eigenvalue of the shifted
/// operator, which Lanczos finds far faster than SmallestAlge. Spectra's NotConverging becomes
/// status MaxIterations (never an exception). When n <= ncv the Krylov basis would be the whole
/// space, so A is formed with n HVPs and decomposed densely instead. Eigen-vector operators only.
template <LinearOperator Op>
  requires std::same_as<typename Op::VectorType, Vector<typename Op::Scalar>>
Spectrum extreme_eigenvalues(const Op& A, SpectraParams params = {}) {
  using S = typename Op::Scalar;
  params.check();
  require(A.rows() == A.cols() && A.rows() >= 1, "extreme_eigenvalues: operator must be square and non-empty");
  Spectrum s;
  const Index n = A.rows();
  if (n <= params.ncv) {
    // The Lanczos basis would span the whole space: form A column by column (n HVPs) and
    // decompose it densely. Also avoids Spectra's degenerate restarts when ncv = n.
    Matrix<S> dense(n, n);
    Vector<S> e = Vector<S>::Zero(n), column(n);
    for (Index j = 0; j < n; ++j) {
      e[j] = S(1);
      A.apply(e, column);
      dense.col(j) = column;
      e[j] = S(0);
    }
    s.hvps = n;
    if (!dense.allFinite()) {
      s.status = SolverStatus::NumericalIssue;
      s.message = "operator produced non-finite values";
      return s;
    }
    const Matrix<S> symmetric = (dense + dense.transpose()) / S(2);
    Eigen::SelfAdjointEigenSolver<Matrix<S>> eig(symmetric, Eigen::EigenvaluesOnly);
    s.lambda_min = static_cast<double>(eig.eigenvalues()[0]);
    s.lambda_max = static_cast<double>(eig.eigenvalues()[n - 1]);
    s.status = SolverStatus::Converged;
    detail::finish_spectrum(s);
    return s;
  }
  SpectraAdapter<Op> top(A);
  s.status = detail::largest_algebraic(top, params, s.lambda_max, s.message);
  s.hvps += top.applications();
  if (s.status != SolverStatus::Converged) {
    s.message = "λ_max: " + s.message;
    return s;
  }
  // Shifted operator λ_max·I − A, referencing A through a non-owning view.
  const ScaledShiftedOperator<OperatorRef<Op>> shifted(OperatorRef<Op>(A), S(-1),
                                                       static_cast<S>(s.lambda_max));
  SpectraAdapter<ScaledShiftedOperator<OperatorRef<Op>>> bottom(shifted);
  double mu = 0;
  std::string message;
  s.status = detail::largest_algebraic(bottom, params, mu, message);
  s.hvps += bottom.applications();
  if (s.status != SolverStatus::Converged) {
    s.message = "λ_min: " + message;
    s.lambda_min = std::numeric_limits<double>::quiet_NaN();
    return s;
  }
  s.lambda_min = s.lambda_max - mu;
  detail::finish_spectrum(s);
  return s;
}

/// The same by power iteration (any vector backend, `prototype` gives the shape): λ_max is the
/// dominant eigenvalue (the largest if A is positive semidefinite), λ_min = λ_max − μ with μ
/// the dominant eigenvalue of λ_max·I − A. Slower than Lanczos for small spectral gaps.
template <LinearOperator Op>
Spectrum extreme_eigenvalues_power(const Op& A, const typename Op::VectorType& prototype,
                                   PowerIterationParams params = {}) {
  using S = typename Op::Scalar;
  Spectrum s;
  const PowerIterationResult top = power_iteration(A, prototype, params);
  s.hvps += top.hvps;
  s.lambda_max = top.eigenvalue;
  s.status = top.status;
  if (top.status != SolverStatus::Converged) {
    s.message = "λ_max: " + top.message;
    return s;
  }
  const ScaledShiftedOperator<OperatorRef<Op>> shifted(OperatorRef<Op>(A), S(-1),
                                                       static_cast<S>(s.lambda_max));
  const PowerIterationResult bottom = power_iteration(shifted, prototype, params);
  s.hvps += bottom.hvps;
  s.status = bottom.status;
  s.lambda_min = s.lambda_max - bottom.eigenvalue;
  if (bottom.status != SolverStatus::Converged) {
    s.message = "λ_min: " + bottom.message;
    return s;
  }
  detail::finish_spectrum(s);
  return s;
}

/// Eigen-vector convenience overload.
template <LinearOperator Op>
  requires std::same_as<typename Op::VectorType, Vector<typename Op::Scalar>>
Spectrum extreme_eigenvalues_power(const Op& A, PowerIterationParams params = {}) {
  const Vector<typename Op::Scalar> prototype = Vector<typename Op::Scalar>::Zero(A.cols());
  return extreme_eigenvalues_power(A, prototype, params);
}

}  // namespace ift
