// The Nyström low-rank inverse (linalg/nystrom.hpp, Method::Nystrom) against the mathematics:
// rank D reproduces the exact damped solve, nested samples make the error fall with the rank
// (a Loewner-order theorem), the sampling schemes are seeded, distinct and nested, the block
// product equals single HVPs, and every status it can return is reached.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <memory>
#include <set>
#include <vector>

#include "fixtures.hpp"
#include "ift/hypergradient.hpp"
#include "ift/models/logistic_regression.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace ift {
namespace {

using testing::rel_error;
using testing::shared;

/// Softmax regression, 4 features + bias, 3 classes: D = 15, per-weight decay, at a random w.
template <class S>
RegularizedProblem<SoftmaxRegression<S>> softmax_problem() {
  SoftmaxRegression<S> model(5, 3);
  RegularizedProblem<SoftmaxRegression<S>> p(
      model, WeightDecay<S>(DecayKind::PerWeight, model.num_params()),
      shared(testing::random_classification<S>(40, 4, 3, 1)),
      shared(testing::random_classification<S>(30, 4, 3, 101)));
  p.set_point(testing::random_vector<S>(15, 3, 0.5), testing::random_vector<S>(15, 4, 0.3));
  return p;
}

RegularizedProblem<LogisticRegression<double>> logistic_problem() {
  LogisticRegression<double> model(6);
  Dataset<double> train = testing::random_classification<double>(50, 5, 2, 5);
  Dataset<double> val = testing::random_classification<double>(30, 5, 2, 6);
  RegularizedProblem<LogisticRegression<double>> p(
      model, WeightDecay<double>(DecayKind::Global, 6), shared(std::move(train)),
      shared(std::move(val)));
  p.set_point(Vector<double>::Constant(1, -2.0), testing::random_vector<double>(6, 8, 0.3));
  return p;
}

RegularizedProblem<Mlp<double>> mlp_problem() {
  Mlp<double> model({3, 4, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  RegularizedProblem<Mlp<double>> p(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      shared(testing::random_classification<double>(40, 3, 3, 7, false)),
      shared(testing::random_classification<double>(30, 3, 3, 8, false)));
  const Index D = model.num_params();
  p.set_point(Vector<double>::Constant(D, -3.0), testing::random_vector<double>(D, 9, 0.5));
  return p;
}

MethodSpec nystrom_spec(Index k, NystromSampling sampling = NystromSampling::Uniform,
                        double rho = 0.1) {
  MethodSpec s;
  s.method = Method::Nystrom;
  s.steps = k;
  s.nystrom.sampling = sampling;
  s.nystrom.rho = rho;
  return s;
}

const std::vector<NystromSampling> kSchemes = {NystromSampling::Uniform, NystromSampling::Diagonal,
                                               NystromSampling::Leverage};

// ---- The block product ------------------------------------------------------------------------

template <class Problem>
void expect_block_equals_single_hvps(Problem& problem) {
  const Index D = problem.num_params();
  const Index m = 7;
  Matrix<double> V(D, m);
  for (Index j = 0; j < m; ++j) V.col(j) = testing::random_vector<double>(D, 50 + j);
  Matrix<double> block;
  problem.hvp_block(V, block);
  ASSERT_EQ(block.rows(), D);
  ASSERT_EQ(block.cols(), m);
  for (Index j = 0; j < m; ++j) {
    Vector<double> single;
    problem.hvp(Vector<double>(V.col(j)), single);
    // The same sums in a different blocking: round-off only.
    EXPECT_LT(rel_error(Vector<double>(block.col(j)), single), 1e-12) << "column " << j;
  }
}

TEST(NystromBlock, SoftmaxBlockProductEqualsSingleHvps) {
  auto p = softmax_problem<double>();
  expect_block_equals_single_hvps(p);
}

TEST(NystromBlock, LogisticBlockProductEqualsSingleHvps) {
  auto p = logistic_problem();
  expect_block_equals_single_hvps(p);
}

TEST(NystromBlock, MlpFallbackEqualsSingleHvps) {
  auto p = mlp_problem();  // no model block product: one hvp per column
  expect_block_equals_single_hvps(p);
}

// ---- Rank D is the exact damped solve ----------------------------------------------------------

/// (ρI + A)⁻¹ g with A the dense curvature.
Vector<double> dense_damped_solve(const Matrix<double>& A, double rho, const Vector<double>& g) {
  Matrix<double> B = A;
  B.diagonal().array() += rho;
  return B.ldlt().solve(g);
}

TEST(Nystrom, RankDEqualsExactDampedSolveForEverySampling) {
  auto p = softmax_problem<double>();
  Matrix<double> H;
  p.hessian(H);
  const Vector<double> g = p.val_gradient();
  const Vector<double> exact = dense_damped_solve(H, 0.1, g);
  Eigen::SelfAdjointEigenSolver<Matrix<double>> eig(H);
  // κ(H + ρI) · ε · D bounds the round-off of both solves; both are O(1e-13) here.
  const double kappa = (eig.eigenvalues().maxCoeff() + 0.1) / (eig.eigenvalues().minCoeff() + 0.1);
  const double tol = 100 * kappa * 15 * 2.2e-16;
  ASSERT_LT(tol, 1e-9);
  for (NystromSampling s : kSchemes) {
    const auto r = hypergradient(p, nystrom_spec(15, s));
    ASSERT_EQ(r.status, SolverStatus::Converged) << r.message;
    EXPECT_LT(rel_error(r.v, exact), tol) << to_string(s) << ": " << r.message;
    // The penalty is kept exact, so M is the data term's: softmax's data Hessian has rank
    // F (C − 1) = 5 · 2 = 10 (shifting every class's weights by one vector leaves the loss
    // unchanged), and M⁺ keeps exactly those 10 eigenvalues.
    EXPECT_NE(r.message.find("numerical rank 10"), std::string::npos) << r.message;
  }
}

TEST(Nystrom, PositiveDampingIsRhoAndTheHypergradientEqualsExactWithThatDamping) {
  auto p = softmax_problem<double>();
  MethodSpec ny = nystrom_spec(15, NystromSampling::Uniform, /*rho unused*/ 5.0);
  ny.damping = 0.05;
  MethodSpec ex;
  ex.method = Method::Exact;
  ex.damping = 0.05;
  const auto a = hypergradient(p, ny);
  const auto b = hypergradient(p, ex);
  ASSERT_EQ(a.status, SolverStatus::Converged) << a.message;
  EXPECT_LT(rel_error(a.v, b.v), 1e-10);
  EXPECT_LT(rel_error(a.hypergradient, b.hypergradient), 1e-10);
  EXPECT_NE(a.message.find("ρ = 0.05"), std::string::npos) << a.message;
}

TEST(Nystrom, GaussNewtonRankDEqualsDenseGaussNewtonSolve) {
  auto p = mlp_problem();  // Gauss-Newton differs from the Hessian here
  const Index D = p.num_params();
  Matrix<double> G;
  p.gauss_newton_matrix(G);
  MethodSpec s = nystrom_spec(D);
  s.curvature = Curvature::GaussNewton;
  EXPECT_EQ(s.name(), "gauss-newton/nystrom");
  const auto r = hypergradient(p, s);
  ASSERT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_LT(rel_error(r.v, dense_damped_solve(G, 0.1, p.val_gradient())), 1e-9) << r.message;
}

TEST(Nystrom, RankAboveDIsClampedToD) {
  auto p = softmax_problem<double>();
  const auto full = hypergradient(p, nystrom_spec(15));
  const auto over = hypergradient(p, nystrom_spec(40));
  EXPECT_EQ(over.iterations, 15);
  EXPECT_EQ(over.hvps, 15);
  EXPECT_LT(rel_error(over.v, full.v), 1e-14);
  EXPECT_NE(over.message.find("clamped"), std::string::npos) << over.message;
}

TEST(Nystrom, DiagnosticsCountEveryProduct) {
  auto p = softmax_problem<double>();
  MethodSpec s = nystrom_spec(6, NystromSampling::Diagonal);
  s.nystrom.probes = 4;
  auto r = hypergradient(p, s);
  EXPECT_EQ(r.iterations, 6);
  EXPECT_EQ(r.hvps, 6 + 4);
  EXPECT_FALSE(r.relative_residual.has_value());
  s.nystrom.sampling = NystromSampling::Leverage;
  s.nystrom.sketch = 5;
  s.compute_residual = true;
  r = hypergradient(p, s);
  EXPECT_EQ(r.hvps, 6 + 5 + 1);
  ASSERT_TRUE(r.relative_residual.has_value());
  // The residual is ||(H + δI) v − g|| / ||g||: recompute it.
  Vector<double> Hv;
  p.hvp(r.v, Hv);
  const Vector<double>& g = p.val_gradient();
  EXPECT_NEAR(*r.relative_residual, (Hv - g).norm() / g.norm(), 1e-12);
  // At rank D with damping = ρ the system solved is the one the residual measures.
  s = nystrom_spec(15);
  s.damping = 0.1;
  s.compute_residual = true;
  r = hypergradient(p, s);
  EXPECT_LT(*r.relative_residual, 1e-12);
}

// ---- The error falls with the rank (nested samples) ---------------------------------------------

/// A = U diag(2^-i) Uᵀ, D = 40, with a random rotation U: a decaying spectrum.
Matrix<double> decaying_matrix(Index D) {
  Matrix<double> X(D, D);
  for (Index j = 0; j < D; ++j) X.col(j) = testing::random_vector<double>(D, 900 + j);
  const Matrix<double> U = Eigen::HouseholderQR<Matrix<double>>(X).householderQ();
  Vector<double> lam(D);
  for (Index i = 0; i < D; ++i) lam(i) = std::pow(0.5, double(i));
  return U * lam.asDiagonal() * U.transpose();
}

TEST(Nystrom, ErrorFallsWithRankOnADecayingSpectrum) {
  const Index D = 40;
  const double rho = 1e-6;
  const Matrix<double> A = decaying_matrix(D);
  const Vector<double> g = testing::random_vector<double>(D, 77);
  const Vector<double> exact = dense_damped_solve(A, rho, g);
  Matrix<double> Ainv = A;
  Ainv.diagonal().array() += rho;
  Ainv = Ainv.inverse();
  auto block = [&](const Matrix<double>& X, Matrix<double>& Y) { Y = A * X; };
  for (NystromSampling s : kSchemes) {
    NystromParams params;
    params.sampling = s;
    params.seed = 3;
    const auto cols = nystrom_columns<double>(D, D, params, rho, block);
    double previous_energy = std::numeric_limits<double>::infinity();
    double previous_error = std::numeric_limits<double>::infinity();
    for (Index k : {0, 2, 5, 10, 20, 30, 40}) {
      const auto r = nystrom_solve(cols, k, g, params, rho);
      // Theorem: for nested K, A − Ĥ_k ⪰ 0 shrinks in Loewner order, so the PSD error
      // E_k = (ρI + Ĥ_k)⁻¹ − (ρI + A)⁻¹ shrinks too and gᵀ E_k g = gᵀ(v_k − v*) cannot grow.
      const double energy = g.dot(r.x - exact);
      EXPECT_GE(energy, -1e-6 * g.dot(exact)) << to_string(s) << " k = " << k;
      EXPECT_LE(energy, previous_energy * (1 + 1e-9) + 1e-9) << to_string(s) << " k = " << k;
      previous_energy = energy;
      const double error = (r.x - exact).norm() / exact.norm();
      if (k >= 10) {
        EXPECT_LT(error, previous_error) << to_string(s) << " k = " << k;
      }
      previous_error = error;
    }
    // Rank D: A's smallest eigenvalue 2^-39 is below the automatic cut-off 40 ε, so M⁺ drops
    // it; what it leaves out is 2^-39 against ρ = 1e-6: a relative 2e-6 at most.
    EXPECT_LT(previous_error, 1e-5) << to_string(s);
  }
}

// ---- Sampling -----------------------------------------------------------------------------------

TEST(NystromSampling, SeededDistinctAndNested) {
  const Index D = 40;
  const Matrix<double> A = decaying_matrix(D);
  auto block = [&](const Matrix<double>& X, Matrix<double>& Y) { Y = A * X; };
  for (NystromSampling s : kSchemes) {
    NystromParams params;
    params.sampling = s;
    params.seed = 11;
    const auto a = nystrom_columns<double>(D, 25, params, 1e-2, block);
    const auto b = nystrom_columns<double>(D, 25, params, 1e-2, block);
    const auto small = nystrom_columns<double>(D, 9, params, 1e-2, block);
    params.seed = 12;
    const auto other = nystrom_columns<double>(D, 25, params, 1e-2, block);
    EXPECT_EQ(a.indices, b.indices) << to_string(s);
    EXPECT_NE(a.indices, other.indices) << to_string(s);
    EXPECT_EQ(std::set<Index>(a.indices.begin(), a.indices.end()).size(), 25u) << to_string(s);
    for (Index i : a.indices) EXPECT_TRUE(i >= 0 && i < D);
    EXPECT_EQ(std::vector<Index>(a.indices.begin(), a.indices.begin() + 9), small.indices)
        << to_string(s) << ": samples are not nested";
    // C is A E_K.
    for (Index j = 0; j < 25; ++j)
      EXPECT_LT(rel_error(Vector<double>(a.C.col(j)),
                          Vector<double>(A.col(a.indices[static_cast<std::size_t>(j)]))),
                1e-14);
  }
  // Every index is drawn when k = D, even those of weight zero.
  const std::vector<double> w = {0, 3, 0, 1, 0, 0, 2};
  const auto all = sample_weighted(w, 7, 5);
  EXPECT_EQ(std::set<Index>(all.begin(), all.end()).size(), 7u);
}

TEST(NystromSampling, DiagonalAndLeverageFindTheHeavyColumns) {
  // A diagonal A with two columns of curvature 1e6 among 1e-6: Hutchinson's estimate of a
  // diagonal matrix is exact (z_i² = 1) and the ridge leverage of the heavy columns is ≈ 1 against
  // ≈ 1e-4, so both schemes draw them first (probability of anything else < 1e-9).
  const Index D = 30;
  Vector<double> d = Vector<double>::Constant(D, 1e-6);
  d(3) = d(17) = 1e6;
  auto block = [&](const Matrix<double>& X, Matrix<double>& Y) { Y = d.asDiagonal() * X; };
  for (NystromSampling s : {NystromSampling::Diagonal, NystromSampling::Leverage}) {
    NystromParams params;
    params.sampling = s;
    const auto cols = nystrom_columns<double>(D, 2, params, 1e-2, block);
    EXPECT_EQ(std::set<Index>(cols.indices.begin(), cols.indices.end()), (std::set<Index>{3, 17}))
        << to_string(s);
  }
}

// ---- Statuses -----------------------------------------------------------------------------------

TEST(NystromStatus, ZeroCurvatureColumnsAreANumericalIssue) {
  const Index D = 10;
  auto zero = [&](const Matrix<double>& X, Matrix<double>& Y) { Y = Matrix<double>::Zero(D, X.cols()); };
  NystromParams params;
  const auto cols = nystrom_columns<double>(D, 4, params, 0.5, zero);
  const Vector<double> g = testing::random_vector<double>(D, 1);
  const auto r = nystrom_solve(cols, 4, g, params, 0.5);
  EXPECT_EQ(r.status, SolverStatus::NumericalIssue);
  EXPECT_NE(r.message.find("numerically zero"), std::string::npos) << r.message;
  EXPECT_LT(rel_error(r.x, Vector<double>(g / 0.5)), 1e-15);
}

TEST(NystromStatus, NonFiniteColumnsAreANumericalIssueAndVIsFinite) {
  const Index D = 10;
  auto bad = [&](const Matrix<double>& X, Matrix<double>& Y) {
    Y = X;
    Y(0, 0) = std::numeric_limits<double>::quiet_NaN();
  };
  NystromParams params;
  const auto cols = nystrom_columns<double>(D, 3, params, 0.5, bad);
  const auto r = nystrom_solve(cols, 3, testing::random_vector<double>(D, 1), params, 0.5);
  EXPECT_EQ(r.status, SolverStatus::NumericalIssue);
  EXPECT_TRUE(r.x.allFinite());
  EXPECT_NE(r.message.find("not finite"), std::string::npos) << r.message;
}

TEST(NystromStatus, AnIndefiniteApproximationThatCancelsRhoIsNotPositiveDefinite) {
  const Index D = 6;
  const double rho = 0.25;
  Vector<double> d(D);
  d << -rho, 1, 2, 3, 4, 5;  // θ = −ρ: ρI + Ĥ is singular
  auto block = [&](const Matrix<double>& X, Matrix<double>& Y) { Y = d.asDiagonal() * X; };
  NystromParams params;
  const auto cols = nystrom_columns<double>(D, D, params, rho, block);
  const Vector<double> g = Vector<double>::Ones(D);
  const auto r = nystrom_solve(cols, D, g, params, rho);
  EXPECT_EQ(r.status, SolverStatus::NotPositiveDefinite) << r.message;
  EXPECT_TRUE(r.x.allFinite());
  // The other directions are solved exactly.
  for (Index i = 1; i < D; ++i) EXPECT_NEAR(r.x(i), 1.0 / (d(i) + rho), 1e-12);
}

TEST(NystromStatus, RankZeroIsGOverRhoPlusPenalty) {
  auto p = softmax_problem<double>();
  const auto r = hypergradient(p, nystrom_spec(0, NystromSampling::Uniform, 0.5));
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_EQ(r.hvps, 0);
  Vector<double> penalty;
  p.penalty_hvp(Vector<double>::Ones(15), penalty);  // exp(λ), the decay's exact curvature
  const Vector<double> expected = p.val_gradient().array() / (0.5 + penalty.array());
  EXPECT_LT(rel_error(r.v, expected), 1e-15);
}

TEST(Nystrom, RhoZeroKeepsThePenaltyExactAndRankDIsTheUndampedSolve) {
  // Default ρ = 0: the approximation is (P + C M⁺ Cᵀ)⁻¹ with P = exp(λ) > 0, so rank D is H⁻¹ g.
  auto p = softmax_problem<double>();
  MethodSpec s = nystrom_spec(15);
  s.nystrom.rho = 0;
  EXPECT_EQ(MethodSpec().nystrom.rho, 0.0);
  const auto r = hypergradient(p, s);
  ASSERT_EQ(r.status, SolverStatus::Converged) << r.message;
  Matrix<double> H;
  p.hessian(H);
  EXPECT_LT(rel_error(r.v, dense_damped_solve(H, 0.0, p.val_gradient())), 1e-10) << r.message;
  EXPECT_NE(r.message.find("penalty's exact curvature"), std::string::npos) << r.message;
}

TEST(NystromStatus, RhoZeroWithoutPenaltyIsRefusedNamingTheOption) {
  const Index D = 5;
  auto block = [&](const Matrix<double>& X, Matrix<double>& Y) { Y = 2.0 * X; };
  NystromParams params;  // ρ = 0 and no penalty: a rank-2 approximation has no inverse
  const auto cols = nystrom_columns<double>(D, 2, params, 0.0, block);
  try {
    nystrom_solve(cols, 2, Vector<double>(Vector<double>::Ones(D)), params, 0.0);
    ADD_FAILURE() << "ρ + P = 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--rho"), std::string::npos) << e.what();
  }
}

TEST(NystromSpec, ChecksNameTheFieldAndCurvatures) {
  MethodSpec s = nystrom_spec(5);
  EXPECT_EQ(parse_method("nystrom"), Method::Nystrom);
  EXPECT_EQ(s.name(), "nystrom");
  s.nystrom.rho = -1;
  try {
    s.check();
    ADD_FAILURE() << "rho = -1 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("MethodSpec::nystrom: NystromParams::rho"),
              std::string::npos)
        << e.what();
  }
  s = nystrom_spec(5);
  s.curvature = Curvature::Fisher;
  EXPECT_THROW(s.check(), std::invalid_argument);
  s.curvature = Curvature::GaussNewton;
  EXPECT_NO_THROW(s.check());
  EXPECT_EQ(parse_nystrom_sampling("leverage"), NystromSampling::Leverage);
  EXPECT_THROW(parse_nystrom_sampling("columns"), std::invalid_argument);
  EXPECT_DOUBLE_EQ(s.nystrom_rho(), 0.1);
  s.damping = 0.3;
  EXPECT_DOUBLE_EQ(s.nystrom_rho(), 0.3);
}

// ---- Sweep and float ----------------------------------------------------------------------------

TEST(Nystrom, SweepEqualsSingleCallsFromOneSample) {
  auto p = softmax_problem<double>();
  for (NystromSampling s : kSchemes) {
    MethodSpec spec = nystrom_spec(0, s);
    spec.compute_residual = true;
    const std::vector<Index> ks = {8, 0, 3, 15, 40};
    const auto sweep = generic::hypergradient_sweep(p, spec, ks);
    ASSERT_EQ(sweep.size(), ks.size());
    for (std::size_t j = 0; j < ks.size(); ++j) {
      spec.steps = ks[j];
      const auto single = hypergradient(p, spec);
      EXPECT_LT(rel_error(sweep[j].hypergradient, single.hypergradient), 1e-12)
          << to_string(s) << " k = " << ks[j];
      EXPECT_EQ(sweep[j].hvps, single.hvps);
      EXPECT_EQ(sweep[j].iterations, single.iterations);
      EXPECT_EQ(sweep[j].status, single.status);
    }
  }
}

TEST(Nystrom, FloatRunsAndAgreesWithDouble) {
  auto pf = softmax_problem<float>();
  auto pd = softmax_problem<double>();
  for (NystromSampling s : kSchemes) {
    const auto rf = hypergradient(pf, nystrom_spec(10, s));
    const auto rd = hypergradient(pd, nystrom_spec(10, s));
    ASSERT_EQ(rf.status, SolverStatus::Converged) << rf.message;
    ASSERT_TRUE(rf.hypergradient.allFinite());
    // Same seed, same indices (the diagonal / leverage weights agree to float precision): the
    // results differ by float round-off amplified by κ(ρI + Ĥ) <= (λ_max + ρ) / ρ ≈ 10.
    EXPECT_LT(rel_error(rf.v.cast<double>().eval(), rd.v), 1e-4) << to_string(s);
  }
}

}  // namespace
}  // namespace ift
