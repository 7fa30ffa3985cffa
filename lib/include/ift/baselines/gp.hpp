// A small Gaussian process for Bayesian optimisation over a box (issue 13), in Eigen (Debian has
// no GP library): zero prior mean, Matérn 5/2 kernel with ARD (one length scale per input) or
// isotropic length scale,
//   k(x, x') = s² (1 + √5 r + 5 r²/3) exp(−√5 r),   r² = Σ_i (x_i − x'_i)² / ℓ_i²,
// Gaussian observation noise σ_n². The hyperparameters θ = (log ℓ, log s², log σ_n²) are fitted
// by maximising the log marginal likelihood
//   log p(y | X, θ) = −½ yᵀ K_y⁻¹ y − ½ log |K_y| − n/2 log 2π,   K_y = K + σ_n² I,
// with its analytic gradient ½ tr((ααᵀ − K_y⁻¹) ∂K_y/∂θ_j), α = K_y⁻¹ y (Rasmussen & Williams
// 2006, eq. 5.8–5.9), by multi-start L-BFGS-B (LBFGSpp) inside a box of θ. Every Cholesky adds
// a jitter (10⁻¹⁰ of the mean diagonal, ×10 per failure) only when the plain factorisation
// fails; the jitter in use is reported (jitter()).
//
// Expected improvement for minimisation, EI(x) = (f⁺ − μ) Φ(z) + σ φ(z), z = (f⁺ − μ)/σ, with
// its analytic gradient, maximised by multi-start L-BFGS-B over the box.
//
// The callers standardise y (BayesOpt in search.hpp does): the prior mean is zero and the θ box
// assumes y of unit scale and inputs in [0, 1]^d. Double precision only.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "ift/core.hpp"

namespace ift::baselines {

struct GpFitParams {
  Index restarts = 5;           ///< L-BFGS-B starts (the first from the current θ), ≥ 1
  Index max_iterations = 100;   ///< per start, ≥ 1
  double min_length = 1e-2, max_length = 1e1;      ///< box of ℓ (inputs in [0, 1])
  double min_signal = 1e-2, max_signal = 1e2;      ///< box of s² (standardised y)
  double min_noise = 1e-6, max_noise = 1.0;        ///< box of σ_n²
};

struct EiMaxParams {
  Index random_starts = 10;     ///< uniform starts in the box, plus one near each of the best observations
  Index best_starts = 3;
  Index max_iterations = 50;    ///< L-BFGS-B iterations per start
};

class GaussianProcess {
 public:
  /// dim inputs; ard: one length scale per input, else one shared.
  GaussianProcess(Index dim, bool ard = true);

  Index dim() const { return dim_; }
  bool ard() const { return ard_; }
  /// θ's length: dim + 2 (ARD) or 3.
  Index num_theta() const { return (ard_ ? dim_ : 1) + 2; }
  /// θ = (log ℓ…, log s², log σ_n²).
  const Vector<double>& theta() const { return theta_; }
  void set_theta(const Vector<double>& theta);
  double length_scale(Index i) const;
  double signal_variance() const;
  double noise_variance() const;

  /// The observations (rows of X, values y); conditions the GP on them.
  void set_data(const Matrix<double>& X, const Vector<double>& y);
  Index num_data() const { return X_.rows(); }

  /// k(x, x') under the current θ.
  double kernel(const Vector<double>& x, const Vector<double>& xp) const;
  /// K (n × n, without noise) of the current data.
  Matrix<double> kernel_matrix() const;

  /// Log marginal likelihood at θ on the current data and, if given, its gradient w.r.t. θ
  /// (does not change the GP's θ).
  double log_marginal_likelihood(const Vector<double>& theta, Vector<double>* gradient = nullptr) const;
  /// Fits θ by multi-start L-BFGS-B (LBFGSpp) on the log marginal likelihood; keeps the best
  /// start (the current θ counts as one) and re-conditions. Returns the best log likelihood.
  double fit(const GpFitParams& params, std::mt19937_64& rng);

  /// Posterior mean and variance of the latent f at x (variance without σ_n², ≥ 0); gradients
  /// w.r.t. x if given.
  void predict(const Vector<double>& x, double& mean, double& variance,
               Vector<double>* mean_gradient = nullptr,
               Vector<double>* variance_gradient = nullptr) const;
  /// EI below `best` at x, and its gradient w.r.t. x if given.
  double expected_improvement(const Vector<double>& x, double best,
                              Vector<double>* gradient = nullptr) const;
  /// The x in [0, 1]^d maximising EI (multi-start L-BFGS-B); the value in *ei.
  Vector<double> maximize_expected_improvement(double best, const EiMaxParams& params,
                                               std::mt19937_64& rng, double* ei = nullptr) const;

  /// The jitter added to K + σ_n² I's diagonal by the last conditioning (0: none needed).
  double jitter() const { return jitter_; }

 private:
  /// K + σ_n² I (+ jitter) factorised at θ; returns L and the jitter used.
  void factor(const Vector<double>& theta, Matrix<double>& L, double& jitter) const;
  double kernel_at(const Vector<double>& theta, const Vector<double>& x,
                   const Vector<double>& xp) const;
  void condition();

  Index dim_;
  bool ard_;
  Vector<double> theta_;
  Matrix<double> X_;
  Vector<double> y_;
  Matrix<double> L_;       // Cholesky factor of K + σ_n² I + jitter I
  Vector<double> alpha_;   // (K + σ_n² I)⁻¹ y
  double jitter_ = 0;
};

/// Standard normal density and distribution function.
double normal_pdf(double z);
double normal_cdf(double z);

}  // namespace ift::baselines
