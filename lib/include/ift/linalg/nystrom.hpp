// Nyström low-rank inverse (Hataya & Yamada, AISTATS 2023, "Nyström method for accurate and
// scalable implicit differentiation"):
//   v = (Δ + Ĥ_k)⁻¹ g,   Ĥ_k = C M⁺ Cᵀ,   C = A[:, K] = A E_K (D × k),   M = A[K, K] (k × k),
// for a symmetric curvature A and k sampled column indices K, with Δ = ρI + P: ρ a damping and
// P a diagonal kept exact (the penalty's curvature: the curvature is P + A, A its data term; P = 0
// when there is none). With k = D, invertible or not, Ĥ_D = A A⁺ A = A, so v = (ρI + P + A)⁻¹ g.
//
// Stable form of the Woodbury identity. M = U Λ Uᵀ (symmetric eigendecomposition); eigenvalues
// with |λ_i| <= cutoff · max |λ| are dropped (that is M⁺ with a relative cut-off; r = the
// numerical rank kept). F = C U_r |Λ_r|^{-1/2} (D × r), so Ĥ_k = F S Fᵀ with S = sign(Λ_r);
// with the rows scaled by s = diag(Δ)^{-1/2}: F = diag(s) C U_r |Λ_r|^{-1/2}, so that
// Δ^{-1/2} Ĥ_k Δ^{-1/2} = F S Fᵀ; F = Q R (thin Householder QR); R S Rᵀ = W Θ Wᵀ; with B = Q W
// (orthonormal columns)
//   (Δ + Ĥ_k)⁻¹ g = s ⊙ [B (Θ + I)⁻¹ Bᵀ h + (h − B Bᵀ h)],   h = s ⊙ g,
// which is Woodbury for an orthonormal B: no inverse of an ill-conditioned k × k matrix is formed.
// Cost: the k columns (k curvature-vector products, computed by the caller as ONE block product
// A E_K), O(k³) for the eigendecompositions and O(D r²) for the QR.
//
// Column sampling (NystromParams::sampling), each seeded and returning distinct indices in
// sampling order, so that the first k of a K-sample are a k-sample (nested: a sweep over k
// reuses one block of K columns); A is the data term (the block products minus P):
//   uniform   partial Fisher-Yates shuffle of 0 … D−1. No products.
//   diagonal  p_i ∝ |A_ii| with the diagonal estimated by Hutchinson's estimator
//             diag(A) ≈ (1/p) Σ_j z_j ⊙ A z_j over p = `probes` Rademacher vectors (p products,
//             one block), then weighted sampling without replacement (Efraimidis–Spirakis).
//   leverage  p_i ∝ ridge leverage scores ℓ_i(μ) = [Ĥ (Ĥ + μI)⁻¹]_ii of a Gaussian Nyström
//             sketch Ĥ = (AΩ)(ΩᵀAΩ)⁺(AΩ)ᵀ with s = `sketch` columns (s products, one block),
//             ℓ_i = Σ_j B_ij² θ_j / (θ_j + μ) from the same factorisation as above, with μ = ρ +
//             the mean of P (the ridge the solve adds).
// This header works on Eigen vectors and matrices; generic/hypergradient.hpp supplies the block
// product from a problem.
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "ift/core.hpp"
#include "ift/linalg/status.hpp"

namespace ift {

/// How the k columns of a Nyström approximation are chosen.
enum class NystromSampling { Uniform, Diagonal, Leverage };

inline const char* to_string(NystromSampling s) {
  switch (s) {
    case NystromSampling::Uniform: return "uniform";
    case NystromSampling::Diagonal: return "diagonal";
    case NystromSampling::Leverage: return "leverage";
  }
  return "?";
}

inline NystromSampling parse_nystrom_sampling(const std::string& name) {
  if (name == "uniform") return NystromSampling::Uniform;
  if (name == "diagonal") return NystromSampling::Diagonal;
  if (name == "leverage") return NystromSampling::Leverage;
  throw std::invalid_argument("unknown Nyström sampling '" + name +
                              "' (expected uniform, diagonal or leverage)");
}

struct NystromParams {
  /// Column sampling. Default uniform.
  NystromSampling sampling = NystromSampling::Uniform;
  /// ρ of (ρI + P + Ĥ_k)⁻¹ when MethodSpec::damping is 0 (a positive damping is ρ itself).
  /// Default 0: the penalty's exact curvature P alone makes the approximation invertible (weight
  /// decay: P = exp(λ) > 0). Valid >= 0 and finite; ρ + P must be > 0 in every coordinate (a
  /// rank-k < D approximation has no inverse otherwise), checked at solve time.
  double rho = 0;
  /// Relative cut-off of M⁺: eigenvalues of M with |λ| <= cutoff · max|λ| are dropped. Default 0
  /// = automatic, k · ε of the scalar type (the usual pseudo-inverse cut-off). Valid in [0, 1).
  double cutoff = 0;
  /// diagonal sampling: Rademacher probes of the Hutchinson diagonal estimate (one block of
  /// that many products). Default 10, valid >= 1.
  Index probes = 10;
  /// leverage sampling: columns of the Gaussian sketch (one block of that many products).
  /// Default 20, valid >= 1.
  Index sketch = 20;
  /// Seed of the sampling (and of the probes / sketch). Default 0.
  std::uint64_t seed = 0;

  void check() const {
    require(std::isfinite(rho) && rho >= 0, "NystromParams::rho must be finite and >= 0");
    require(std::isfinite(cutoff) && cutoff >= 0 && cutoff < 1,
            "NystromParams::cutoff must be in [0, 1) (0 = automatic)");
    require(probes >= 1, "NystromParams::probes must be >= 1");
    require(sketch >= 1, "NystromParams::sketch must be >= 1");
  }
};

namespace nystrom_detail {

/// A uniform integer in [0, n) by rejection from 64 random bits: the same sequence on every
/// standard library (std::uniform_int_distribution is implementation-defined).
inline Index uniform_below(std::mt19937_64& rng, Index n) {
  const auto un = static_cast<std::uint64_t>(n);
  const std::uint64_t limit = std::numeric_limits<std::uint64_t>::max() -
                              std::numeric_limits<std::uint64_t>::max() % un;
  std::uint64_t x;
  do x = rng();
  while (x >= limit);
  return static_cast<Index>(x % un);
}

/// A uniform double in (0, 1) from 53 random bits.
inline double uniform_open(std::mt19937_64& rng) {
  return (static_cast<double>(rng() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/// A standard normal (Box–Muller), portable for the same reason.
inline double normal(std::mt19937_64& rng) {
  const double u1 = uniform_open(rng), u2 = uniform_open(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

}  // namespace nystrom_detail

/// k distinct indices of 0 … D−1, uniformly, in sampling order (partial Fisher–Yates): for one
/// seed the first j of a k-sample are the j-sample.
inline std::vector<Index> sample_uniform(Index D, Index k, std::uint64_t seed) {
  require(k >= 0 && k <= D, "sample_uniform: need 0 <= k <= D");
  std::vector<Index> perm(static_cast<std::size_t>(D));
  std::iota(perm.begin(), perm.end(), Index(0));
  std::mt19937_64 rng(seed);
  for (Index i = 0; i < k; ++i) {
    const Index j = i + nystrom_detail::uniform_below(rng, D - i);
    std::swap(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(j)]);
  }
  perm.resize(static_cast<std::size_t>(k));
  return perm;
}

/// k distinct indices drawn without replacement with probabilities ∝ weights (Efraimidis &
/// Spirakis 2006: the k largest keys log(u_i) / w_i), in sampling order (nested in k). Weights
/// that are not positive and finite are raised to 1e-12 · the largest weight so that every index
/// can still be drawn; all zero: uniform.
inline std::vector<Index> sample_weighted(const std::vector<double>& weights, Index k,
                                          std::uint64_t seed) {
  const auto D = static_cast<Index>(weights.size());
  require(k >= 0 && k <= D, "sample_weighted: need 0 <= k <= number of weights");
  double wmax = 0;
  for (double w : weights)
    if (std::isfinite(w)) wmax = std::max(wmax, w);
  const double floor = wmax > 0 ? 1e-12 * wmax : 1.0;
  std::mt19937_64 rng(seed);
  std::vector<double> key(weights.size());
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const double w = std::isfinite(weights[i]) && weights[i] > floor ? weights[i] : floor;
    key[i] = std::log(nystrom_detail::uniform_open(rng)) / w;
  }
  std::vector<Index> order(weights.size());
  std::iota(order.begin(), order.end(), Index(0));
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](Index a, Index b) {
    const double ka = key[static_cast<std::size_t>(a)], kb = key[static_cast<std::size_t>(b)];
    return ka > kb || (ka == kb && a < b);
  });
  order.resize(static_cast<std::size_t>(k));
  return order;
}

/// Ĥ = B diag(θ) Bᵀ (B orthonormal columns, D × r) from C = AΩ and M = ΩᵀAΩ.
template <class S>
struct NystromFactor {
  Matrix<S> basis;       ///< B, D × r
  Vector<S> theta;       ///< θ, r eigenvalues of Ĥ
  Index rank = 0;        ///< r: eigenvalues of M kept
  double cutoff = 0;     ///< the relative cut-off used
  double max_eigenvalue = 0;  ///< max |λ(M)|
  SolverStatus status = SolverStatus::Converged;  ///< NumericalIssue: M zero or not finite
  std::string message;
};

/// The factorisation of diag(s) C M⁺ Cᵀ diag(s) described at the top (s = `row_scale`, or 1),
/// with the relative cut-off `cutoff` (0: k · ε). C: D × k, M: k × k (symmetrised here).
template <class S>
NystromFactor<S> nystrom_factor(const Matrix<S>& C, const Matrix<S>& M, double cutoff,
                                const Vector<S>* row_scale = nullptr) {
  const Index D = C.rows(), k = C.cols();
  require(M.rows() == k && M.cols() == k, "nystrom_factor: M must be k × k for C of k columns");
  NystromFactor<S> f;
  f.cutoff = cutoff > 0 ? cutoff
                        : static_cast<double>(std::max<Index>(k, 1)) *
                              static_cast<double>(std::numeric_limits<S>::epsilon());
  f.basis.resize(D, 0);
  f.theta.resize(0);
  if (k == 0) return f;
  if (!C.allFinite() || !M.allFinite()) {
    f.status = SolverStatus::NumericalIssue;
    f.message = "the sampled columns are not finite";
    return f;
  }
  const Matrix<S> Ms = (M + M.transpose()) * S(0.5);
  Eigen::SelfAdjointEigenSolver<Matrix<S>> eig(Ms);
  if (eig.info() != Eigen::Success) {
    f.status = SolverStatus::NumericalIssue;
    f.message = "the eigendecomposition of M failed";
    return f;
  }
  const Vector<S>& lam = eig.eigenvalues();
  f.max_eigenvalue = static_cast<double>(lam.cwiseAbs().maxCoeff());
  const double threshold = f.cutoff * f.max_eigenvalue;
  std::vector<Index> keep;
  for (Index i = 0; i < k; ++i)
    if (static_cast<double>(std::abs(lam(i))) > threshold) keep.push_back(i);
  f.rank = static_cast<Index>(keep.size());
  if (f.max_eigenvalue == 0 || f.rank == 0) {
    f.status = SolverStatus::NumericalIssue;
    f.rank = 0;
    f.message = "M = A[K, K] is numerically zero (the sampled columns carry no curvature)";
    return f;
  }
  const Index r = f.rank;
  Matrix<S> F(D, r);
  Vector<S> sign(r);
  for (Index j = 0; j < r; ++j) {
    const S l = lam(keep[static_cast<std::size_t>(j)]);
    sign(j) = l > 0 ? S(1) : S(-1);
    F.col(j).noalias() = C * eig.eigenvectors().col(keep[static_cast<std::size_t>(j)]);
    F.col(j) /= std::sqrt(std::abs(l));
    if (row_scale) F.col(j).array() *= row_scale->array();
  }
  Eigen::HouseholderQR<Matrix<S>> qr(F);
  const Matrix<S> R = qr.matrixQR().topRows(r).template triangularView<Eigen::Upper>();
  const Matrix<S> T = R * sign.asDiagonal() * R.transpose();
  Eigen::SelfAdjointEigenSolver<Matrix<S>> teig((T + T.transpose()) * S(0.5));
  const Matrix<S> Q = qr.householderQ() * Matrix<S>::Identity(D, r);
  f.basis.noalias() = Q * teig.eigenvectors();
  f.theta = teig.eigenvalues();
  if (!f.basis.allFinite() || !f.theta.allFinite()) {
    f.status = SolverStatus::NumericalIssue;
    f.message = "the factorisation of C M⁺ Cᵀ is not finite";
    f.basis.resize(D, 0);
    f.theta.resize(0);
    f.rank = 0;
  }
  return f;
}

/// v = (ρI + B Θ Bᵀ)⁻¹ g. Status NotPositiveDefinite (with the offending directions dropped, so
/// v stays finite) when some θ_j + ρ <= cutoff · (max|θ| + ρ): the indefinite Ĥ cancels ρ.
/// (nystrom_solve calls it with ρ = 1 on the Δ-scaled problem.)
template <class S>
SolveResult<Vector<S>> nystrom_apply(const NystromFactor<S>& f, const Vector<S>& g, double rho) {
  SolveResult<Vector<S>> out;
  const S r = static_cast<S>(rho);
  const Vector<S> c = f.basis.transpose() * g;
  out.x = (g - f.basis * c) / r;
  Vector<S> scaled(c.size());
  const double tmax = f.theta.size() ? static_cast<double>(f.theta.cwiseAbs().maxCoeff()) : 0.0;
  Index dropped = 0;
  for (Index j = 0; j < c.size(); ++j) {
    const double denom = static_cast<double>(f.theta(j)) + rho;
    if (denom <= f.cutoff * (tmax + rho)) {
      scaled(j) = 0;
      ++dropped;
    } else {
      scaled(j) = c(j) / static_cast<S>(denom);
    }
  }
  out.x.noalias() += f.basis * scaled;
  out.status = dropped ? SolverStatus::NotPositiveDefinite : SolverStatus::Converged;
  if (dropped)
    out.message = std::to_string(dropped) +
                  " direction(s) of the indefinite approximation cancel ρ + P: dropped";
  if (!out.x.allFinite()) {
    out.x.setZero(g.size());
    out.status = SolverStatus::NumericalIssue;
    out.message = "the Nyström solve is not finite; x = 0";
  }
  return out;
}

/// Ridge leverage scores ℓ_i(ρ) = [Ĥ (Ĥ + ρI)⁻¹]_ii = Σ_j B_ij² θ_j / (θ_j + ρ) (θ_j <= 0 count 0).
template <class S>
std::vector<double> ridge_leverage(const NystromFactor<S>& f, double rho) {
  std::vector<double> l(static_cast<std::size_t>(f.basis.rows()), 0.0);
  for (Index j = 0; j < f.theta.size(); ++j) {
    const double t = static_cast<double>(f.theta(j));
    if (t <= 0) continue;
    const double weight = t / (t + rho);
    for (Index i = 0; i < f.basis.rows(); ++i) {
      const double b = static_cast<double>(f.basis(i, j));
      l[static_cast<std::size_t>(i)] += b * b * weight;
    }
  }
  return l;
}

/// The k sampled columns C = A E_K (A by `block`: Y = A X for a D × m block X, one call) and
/// the indices K in sampling order; `hvps` counts every product, sampling's included.
template <class S>
struct NystromColumns {
  std::vector<Index> indices;
  Matrix<S> C;
  Index sampling_hvps = 0;
  std::string sampling;  ///< "uniform", "diagonal (10 probes)", …
};

/// Samples k <= D column indices by params.sampling and computes C = A E_K in one block
/// product. `block(X, Y)` must write Y = (P + A) X for a D × m matrix X; `penalty` is diag(P)
/// (nullptr: P = 0), subtracted so that C, the diagonal and the sketch are A's.
template <class S, class Block>
NystromColumns<S> nystrom_columns(Index D, Index k, const NystromParams& params, double rho,
                                  Block&& block, const Vector<S>* penalty = nullptr) {
  params.check();
  require(k >= 0 && k <= D, "nystrom_columns: need 0 <= k <= D");
  NystromColumns<S> out;
  std::mt19937_64 rng(params.seed ^ 0x9e3779b97f4a7c15ULL);  // probes / sketch (not the indices)
  switch (params.sampling) {
    case NystromSampling::Uniform:
      out.indices = sample_uniform(D, k, params.seed);
      out.sampling = "uniform";
      break;
    case NystromSampling::Diagonal: {
      const Index p = params.probes;
      Matrix<S> Z(D, p), Y;
      for (Index j = 0; j < p; ++j)
        for (Index i = 0; i < D; ++i) Z(i, j) = (rng() >> 63) ? S(1) : S(-1);
      block(Z, Y);
      if (penalty) Y -= penalty->asDiagonal() * Z;
      out.sampling_hvps = p;
      std::vector<double> w(static_cast<std::size_t>(D));
      for (Index i = 0; i < D; ++i)
        w[static_cast<std::size_t>(i)] =
            std::abs(static_cast<double>(Z.row(i).dot(Y.row(i)))) / static_cast<double>(p);
      out.indices = sample_weighted(w, k, params.seed);
      out.sampling = "diagonal (Hutchinson, " + std::to_string(p) + " probes)";
      break;
    }
    case NystromSampling::Leverage: {
      const Index s = std::min(params.sketch, D);
      Matrix<S> Omega(D, s), Y;
      for (Index j = 0; j < s; ++j)
        for (Index i = 0; i < D; ++i) Omega(i, j) = static_cast<S>(nystrom_detail::normal(rng));
      block(Omega, Y);
      if (penalty) Y -= penalty->asDiagonal() * Omega;
      out.sampling_hvps = s;
      const Matrix<S> M = Omega.transpose() * Y;
      const NystromFactor<S> f = nystrom_factor<S>(Y, M, params.cutoff);
      const double mu = rho + (penalty && D > 0 ? static_cast<double>(penalty->mean()) : 0.0);
      std::vector<double> w = ridge_leverage(f, mu);  // empty factor: all 0, i.e. uniform
      out.indices = sample_weighted(w, k, params.seed);
      out.sampling = "leverage (Gaussian sketch of " + std::to_string(s) + " columns)";
      break;
    }
  }
  Matrix<S> E = Matrix<S>::Zero(D, k);
  for (Index j = 0; j < k; ++j) E(out.indices[static_cast<std::size_t>(j)], j) = S(1);
  if (k > 0) {
    block(E, out.C);
    if (penalty)
      for (Index j = 0; j < k; ++j) {
        const Index i = out.indices[static_cast<std::size_t>(j)];
        out.C(i, j) -= (*penalty)(i);
      }
  } else {
    out.C.resize(D, 0);
  }
  return out;
}

/// Δ = ρ + P (P = `penalty`, or 0), as a vector; throws std::invalid_argument unless every entry
/// is positive and finite (no inverse of a rank-deficient approximation otherwise).
template <class S>
Vector<S> nystrom_shift(Index D, double rho, const Vector<S>* penalty) {
  Vector<S> d = Vector<S>::Constant(D, static_cast<S>(rho));
  if (penalty) {
    require(penalty->size() == D, "nystrom: the penalty diagonal has the wrong size");
    d += *penalty;
  }
  for (Index i = 0; i < D; ++i)
    require(std::isfinite(static_cast<double>(d(i))) && d(i) > 0, [&] {
      return "nystrom: ρ + the penalty's curvature must be > 0 in every coordinate (coordinate " +
             std::to_string(i) + ": ρ = " + std::to_string(rho) + ", penalty " +
             std::to_string(penalty ? static_cast<double>((*penalty)(i)) : 0.0) +
             "); set NystromParams::rho (--rho) or MethodSpec::damping (--damping) > 0";
    });
  return d;
}

/// v = (ρI + P + C_k M_k⁺ C_kᵀ)⁻¹ g from the first k columns of `cols` (k <= cols.C.cols()), P =
/// `penalty` (nullptr: 0), with the diagnostics: iterations = k, hvps = k + the sampling's
/// products, status Converged (the closed form), NumericalIssue when M_k is numerically zero or
/// not finite (x = g / (ρ + P), the rank-0 approximation), NotPositiveDefinite (see
/// nystrom_apply); the message gives the numerical rank and the cut-off. Throws
/// std::invalid_argument when ρ + P is not positive (nystrom_shift).
template <class S>
SolveResult<Vector<S>> nystrom_solve(const NystromColumns<S>& cols, Index k, const Vector<S>& g,
                                     const NystromParams& params, double rho,
                                     const Vector<S>* penalty = nullptr) {
  require(k >= 0 && k <= cols.C.cols(), "nystrom_solve: k exceeds the sampled columns");
  const Vector<S> shift = nystrom_shift<S>(g.size(), rho, penalty);
  const Vector<S> scale = shift.array().rsqrt();
  const std::vector<Index> K(cols.indices.begin(), cols.indices.begin() + k);
  const Matrix<S> C = cols.C.leftCols(k);
  const Matrix<S> M = C(K, Eigen::all);
  const NystromFactor<S> f = nystrom_factor<S>(C, M, params.cutoff, &scale);
  SolveResult<Vector<S>> out;
  std::string failure;
  if (f.status != SolverStatus::Converged) {
    out.x = g.cwiseQuotient(shift);
    if (!out.x.allFinite()) out.x.setZero(g.size());
    out.status = f.status;
    failure = f.message + "; v = g / (ρ + P)";
  } else {
    out = nystrom_apply(f, Vector<S>(scale.cwiseProduct(g)), 1.0);
    out.x.array() *= scale.array();
    failure = out.message;
  }
  out.iterations = k;
  out.hvps = k + cols.sampling_hvps;
  char buf[256];
  std::snprintf(buf, sizeof buf, "nystrom: rank %lld of %lld columns (%s), numerical rank %lld "
                "(cut-off %.3g · max|λ(M)| = %.3g), ρ = %.3g%s",
                static_cast<long long>(k), static_cast<long long>(g.size()),
                cols.sampling.c_str(), static_cast<long long>(f.rank), f.cutoff,
                f.cutoff * f.max_eigenvalue, rho,
                penalty ? " + the penalty's exact curvature" : "");
  out.message = buf + (failure.empty() ? std::string() : "; " + failure);
  return out;
}

}  // namespace ift
