// The L-BFGS inverse-Hessian estimate applied to a vector (Nocedal 1980; Nocedal & Wright,
// Numerical Optimization, Algorithm 7.4), written once over VectorSpace<V>: the solver behind
// SHINE (Ramzi et al., ICLR 2022, "SHaring the INverse Estimate from the forward pass"), which
// takes v ≈ H⁻¹ g from the (s, y) pairs the inner L-BFGS built on its way to w*, with no HVP.
//
//   H⁺ = Vᵀ H V + ρ s sᵀ,  V = I − ρ y sᵀ,  ρ = 1 / (sᵀy)      (the BFGS inverse update)
// applied for each stored pair, oldest first, to H0 = γ I, γ = sᵀy / yᵀy of the newest pair;
// v = H_k g is evaluated by the
// two-loop recursion (4m dot products and axpys, O(m D)). γ is LBFGSpp's 1/θ (BFGSMat:
// θ = yᵀy / sᵀy of the newest pair), so on the same pairs the result equals LBFGSpp's
// BFGSMat::apply_Hv (tests/test_lbfgs_inverse.cpp checks the equality with the compact and the
// dense BFGS matrices).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "ift/core.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

/// The correction pairs of an L-BFGS run, oldest first: s_i = x_{i+1} − x_i, y_i = g_{i+1} − g_i.
/// At most `memory` pairs are kept (the oldest is dropped, as LBFGSpp's cyclic buffer does);
/// `point` is x after the newest pair (the point whose inverse Hessian the pairs estimate).
/// Vectors of the problem's vector type and plain numbers only, so a checkpoint can store them.
template <class V>
struct LbfgsPairs {
  std::vector<V> s, y;
  V point{};
  Index memory = 0;  ///< the L-BFGS memory m the pairs were kept with (0: none recorded)

  Index size() const { return static_cast<Index>(s.size()); }
  bool empty() const { return s.empty(); }
  void clear() { *this = LbfgsPairs{}; }

  /// Appends (s, y) (copied through the seam), ending at `x`, and drops the oldest beyond `m`.
  void push(const V& s_new, const V& y_new, const V& x, Index m) {
    using VS = VectorSpace<V>;
    require(m >= 1, "LbfgsPairs::push: memory must be >= 1");
    memory = m;
    const auto copy = [](const V& a) {
      V b = VS::zeros_like(a);
      VS::assign(b, a);
      return b;
    };
    while (size() >= m) {
      s.erase(s.begin());
      y.erase(y.begin());
    }
    s.push_back(copy(s_new));
    y.push_back(copy(y_new));
    point = copy(x);
  }
};

/// v = H_k g by the two-loop recursion over `pairs` (see the file comment). Pairs with
/// sᵀy ≤ 0 (or not finite) would make H_k indefinite: they are skipped and counted in the
/// message (LBFGSpp never skips; the library's line search keeps sᵀy > 0, so on its pairs none
/// are skipped). γ comes from the newest pair that is used. 0 HVPs.
/// Status: Converged ("computed as defined", as identity: it does not mean H v = g);
/// MissingState when no pair is usable (x = g, H0 = I: the two-loop over no pairs; the caller
/// must not treat it as an estimate); NumericalIssue when g or the result is not finite (x = 0).
template <class V>
SolveResult<V> lbfgs_inverse_solve(const LbfgsPairs<V>& pairs, const V& g) {
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  SolveResult<V> result;
  result.x = VS::zeros_like(g);
  if (!VS::all_finite(g)) {
    result.status = SolverStatus::NumericalIssue;
    result.message = "shine: g is not finite; x = 0";
    return result;
  }
  require(pairs.s.size() == pairs.y.size(), "lbfgs_inverse_solve: as many s as y vectors needed");
  std::vector<std::size_t> used;
  std::vector<double> rho;
  Index skipped = 0;
  for (std::size_t i = 0; i < pairs.s.size(); ++i) {
    require(VS::size(pairs.s[i]) == VS::size(g) && VS::size(pairs.y[i]) == VS::size(g),
            "lbfgs_inverse_solve: pair " + std::to_string(i) + " has the wrong size (" +
                std::to_string(VS::size(pairs.s[i])) + ", g has " +
                std::to_string(VS::size(g)) + ")");
    const double sy = static_cast<double>(VS::dot(pairs.s[i], pairs.y[i]));
    if (!(sy > 0) || !std::isfinite(sy)) {
      ++skipped;
      continue;
    }
    used.push_back(i);
    rho.push_back(1.0 / sy);
  }
  const std::string skip_note =
      skipped > 0 ? " (" + std::to_string(skipped) + " pairs with sᵀy <= 0 skipped)" : "";
  VS::assign(result.x, g);
  if (used.empty()) {
    result.status = SolverStatus::MissingState;
    result.message = pairs.empty()
                         ? "shine: no L-BFGS pairs (no L-BFGS step was taken at this w)"
                         : "shine: no usable L-BFGS pair" + skip_note;
    return result;
  }
  V& q = result.x;
  const std::size_t n = used.size();
  std::vector<double> alpha(n);
  for (std::size_t j = n; j-- > 0;) {  // newest to oldest
    const std::size_t i = used[j];
    alpha[j] = rho[j] * static_cast<double>(VS::dot(pairs.s[i], q));
    VS::axpy(static_cast<S>(-alpha[j]), pairs.y[i], q);
  }
  const std::size_t newest = used.back();
  const double yy = static_cast<double>(VS::dot(pairs.y[newest], pairs.y[newest]));
  VS::scale(static_cast<S>(1.0 / (rho.back() * yy)), q);  // H0 = (sᵀy / yᵀy) I
  for (std::size_t j = 0; j < n; ++j) {  // oldest to newest
    const std::size_t i = used[j];
    const double beta = rho[j] * static_cast<double>(VS::dot(pairs.y[i], q));
    VS::axpy(static_cast<S>(alpha[j] - beta), pairs.s[i], q);
  }
  if (!VS::all_finite(q)) {
    result.x = VS::zeros_like(g);
    result.status = SolverStatus::NumericalIssue;
    result.message = "shine: the two-loop recursion overflowed; x = 0" + skip_note;
    return result;
  }
  result.status = SolverStatus::Converged;
  result.iterations = static_cast<Index>(n);
  result.message = "shine: L-BFGS inverse estimate from " + std::to_string(n) + " pairs" +
                   skip_note + " (no HVP)";
  return result;
}

}  // namespace ift
