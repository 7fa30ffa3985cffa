#include "ift/baselines/gp.hpp"

#include "minimize.hpp"

#include <Eigen/Cholesky>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace ift::baselines {

namespace {

constexpr double kSqrt5 = 2.23606797749978969641;

/// The Matérn 5/2 shape at r: (1 + √5 r + 5 r²/3) exp(−√5 r), and q(r) = (5/3)(1 + √5 r)
/// exp(−√5 r), for which dk/dr = −s² r q(r) (so ∂k/∂x needs no division by r).
inline double matern(double r) { return (1 + kSqrt5 * r + 5.0 * r * r / 3.0) * std::exp(-kSqrt5 * r); }
inline double matern_q(double r) { return (5.0 / 3.0) * (1 + kSqrt5 * r) * std::exp(-kSqrt5 * r); }

}  // namespace

double normal_pdf(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2 * std::numbers::pi); }
double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::numbers::sqrt2); }

GaussianProcess::GaussianProcess(Index dim, bool ard) : dim_(dim), ard_(ard) {
  require(dim >= 1, "GaussianProcess: the input dimension must be >= 1");
  theta_ = Vector<double>::Zero(num_theta());
  theta_.head(ard_ ? dim_ : 1).setConstant(std::log(0.3));  // ℓ = 0.3 of the unit box
  theta_(num_theta() - 2) = 0;                              // s² = 1
  theta_(num_theta() - 1) = std::log(1e-3);                 // σ_n² = 1e-3
}

void GaussianProcess::set_theta(const Vector<double>& theta) {
  require(theta.size() == num_theta(), "GaussianProcess::set_theta: θ has the wrong size");
  require(theta.allFinite(), "GaussianProcess::set_theta: θ is not finite");
  theta_ = theta;
  if (X_.rows() > 0) condition();
}

double GaussianProcess::length_scale(Index i) const { return std::exp(theta_(ard_ ? i : 0)); }
double GaussianProcess::signal_variance() const { return std::exp(theta_(num_theta() - 2)); }
double GaussianProcess::noise_variance() const { return std::exp(theta_(num_theta() - 1)); }

void GaussianProcess::set_data(const Matrix<double>& X, const Vector<double>& y) {
  require(X.cols() == dim_, "GaussianProcess::set_data: X has the wrong number of columns");
  require(X.rows() == y.size() && X.rows() >= 1,
          "GaussianProcess::set_data: needs as many values as rows, at least one");
  require(X.allFinite() && y.allFinite(), "GaussianProcess::set_data: non-finite observations");
  X_ = X;
  y_ = y;
  condition();
}

double GaussianProcess::kernel_at(const Vector<double>& theta, const Vector<double>& x,
                                  const Vector<double>& xp) const {
  double r2 = 0;
  for (Index i = 0; i < dim_; ++i) {
    const double l = std::exp(theta(ard_ ? i : 0));
    const double d = (x(i) - xp(i)) / l;
    r2 += d * d;
  }
  return std::exp(theta(num_theta() - 2)) * matern(std::sqrt(r2));
}

double GaussianProcess::kernel(const Vector<double>& x, const Vector<double>& xp) const {
  return kernel_at(theta_, x, xp);
}

Matrix<double> GaussianProcess::kernel_matrix() const {
  const Index n = X_.rows();
  Matrix<double> K(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j <= i; ++j) K(i, j) = K(j, i) = kernel(X_.row(i).transpose(), X_.row(j).transpose());
  return K;
}

void GaussianProcess::factor(const Vector<double>& theta, Matrix<double>& L, double& jitter) const {
  const Index n = X_.rows();
  Matrix<double> K(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j <= i; ++j)
      K(i, j) = K(j, i) = kernel_at(theta, X_.row(i).transpose(), X_.row(j).transpose());
  K.diagonal().array() += std::exp(theta(num_theta() - 1));
  const double scale = K.diagonal().mean();
  jitter = 0;
  for (int attempt = 0; attempt < 12; ++attempt) {
    Matrix<double> A = K;
    if (jitter > 0) A.diagonal().array() += jitter;
    Eigen::LLT<Matrix<double>> llt(A);
    if (llt.info() == Eigen::Success && llt.matrixL().toDenseMatrix().diagonal().minCoeff() > 0) {
      L = llt.matrixL();
      return;
    }
    jitter = jitter == 0 ? 1e-10 * scale : 10 * jitter;
  }
  throw std::runtime_error("GaussianProcess: K + σ_n² I is not positive definite even with jitter " +
                           std::to_string(jitter / 10) + " on its diagonal");
}

void GaussianProcess::condition() {
  factor(theta_, L_, jitter_);
  alpha_ = L_.triangularView<Eigen::Lower>().solve(y_);
  L_.triangularView<Eigen::Lower>().transpose().solveInPlace(alpha_);
}

double GaussianProcess::log_marginal_likelihood(const Vector<double>& theta,
                                                Vector<double>* gradient) const {
  require(theta.size() == num_theta(), "GaussianProcess: θ has the wrong size");
  require(X_.rows() > 0, "GaussianProcess: no data");
  const Index n = X_.rows();
  Matrix<double> L;
  double jitter = 0;
  factor(theta, L, jitter);
  Vector<double> alpha = L.triangularView<Eigen::Lower>().solve(y_);
  L.triangularView<Eigen::Lower>().transpose().solveInPlace(alpha);
  const double lml = -0.5 * y_.dot(alpha) - L.diagonal().array().log().sum() -
                     0.5 * static_cast<double>(n) * std::log(2 * std::numbers::pi);
  if (gradient) {
    // Q = ααᵀ − K_y⁻¹; ∂lml/∂θ_j = ½ Σ_ab Q_ab ∂K_ab/∂θ_j.
    Matrix<double> Kinv = Matrix<double>::Identity(n, n);
    L.triangularView<Eigen::Lower>().solveInPlace(Kinv);
    L.triangularView<Eigen::Lower>().transpose().solveInPlace(Kinv);
    const Matrix<double> Q = alpha * alpha.transpose() - Kinv;
    gradient->setZero(num_theta());
    const double s2 = std::exp(theta(num_theta() - 2));
    const Index nl = ard_ ? dim_ : 1;
    Vector<double> inv_l2(dim_);
    for (Index i = 0; i < dim_; ++i) inv_l2(i) = std::exp(-2 * theta(ard_ ? i : 0));
    for (Index a = 0; a < n; ++a)
      for (Index b = 0; b < n; ++b) {
        const Vector<double> d = (X_.row(a) - X_.row(b)).transpose();
        const double r = std::sqrt((d.array().square() * inv_l2.array()).sum());
        const double k = s2 * matern(r);
        // ∂k/∂log s² = k; ∂k/∂log ℓ_i = s² q(r) d_i² / ℓ_i².
        (*gradient)(nl) += 0.5 * Q(a, b) * k;
        const double sq = s2 * matern_q(r);
        for (Index i = 0; i < dim_; ++i)
          (*gradient)(ard_ ? i : 0) += 0.5 * Q(a, b) * sq * d(i) * d(i) * inv_l2(i);
      }
    // ∂K_y/∂log σ_n² = σ_n² I.
    (*gradient)(nl + 1) = 0.5 * std::exp(theta(nl + 1)) * Q.trace();
  }
  return lml;
}

double GaussianProcess::fit(const GpFitParams& params, std::mt19937_64& rng) {
  require(params.restarts >= 1 && params.max_iterations >= 1,
          "GpFitParams: restarts and max_iterations must be >= 1");
  require(X_.rows() > 0, "GaussianProcess::fit: no data");
  const Index m = num_theta(), nl = ard_ ? dim_ : 1;
  Vector<double> lb(m), ub(m);
  lb.head(nl).setConstant(std::log(params.min_length));
  ub.head(nl).setConstant(std::log(params.max_length));
  lb(nl) = std::log(params.min_signal);
  ub(nl) = std::log(params.max_signal);
  lb(nl + 1) = std::log(params.min_noise);
  ub(nl + 1) = std::log(params.max_noise);
  const auto objective = [this](const Vector<double>& theta, Vector<double>& g) {
    try {
      const double value = -log_marginal_likelihood(theta, &g);
      g = -g;
      return value;
    } catch (const std::runtime_error&) {
      g.setZero(theta.size());
      return std::numeric_limits<double>::infinity();
    }
  };
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  double best = std::numeric_limits<double>::infinity();
  Vector<double> best_theta = theta_.cwiseMax(lb).cwiseMin(ub);
  for (Index s = 0; s < params.restarts; ++s) {
    Vector<double> theta(m);
    if (s == 0) {
      theta = best_theta;
    } else {
      for (Index j = 0; j < m; ++j) theta(j) = lb(j) + unit(rng) * (ub(j) - lb(j));
    }
    const double value = detail::minimize_in_box(objective, theta, lb, ub, params.max_iterations);
    if (value < best) {
      best = value;
      best_theta = theta;
    }
  }
  require(std::isfinite(best), "GaussianProcess::fit: the log marginal likelihood was not finite at any start");
  theta_ = best_theta;
  condition();
  return -best;
}

void GaussianProcess::predict(const Vector<double>& x, double& mean, double& variance,
                              Vector<double>* mean_gradient,
                              Vector<double>* variance_gradient) const {
  require(x.size() == dim_, "GaussianProcess::predict: x has the wrong size");
  require(X_.rows() > 0, "GaussianProcess::predict: no data");
  const Index n = X_.rows();
  const double s2 = signal_variance();
  Vector<double> kstar(n);
  Matrix<double> dk(n, dim_);  // ∂k(x, x_a)/∂x_i = −s² q(r) (x_i − x_ai) / ℓ_i²
  for (Index a = 0; a < n; ++a) {
    double r2 = 0;
    for (Index i = 0; i < dim_; ++i) {
      const double d = (x(i) - X_(a, i)) / length_scale(i);
      r2 += d * d;
    }
    const double r = std::sqrt(r2);
    kstar(a) = s2 * matern(r);
    const double sq = s2 * matern_q(r);
    for (Index i = 0; i < dim_; ++i) {
      const double l = length_scale(i);
      dk(a, i) = -sq * (x(i) - X_(a, i)) / (l * l);
    }
  }
  mean = kstar.dot(alpha_);
  const Vector<double> v = L_.triangularView<Eigen::Lower>().solve(kstar);
  variance = std::max(0.0, s2 - v.squaredNorm());
  if (mean_gradient) *mean_gradient = dk.transpose() * alpha_;
  if (variance_gradient) {
    Vector<double> Kinv_k = v;
    L_.triangularView<Eigen::Lower>().transpose().solveInPlace(Kinv_k);
    *variance_gradient = -2.0 * (dk.transpose() * Kinv_k);
  }
}

double GaussianProcess::expected_improvement(const Vector<double>& x, double best,
                                             Vector<double>* gradient) const {
  double mean = 0, variance = 0;
  Vector<double> dmean, dvar;
  predict(x, mean, variance, gradient ? &dmean : nullptr, gradient ? &dvar : nullptr);
  const double sigma = std::sqrt(variance);
  if (!(sigma > 1e-12 * std::sqrt(signal_variance()))) {
    // No posterior uncertainty left (x at a noiseless observation): EI = max(f⁺ − μ, 0).
    if (gradient) *gradient = best > mean ? Vector<double>(-dmean) : Vector<double>::Zero(dim_);
    return std::max(best - mean, 0.0);
  }
  const double z = (best - mean) / sigma;
  const double Phi = normal_cdf(z), phi = normal_pdf(z);
  if (gradient) *gradient = -Phi * dmean + phi * dvar / (2 * sigma);
  return (best - mean) * Phi + sigma * phi;
}

Vector<double> GaussianProcess::maximize_expected_improvement(double best,
                                                              const EiMaxParams& params,
                                                              std::mt19937_64& rng,
                                                              double* ei) const {
  require(X_.rows() > 0, "GaussianProcess::maximize_expected_improvement: no data");
  const Vector<double> lb = Vector<double>::Zero(dim_), ub = Vector<double>::Ones(dim_);
  std::vector<Vector<double>> starts;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 0.05);
  for (Index s = 0; s < params.random_starts; ++s) {
    Vector<double> x(dim_);
    for (Index i = 0; i < dim_; ++i) x(i) = unit(rng);
    starts.push_back(x);
  }
  // Near the best observations (by value): EI's interesting region when the GP is confident.
  std::vector<Index> order(static_cast<std::size_t>(X_.rows()));
  for (Index a = 0; a < X_.rows(); ++a) order[static_cast<std::size_t>(a)] = a;
  std::sort(order.begin(), order.end(), [&](Index a, Index b) { return y_(a) < y_(b); });
  for (Index s = 0; s < std::min<Index>(params.best_starts, X_.rows()); ++s) {
    Vector<double> x = X_.row(order[static_cast<std::size_t>(s)]).transpose();
    for (Index i = 0; i < dim_; ++i) x(i) = std::clamp(x(i) + normal(rng), 0.0, 1.0);
    starts.push_back(x);
  }
  double best_value = -1;
  Vector<double> best_x = starts.front();
  const auto objective = [&](const Vector<double>& x, Vector<double>& g) {
    const double value = expected_improvement(x, best, &g);
    g = -g;
    return -value;
  };
  for (Vector<double> x : starts) {
    const double value = -detail::minimize_in_box(objective, x, lb, ub, params.max_iterations);
    if (value > best_value) {
      best_value = value;
      best_x = x;
    }
  }
  if (ei) *ei = expected_improvement(best_x, best);  // at the (projected) point returned
  return best_x;
}

}  // namespace ift::baselines
