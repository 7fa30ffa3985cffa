// The exact method's mixed-precision path (DenseSolver with DensePrecision::Mixed: a float
// Cholesky factor, iterative refinement in double, LAPACK's DSPOSV scheme) against the double
// Cholesky solve, the residual it must reach, its fallback to the double path and the statuses
// that path keeps (linalg/dense_solver.hpp).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>

#include "fixtures.hpp"
#include "ift/hypergradient.hpp"
#include "ift/linalg/dense_solver.hpp"
#include "ift/models/logistic_regression.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace ift {
namespace {

/// Q diag(eigenvalues) Qᵀ with a seeded random orthogonal Q (built in double).
Matrix<double> with_spectrum(const Vector<double>& eigenvalues, std::uint64_t seed) {
  const Index n = eigenvalues.size();
  Matrix<double> M(n, n);
  for (Index j = 0; j < n; ++j) M.col(j) = testing::random_vector<double>(n, seed * 1000 + j);
  const Eigen::HouseholderQR<Matrix<double>> qr(M);
  const Matrix<double> Q = qr.householderQ() * Matrix<double>::Identity(n, n);
  Matrix<double> H = Q * eigenvalues.asDiagonal() * Q.transpose();
  return 0.5 * (H + H.transpose());
}

/// SPD with eigenvalues spaced geometrically in [1, kappa] (2-norm condition number kappa).
Matrix<double> spd(Index n, double kappa, std::uint64_t seed) {
  Vector<double> d(n);
  for (Index i = 0; i < n; ++i)
    d[i] = std::pow(kappa, n > 1 ? double(i) / double(n - 1) : 0.0);
  return with_spectrum(d, seed);
}

DenseParams precision(DensePrecision p) {
  DenseParams params;
  params.precision = p;
  return params;
}

double relative(const Vector<double>& x, const Vector<double>& ref) {
  return (x - ref).norm() / ref.norm();
}

/// ‖H x − g‖ / ‖g‖ from the full symmetric H, independently of the solver.
double residual(const Matrix<double>& H, const Vector<double>& x, const Vector<double>& g) {
  return (H * x - g).norm() / g.norm();
}

/// ‖g − H x‖∞ / (√n·eps·‖H‖∞·‖x‖∞): at most 1 is DSPOSV's acceptance test (a backward error
/// of √n·eps), computed here from the full H independently of the solver.
double dsposv_ratio(const Matrix<double>& H, const Vector<double>& x, const Vector<double>& g) {
  const double h_norm = H.cwiseAbs().rowwise().sum().maxCoeff();
  return (g - H * x).lpNorm<Eigen::Infinity>() /
         (std::sqrt(double(H.rows())) * std::numeric_limits<double>::epsilon() * h_norm *
          x.lpNorm<Eigen::Infinity>());
}

TEST(DenseMixed, EqualsTheDoubleCholeskySolveOnAWellConditionedSpd) {
  // κ = 10, n = 300: two backward-stable double solves agree to about κ·√n·eps ≈ 4e-14.
  const Index n = 300;
  const Matrix<double> H = spd(n, 10.0, 1);
  const DenseSolver<double> mixed(H, precision(DensePrecision::Mixed));
  const DenseSolver<double> full(H, precision(DensePrecision::Double));
  ASSERT_EQ(mixed.factorization(), DenseFactorization::MixedCholesky) << mixed.message();
  ASSERT_EQ(full.factorization(), DenseFactorization::Cholesky);
  EXPECT_EQ(mixed.status(), SolverStatus::Converged);
  for (std::uint64_t seed : {2, 3, 4}) {  // one factor, several right-hand sides
    const Vector<double> g = testing::random_vector<double>(n, seed);
    const auto m = mixed.solve(g);
    const auto d = full.solve(g);
    EXPECT_EQ(m.status, SolverStatus::Converged) << m.message;
    EXPECT_NE(m.message.find("refinement step"), std::string::npos) << m.message;
    EXPECT_LE(relative(m.x, d.x), 1e-13);
    // Double accuracy, not float's: the float solve alone leaves about κ·eps_float ≈ 1e-6,
    // so at least one refinement step ran; each contracts the error by about n·κ·eps_float.
    EXPECT_GE(m.iterations, 1);
    EXPECT_LE(m.iterations, 5);
    EXPECT_EQ(m.hvps, 0);
    ASSERT_TRUE(m.relative_residual.has_value());
    // Residual at double level: DSPOSV's test, and the double Cholesky solve's own residual
    // (a few eps) rather than float's.
    EXPECT_LE(dsposv_ratio(H, m.x, g), 1.0);
    EXPECT_LE(residual(H, m.x, g), 1e-14);
    EXPECT_NEAR(*m.relative_residual, residual(H, m.x, g), 1e-15);
    // The operator form gives the same x.
    Vector<double> x;
    mixed.apply_inverse(g, x);
    EXPECT_EQ(x, m.x);
  }
  EXPECT_EQ(mixed.rcond(), 0.0);  // not estimated on the mixed path
  EXPECT_EQ(mixed.factorization(), DenseFactorization::MixedCholesky);  // no fallback happened
}

TEST(DenseMixed, AutoIsMixedFromTheThresholdOnAndDoubleBelow) {
  const Matrix<double> H = spd(120, 10.0, 5);
  DenseParams params;  // auto
  params.mixed_min_size = 121;
  EXPECT_EQ(DenseSolver<double>(H, params).factorization(), DenseFactorization::Cholesky);
  params.mixed_min_size = 120;
  EXPECT_EQ(DenseSolver<double>(H, params).factorization(), DenseFactorization::MixedCholesky);
  EXPECT_EQ(DenseSolver<double>(H, precision(DensePrecision::Double)).factorization(),
            DenseFactorization::Cholesky);
  params.max_refinements = 0;
  EXPECT_THROW(DenseSolver<double>(H, params), std::invalid_argument);
}

TEST(DenseMixed, IllConditionedFallsBackToDoubleAndSaysSo) {
  // κ = 1e9: κ·eps_float ≈ 60, so the float factor is no preconditioner of H (its Cholesky
  // fails, or the refinement cannot contract); the double path is still accurate (rcond ≫ eps).
  const Index n = 200;
  const Matrix<double> H = spd(n, 1e9, 6);
  const Vector<double> g = testing::random_vector<double>(n, 7);
  const DenseSolver<double> mixed(H, precision(DensePrecision::Mixed));
  const auto m = mixed.solve(g);
  EXPECT_EQ(mixed.factorization(), DenseFactorization::Cholesky) << m.message;
  EXPECT_EQ(m.status, SolverStatus::Converged) << m.message;
  EXPECT_NE(m.message.find("fell back to double"), std::string::npos) << m.message;
  EXPECT_GT(mixed.rcond(), 0.0);  // the double path's estimate
  const auto d = DenseSolver<double>(H, precision(DensePrecision::Double)).solve(g);
  EXPECT_LE(relative(m.x, d.x), 1e-14);  // the same double path
  EXPECT_EQ(m.iterations, 0);
  ASSERT_TRUE(m.relative_residual.has_value());
  EXPECT_EQ(*m.relative_residual, *d.relative_residual);
}

TEST(DenseMixed, TheRefinementCapFallsBackInTheSolve) {
  // κ = 1e4: the float factor succeeds and contracts the error by about κ·eps_float ≈ 1e-3
  // per step, so one step cannot reach double accuracy: the solve falls back to double.
  const Index n = 200;
  const Matrix<double> H = spd(n, 1e4, 8);
  const Vector<double> g = testing::random_vector<double>(n, 9);
  DenseParams params = precision(DensePrecision::Mixed);
  params.max_refinements = 1;
  const DenseSolver<double> capped(H, params);
  ASSERT_EQ(capped.factorization(), DenseFactorization::MixedCholesky) << capped.message();
  const auto r = capped.solve(g);
  EXPECT_EQ(capped.factorization(), DenseFactorization::Cholesky);  // replaced for good
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_NE(r.message.find("did not reach double accuracy in 1 steps"), std::string::npos)
      << r.message;
  const auto d = DenseSolver<double>(H, precision(DensePrecision::Double)).solve(g);
  EXPECT_LE(relative(r.x, d.x), 1e-14);
  // The uncapped refinement converges on the same matrix, to the double solution.
  const auto u = DenseSolver<double>(H, precision(DensePrecision::Mixed)).solve(g);
  EXPECT_EQ(u.status, SolverStatus::Converged) << u.message;
  EXPECT_GE(u.iterations, 2);
  EXPECT_LE(dsposv_ratio(H, u.x, g), 1.0);
  EXPECT_LE(relative(u.x, d.x), 1e4 * 1e-14);  // both within κ·(backward error) of H⁻¹g
}

TEST(DenseMixed, SingularAndIndefiniteKeepTheirStatuses) {
  const Index n = 40;
  const Vector<double> g = testing::random_vector<double>(n, 10);
  Vector<double> d(n);
  for (Index i = 0; i < n; ++i) d[i] = 1.0 + i;
  d[0] = -2.0;
  d[5] = -0.5;
  const Matrix<double> indefinite = with_spectrum(d, 11);
  for (const DensePrecision p : {DensePrecision::Double, DensePrecision::Mixed}) {
    const DenseSolver<double> solver(indefinite, precision(p));
    EXPECT_EQ(solver.factorization(), DenseFactorization::LDLT);
    const auto r = solver.solve(g);
    EXPECT_EQ(r.status, SolverStatus::NotPositiveDefinite) << r.message;
    EXPECT_NE(r.message.find("indefinite"), std::string::npos);
    EXPECT_EQ(p == DensePrecision::Mixed, r.message.find("fell back") != std::string::npos);
    EXPECT_LE(residual(indefinite, r.x, g), 1e-12);
  }
  Matrix<double> singular = spd(n, 10.0, 12);
  singular.row(4).setZero();
  singular.col(4).setZero();
  for (const DensePrecision p : {DensePrecision::Double, DensePrecision::Mixed}) {
    const auto r = DenseSolver<double>(singular, precision(p)).solve(g);
    EXPECT_EQ(r.status, SolverStatus::NumericalIssue) << r.message;
    EXPECT_NE(r.message.find("singular"), std::string::npos);
    EXPECT_TRUE(r.x.allFinite());
  }
  // A non-finite entry in the lower triangle (the part read): the mixed path's float copy
  // finds it and H is reported as not finite, as by the double path.
  Matrix<double> nan = spd(n, 10.0, 14);
  nan(9, 3) = std::numeric_limits<double>::quiet_NaN();
  for (const DensePrecision p : {DensePrecision::Double, DensePrecision::Mixed}) {
    const DenseSolver<double> solver(nan, precision(p));
    EXPECT_EQ(solver.factorization(), DenseFactorization::None);
    const auto r = solver.solve(g);
    EXPECT_EQ(r.status, SolverStatus::NumericalIssue);
    EXPECT_EQ(r.message, "H is not finite");
    EXPECT_TRUE(r.x.allFinite());
  }
  // Beyond float's range: the float copy cannot hold H; the double path solves it.
  const Matrix<double> huge = 1e300 * spd(n, 10.0, 13);
  const auto h = DenseSolver<double>(huge, precision(DensePrecision::Mixed)).solve(g);
  EXPECT_EQ(h.status, SolverStatus::Converged) << h.message;
  EXPECT_NE(h.message.find("beyond float's range"), std::string::npos) << h.message;
}

TEST(DenseMixed, FloatScalarsTakeThePlainFloatPath) {
  const Matrix<float> H = spd(60, 10.0, 14).cast<float>();
  const Vector<float> g = testing::random_vector<float>(60, 15);
  const DenseSolver<float> mixed(H, precision(DensePrecision::Mixed));
  const DenseSolver<float> plain(H, precision(DensePrecision::Double));
  EXPECT_EQ(mixed.factorization(), DenseFactorization::Cholesky);
  const auto m = mixed.solve(g), p = plain.solve(g);
  EXPECT_EQ(m.status, SolverStatus::Converged);
  EXPECT_EQ(m.x, p.x);  // the same computation
  EXPECT_LE(*m.relative_residual, 1e-5);
}

TEST(DenseMixed, LowerToFloatRoundsAndMeasuresTheNorm) {
  const Index n = 300;  // above the parallel threshold
  Matrix<double> A = spd(n, 50.0, 16);
  A.triangularView<Eigen::StrictlyUpper>().setConstant(1e40);  // not read: upper triangle
  Matrix<float> low;
  bool representable = false;
  const double norm = lower_to_float(A, low, representable);
  EXPECT_TRUE(representable);
  const Matrix<double> sym = A.selfadjointView<Eigen::Lower>();
  EXPECT_NEAR(norm, sym.cwiseAbs().colwise().sum().maxCoeff(), 1e-13 * norm);
  EXPECT_NEAR(norm, symmetric_l1_norm(A), 1e-13 * norm);
  for (Index j = 0; j < n; ++j)
    for (Index i = j; i < n; ++i) ASSERT_EQ(low(i, j), static_cast<float>(A(i, j)));
  A(7, 3) = 1e39;
  lower_to_float(A, low, representable);
  EXPECT_FALSE(representable);
}

TEST(DenseMixed, CopiesAndMovesKeepTheFloatFactor) {
  const Matrix<double> H = spd(100, 10.0, 17);
  const Vector<double> g = testing::random_vector<double>(100, 18);
  DenseSolver<double> source(H, precision(DensePrecision::Mixed));
  const auto reference = source.solve(g);
  const DenseSolver<double> copy(source);
  EXPECT_EQ(copy.factorization(), DenseFactorization::MixedCholesky);
  EXPECT_EQ(copy.solve(g).x, reference.x);
  const DenseSolver<double> moved(std::move(source));
  EXPECT_EQ(moved.solve(g).x, reference.x);
  EXPECT_EQ(source.factorization(), DenseFactorization::None);  // NOLINT(bugprone-use-after-move)
}

std::shared_ptr<const Dataset<double>> shared(Dataset<double> d) {
  return std::make_shared<const Dataset<double>>(std::move(d));
}

/// Precision auto, mixed from D = 10 on (so for every problem below).
DenseParams auto_from_10() {
  DenseParams params;
  params.mixed_min_size = 10;
  return params;
}

/// exact's hypergradient with `params`, and with double throughout.
template <class Problem, class V = Vector<typename Problem::Scalar>>
std::pair<generic::Result<V>, generic::Result<V>> mixed_and_double(
    Problem& problem, const DenseParams& params = auto_from_10()) {
  MethodSpec spec;
  spec.exact = params;
  auto mixed = generic::hypergradient(problem, spec);
  spec.exact.precision = DensePrecision::Double;
  return {std::move(mixed), generic::hypergradient(problem, spec)};
}

TEST(DenseMixed, SmallP1HessianAndItsHypergradient) {
  // Softmax regression with per-weight decay (P1's structure): 30 features + bias, 5 classes,
  // D = 155, at a point with decay 1 (κ(H) about 10: two double solves agree to ~1e-14).
  SoftmaxRegression<double> model(31, 5);
  RegularizedProblem problem(model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
                             shared(testing::random_classification<double>(200, 30, 5, 19)),
                             shared(testing::random_classification<double>(100, 30, 5, 20)));
  const Index D = model.num_params();
  problem.set_point(Vector<double>::Zero(D), testing::random_vector<double>(D, 21, 0.1));
  Matrix<double> H;
  problem.hessian(H);
  const Vector<double> g = testing::random_vector<double>(D, 22);
  const auto m = DenseSolver<double>(H, precision(DensePrecision::Mixed)).solve(g);
  const auto d = DenseSolver<double>(H, precision(DensePrecision::Double)).solve(g);
  EXPECT_EQ(m.status, SolverStatus::Converged) << m.message;
  EXPECT_NE(m.message.find("mixed-precision"), std::string::npos) << m.message;
  EXPECT_LE(relative(m.x, d.x), 1e-13);
  EXPECT_LE(dsposv_ratio(H, m.x, g), 1.0);
  EXPECT_LE(residual(H, m.x, g), 1e-14);

  // The whole exact hypergradient, mixed against double.
  const auto [hm, hd] = mixed_and_double(problem, precision(DensePrecision::Mixed));
  EXPECT_EQ(hm.status, SolverStatus::Converged) << hm.message;
  EXPECT_NE(hm.message.find("mixed-precision"), std::string::npos) << hm.message;
  EXPECT_EQ(hd.message.find("mixed-precision"), std::string::npos) << hd.message;
  EXPECT_LE(relative(hm.hypergradient, hd.hypergradient), 1e-13);
  EXPECT_LE(*hm.relative_residual, 1e-14);
}


// ---- H built in float (capability::FloatCurvature, DenseSolver::compute_mixed) ----

/// γ_m = m·u / (1 − m·u) with u = eps_float / 2: the bound on the relative error of m chained
/// float roundings (Higham, Accuracy and Stability, §3.1).
double gamma_float(Index m) {
  const double u = std::numeric_limits<float>::epsilon() / 2.0;
  return double(m) * u / (1.0 - double(m) * u);
}

/// Softmax probabilities of the rows of X at w (w[c·F + j] = W[c, j]), in double.
Matrix<double> softmax_probs(const Matrix<double>& X, const Vector<double>& w, Index C) {
  const Index F = X.cols();
  Matrix<double> Z = X * Eigen::Map<const Matrix<double>>(w.data(), F, C);
  for (Index i = 0; i < Z.rows(); ++i) {
    Z.row(i).array() -= Z.row(i).maxCoeff();
    Z.row(i) = Z.row(i).array().exp().matrix();
    Z.row(i) /= Z.row(i).sum();
  }
  return Z;
}

/// P1's structure at a small size: softmax regression, per-weight decay with λ_i drawn around
/// `log_decay` (spread 0.5), at a random point.
struct SmallP1 {
  SoftmaxRegression<double> model;
  RegularizedProblem<SoftmaxRegression<double>> problem;
  Vector<double> lambda;

  SmallP1(Index n, Index features, Index classes, double log_decay, std::uint64_t seed)
      : model(features + 1, classes),
        problem(model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
                shared(testing::random_classification<double>(n, features, classes, seed)),
                shared(testing::random_classification<double>(n / 2, features, classes, seed + 1))) {
    const Index D = model.num_params();
    lambda = testing::random_vector<double>(D, seed + 2, 0.5).array() + log_decay;
    problem.set_point(lambda, testing::random_vector<double>(D, seed + 3, 0.1));
  }
};

TEST(DenseMixedFloatH, SoftmaxFloatHessianEqualsTheDoubleOneToFloatRounding) {
  // Entry (c·F + a, c'·F + b) of the data term is Σ_k s_k x_ka x_kb, s_k = (δ_cc' p_kc −
  // p_kc p_kc') / n, formed in float as ±Σ_k y_ka y_kb with y_k = fl(fl(√|s_k|)·fl(x_k)): each term
  // carries at most 7 roundings (x twice, √|s| twice — one for its double evaluation, far below
  // u —, the two y products, their product) and the n-term sum at most n, whatever its order;
  // the penalty's diagonal adds 2 (e^λ rounded, the sum rounded). So, entrywise,
  //   |H_float − H| <= γ_(n+10) · (|X|ᵀ|S_cc'||X| + diag(e^λ)),
  // the double H's own error (γ_n in double) being 2^29 times smaller.
  const Index n = 120, C = 4;
  SmallP1 p1(n, 20, C, 0.0, 31);
  Matrix<double> H;
  p1.problem.hessian(H);
  Matrix<float> Hf;
  p1.problem.hessian_float(Hf);
  ASSERT_EQ(Hf.rows(), H.rows());
  ASSERT_EQ(Hf.cols(), H.cols());
  const Matrix<double>& X = p1.problem.train_data().X;
  const Index F = X.cols();
  const Matrix<double> P = softmax_probs(X, p1.problem.w(), C);
  const Matrix<double> absX = X.cwiseAbs();
  Matrix<double> bound(H.rows(), H.cols());
  for (Index c = 0; c < C; ++c)
    for (Index c2 = 0; c2 < C; ++c2) {
      Vector<double> s = -P.col(c).cwiseProduct(P.col(c2)) / double(n);
      if (c == c2) s += P.col(c) / double(n);
      bound.block(c * F, c2 * F, F, F) = absX.transpose() * s.cwiseAbs().asDiagonal() * absX;
    }
  bound.diagonal() += p1.lambda.array().exp().matrix();
  bound *= gamma_float(n + 10);
  const Matrix<double> error = (Hf.cast<double>() - H).cwiseAbs();
  double worst = 0;
  for (Index j = 0; j < H.cols(); ++j)
    for (Index i = 0; i < H.rows(); ++i) {
      ASSERT_LE(error(i, j), bound(i, j)) << "entry (" << i << ", " << j << ")";
      worst = std::max(worst, error(i, j) / bound(i, j));
    }
  EXPECT_GT(worst, 0.0);  // formed in float: rounding is visible
  EXPECT_EQ(Matrix<float>(Hf.transpose()), Hf);  // symmetric, as the double one
}

TEST(DenseMixedFloatH, LogisticFloatHessianEqualsTheDoubleOneToFloatRounding) {
  // H_ab = Σ_k x_ka (x_kb·p_k(1 − p_k)/n) formed in float: x twice, the weight twice (double
  // evaluation, then float), the scaled row, the product: 6 roundings a term, n for the sum, 2
  // for the penalty: |H_float − H| <= γ_(n+8) · (|X|ᵀ diag(p(1 − p)/n) |X| + diag(e^λ)).
  const Index n = 150;
  const LogisticRegression<double> model(16);
  RegularizedProblem problem(model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
                             shared(testing::random_classification<double>(n, 15, 2, 41)),
                             shared(testing::random_classification<double>(60, 15, 2, 42)));
  const Vector<double> lambda = testing::random_vector<double>(16, 43, 0.5);
  problem.set_point(lambda, testing::random_vector<double>(16, 44, 0.3));
  Matrix<double> H;
  problem.hessian(H);
  Matrix<float> Hf;
  problem.hessian_float(Hf);
  const Matrix<double>& X = problem.train_data().X;
  const Vector<double> p = (1.0 + (-(X * problem.w())).array().exp()).inverse().matrix();
  const Vector<double> weight = (p.array() * (1.0 - p.array()) / double(n)).matrix();
  Matrix<double> bound = X.cwiseAbs().transpose() * weight.asDiagonal() * X.cwiseAbs();
  bound.diagonal() += lambda.array().exp().matrix();
  bound *= gamma_float(n + 8);
  const Matrix<double> error = (Hf.cast<double>() - H).cwiseAbs();
  for (Index j = 0; j < H.cols(); ++j)
    for (Index i = 0; i < H.rows(); ++i)
      ASSERT_LE(error(i, j), bound(i, j)) << "entry (" << i << ", " << j << ")";
  EXPECT_GT(error.maxCoeff(), 0.0);
}

TEST(DenseMixedFloatH, ExactThroughTheFloatHessianEqualsTheDoublePath) {
  // D = 51 · 6 = 306, κ(H) of order 10–100: two double solves agree to about κ·√D·eps, far
  // below 1e-13. Auto with mixed_min_size = 100 takes the float-built path (D >= 100).
  SmallP1 p1(300, 50, 6, 0.0, 51);
  auto& problem = p1.problem;
  const Index D = p1.model.num_params();
  for (const Curvature curvature : {Curvature::Hessian, Curvature::GaussNewton})
    for (const double damping : {0.0, 0.25}) {
      SCOPED_TRACE(std::string(to_string(curvature)) + ", damping " + std::to_string(damping));
      MethodSpec spec;
      spec.curvature = curvature;
      spec.damping = damping;
      spec.exact.mixed_min_size = 100;
      const auto hm = generic::hypergradient(problem, spec);
      spec.exact.precision = DensePrecision::Double;
      const auto hd = generic::hypergradient(problem, spec);
      ASSERT_EQ(hm.status, SolverStatus::Converged) << hm.message;
      EXPECT_NE(hm.message.find("H built in float"), std::string::npos) << hm.message;
      EXPECT_EQ(hm.message.find("fell back"), std::string::npos) << hm.message;
      EXPECT_EQ(hd.message.find("mixed-precision"), std::string::npos) << hd.message;
      EXPECT_LE(relative(hm.hypergradient, hd.hypergradient), 1e-13);
      EXPECT_LE(relative(hm.v, hd.v), 1e-13);
      // One matrix-free product per refinement residual: at least one per step.
      EXPECT_GE(hm.hvps, hm.iterations + 1);
      EXPECT_GE(hm.iterations, 1);  // the float solve alone is float-accurate
      // The residual at double level, measured independently from the dense double (damped) H.
      Matrix<double> H;
      problem.hessian(H);  // = Gauss-Newton matrix for softmax regression
      H.diagonal().array() += damping;
      const Vector<double>& g = problem.val_gradient();
      EXPECT_LE(dsposv_ratio(H, hm.v, g), 1.0);
      ASSERT_TRUE(hm.relative_residual.has_value());
      EXPECT_NEAR(*hm.relative_residual, residual(H, hm.v, g), 1e-15);
      EXPECT_EQ(D, hm.v.size());
    }
  // The same through the BilevelProblem interface (the capability found at run time).
  BilevelProblem<double>& base = problem;
  MethodSpec spec;
  spec.exact.mixed_min_size = 100;
  const auto hb = generic::hypergradient(base, spec);
  EXPECT_NE(hb.message.find("H built in float"), std::string::npos) << hb.message;
  EXPECT_EQ(hb.hypergradient, generic::hypergradient(problem, spec).hypergradient);
}

TEST(DenseMixedFloatH, IllConditionedFallsBackAndBuildsTheDoubleH) {
  // n = 30 rows, D = 21 · 4 = 84: the data term has rank <= n(C − 1) = 90 minus softmax's F-dim
  // null space, so H's smallest eigenvalues are the decay e^λ ≈ e^-25 ≈ 1e-11 against a largest
  // of order 0.1: κ ≈ 1e10 ≫ 1/eps_float. The float path cannot solve it (a non-positive float
  // pivot, or a refinement that does not contract); the double path can (rcond ≈ 1e-10 ≫ eps).
  SmallP1 p1(30, 20, 4, -25.0, 61);
  const auto [hm, hd] = mixed_and_double(p1.problem);
  EXPECT_EQ(hm.status, SolverStatus::Converged) << hm.message;
  EXPECT_EQ(hd.status, SolverStatus::Converged) << hd.message;
  EXPECT_NE(hm.message.find("fell back to double"), std::string::npos) << hm.message;
  EXPECT_NE(hm.message.find("the double H was built"), std::string::npos) << hm.message;
  // The same double matrix and factorisation as the double path: the same numbers.
  EXPECT_LE(relative(hm.hypergradient, hd.hypergradient), 1e-14);
}

TEST(DenseMixedFloatH, SingularKeepsItsStatusThroughTheFloatPath) {
  // e^-800 underflows to 0: no penalty, and softmax's data Hessian is singular (shifting every
  // class's weights by one vector leaves the probabilities unchanged).
  SmallP1 p1(100, 10, 3, -800.0, 71);
  const auto [hm, hd] = mixed_and_double(p1.problem);
  EXPECT_EQ(hd.status, SolverStatus::NumericalIssue) << hd.message;
  EXPECT_EQ(hm.status, hd.status) << hm.message;
  EXPECT_NE(hm.message.find("singular"), std::string::npos) << hm.message;
  EXPECT_NE(hm.message.find("the double H was built"), std::string::npos) << hm.message;
  EXPECT_TRUE(hm.hypergradient.allFinite());
}

/// compute_mixed on a given matrix: the float H is A rounded, the product A x, the builder A.
DenseSolver<double> float_built(const Matrix<double>& A, DenseParams params = {}) {
  DenseSolver<double> solver;
  solver.compute_mixed([&A](Matrix<float>& L) { L = A.cast<float>(); },
                       [&A](const Vector<double>& x, Vector<double>& y) { y = A * x; },
                       [&A]() -> const Matrix<double>& { return A; }, params);
  return solver;
}

TEST(DenseMixedFloatH, ComputeMixedClassifiesLikeTheDoublePath) {
  const Index n = 40;
  const Vector<double> g = testing::random_vector<double>(n, 80);
  // Well conditioned: the float path, the double solution, one product per step, no dense H.
  const Matrix<double> good = spd(n, 10.0, 81);
  const DenseSolver<double> solver = float_built(good);
  ASSERT_EQ(solver.factorization(), DenseFactorization::MixedCholesky) << solver.message();
  EXPECT_EQ(solver.matrix(), nullptr);
  const auto r = solver.solve(g);
  const auto d = DenseSolver<double>(good, precision(DensePrecision::Double)).solve(g);
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_LE(relative(r.x, d.x), 1e-13);
  EXPECT_LE(dsposv_ratio(good, r.x, g), 1.0);
  EXPECT_EQ(r.hvps, r.iterations + 1);  // converged at its last step here: each step one product
  // Indefinite and singular: the float Cholesky fails, the double H is built and LDLT
  // classifies it as the double path does.
  Vector<double> spectrum(n);
  for (Index i = 0; i < n; ++i) spectrum[i] = 1.0 + i;
  spectrum[3] = -1.5;
  const Matrix<double> indefinite = with_spectrum(spectrum, 82);
  const auto ri = float_built(indefinite).solve(g);
  EXPECT_EQ(ri.status, SolverStatus::NotPositiveDefinite) << ri.message;
  EXPECT_NE(ri.message.find("indefinite"), std::string::npos) << ri.message;
  EXPECT_NE(ri.message.find("the double H was built"), std::string::npos) << ri.message;
  EXPECT_LE(residual(indefinite, ri.x, g), 1e-12);
  Matrix<double> singular = spd(n, 10.0, 83);
  singular.row(6).setZero();
  singular.col(6).setZero();
  const auto rs = float_built(singular).solve(g);
  EXPECT_EQ(rs.status, SolverStatus::NumericalIssue) << rs.message;
  EXPECT_NE(rs.message.find("singular"), std::string::npos) << rs.message;
  // Beyond float's range: the float H is infinite, the double path solves it.
  const Matrix<double> huge = 1e300 * good;
  const DenseSolver<double> big = float_built(huge);
  EXPECT_EQ(big.factorization(), DenseFactorization::Cholesky) << big.message();
  EXPECT_NE(big.message().find("the float H is not finite"), std::string::npos) << big.message();
  // The refinement cap: the fallback happens in the solve, which builds the double H then.
  DenseParams capped;
  capped.max_refinements = 1;
  const Matrix<double> harder = spd(n, 1e4, 84);
  const DenseSolver<double> solver_capped = float_built(harder, capped);
  ASSERT_EQ(solver_capped.factorization(), DenseFactorization::MixedCholesky);
  const auto rc = solver_capped.solve(g);
  EXPECT_EQ(solver_capped.factorization(), DenseFactorization::Cholesky);
  EXPECT_EQ(solver_capped.matrix(), &harder);
  EXPECT_NE(rc.message.find("the double H was built"), std::string::npos) << rc.message;
  EXPECT_LE(relative(rc.x, DenseSolver<double>(harder, precision(DensePrecision::Double)).solve(g).x),
            1e-14);
}

TEST(DenseMixedFloatH, FloatProblemsKeepThePlainFloatPath) {
  SoftmaxRegression<float> model(11, 3);
  RegularizedProblem problem(model, WeightDecay<float>(DecayKind::PerWeight, model.num_params()),
                             testing::shared(testing::random_classification<float>(80, 10, 3, 91)),
                             testing::shared(testing::random_classification<float>(40, 10, 3, 92)));
  problem.set_point(Vector<float>::Zero(33), testing::random_vector<float>(33, 93, 0.1));
  const auto [hm, hd] = mixed_and_double(problem, precision(DensePrecision::Mixed));
  EXPECT_EQ(hm.status, SolverStatus::Converged) << hm.message;
  EXPECT_EQ(hm.message.find("mixed-precision"), std::string::npos) << hm.message;
  EXPECT_EQ(hm.hypergradient, hd.hypergradient);  // the same computation
}

}  // namespace
}  // namespace ift
