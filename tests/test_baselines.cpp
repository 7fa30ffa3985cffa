// Issue 13's baselines: per-class weight decay, the Gaussian process and expected improvement
// of Bayesian optimisation, the hypernetwork's best-response Jacobian, warm-started versus
// re-initialised trials, and the cost counter.
#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/LU>
#include <cmath>
#include <random>

#include "fixtures.hpp"
#include "ift/baselines/cost.hpp"
#include "ift/baselines/gp.hpp"
#include "ift/baselines/hypernetwork.hpp"
#include "ift/baselines/search.hpp"
#include "ift/inner.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

using namespace ift;
using namespace ift::baselines;

namespace {

std::shared_ptr<const Dataset<double>> shared(Dataset<double> d) {
  return std::make_shared<const Dataset<double>>(std::move(d));
}

/// Softmax regression, 4 features + bias, 3 classes (D = 15), with the given decay family.
RegularizedProblem<SoftmaxRegression<double>> small_problem(DecayKind kind, Index groups = 1) {
  SoftmaxRegression<double> model(5, 3);
  return RegularizedProblem<SoftmaxRegression<double>>(
      model, WeightDecay<double>(kind, model.num_params(), groups),
      shared(ift::testing::random_classification<double>(40, 4, 3, 1)),
      shared(ift::testing::random_classification<double>(30, 4, 3, 101)));
}

double rel(const Matrix<double>& a, const Matrix<double>& b) {
  return (a - b).norm() / std::max(1e-300, b.norm());
}

// ---- Per-class weight decay ----------------------------------------------------------------

TEST(PerClassDecay, PenaltyGradientsAndMixedProductMatchDefinitionAndFiniteDifferences) {
  const Index D = 12, groups = 3;
  WeightDecay<double> decay(DecayKind::PerClass, D, groups);
  ASSERT_EQ(decay.num_hyper(), groups);
  const Vector<double> w = ift::testing::random_vector<double>(D, 1);
  const Vector<double> v = ift::testing::random_vector<double>(D, 2);
  const Vector<double> lambda = ift::testing::random_vector<double>(groups, 3, 0.5);
  // R = ½ Σ_g exp(λ_g) ||w_g||² with blocks of 4 contiguous weights.
  double expected = 0;
  for (Index g = 0; g < groups; ++g)
    expected += 0.5 * std::exp(lambda(g)) * w.segment(4 * g, 4).squaredNorm();
  EXPECT_NEAR(decay.penalty(lambda, w), expected, 1e-14 * expected);
  // ∇_w R by central differences.
  Vector<double> g = Vector<double>::Zero(D);
  decay.add_gradient(lambda, w, g);
  const double h = ift::testing::Tol<double>::fd_step;
  for (Index i = 0; i < D; ++i) {
    Vector<double> wp = w, wm = w;
    wp(i) += h;
    wm(i) -= h;
    EXPECT_NEAR(g(i), (decay.penalty(lambda, wp) - decay.penalty(lambda, wm)) / (2 * h), 1e-8);
  }
  // ∂R/∂λ and the mixed product vᵀ ∂²R/∂w∂λᵀ = ∂/∂λ (vᵀ ∇_w R) by central differences in λ.
  Vector<double> dl, mixed;
  decay.gradient_lambda(lambda, w, dl);
  decay.mixed_product(lambda, w, v, mixed);
  ASSERT_EQ(mixed.size(), groups);
  for (Index k = 0; k < groups; ++k) {
    Vector<double> lp = lambda, lm = lambda;
    lp(k) += h;
    lm(k) -= h;
    EXPECT_NEAR(dl(k), (decay.penalty(lp, w) - decay.penalty(lm, w)) / (2 * h), 1e-8);
    Vector<double> gp = Vector<double>::Zero(D), gm = Vector<double>::Zero(D);
    decay.add_gradient(lp, w, gp);
    decay.add_gradient(lm, w, gm);
    EXPECT_NEAR(mixed(k), v.dot(gp - gm) / (2 * h), 1e-8);
  }
  // The Hessian diagonal: exp(λ_g) on group g.
  const Vector<double> diag = decay.hessian_diagonal(lambda);
  for (Index i = 0; i < D; ++i) EXPECT_DOUBLE_EQ(diag(i), std::exp(lambda(i / 4)));
  EXPECT_THROW(WeightDecay<double>(DecayKind::PerClass, 10, 3), std::invalid_argument);
  EXPECT_EQ(parse_decay_kind("per-class"), DecayKind::PerClass);
}

TEST(PerClassDecay, ProblemMixedProductMatchesFiniteDifferencesOfTheTrainingGradient) {
  auto problem = small_problem(DecayKind::PerClass, 3);
  ASSERT_EQ(problem.num_hyper(), 3);
  const Vector<double> w = ift::testing::random_vector<double>(15, 4, 0.3);
  const Vector<double> v = ift::testing::random_vector<double>(15, 5);
  const Vector<double> lambda = ift::testing::random_vector<double>(3, 6, 0.5);
  problem.set_point(lambda, w);
  Vector<double> mixed;
  problem.mixed_product(v, mixed);
  const double h = ift::testing::Tol<double>::fd_step;
  for (Index k = 0; k < 3; ++k) {
    Vector<double> lp = lambda, lm = lambda;
    lp(k) += h;
    lm(k) -= h;
    problem.set_point(lp, w);
    const Vector<double> gp = problem.train_gradient();
    problem.set_point(lm, w);
    const Vector<double> gm = problem.train_gradient();
    EXPECT_NEAR(mixed(k), v.dot(gp - gm) / (2 * h), 1e-7 * std::max(1.0, std::abs(mixed(k))));
  }
}

// ---- Gaussian process ------------------------------------------------------------------------

/// The Matérn 5/2 ARD kernel written out independently of gp.cpp.
double matern52(const Vector<double>& a, const Vector<double>& b, const Vector<double>& ell, double s2) {
  const double r = std::sqrt(((a - b).array() / ell.array()).square().sum());
  return s2 * (1 + std::sqrt(5.0) * r + 5.0 * r * r / 3.0) * std::exp(-std::sqrt(5.0) * r);
}

struct GpFixture {
  GaussianProcess gp{2, true};
  Matrix<double> X;
  Vector<double> y, ell;
  double s2 = 1.3, noise = 0.01;
  GpFixture() {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(0, 1);
    X.resize(8, 2);
    y.resize(8);
    for (Index i = 0; i < 8; ++i) {
      X(i, 0) = u(rng);
      X(i, 1) = u(rng);
      y(i) = std::sin(4 * X(i, 0)) + X(i, 1) * X(i, 1) + 0.05 * u(rng);
    }
    ell.resize(2);
    ell << 0.4, 0.7;
    Vector<double> theta(4);
    theta << std::log(ell(0)), std::log(ell(1)), std::log(s2), std::log(noise);
    gp.set_data(X, y);
    gp.set_theta(theta);
  }
  /// K of the data by the kernel written out above.
  Matrix<double> dense_kernel() const {
    const Index n = X.rows();
    Matrix<double> K(n, n);
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < n; ++j) K(i, j) = matern52(X.row(i).transpose(), X.row(j).transpose(), ell, s2);
    return K;
  }
};

TEST(GaussianProcess, PosteriorMeanAndVarianceMatchTheDenseFormulas) {
  GpFixture f;
  const Index n = f.X.rows();
  Matrix<double> Ky = f.dense_kernel();
  EXPECT_LT(rel(f.gp.kernel_matrix(), Ky), 1e-14);
  Ky.diagonal().array() += f.noise;
  const Matrix<double> Kinv = Ky.inverse();
  EXPECT_EQ(f.gp.jitter(), 0.0);
  for (Vector<double> x : {Vector<double>(Vector<double>::Constant(2, 0.3)),
                           Vector<double>(f.X.row(2).transpose()),
                           Vector<double>(Vector<double>::Constant(2, 0.9))}) {
    Vector<double> ks(n);
    for (Index i = 0; i < n; ++i) ks(i) = matern52(x, f.X.row(i).transpose(), f.ell, f.s2);
    const double mean = ks.dot(Kinv * f.y);                  // K*ᵀ (K + σ²I)⁻¹ y
    const double var = f.s2 - ks.dot(Kinv * ks);             // k** − K*ᵀ (K + σ²I)⁻¹ K*
    double m = 0, s = 0;
    f.gp.predict(x, m, s);
    EXPECT_NEAR(m, mean, 1e-10 * std::max(1.0, std::abs(mean)));
    EXPECT_NEAR(s, var, 1e-10 * f.s2);
  }
}

TEST(GaussianProcess, LogMarginalLikelihoodAndItsGradientMatchDenseFormulaAndFiniteDifferences) {
  GpFixture f;
  const Index n = f.X.rows();
  Matrix<double> Ky = f.dense_kernel();
  Ky.diagonal().array() += f.noise;
  const double dense = -0.5 * f.y.dot(Ky.inverse() * f.y) - 0.5 * std::log(Ky.determinant()) -
                       0.5 * static_cast<double>(n) * std::log(2 * M_PI);
  Vector<double> grad;
  const Vector<double> theta = f.gp.theta();
  EXPECT_NEAR(f.gp.log_marginal_likelihood(theta, &grad), dense, 1e-10 * std::abs(dense));
  const double h = 1e-6;
  for (Index j = 0; j < theta.size(); ++j) {
    Vector<double> tp = theta, tm = theta;
    tp(j) += h;
    tm(j) -= h;
    const double fd = (f.gp.log_marginal_likelihood(tp) - f.gp.log_marginal_likelihood(tm)) / (2 * h);
    EXPECT_NEAR(grad(j), fd, 1e-6 * std::max(1.0, std::abs(fd))) << "θ_" << j;
  }
  // The isotropic kernel's single length scale too.
  GaussianProcess iso(2, false);
  iso.set_data(f.X, f.y);
  Vector<double> t3(3);
  t3 << std::log(0.5), std::log(0.8), std::log(0.02);
  Vector<double> g3;
  iso.log_marginal_likelihood(t3, &g3);
  for (Index j = 0; j < 3; ++j) {
    Vector<double> tp = t3, tm = t3;
    tp(j) += h;
    tm(j) -= h;
    const double fd = (iso.log_marginal_likelihood(tp) - iso.log_marginal_likelihood(tm)) / (2 * h);
    EXPECT_NEAR(g3(j), fd, 1e-6 * std::max(1.0, std::abs(fd)));
  }
}

TEST(GaussianProcess, FittingRaisesTheMarginalLikelihoodAndStaysInItsBox) {
  GpFixture f;
  const double before = f.gp.log_marginal_likelihood(f.gp.theta());
  std::mt19937_64 rng(3);
  GpFitParams params;
  const double after = f.gp.fit(params, rng);
  EXPECT_GE(after, before);
  EXPECT_NEAR(after, f.gp.log_marginal_likelihood(f.gp.theta()), 1e-9 * std::abs(after));
  // A local maximum inside the box (or on its boundary): the gradient vanishes in free
  // coordinates.
  Vector<double> grad;
  f.gp.log_marginal_likelihood(f.gp.theta(), &grad);
  for (Index j = 0; j < 2; ++j) {
    const double l = f.gp.length_scale(j);
    if (l > params.min_length * 1.001 && l < params.max_length * 0.999) {
      EXPECT_LT(std::abs(grad(j)), 1e-3) << "length scale " << j;
    }
  }
}

TEST(GaussianProcess, ExpectedImprovementMatchesMonteCarloAndItsGradientFiniteDifferences) {
  GpFixture f;
  const double best = f.y.minCoeff();
  std::mt19937_64 rng(11);
  for (Vector<double> x : {Vector<double>(Vector<double>::Constant(2, 0.35)),
                           Vector<double>(Vector<double>::Constant(2, 0.8))}) {
    double mean = 0, var = 0;
    f.gp.predict(x, mean, var);
    Vector<double> grad;
    const double ei = f.gp.expected_improvement(x, best, &grad);
    // Monte Carlo: E[max(f⁺ − f, 0)], f ~ N(μ, σ²); tolerance 4 standard errors.
    std::normal_distribution<double> normal(mean, std::sqrt(var));
    const int N = 400000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < N; ++i) {
      const double imp = std::max(best - normal(rng), 0.0);
      sum += imp;
      sum2 += imp * imp;
    }
    const double mc = sum / N, se = std::sqrt((sum2 / N - mc * mc) / N);
    EXPECT_NEAR(ei, mc, 4 * se + 1e-12) << "se " << se;
    const double h = 1e-6;
    for (Index j = 0; j < 2; ++j) {
      Vector<double> xp = x, xm = x;
      xp(j) += h;
      xm(j) -= h;
      const double fd = (f.gp.expected_improvement(xp, best) - f.gp.expected_improvement(xm, best)) / (2 * h);
      EXPECT_NEAR(grad(j), fd, 1e-6 * std::max(1.0, std::abs(fd)));
    }
    // The posterior mean's and variance's gradients as well.
    Vector<double> dm, dv;
    f.gp.predict(x, mean, var, &dm, &dv);
    for (Index j = 0; j < 2; ++j) {
      Vector<double> xp = x, xm = x;
      xp(j) += h;
      xm(j) -= h;
      double mp, vp, mm, vm;
      f.gp.predict(xp, mp, vp);
      f.gp.predict(xm, mm, vm);
      EXPECT_NEAR(dm(j), (mp - mm) / (2 * h), 1e-6);
      EXPECT_NEAR(dv(j), (vp - vm) / (2 * h), 1e-6);
    }
  }
}

TEST(GaussianProcess, MaximisedExpectedImprovementBeatsEveryPointOfADenseGrid) {
  GpFixture f;
  const double best = f.y.minCoeff();
  std::mt19937_64 rng(5);
  double ei = 0;
  const Vector<double> x = f.gp.maximize_expected_improvement(best, EiMaxParams{}, rng, &ei);
  EXPECT_TRUE((x.array() >= 0).all() && (x.array() <= 1).all()) << x.transpose();
  EXPECT_NEAR(ei, f.gp.expected_improvement(x, best), 1e-15);
  double grid_max = 0;
  for (int i = 0; i <= 60; ++i)
    for (int j = 0; j <= 60; ++j) {
      Vector<double> z(2);
      z << i / 60.0, j / 60.0;
      grid_max = std::max(grid_max, f.gp.expected_improvement(z, best));
    }
  EXPECT_GE(ei, grid_max * (1 - 1e-6));
}

TEST(GaussianProcess, RepeatedNoiselessObservationsNeedJitterAndItIsReported) {
  GaussianProcess gp(1, true);
  Matrix<double> X(3, 1);
  X << 0.5, 0.5, 0.2;  // a repeated input: K is singular without noise
  Vector<double> y(3);
  y << 1.0, 1.0, 0.0;
  gp.set_data(X, y);
  Vector<double> theta(3);
  theta << std::log(0.3), 0.0, std::log(1e-300);
  gp.set_theta(theta);
  EXPECT_GT(gp.jitter(), 0.0);
  double m = 0, v = 0;
  gp.predict(X.row(0).transpose(), m, v);
  EXPECT_NEAR(m, 1.0, 1e-4);
  EXPECT_TRUE(std::isfinite(v));
}

// ---- Hypernetwork --------------------------------------------------------------------------

/// J = dw*/dλ = −H⁻¹ ∂²L_T/∂w∂λ at w*(λ), dense.
Matrix<double> ift_jacobian(RegularizedProblem<SoftmaxRegression<double>>& problem,
                            const Vector<double>& lambda, Vector<double>& w_star) {
  w_star = Vector<double>::Zero(problem.num_params());
  NewtonParams np;
  np.gradient_tolerance = 1e-13;
  const InnerResult r = newton_solve<double>(problem, lambda, w_star, np);
  EXPECT_TRUE(r.converged) << r.message;
  Matrix<double> H;
  problem.hessian(H);
  const Index D = problem.num_params(), h = problem.num_hyper();
  Matrix<double> M(D, h);
  Vector<double> e = Vector<double>::Zero(D), row;
  for (Index i = 0; i < D; ++i) {
    e(i) = 1;
    problem.mixed_product(e, row);
    M.row(i) = row.transpose();
    e(i) = 0;
  }
  return -H.llt().solve(M);
}

/// The hypernetwork's error ||W − J|| / ||J|| after training to convergence at perturbation σ
/// (the same standard-normal draws for every σ: the same seed).
double hypernetwork_error(RegularizedProblem<SoftmaxRegression<double>>& problem,
                          const Vector<double>& lambda, const Matrix<double>& J, double sigma,
                          Index rank, double* w0_error = nullptr,
                          const Vector<double>* w_star = nullptr) {
  Hypernetwork hn(Vector<double>::Zero(problem.num_params()), lambda, rank, 3);
  HypernetworkParams p;
  p.rank = rank;
  p.perturbation = sigma;
  p.samples = 6;
  p.iterations = 20000;
  p.tolerance = 1e-13;
  std::mt19937_64 rng(9);
  hn.train(problem, p, rng);
  if (w0_error) *w0_error = (hn.w0() - *w_star).norm() / w_star->norm();
  return rel(hn.jacobian(), J);
}

// At a converged, strictly convex inner problem the trained hypernetwork's Jacobian W is the
// IFT's dw*/dλ = −H⁻¹ ∂²L_T/∂w∂λ up to O(σ²) (hypernetwork.hpp: antithetic perturbations make
// the O(σ) terms cancel; what is left comes from the cubic terms of w*(λ) and L_T). So: the
// error is small at σ = 0.05 (below 1%, the O(σ²) constant here being about 1), and it falls
// like σ²: halving σ divides it by about 4 (we require > 3; an O(σ) error would give 2).
TEST(Hypernetwork, JacobianAgreesWithTheIftBestResponseJacobianToOrderSigmaSquared) {
  for (DecayKind kind : {DecayKind::Global, DecayKind::PerClass}) {
    auto problem = small_problem(kind, 3);
    Vector<double> lambda = kind == DecayKind::Global ? Vector<double>::Constant(1, -1.5)
                                                      : Vector<double>(Vector<double>::LinSpaced(3, -2.0, -0.5));
    Vector<double> w_star;
    const Matrix<double> J = ift_jacobian(problem, lambda, w_star);
    double w0_error = 0;
    const double e1 = hypernetwork_error(problem, lambda, J, 0.1, 0, &w0_error, &w_star);
    const double e2 = hypernetwork_error(problem, lambda, J, 0.05, 0);
    EXPECT_LT(e2, 1e-2) << "σ = 0.05";
    EXPECT_GT(e1 / e2, 3.0) << "errors " << e1 << " at σ = 0.1, " << e2 << " at σ = 0.05";
    EXPECT_LT(e1 / e2, 5.5);
    EXPECT_LT(w0_error, 1e-2);  // w0 = w* + O(σ²) too
  }
}

TEST(Hypernetwork, LowRankOfFullRankMatchesTheFullHypernetwork) {
  auto problem = small_problem(DecayKind::PerClass, 3);
  const Vector<double> lambda = Vector<double>::LinSpaced(3, -2.0, -0.5);
  Vector<double> w_star;
  const Matrix<double> J = ift_jacobian(problem, lambda, w_star);
  const double full = hypernetwork_error(problem, lambda, J, 0.05, 0);
  const double low = hypernetwork_error(problem, lambda, J, 0.05, 3);  // U Vᵀ of rank h
  EXPECT_LT(low, 1e-2);
  EXPECT_NEAR(low, full, 1e-3);
}

TEST(Hypernetwork, HypergradientIsTheDirectTermPlusWTransposedValidationGradient) {
  auto problem = small_problem(DecayKind::PerClass, 3);
  const Vector<double> lambda = Vector<double>::LinSpaced(3, -2.0, -0.5);
  Hypernetwork hn(ift::testing::random_vector<double>(15, 2, 0.1), lambda, 2, 4);
  HypernetworkParams p;
  p.rank = 2;
  std::mt19937_64 rng(1);
  hn.train(problem, p, rng);
  // dL_V(w_φ(λ))/dλ by central differences through w_φ.
  const Vector<double> h = hn.hypergradient(problem);
  for (Index k = 0; k < 3; ++k) {
    Vector<double> lp = lambda, lm = lambda;
    lp(k) += 1e-6;
    lm(k) -= 1e-6;
    problem.set_point(lp, hn.weights(lp));
    const double vp = problem.val_loss();
    problem.set_point(lm, hn.weights(lm));
    const double vm = problem.val_loss();
    EXPECT_NEAR(h(k), (vp - vm) / 2e-6, 1e-7);
  }
  // recenter keeps w_φ as a function.
  const Vector<double> probe = lambda.array() + 0.3;
  const Vector<double> before = hn.weights(probe);
  hn.recenter(lambda.array() - 0.2);
  EXPECT_LT((hn.weights(probe) - before).norm(), 1e-12 * before.norm());
}

// ---- Trials: warm start versus re-initialisation ------------------------------------------

SearchParams search_params(Index dim, TrialStart start, SearchKind kind = SearchKind::Random) {
  SearchParams p;
  p.kind = kind;
  p.start = start;
  p.lower = Vector<double>::Constant(dim, -4.0);
  p.upper = Vector<double>::Constant(dim, 0.0);
  p.inner.inner_solver = InnerSolver::NewtonCg;
  p.inner.inner_steps = 100;
  p.inner.inner_tolerance = 1e-10;
  p.seed = 5;
  return p;
}

// Strictly convex L_T (μ ≥ min exp(λ) > 0): from any start, a solver stopped at ||∇L_T|| < tol
// is within tol/μ of w*(λ), so two runs agree to 2 tol/μ.
TEST(Trials, WarmStartedAndReinitialisedTrialsReachTheSameMinimiser) {
  auto problem = small_problem(DecayKind::PerClass, 3);
  const Vector<double> zero = Vector<double>::Zero(15);
  Search reinit(problem, search_params(3, TrialStart::Reinitialize), zero);
  Search warm(problem, search_params(3, TrialStart::WarmLast), zero);
  double reinit_iterations = 0, warm_iterations = 0;
  for (int t = 0; t < 5; ++t) {
    const Trial a = reinit.next();
    const Trial b = warm.next();
    ASSERT_EQ(a.lambda, b.lambda);  // same seed: same proposals
    ASSERT_EQ(a.inner_status, "converged");
    ASSERT_EQ(b.inner_status, "converged");
    reinit_iterations += static_cast<double>(a.inner_iterations);
    warm_iterations += static_cast<double>(b.inner_iterations);
    const double mu = std::exp(a.lambda.minCoeff());
    EXPECT_NEAR(a.metrics.val_loss, b.metrics.val_loss, 1e-8);
    (void)mu;
  }
  const double mu = std::exp(reinit.best().lambda.minCoeff());
  EXPECT_EQ(reinit.best().index, warm.best().index);
  EXPECT_LT((reinit.best_w() - warm.best_w()).norm(), 2e-10 / mu);
  // A direct check at one λ from two different starts.
  Vector<double> w1 = zero, w2 = ift::testing::random_vector<double>(15, 8);
  const Vector<double> lambda = Vector<double>::LinSpaced(3, -3.0, -1.0);
  reinit.run_trial(lambda, w1);
  reinit.run_trial(lambda, w2);
  EXPECT_LT((w1 - w2).norm(), 2e-10 / std::exp(-3.0));
  EXPECT_LE(warm_iterations, reinit_iterations);  // what the warm start is for
}

TEST(Trials, SearchRefusesTooManyHyperparametersAndBadBoxes) {
  auto problem = small_problem(DecayKind::PerWeight);
  const Vector<double> zero = Vector<double>::Zero(15);
  SearchParams p = search_params(15, TrialStart::Reinitialize);
  EXPECT_NO_THROW(Search(problem, p, zero));
  p.lower = Vector<double>::Constant(kMaxSearchDimension + 1, -1);
  p.upper = Vector<double>::Constant(kMaxSearchDimension + 1, 0);
  EXPECT_THROW(p.check(), std::invalid_argument);
  SearchParams q = search_params(15, TrialStart::Reinitialize);
  q.upper(3) = q.lower(3);
  EXPECT_THROW(Search(problem, q, zero), std::invalid_argument);
}

TEST(Trials, BayesianOptimisationProposesInsideTheBoxAndImprovesOnItsRandomStart) {
  auto problem = small_problem(DecayKind::Global);
  SearchParams p = search_params(1, TrialStart::WarmBest, SearchKind::BayesOpt);
  p.lower(0) = -8;
  p.upper(0) = 3;
  p.initial_trials = 2;
  Search bo(problem, p, Vector<double>::Zero(15));
  double first = 0;
  for (int t = 0; t < 8; ++t) {
    const Trial trial = bo.next();
    EXPECT_GE(trial.lambda(0), -8);
    EXPECT_LE(trial.lambda(0), 3);
    EXPECT_EQ(trial.proposed_by_gp, t >= 2);
    if (t == 1) first = bo.best().metrics.val_loss;
  }
  EXPECT_LE(bo.best().metrics.val_loss, first);
}

// ---- Cost counter --------------------------------------------------------------------------

TEST(Cost, CountingProblemCountsWhatTheInnerSolverReports) {
  auto problem = small_problem(DecayKind::Global);
  CountingProblem<double> counted(problem);
  Vector<double> w = Vector<double>::Zero(15);
  const Vector<double> lambda = Vector<double>::Constant(1, -2.0);
  const InnerResult r = newton_cg_solve(counted, lambda, w);
  EXPECT_EQ(counted.counts().hvps, static_cast<double>(r.hvps));
  EXPECT_EQ(counted.counts().gradients, static_cast<double>(r.gradients));
  EXPECT_GE(counted.counts().forwards, static_cast<double>(r.iterations));
  CostModel m;
  m.forward = 0.4;
  m.hvp = 2;
  CostCounts c;
  c.forwards = 3;
  c.gradients = 2;
  c.hvps = 5;
  EXPECT_DOUBLE_EQ(m.cost(c), 3 * 0.4 + 2 * 0.6 + 5 * 2);
  const CostModel measured = measure_cost_model(problem, lambda, w, 3);
  EXPECT_GT(measured.hvp, 0);
  EXPECT_GE(measured.forward, 0);
  EXPECT_LE(measured.forward, 1);
}

}  // namespace
