// Hypernetwork best response (self-tuning networks: Lorraine & Duvenaud 2018, "Stochastic
// Hyperparameter Optimization through Hypernetworks"; MacKay et al. 2019), issue 13:
//
//   w_φ(λ) = w0 + W (λ − λ̂),   W full (D × h) or low-rank W = U Vᵀ (U: D × r, V: h × r),
//
// a linear approximation of the best response w*(λ) around the current λ̂. φ = (w0, W) or
// (w0, U, V) is trained on the training loss at perturbed hyperparameters,
//
//   min_φ (1/2K) Σ_k [L_T(λ̂ + ε_k, w_φ(λ̂ + ε_k)) + L_T(λ̂ − ε_k, w_φ(λ̂ − ε_k))],
//   ε_k ~ N(0, σ² I) (antithetic pairs; σ = `perturbation`),
//
// by L-BFGS (LBFGSpp) for `iterations` per round, with fresh ε each round (seeded). λ is then
// moved along dL_V(w_φ(λ))/dλ at λ̂ = ∂L_V/∂λ + Wᵀ ∇_w L_V(w0), and recenter() moves λ̂ with it
// (w0 ← w0 + W(λ_new − λ̂), so w_φ is unchanged as a function).
//
// Why W approximates dw*/dλ: expanding w*(λ̂ + ε) = w* + Jε + O(|ε|²) and L_T around it, the
// minimiser of the symmetric sample objective is w0 = w* + O(σ²), W = J + O(σ²) (odd moments of
// the antithetic sample vanish, so the quadratic terms move w0 only and W first feels the cubic
// ones): the hypernetwork's Jacobian agrees with the IFT's J = −H⁻¹ ∂²L_T/∂w∂λ to O(σ²).
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "ift/core.hpp"
#include "ift/problem.hpp"

namespace ift::baselines {

struct HypernetworkParams {
  Index rank = 0;              ///< 0: a full W (D × h); r ≥ 1: W = U Vᵀ of rank r
  double perturbation = 0.5;   ///< σ of the perturbations ε (log weight decay), > 0
  Index samples = 2;           ///< antithetic pairs per round (2·samples evaluations of L_T), ≥ 1
  Index iterations = 10;       ///< L-BFGS iterations on φ per round, ≥ 1
  double tolerance = 1e-10;    ///< L-BFGS stops when ||∇_φ|| < tolerance·max(1, ||φ||)
  void check() const;
};

struct HypernetworkTrainResult {
  double loss = 0;             ///< the sample objective at the returned φ
  Index evaluations = 0;       ///< objective evaluations (each 2·samples gradients of L_T)
};

class Hypernetwork {
 public:
  /// D weights, h hyperparameters, centred at λ̂ = center with w0 = w_init; W = 0 (full) or
  /// U = 0 and V with orthonormal random columns (low rank, seeded).
  Hypernetwork(Vector<double> w_init, Vector<double> center, Index rank, std::uint64_t seed);

  Index num_params() const { return w0_.size(); }
  Index num_hyper() const { return center_.size(); }
  Index rank() const { return rank_; }
  const Vector<double>& center() const { return center_; }
  const Vector<double>& w0() const { return w0_; }

  /// w_φ(λ) = w0 + W (λ − λ̂).
  Vector<double> weights(const Vector<double>& lambda) const;
  /// W as a dense D × h matrix (tests; D·h memory).
  Matrix<double> jacobian() const;
  /// Wᵀ g (length h).
  Vector<double> apply_transpose(const Vector<double>& g) const;
  /// Moves λ̂ to `center`, w0 ← w_φ(center).
  void recenter(const Vector<double>& center);

  /// Trains φ on L_T at perturbed λ around λ̂ (one round: fresh perturbations from `rng`).
  /// Leaves the problem at (λ̂, w0).
  HypernetworkTrainResult train(BilevelProblem<double>& problem, const HypernetworkParams& params,
                                std::mt19937_64& rng);
  /// dL_V(w_φ(λ))/dλ at λ̂: ∂L_V/∂λ + Wᵀ ∇_w L_V(w0). Leaves the problem at (λ̂, w0).
  Vector<double> hypergradient(BilevelProblem<double>& problem) const;

 private:
  /// φ as the optimiser sees it: (w0, scale·W) or (w0, scale·U, V).
  Vector<double> pack(double scale) const;
  void unpack(const Vector<double>& phi, double scale);

  Index rank_;
  Vector<double> w0_, center_;
  Matrix<double> W_;     // full: D × h
  Matrix<double> U_, V_; // low rank: D × r, h × r
};

}  // namespace ift::baselines
