// Truncated Neumann series for H⁻¹ g (Lorraine, Vicol & Duvenaud 2020, Algorithm 3):
//   v = α Σ_{j=0..k} (I − αH)^j g,
// which converges to H⁻¹ g iff ρ(I − αH) < 1, i.e. 0 < α < 2/λ_max for positive definite H.
// It is Richardson's iteration v ← v + α(g − H v) run k + 1 times from v = 0 (the first update
// needs no HVP). Started from some x0 ≠ 0 (a warm start: the previous hyper-step's v), the same
// iteration runs k times, k HVPs: v = x0 + α Σ_{j=0..k−1} (I − αH)^j (g − H x0). With k = 1 that
// is the SOBA update v ← v + α(g − H v) (Dagréou et al. 2022).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "ift/core.hpp"
#include "ift/format.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/partial_results.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

struct NeumannParams {
  /// Number of powers k (exactly k HVPs for the series). Default 20, valid >= 0; k = 0 is α g.
  Index steps = 20;
  /// Step size α. Default 0 = automatic: α = safety / λ_max with λ_max from power iteration
  /// (whose HVPs are counted). Valid >= 0.
  double alpha = 0;
  /// Factor on 1/λ_max when α is automatic. Default 1, valid in (0, 2).
  double safety = 1.0;
  /// Power-iteration budget for λ_max (automatic α and suggested_alpha). Default 200, >= 1.
  Index power_iterations = 200;
  /// Relative Rayleigh-quotient change at which power iteration stops. Default 1e-6, >= 0.
  double power_tolerance = 1e-6;
  /// Seed of the power iteration's start vector. Default 42.
  std::uint64_t seed = 42;
  /// Diverged when a term's norm exceeds divergence_factor · ||g||. Default 1e6, valid > 1.
  double divergence_factor = 1e6;
  /// Diverged when the term norm grew in this many consecutive terms, each by more than a
  /// relative growth_tolerance. For symmetric H and 0 < α < 2/λ_max the term norms decrease
  /// monotonically in exact arithmetic, so sustained growth means ρ(I − αH) > 1. Default 3, >= 1.
  Index growth_patience = 3;
  /// Relative increase of a term norm below which it does not count as growth: rounding noise
  /// when the contraction factor is within eps of 1. Default 1e-5, valid >= 0.
  double growth_tolerance = 1e-5;
  /// Converged when the last term's norm / ||g|| <= tolerance; otherwise the series was truncated
  /// and the status is MaxIterations. Default 1e-10, valid >= 0.
  double tolerance = 1e-10;
  /// Spend one more HVP (counted) to report ||H v − g|| / ||g||. Default false.
  bool compute_residual = false;
  /// Record term norm / ||g|| per term in residual_history (a proxy: not a residual). Default false.
  bool record_history = false;

  void check() const {
    require(steps >= 0, "NeumannParams::steps must be >= 0");
    require(alpha >= 0 && std::isfinite(alpha), "NeumannParams::alpha must be finite and >= 0 (0 = automatic)");
    require(safety > 0 && safety < 2, "NeumannParams::safety must be in (0, 2)");
    require(power_iterations >= 1, "NeumannParams::power_iterations must be >= 1");
    require(power_tolerance >= 0, "NeumannParams::power_tolerance must be >= 0");
    require(divergence_factor > 1, "NeumannParams::divergence_factor must be > 1");
    require(growth_patience >= 1, "NeumannParams::growth_patience must be >= 1");
    require(growth_tolerance >= 0, "NeumannParams::growth_tolerance must be >= 0");
    require(tolerance >= 0, "NeumannParams::tolerance must be >= 0");
  }
};

/// v = α Σ_{j=0..k} (I − αH)^j g with k = params.steps HVPs (plus power-iteration HVPs when α
/// is automatic or after divergence, plus one when compute_residual; all counted in hvps).
/// result.alpha is the α used. Status: Converged when the last term is below tolerance·||g||,
/// MaxIterations when the series was truncated earlier than that, Diverged when the terms grew
/// (x is then α times the last partial sum before the offending term, and suggested_alpha =
/// 1/λ_max when power iteration finds λ_max > 0), NotPositiveDefinite when the automatic α
/// cannot be chosen because the dominant eigenvalue is <= 0 (x = 0), NumericalIssue when
/// power iteration fails.
///
/// `partial` (optional): the results of neumann with steps = k for every k in partial.at
/// (partial_results.hpp), from this one series: after term k the partial sum Σ_{j<=k} t_j is
/// copied and finished exactly as a k-step call finishes its own (× α, status, residual).
///
/// `x0` (optional, the warm start): when given and not zero, k = params.steps Richardson updates
/// from x0 (k HVPs: one for the residual g − H x0, one per further term), the terms being
/// t_j = (I − αH)^j (g − H x0) and v = x0 + α Σ_{j<k} t_j; iterations = k; the convergence and
/// divergence tests stay relative to ||g||. k = 0 returns x0 (MaxIterations). A zero x0 (or
/// none) is the cold series, bitwise. No partial results with a warm start.
/// `Hx0` (optional, with a warm start only): H x0 formed by the caller for this solve (before g
/// was available, generic::detail::neumann_solve); used instead of applying H to x0 and counted
/// as one of this solve's HVPs. The result is bitwise the same.
template <LinearOperator Op>
SolveResult<typename Op::VectorType> neumann(
    const Op& H, const typename Op::VectorType& g, NeumannParams params = {},
    const PartialResults<typename Op::VectorType>& partial = {},
    const typename Op::VectorType* x0 = nullptr, const typename Op::VectorType* Hx0 = nullptr) {
  using V = typename Op::VectorType;
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  params.check();
  const Index n = VS::size(g);
  require(H.rows() == n && H.cols() == n,
          "neumann: operator must be square with the size of g (" + std::to_string(H.rows()) +
              "x" + std::to_string(H.cols()) + " vs " + std::to_string(n) + ")");

  if (x0 != nullptr) {
    require(VS::size(*x0) == n, "neumann: warm start x0 has the wrong size");
    require(VS::all_finite(*x0), "neumann: warm start x0 is not finite");
  }
  const bool warm = x0 != nullptr && VS::norm(*x0) != 0;
  require(!warm || !partial.active(), "neumann: no partial results with a warm start");
  require(Hx0 == nullptr || (warm && VS::size(*Hx0) == n),
          "neumann: Hx0 needs a nonzero warm start x0 and the size of g");
  detail::PartialReporter<V> reporter(partial, params.steps, "neumann");
  SolveResult<V> result;
  if (Hx0 != nullptr) result.hvps = 1;  // spent whatever this call returns
  result.x = VS::zeros_like(g);
  const double g_norm = static_cast<double>(VS::norm(g));
  if (!std::isfinite(g_norm)) {
    result.status = SolverStatus::NumericalIssue;
    result.message = "neumann: g is not finite";
    reporter.finish(result);
    return result;
  }
  if (g_norm == 0) {
    result.alpha = params.alpha;
    result.status = SolverStatus::Converged;
    result.relative_residual = 0.0;
    result.message = "zero right-hand side: x = 0";
    reporter.finish(result);
    return result;
  }
  if (warm && params.steps == 0) {
    VS::assign(result.x, *x0);
    result.alpha = params.alpha;
    result.status = SolverStatus::MaxIterations;
    result.message = "neumann warm start with 0 steps: v = the previous v";
    return result;
  }
  const PowerIterationParams power{params.power_iterations, params.power_tolerance, params.seed};
  // λ_max by power iteration (computed at most once, HVPs counted); nullopt when unusable:
  // non-finite, or a dominant eigenvalue <= 0 (H not positive definite).
  std::optional<double> lambda_max;
  bool lambda_known = false;
  auto estimate_lambda_max = [&]() -> std::optional<double> {
    if (!lambda_known) {
      const PowerIterationResult p = power_iteration(H, g, power);
      result.hvps += p.hvps;
      lambda_known = true;
      if (p.status != SolverStatus::NumericalIssue && std::isfinite(p.eigenvalue) && p.eigenvalue > 0)
        lambda_max = p.eigenvalue;
    }
    return lambda_max;
  };

  double alpha = params.alpha;
  if (alpha == 0) {
    if (!estimate_lambda_max()) {
      result.status = SolverStatus::NotPositiveDefinite;
      result.message =
          "neumann: cannot choose α automatically: power iteration found no positive dominant "
          "eigenvalue (H is not positive definite or not finite); x = 0";
      reporter.finish(result);
      return result;
    }
    alpha = params.safety / *lambda_max;
  }
  result.alpha = alpha;

  // Buffers once: term t_j = (I − αH)^j r0, its product H t_j, and the partial sum Σ t_j, with
  // r0 = g cold and r0 = g − H x0 warm.
  V term = VS::zeros_like(g);
  V product = VS::zeros_like(g);
  V& sum = result.x;
  VS::assign(term, g);
  if (warm) {
    if (Hx0 != nullptr) {
      VS::axpy(S(-1), *Hx0, term);  // counted above
    } else {
      H.apply(*x0, product);
      ++result.hvps;
      VS::axpy(S(-1), product, term);
    }
    ++result.iterations;  // the update x0 + α r0
  }
  VS::assign(sum, term);
  const S a = static_cast<S>(alpha);
  double term_norm = warm ? static_cast<double>(VS::norm(term)) : g_norm;
  if (params.record_history) result.residual_history.push_back(term_norm / g_norm);
  const Index last = warm ? params.steps - 1 : params.steps;  // terms after t_0
  Index growing = 0;
  bool diverged = false;
  std::string why;

  // Finishes r, whose x holds a partial sum Σ t_j, as a call with `asked` powers finishes its
  // own: v = α Σ t_j, the status, and the optional residual (one more HVP, counted). r is the
  // result itself at the end of the series, or a copy for a partial result.
  auto conclude = [&](SolveResult<V>& r, Index asked) {
    V& s = r.x;
    VS::scale(a, s);  // v = α Σ t_j
    if (warm) VS::axpy(S(1), *x0, s);  // v = x0 + α Σ t_j
    if (diverged) {
      r.status = SolverStatus::Diverged;
      r.message = "neumann diverged with α = " + format_number(alpha) + ": " + why +
                  "; returning " + (warm ? "x0 + " : "") + "α·(partial sum of the first " +
                  std::to_string(warm ? r.iterations : r.iterations + 1) + " terms)";
      if (estimate_lambda_max()) {
        r.suggested_alpha = 1.0 / *lambda_max;
        r.message += "; λ_max ≈ " + format_number(*lambda_max) + ", suggested α = 1/λ_max";
      } else {
        r.message += "; no positive λ_max found: H is not positive definite";
      }
    } else if (term_norm <= params.tolerance * g_norm) {
      r.status = SolverStatus::Converged;
    } else {
      r.status = SolverStatus::MaxIterations;
      r.message = "series truncated after " + std::to_string(asked) +
                  " powers; last term norm / ||g|| = " + std::to_string(term_norm / g_norm);
    }
    if (!VS::all_finite(s)) {  // α·sum overflowed: fall back to the zero vector, reported
      VS::set_zero(s);
      r.status = SolverStatus::NumericalIssue;
      r.message += "; α·(partial sum) is not finite, x = 0";
      return;
    }
    if (params.compute_residual) {
      H.apply(s, product);  // product is free here: the next term's HVP overwrites it
      ++r.hvps;
      VS::axpy(S(-1), g, product);
      const double rel = static_cast<double>(VS::norm(product)) / g_norm;
      if (std::isfinite(rel)) r.relative_residual = rel;
    }
  };
  // The result of a call with steps = k, k < params.steps, from the series so far.
  auto report_partial = [&](Index k) {
    SolveResult<V> r;
    r.x = VS::zeros_like(g);
    VS::assign(r.x, sum);
    r.iterations = result.iterations;
    r.hvps = result.hvps;
    r.alpha = result.alpha;
    r.residual_history = result.residual_history;
    conclude(r, k);
    reporter.report(k, std::move(r));
  };
  if (params.steps > 0 && reporter.wants(0)) report_partial(0);

  for (Index j = 1; j <= last; ++j) {
    H.apply(term, product);
    ++result.hvps;
    VS::axpy(-a, product, term);  // t_j = t_{j−1} − α H t_{j−1}
    const double next_norm = static_cast<double>(VS::norm(term));
    if (!std::isfinite(next_norm)) {
      diverged = true;
      why = "term " + std::to_string(j) + " is not finite";
    } else if (next_norm > params.divergence_factor * g_norm) {
      diverged = true;
      why = "term " + std::to_string(j) + " has norm " + std::to_string(next_norm / g_norm) +
            "·||g|| > divergence_factor";
    } else if (next_norm > term_norm * (1 + params.growth_tolerance)) {
      if (++growing >= params.growth_patience) {
        diverged = true;
        why = "term norms grew for " + std::to_string(growing) + " consecutive terms (up to " +
              std::to_string(next_norm / g_norm) + "·||g|| at term " + std::to_string(j) + ")";
      }
    } else {
      growing = 0;
    }
    if (diverged) break;  // the offending term is not added: sum stays the last finite one
    term_norm = next_norm;
    VS::axpy(S(1), term, sum);
    ++result.iterations;
    if (params.record_history) result.residual_history.push_back(term_norm / g_norm);
    if (j < last && reporter.wants(j)) report_partial(j);
  }
  conclude(result, params.steps);
  reporter.finish(result);
  return result;
}

}  // namespace ift
