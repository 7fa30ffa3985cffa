// Conjugate gradient for H v = g (Hestenes & Stiefel 1952), matrix-free, with an optional
// Lanczos form with full reorthogonalisation for ill-conditioned problems.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "ift/core.hpp"
#include "ift/format.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/partial_results.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

/// Parameters of conjugate_gradient. DESIGN.md §1: cg(k) = k CG iterations from v = 0 (or a
/// warm start).
struct CgParams {
  /// Maximum number of CG iterations (one HVP each). Default 50, valid >= 0.
  Index max_iterations = 50;
  /// Stop when ||g − H v|| / ||g|| <= tolerance. Default 1e-12, valid >= 0 (0: run all
  /// iterations unless the residual is exactly zero).
  double tolerance = 1e-12;
  /// Record the relative residual after every iteration in residual_history. Default false.
  bool record_history = false;
  /// Run the Lanczos form of CG with full reorthogonalisation. Same iterates as CG in exact
  /// arithmetic, reproducible in floating point for κ in the thousands and beyond (DESIGN.md
  /// §5). Memory: max_iterations + 1 extra vectors of the problem size, allocated up front
  /// (plus x); time: O(n·k²) extra dot/axpy work for k iterations. Default true (set false
  /// to keep memory at a few vectors when k is large).
  bool reorthogonalize = true;
  /// Spend one extra HVP at the end to report the true residual ||g − H v|| / ||g|| instead of
  /// the recurrence's (which drifts from the true one once rounding accumulates). Default false.
  bool true_residual = false;

  void check() const {
    require(max_iterations >= 0, "CgParams::max_iterations must be >= 0");
    require(tolerance >= 0 && std::isfinite(tolerance),
            "CgParams::tolerance must be finite and >= 0");
  }
};

/// The Lanczos relation of a Lanczos-form CG run at its end (what recycling methods read:
/// linalg/ritz.hpp): A Q_k = Q_k T_k + β_k q_{k+1} e_kᵀ, Q_k = basis[0 .. k) orthonormal (to
/// rounding: full reorthogonalisation), T_k symmetric tridiagonal with diagonal alpha[0 .. k)
/// and off-diagonal beta[0 .. k−1), β_k = beta[k − 1] and q_{k+1} = basis[k] (unit, or zero
/// when β_k = 0). k = the Lanczos steps taken (SolveResult::iterations), even when the returned
/// iterate uses fewer (negative curvature, numerical issue). The references are valid during
/// the call only.
template <class V>
struct LanczosRelation {
  const std::vector<V>& basis;
  Index k;
  const std::vector<double>& alpha;
  const std::vector<double>& beta;
};
/// Called once at the end of a Lanczos-form run with k >= 1 steps (not by plain CG, not when
/// the start already met the tolerance). It costs nothing when empty.
template <class V>
using LanczosObserver = std::function<void(const LanczosRelation<V>&)>;

namespace detail {

template <LinearOperator Op, class V>
void cg_check_dimensions(const Op& A, const V& b, const V* x0, const char* who) {
  using VS = VectorSpace<V>;
  const Index n = VS::size(b);
  // Messages built only on failure: this runs once per solve.
  require(A.rows() == n && A.cols() == n, [&] {
    return std::string(who) + ": operator must be square with the size of the right-hand side (" +
           std::to_string(A.rows()) + "x" + std::to_string(A.cols()) + " vs " +
           std::to_string(n) + ")";
  });
  if (x0 != nullptr) {
    require(VS::size(*x0) == n, [who] { return std::string(who) + ": warm start x0 has the wrong size"; });
    require(VS::all_finite(*x0), [who] { return std::string(who) + ": warm start x0 is not finite"; });
  }
}

/// Residual r = b − A x (one HVP) into r, using Ax as scratch.
template <LinearOperator Op, class V>
void residual(const Op& A, const V& b, const V& x, V& r, V& Ax) {
  using VS = VectorSpace<V>;
  A.apply(x, Ax);
  VS::assign(r, b);
  VS::axpy(typename VS::Scalar(-1), Ax, r);
}

template <LinearOperator Op, class V>
SolveResult<V> conjugate_gradient_plain(const Op& A, const V& b, const CgParams& params,
                                        const V* x0, double b_norm, PartialReporter<V>& reporter);
template <LinearOperator Op, class V>
SolveResult<V> conjugate_gradient_lanczos(const Op& A, const V& b, const CgParams& params,
                                          const V* x0, double b_norm,
                                          PartialReporter<V>& reporter,
                                          const LanczosObserver<V>& lanczos);

/// "stopped after k iterations ...": the message of a run that used its whole budget.
/// Both CG forms' test of the starting residual (relative to ||b||): not finite ends the solve
/// with NumericalIssue, within the tolerance with Converged (x0 returned); else the solve runs.
template <class V>
bool cg_stops_at_start(double rel, double tolerance, SolveResult<V>& result) {
  if (!std::isfinite(rel)) {
    result.status = SolverStatus::NumericalIssue;
    result.message = "initial residual is not finite";
    return true;
  }
  if (rel <= tolerance) {
    result.status = SolverStatus::Converged;
    result.message = "initial guess already meets the tolerance";
    return true;
  }
  return false;
}

inline std::string cg_budget_message(Index iterations, double rel) {
  return "stopped after " + std::to_string(iterations) + " iterations with relative residual " +
         format_number(rel) + " > tolerance";
}

}  // namespace detail

/// Solves A x = b for a symmetric operator A by conjugate gradients.
///
/// Status: Converged when the relative residual is <= tolerance; MaxIterations when the budget
/// ran out first (x is then the last iterate, cg(k) as defined); NegativeCurvature when
/// pᵀAp <= 0 (no denominator is ever clamped; x is the iterate with the lowest residual so
/// far); NumericalIssue on non-finite values (x is the best finite iterate). hvps counts every
/// application of A, including the one for a warm start's initial residual.
///
/// `partial` (optional): the results of conjugate_gradient with max_iterations = k for every k
/// in partial.at (partial_results.hpp), from this one run: plain CG hands out its iterate x_k;
/// the Lanczos form forms x_k = x0 + Q_k T_k⁻¹(β0 e1) from the stored basis and factors at each
/// requested k (O(n k) each), as a k-iteration run forms its final x.
///
/// `lanczos` (optional, Lanczos form only): sees the run's Lanczos relation once at its end
/// (LanczosRelation), before x is formed; it changes nothing in the arithmetic.
template <LinearOperator Op>
SolveResult<typename Op::VectorType> conjugate_gradient(
    const Op& A, const typename Op::VectorType& b, CgParams params = {},
    const typename Op::VectorType* x0 = nullptr,
    const PartialResults<typename Op::VectorType>& partial = {},
    const LanczosObserver<typename Op::VectorType>& lanczos = {}) {
  using V = typename Op::VectorType;
  using VS = VectorSpace<V>;
  params.check();
  detail::cg_check_dimensions(A, b, x0, "conjugate_gradient");
  detail::PartialReporter<V> reporter(partial, params.max_iterations, "conjugate_gradient");
  const double b_norm = static_cast<double>(VS::norm(b));
  if (!std::isfinite(b_norm)) {
    SolveResult<V> result;
    result.x = VS::zeros_like(b);
    result.status = SolverStatus::NumericalIssue;
    result.message = "conjugate_gradient: right-hand side is not finite";
    reporter.finish(result);
    return result;
  }
  if (b_norm == 0) {  // the solution of A x = 0 is x = 0 for any invertible A
    SolveResult<V> result;
    result.x = VS::zeros_like(b);
    result.status = SolverStatus::Converged;
    result.relative_residual = 0.0;
    result.message = "zero right-hand side: x = 0";
    reporter.finish(result);
    return result;
  }
  SolveResult<V> result =
      params.reorthogonalize
          ? detail::conjugate_gradient_lanczos(A, b, params, x0, b_norm, reporter, lanczos)
          : detail::conjugate_gradient_plain(A, b, params, x0, b_norm, reporter);
  reporter.finish(result);
  return result;
}

namespace detail {

template <LinearOperator Op, class V>
SolveResult<V> conjugate_gradient_plain(const Op& A, const V& b, const CgParams& params,
                                        const V* x0, double b_norm, PartialReporter<V>& reporter) {
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;

  SolveResult<V> result;
  // All work buffers up front; nothing is allocated inside the loop.
  result.x = VS::zeros_like(b);
  V& x = result.x;
  V r = VS::zeros_like(b);
  V p = VS::zeros_like(b);
  V Ap = VS::zeros_like(b);
  V best = VS::zeros_like(b);

  if (x0 != nullptr) {
    VS::assign(x, *x0);
    residual(A, b, x, r, Ap);
    ++result.hvps;
  } else {
    VS::assign(r, b);
  }
  S rr = VS::dot(r, r);
  double rel = std::sqrt(static_cast<double>(rr)) / b_norm;
  if (params.record_history) result.residual_history.push_back(rel);
  VS::assign(best, x);
  double best_rel = rel;
  bool stopped = detail::cg_stops_at_start(rel, params.tolerance, result);
  VS::assign(p, r);
  bool keep_last = true;  // false: return `best` instead of the last iterate

  // The result of a run with max_iterations = k < params.max_iterations: its last iterate x_k.
  // The true residual needs a buffer of its own (r is live); Ap is free until the next HVP.
  V partial_r;
  bool partial_r_allocated = false;
  auto report_partial = [&](Index k) {
    SolveResult<V> pr;
    pr.x = VS::zeros_like(b);
    VS::assign(pr.x, x);
    pr.status = SolverStatus::MaxIterations;
    pr.iterations = result.iterations;
    pr.hvps = result.hvps;
    pr.residual_history = result.residual_history;
    pr.message = cg_budget_message(result.iterations, rel);
    if (std::isfinite(rel)) pr.relative_residual = rel;
    if (params.true_residual) {
      if (!partial_r_allocated) partial_r = VS::zeros_like(b);
      partial_r_allocated = true;
      residual(A, b, pr.x, partial_r, Ap);
      ++pr.hvps;
      const double true_rel = static_cast<double>(VS::norm(partial_r)) / b_norm;
      if (std::isfinite(true_rel)) pr.relative_residual = true_rel;
    }
    reporter.report(k, std::move(pr));
  };
  if (!stopped && params.max_iterations > 0 && reporter.wants(0)) report_partial(0);

  for (Index k = 0; !stopped && k < params.max_iterations; ++k) {
    A.apply(p, Ap);
    ++result.hvps;
    const S pAp = VS::dot(p, Ap);
    if (!std::isfinite(static_cast<double>(pAp))) {
      result.status = SolverStatus::NumericalIssue;
      result.message = "pᵀAp is not finite at iteration " + std::to_string(k);
      keep_last = false;
      stopped = true;
      break;
    }
    if (pAp <= S(0)) {
      result.status = SolverStatus::NegativeCurvature;
      result.message = "pᵀAp = " + std::to_string(static_cast<double>(pAp)) +
                       " <= 0 at iteration " + std::to_string(k) +
                       ": operator is not positive definite; returning the lowest-residual iterate";
      keep_last = false;
      stopped = true;
      break;
    }
    const S step = rr / pAp;
    VS::axpy(step, p, x);
    VS::axpy(-step, Ap, r);
    const S rr_next = VS::dot(r, r);
    rel = std::sqrt(static_cast<double>(rr_next)) / b_norm;
    if (!std::isfinite(rel) || !VS::all_finite(x)) {
      result.status = SolverStatus::NumericalIssue;
      result.message = "non-finite iterate at iteration " + std::to_string(k);
      keep_last = false;
      stopped = true;
      break;
    }
    ++result.iterations;
    if (params.record_history) result.residual_history.push_back(rel);
    if (rel < best_rel) {
      best_rel = rel;
      VS::assign(best, x);
    }
    if (rel <= params.tolerance) {
      result.status = SolverStatus::Converged;
      stopped = true;
      break;
    }
    if (result.iterations < params.max_iterations && reporter.wants(result.iterations))
      report_partial(result.iterations);
    const S beta = rr_next / rr;
    rr = rr_next;
    VS::axpby(S(1), r, beta, p);  // p = r + β p
  }
  if (!stopped) {
    result.status = SolverStatus::MaxIterations;
    result.message = cg_budget_message(result.iterations, rel);
  }
  if (!keep_last) {
    VS::assign(x, best);
    rel = best_rel;
  }
  if (std::isfinite(rel)) result.relative_residual = rel;
  if (params.true_residual) {
    residual(A, b, x, r, Ap);
    ++result.hvps;
    const double true_rel = static_cast<double>(VS::norm(r)) / b_norm;
    if (std::isfinite(true_rel)) result.relative_residual = true_rel;
  }
  return result;
}

/// CG in its Lanczos form (D-Lanczos; Saad, Iterative Methods for Sparse Linear Systems, §6.7):
/// Q_k orthonormal basis of the Krylov space from r0, T_k = Q_kᵀ A Q_k tridiagonal, the CG
/// iterate is x_k = x0 + Q_k T_k⁻¹ (β0 e1). Each new Lanczos vector is orthogonalised against
/// all previous ones twice (classical Gram–Schmidt twice, Giraud et al. 2005), so the basis
/// stays orthonormal to rounding and the iterates do not suffer the loss of orthogonality that
/// delays plain CG. T_k = L D Lᵀ is updated incrementally: pivot d_k = 1/(CG step size), so
/// d_k <= 0 is exactly CG's pᵀAp <= 0, and ||r_k|| = β_k |z_k / d_k| comes for free.
template <LinearOperator Op, class V>
SolveResult<V> conjugate_gradient_lanczos(const Op& A, const V& b, const CgParams& params,
                                          const V* x0, double b_norm,
                                          PartialReporter<V>& reporter,
                                          const LanczosObserver<V>& lanczos) {
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  const Index m = params.max_iterations;

  SolveResult<V> result;
  result.x = VS::zeros_like(b);
  V& x = result.x;
  // Lanczos basis, allocated up front: (max_iterations + 1) vectors. Each is created by
  // zeros_like (never by copying a prototype: a tensor copy would share storage).
  // (With max_iterations = 0 two vectors are kept so that a residual has a scratch buffer.)
  const Index basis_size = std::max<Index>(m + 1, 2);
  std::vector<V> basis;
  basis.reserve(static_cast<std::size_t>(basis_size));
  for (Index i = 0; i < basis_size; ++i) basis.push_back(VS::zeros_like(b));
  V& scratch = basis[basis_size - 1];  // free at the start and after x is formed
  std::vector<double> alpha, beta, pivot, lower, z;  // T_k and its L D Lᵀ
  alpha.reserve(m);
  beta.reserve(m);
  pivot.reserve(m);
  lower.reserve(m);
  z.reserve(m);

  if (x0 != nullptr) {
    VS::assign(x, *x0);
    residual(A, b, x, basis[0], scratch);
    ++result.hvps;
  } else {
    VS::assign(basis[0], b);
  }
  const double beta0 = static_cast<double>(VS::norm(basis[0]));
  double rel = beta0 / b_norm;
  if (params.record_history) result.residual_history.push_back(rel);
  Index best_k = 0;
  double best_rel = rel;
  Index final_k = 0;  // number of Lanczos vectors in the returned iterate
  bool stopped = detail::cg_stops_at_start(rel, params.tolerance, result);
  if (!stopped) {
    VS::scale(static_cast<S>(1.0 / beta0), basis[0]);
  }

  // x = x0 + Q_k y with T_k y = β0 e1, solved through the stored L D Lᵀ (prefixes of the
  // factors of T_k are the factors of T_{k'} for k' < k). xk holds x0 (or 0) on entry.
  auto form_iterate = [&](V& xk, Index k) {
    if (k > 0) {
      std::vector<double> y(static_cast<std::size_t>(k));
      for (Index i = 0; i < k; ++i) y[i] = z[i] / pivot[i];
      for (Index i = k - 2; i >= 0; --i) y[i] -= lower[i] * y[i + 1];
      for (Index i = 0; i < k; ++i) VS::axpy(static_cast<S>(y[i]), basis[i], xk);
    }
  };
  // What every run does once its x is formed: the reported residual, the finiteness guard and
  // the optional true residual (r and Ax: two free buffers).
  auto finish_iterate = [&](SolveResult<V>& res, double at_stop, V& r, V& Ax) {
    V& xk = res.x;
    const bool returned_best = res.status == SolverStatus::NegativeCurvature ||
                               res.status == SolverStatus::NumericalIssue;
    const double reported = returned_best ? best_rel : at_stop;
    if (std::isfinite(reported)) res.relative_residual = reported;
    if (!VS::all_finite(xk)) {  // cannot happen with d_i > 0 finite, but never return NaN silently
      VS::set_zero(xk);
      if (x0 != nullptr) VS::assign(xk, *x0);
      res.status = SolverStatus::NumericalIssue;
      res.message = "non-finite iterate; returning the starting point";
      res.relative_residual.reset();
    }
    if (params.true_residual) {
      residual(A, b, xk, r, Ax);
      ++res.hvps;
      const double true_rel = static_cast<double>(VS::norm(r)) / b_norm;
      if (std::isfinite(true_rel)) res.relative_residual = true_rel;
    }
  };
  // The result of a run with max_iterations = k < m, formed from the basis and factors so far
  // (the basis is live: the true residual gets buffers of its own).
  V partial_r, partial_Ax;
  bool partial_allocated = false;
  auto report_partial = [&](Index k) {
    SolveResult<V> pr;
    pr.x = VS::zeros_like(b);
    if (x0 != nullptr) VS::assign(pr.x, *x0);
    form_iterate(pr.x, k);
    pr.status = SolverStatus::MaxIterations;
    pr.iterations = result.iterations;
    pr.hvps = result.hvps;
    pr.residual_history = result.residual_history;
    pr.message = cg_budget_message(result.iterations, rel);
    if (params.true_residual && !partial_allocated) {
      partial_r = VS::zeros_like(b);
      partial_Ax = VS::zeros_like(b);
      partial_allocated = true;
    }
    finish_iterate(pr, rel, partial_r, partial_Ax);
    reporter.report(k, std::move(pr));
  };
  if (!stopped && m > 0 && reporter.wants(0)) report_partial(0);

  for (Index j = 0; !stopped && j < m; ++j) {
    V& w = basis[j + 1];
    A.apply(basis[j], w);
    ++result.hvps;
    double a = static_cast<double>(VS::dot(basis[j], w));
    VS::axpy(static_cast<S>(-a), basis[j], w);
    if (j > 0) VS::axpy(static_cast<S>(-beta[j - 1]), basis[j - 1], w);
    for (int pass = 0; pass < 2; ++pass) {
      for (Index i = 0; i <= j; ++i) {
        const S c = VS::dot(basis[i], w);
        VS::axpy(-c, basis[i], w);
        if (i == j) a += static_cast<double>(c);  // keeps T_k = Q_kᵀ A Q_k to rounding
      }
    }
    const double bj = static_cast<double>(VS::norm(w));
    double d, zj;
    if (j == 0) {
      d = a;
      zj = beta0;
    } else {
      const double l = beta[j - 1] / pivot[j - 1];
      d = a - l * beta[j - 1];
      zj = -l * z[j - 1];
      lower.push_back(l);
    }
    if (!std::isfinite(a) || !std::isfinite(bj) || !std::isfinite(d)) {
      result.status = SolverStatus::NumericalIssue;
      result.message = "non-finite Lanczos coefficient at iteration " + std::to_string(j);
      final_k = best_k;
      stopped = true;
      break;
    }
    if (d <= 0) {
      result.status = SolverStatus::NegativeCurvature;
      result.message = "Lanczos pivot (pᵀAp up to a positive factor) = " + std::to_string(d) +
                       " <= 0 at iteration " + std::to_string(j) +
                       ": operator is not positive definite; returning the lowest-residual iterate";
      final_k = best_k;
      stopped = true;
      break;
    }
    alpha.push_back(a);
    beta.push_back(bj);
    pivot.push_back(d);
    z.push_back(zj);
    ++result.iterations;
    rel = bj * std::abs(zj / d) / b_norm;
    if (params.record_history) result.residual_history.push_back(rel);
    if (rel < best_rel) {
      best_rel = rel;
      best_k = j + 1;
    }
    if (rel <= params.tolerance || bj == 0) {  // bj == 0: invariant Krylov space, exact
      result.status = SolverStatus::Converged;
      final_k = j + 1;
      stopped = true;
      break;
    }
    VS::scale(static_cast<S>(1.0 / bj), w);
    if (result.iterations < m && reporter.wants(result.iterations))
      report_partial(result.iterations);
  }
  if (!stopped) {
    final_k = result.iterations;
    result.status = SolverStatus::MaxIterations;
    result.message = cg_budget_message(result.iterations, rel);
  }
  if (lanczos && result.iterations > 0) {
    const Index k = result.iterations;
    // q_{k+1} = basis[k] is unit except after a converged stop (the loop breaks before scaling).
    if (result.status == SolverStatus::Converged && beta[k - 1] > 0)
      VS::scale(static_cast<S>(1.0 / beta[k - 1]), basis[k]);
    lanczos(LanczosRelation<V>{basis, k, alpha, beta});
  }
  form_iterate(x, final_k);
  finish_iterate(result, rel, basis[0], scratch);
  return result;
}

}  // namespace detail

}  // namespace ift
