#include "ift/baselines/hypernetwork.hpp"

#include <Eigen/QR>

#include <cmath>
#include <limits>
#include <vector>

#include "minimize.hpp"

namespace ift::baselines {

void HypernetworkParams::check() const {
  require(rank >= 0, "HypernetworkParams::rank must be >= 0 (0: full W)");
  require(std::isfinite(perturbation) && perturbation > 0,
          "HypernetworkParams::perturbation must be a number > 0");
  require(samples >= 1, "HypernetworkParams::samples must be >= 1");
  require(iterations >= 1, "HypernetworkParams::iterations must be >= 1");
  require(tolerance > 0, "HypernetworkParams::tolerance must be > 0");
}

Hypernetwork::Hypernetwork(Vector<double> w_init, Vector<double> center, Index rank,
                           std::uint64_t seed)
    : rank_(rank), w0_(std::move(w_init)), center_(std::move(center)) {
  require(rank_ >= 0, "Hypernetwork: rank must be >= 0 (0: full W)");
  require(w0_.size() >= 1 && center_.size() >= 1, "Hypernetwork: empty w or λ");
  const Index D = w0_.size(), h = center_.size();
  if (rank_ == 0) {
    W_ = Matrix<double>::Zero(D, h);
  } else {
    require(rank_ <= h, "Hypernetwork: rank " + std::to_string(rank_) + " exceeds the " +
                            std::to_string(h) + " hyperparameters");
    U_ = Matrix<double>::Zero(D, rank_);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    Matrix<double> G(h, rank_);
    for (Index i = 0; i < h; ++i)
      for (Index j = 0; j < rank_; ++j) G(i, j) = normal(rng);
    Eigen::HouseholderQR<Matrix<double>> qr(G);
    V_ = qr.householderQ() * Matrix<double>::Identity(h, rank_);
  }
}

Vector<double> Hypernetwork::weights(const Vector<double>& lambda) const {
  require(lambda.size() == num_hyper(), "Hypernetwork::weights: λ has the wrong size");
  const Vector<double> e = lambda - center_;
  if (rank_ == 0) return w0_ + W_ * e;
  return w0_ + U_ * (V_.transpose() * e);
}

Matrix<double> Hypernetwork::jacobian() const {
  return rank_ == 0 ? W_ : Matrix<double>(U_ * V_.transpose());
}

Vector<double> Hypernetwork::apply_transpose(const Vector<double>& g) const {
  require(g.size() == num_params(), "Hypernetwork::apply_transpose: g has the wrong size");
  if (rank_ == 0) return W_.transpose() * g;
  return V_ * (U_.transpose() * g);
}

void Hypernetwork::recenter(const Vector<double>& center) {
  w0_ = weights(center);
  center_ = center;
}

Vector<double> Hypernetwork::pack(double scale) const {
  const Index D = num_params();
  if (rank_ == 0) {
    Vector<double> phi(D + W_.size());
    phi.head(D) = w0_;
    phi.tail(W_.size()) = scale * W_.reshaped();
    return phi;
  }
  Vector<double> phi(D + U_.size() + V_.size());
  phi.head(D) = w0_;
  phi.segment(D, U_.size()) = scale * U_.reshaped();
  phi.tail(V_.size()) = V_.reshaped();
  return phi;
}

void Hypernetwork::unpack(const Vector<double>& phi, double scale) {
  const Index D = num_params();
  w0_ = phi.head(D);
  if (rank_ == 0) {
    W_.reshaped() = phi.tail(W_.size()) / scale;
  } else {
    U_.reshaped() = phi.segment(D, U_.size()) / scale;
    V_.reshaped() = phi.tail(V_.size());
  }
}

HypernetworkTrainResult Hypernetwork::train(BilevelProblem<double>& problem,
                                            const HypernetworkParams& params,
                                            std::mt19937_64& rng) {
  params.check();
  require(problem.num_params() == num_params() && problem.num_hyper() == num_hyper(),
          "Hypernetwork::train: the problem's sizes do not match the hypernetwork's");
  require(params.rank == rank_, "Hypernetwork::train: params.rank differs from the hypernetwork's");
  const Index D = num_params(), h = num_hyper();
  // This round's perturbations: K antithetic pairs ±ε_k.
  std::normal_distribution<double> normal(0.0, params.perturbation);
  std::vector<Vector<double>> eps;
  for (Index k = 0; k < params.samples; ++k) {
    Vector<double> e(h);
    for (Index i = 0; i < h; ++i) e(i) = normal(rng);
    eps.push_back(e);
    eps.push_back(-e);
  }
  const double scale = 1.0 / static_cast<double>(eps.size());
  // The optimiser sees σ W (σ U): W ε is O(σ W), so in these variables the objective's curvature
  // in W is that in w0, not σ² of it (L-BFGS stalls on the badly scaled problem at small σ).
  const double sigma = params.perturbation;
  HypernetworkTrainResult out;
  Vector<double> lambda(h), w(D), Ve;
  const auto objective = [&](const Vector<double>& phi, Vector<double>& grad) {
    ++out.evaluations;
    unpack(phi, sigma);
    grad.setZero(phi.size());
    double loss = 0;
    for (const Vector<double>& e : eps) {
      lambda = center_ + e;
      if (rank_ == 0) {
        w = w0_ + W_ * e;
      } else {
        Ve = V_.transpose() * e;
        w = w0_ + U_ * Ve;
      }
      problem.set_point(lambda, w);
      loss += scale * problem.train_loss();
      const Vector<double>& g = problem.train_gradient();
      grad.head(D) += scale * g;
      if (rank_ == 0) {
        // ∂/∂W = g εᵀ (column-major vec)
        for (Index j = 0; j < h; ++j) grad.segment(D + j * D, D) += (scale * e(j) / sigma) * g;
      } else {
        // ∂/∂U = g (Vᵀε)ᵀ, ∂/∂V = ε (Uᵀ g)ᵀ
        for (Index j = 0; j < rank_; ++j) grad.segment(D + j * D, D) += (scale * Ve(j) / sigma) * g;
        const Vector<double> Utg = U_.transpose() * g;
        const Index off = D + U_.size();
        for (Index j = 0; j < rank_; ++j) grad.segment(off + j * h, h) += (scale * Utg(j)) * e;
      }
    }
    return loss;
  };
  Vector<double> phi = pack(sigma);
  const double inf = std::numeric_limits<double>::infinity();
  const Vector<double> lb = Vector<double>::Constant(phi.size(), -inf);
  const Vector<double> ub = Vector<double>::Constant(phi.size(), inf);
  out.loss = detail::minimize_in_box(objective, phi, lb, ub, params.iterations, params.tolerance);
  unpack(phi, sigma);  // the best point evaluated (the last evaluation may have been another)
  problem.set_point(center_, w0_);
  require(std::isfinite(out.loss),
          "Hypernetwork::train: the training loss was not finite at any φ evaluated (a smaller "
          "perturbation or another initial log decay may help)");
  return out;
}

Vector<double> Hypernetwork::hypergradient(BilevelProblem<double>& problem) const {
  problem.set_point(center_, w0_);
  Vector<double> direct;
  problem.val_direct_gradient(direct);
  return direct + apply_transpose(problem.val_gradient());
}

}  // namespace ift::baselines
