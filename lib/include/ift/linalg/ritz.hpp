// Krylov recycling across solves (cg's "+ritz" preconditioner, docs/methods.md): Ritz pairs
// taken from the Lanczos relation of one CG solve at zero extra HVPs, merged into a small
// memory, and the spectral limited-memory preconditioner they define for the next solve.
//
//   P = I + U (diag(θ)/c − I) Uᵀ,   P^p = I + U (diag(θ/c)^p − I) Uᵀ,
//
// for orthonormal U (m columns), θ > 0 and c > 0: P is symmetric positive definite whatever U,
// θ and c are, and when U spans eigenvectors of H with eigenvalues θ, P⁻¹ H maps them to c and
// leaves the rest of H's spectrum alone (deflation by scaling). c is the recycled estimate of
// the top of the rest of the spectrum (merge_ritz_pairs), so that the kept outliers join it. Split preconditioning (CG on
// B = P^(−1/2) H P^(−1/2)) therefore solves H v = g exactly as plain CG does in exact arithmetic;
// stale or inaccurate pairs only make P a worse preconditioner, never the answer wrong.
#pragma once

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "ift/core.hpp"
#include "ift/format.hpp"
#include "ift/linalg/cg.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

/// Parameters of cg+ritz's memory.
struct RitzParams {
  /// Most Ritz pairs kept across solves (m). Default 20, valid >= 1.
  Index memory = 20;
  /// A new Ritz pair (θ, u) enters the memory when ‖H u − θ u‖ <= accept · θ. Default 0.1,
  /// valid in (0, 1].
  double accept = 0.1;

  void check() const {
    require(memory >= 1, [this] {
      return "RitzParams::memory must be >= 1 (got " + std::to_string(memory) + ")";
    });
    require(accept > 0 && accept <= 1, "RitzParams::accept must lie in (0, 1]");
  }
};

/// Ritz pairs of H: orthonormal vectors, their values (descending) and residual norms
/// ‖H u − θ u‖ (known without an HVP from the Lanczos relation).
template <class V>
struct RitzPairs {
  std::vector<V> vectors;
  std::vector<double> values;
  std::vector<double> residuals;

  std::size_t size() const { return values.size(); }
};

/// y = P^p x for the spectral preconditioner of `vectors` (orthonormal), `values` (> 0) and the
/// scale c = `scale` (> 0; 0: the smallest value). With no pair P = I and y is a copy of x,
/// bitwise. Holds references: the pairs must outlive it.
template <class V>
class SpectralPreconditioner {
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;

 public:
  SpectralPreconditioner(const std::vector<V>& vectors, const std::vector<double>& values,
                         double scale = 0)
      : vectors_(vectors), values_(values) {
    require(vectors.size() == values.size(),
            "SpectralPreconditioner: " + std::to_string(vectors.size()) + " vectors for " +
                std::to_string(values.size()) + " values");
    for (double t : values)
      require(std::isfinite(t) && t > 0, "SpectralPreconditioner: Ritz values must be finite "
                                         "and > 0 (got " + format_number(t) + ")");
    require(std::isfinite(scale) && scale >= 0,
            "SpectralPreconditioner: the scale c must be finite and > 0 (0: the smallest value)");
    if (!values.empty())
      scale_ = scale > 0 ? scale : *std::min_element(values.begin(), values.end());
  }

  Index size() const { return static_cast<Index>(values_.size()); }
  bool empty() const { return values_.empty(); }
  /// c (1 with no pair).
  double scale() const { return scale_; }

  /// y = P^p x (x and y distinct): x + Σ_i u_i ((θ_i / c)^p − 1)(u_iᵀ x).
  void apply_power(const V& x, V& y, double p) const {
    VS::assign(y, x);
    for (std::size_t i = 0; i < values_.size(); ++i) {
      const double f = std::pow(values_[i] / scale_, p) - 1.0;
      if (f == 0) continue;
      const double d = static_cast<double>(VS::dot(vectors_[i], x));
      VS::axpy(static_cast<S>(f * d), vectors_[i], y);
    }
  }

  /// "m = 3, θ in [a, b], c = a" (or "m = 0: plain cg").
  std::string describe() const {
    if (empty()) return "m = 0: plain cg";
    const auto [lo, hi] = std::minmax_element(values_.begin(), values_.end());
    return "m = " + std::to_string(values_.size()) + ", θ in [" + format_number(*lo) + ", " +
           format_number(*hi) + "], c = " + format_number(scale_);
  }

 private:
  const std::vector<V>& vectors_;
  const std::vector<double>& values_;
  double scale_ = 1;
};

/// The `wanted` largest Ritz pairs of H (every pair: wanted >= k) from the Lanczos relation of CG run on
/// B = P^(−1/2) H P^(−1/2) (P = I: plain CG), at zero HVPs. With W = P^(−1/2) Q_k,
/// Wᵀ H W = Q_kᵀ B Q_k = T_k and Wᵀ W = M = Q_kᵀ P⁻¹ Q_k, so the Rayleigh–Ritz pairs of H on
/// span W solve T_k s = θ M s (M = I when P = I), u = W s is unit (sᵀ M s = 1), and
///   H u − θ u = P^(1/2) (Q_k T_k s + β_k s_k q_{k+1}) − θ u
/// (for P = I its norm is the Lanczos bound β_k |s_k|). Pairs with θ <= 0 or non-finite
/// numbers are left out.
template <class V>
RitzPairs<V> ritz_pairs(const LanczosRelation<V>& rel, const SpectralPreconditioner<V>& P,
                        Index wanted) {
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  RitzPairs<V> out;
  const Index k = rel.k;
  if (k < 1 || wanted < 1) return out;
  Eigen::MatrixXd T = Eigen::MatrixXd::Zero(k, k);
  for (Index i = 0; i < k; ++i) {
    T(i, i) = rel.alpha[static_cast<std::size_t>(i)];
    if (i + 1 < k) T(i, i + 1) = T(i + 1, i) = rel.beta[static_cast<std::size_t>(i)];
  }
  const double beta_k = rel.beta[static_cast<std::size_t>(k - 1)];
  Eigen::VectorXd theta;
  Eigen::MatrixXd Svec;
  if (P.empty()) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(T);
    if (eig.info() != Eigen::Success) return out;
    theta = eig.eigenvalues();
    Svec = eig.eigenvectors();
  } else {
    // M = Q_kᵀ P⁻¹ Q_k = I + Cᵀ diag(c/θ − 1) C with C = Uᵀ Q_k (P⁻¹'s action on Q_k's span).
    V t = VS::zeros_like(rel.basis[0]);
    Eigen::MatrixXd PQ(k, k);
    for (Index j = 0; j < k; ++j) {
      P.apply_power(rel.basis[static_cast<std::size_t>(j)], t, -1.0);
      for (Index i = 0; i < k; ++i)
        PQ(i, j) = static_cast<double>(VS::dot(rel.basis[static_cast<std::size_t>(i)], t));
    }
    const Eigen::MatrixXd M = 0.5 * (PQ + PQ.transpose());
    Eigen::GeneralizedSelfAdjointEigenSolver<Eigen::MatrixXd> eig(T, M);
    if (eig.info() != Eigen::Success) return out;
    theta = eig.eigenvalues();
    Svec = eig.eigenvectors();
  }
  const V& q_next = rel.basis[static_cast<std::size_t>(k)];
  V y = VS::zeros_like(q_next), z = VS::zeros_like(q_next), r = VS::zeros_like(q_next);
  for (Index j = k - 1; j >= 0 && static_cast<Index>(out.size()) < wanted; --j) {
    const double th = theta(j);
    if (!std::isfinite(th) || th <= 0) continue;
    const Eigen::VectorXd s = Svec.col(j);
    const Eigen::VectorXd Ts = T * s;
    VS::set_zero(y);  // Q_k s
    VS::set_zero(z);  // Q_k T_k s + β_k s_k q_{k+1}
    for (Index i = 0; i < k; ++i) {
      VS::axpy(static_cast<S>(s(i)), rel.basis[static_cast<std::size_t>(i)], y);
      VS::axpy(static_cast<S>(Ts(i)), rel.basis[static_cast<std::size_t>(i)], z);
    }
    VS::axpy(static_cast<S>(beta_k * s(k - 1)), q_next, z);
    V u = VS::zeros_like(q_next);
    P.apply_power(y, u, -0.5);
    P.apply_power(z, r, 0.5);
    VS::axpy(static_cast<S>(-th), u, r);
    const double n = static_cast<double>(VS::norm(u));
    const double res = static_cast<double>(VS::norm(r));
    if (!std::isfinite(n) || n <= 0 || !std::isfinite(res)) continue;
    VS::scale(static_cast<S>(1.0 / n), u);  // unit already, to rounding
    out.vectors.push_back(std::move(u));
    out.values.push_back(th);
    out.residuals.push_back(res / n);
  }
  return out;
}

/// Merges a solve's fresh Ritz pairs (all of them, largest first) into the memory (vectors
/// orthonormal, values > 0) and sets the scale c: candidates are the fresh pairs with
/// ‖H u − θ u‖ <= accept · θ, then the kept ones (their values are left as they were:
/// refreshing them would cost HVPs). Each is orthogonalised against the candidates taken before
/// it (Gram–Schmidt twice) and dropped when less than half of it (in norm², i.e.
/// ‖rest‖ < 1/√2) lies outside their span: a fresh pair replaces the old ones it describes. The
/// `memory` largest values are kept. c = the largest fresh Ritz value that failed the test (the
/// solve's estimate of the top of the spectrum outside the accepted pairs), else the smallest
/// fresh value; a solve without pairs leaves c as it was.
template <class V>
void merge_ritz_pairs(std::vector<V>& vectors, std::vector<double>& values, double& scale,
                      RitzPairs<V>&& fresh, const RitzParams& params) {
  using VS = VectorSpace<V>;
  using S = typename VS::Scalar;
  std::vector<V> cand;
  std::vector<double> cand_values;
  double rest = 0;
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    if (fresh.residuals[i] <= params.accept * fresh.values[i]) {
      cand.push_back(std::move(fresh.vectors[i]));
      cand_values.push_back(fresh.values[i]);
    } else {
      rest = std::max(rest, fresh.values[i]);
    }
  }
  if (fresh.size() > 0) scale = rest > 0 ? rest : fresh.values.back();
  for (std::size_t i = 0; i < values.size(); ++i) {
    cand.push_back(std::move(vectors[i]));
    cand_values.push_back(values[i]);
  }
  std::vector<V> kept;
  std::vector<double> kept_values;
  for (std::size_t i = 0; i < cand.size(); ++i) {
    V& u = cand[i];
    const double n0 = static_cast<double>(VS::norm(u));
    if (!std::isfinite(n0) || n0 <= 0 || !std::isfinite(cand_values[i]) || cand_values[i] <= 0)
      continue;
    for (int pass = 0; pass < 2; ++pass)
      for (const V& q : kept) VS::axpy(-VS::dot(q, u), q, u);
    const double n = static_cast<double>(VS::norm(u));
    if (!(n >= n0 * std::sqrt(0.5))) continue;
    VS::scale(static_cast<S>(1.0 / n), u);
    kept.push_back(std::move(u));
    kept_values.push_back(cand_values[i]);
  }
  std::vector<std::size_t> order(kept.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return kept_values[a] > kept_values[b]; });
  if (order.size() > static_cast<std::size_t>(params.memory))
    order.resize(static_cast<std::size_t>(params.memory));
  vectors.clear();
  values.clear();
  for (std::size_t i : order) {
    vectors.push_back(std::move(kept[i]));
    values.push_back(kept_values[i]);
  }
}

}  // namespace ift
