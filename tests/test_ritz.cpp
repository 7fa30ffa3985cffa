// cg+ritz (linalg/ritz.hpp, docs/methods.md "cg+ritz"): the spectral preconditioner built from
// Ritz pairs recycled across solves. Mathematics checked on small dense SPD matrices: P built
// from exact eigenvectors deflates them (CG then converges in as many steps as distinct
// eigenvalues remain), P is SPD and its powers compose for any orthonormal U, the Ritz pairs
// taken from a Lanczos run have ‖H u − θ u‖ equal to the Lanczos bound |β_k s_k| (and, from a
// preconditioned run, to the residual they report), cg+ritz run to convergence is the exact
// solve, and without recycled pairs it is plain cg bitwise.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <set>

#include "fixtures.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/linalg/cg.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/ritz.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace {

using namespace ift;
using ift::testing::random_vector;

/// A random orthogonal n × n matrix (QR of a seeded random matrix).
Matrix<double> orthogonal(Index n, std::uint64_t seed) {
  Matrix<double> A(n, n);
  for (Index j = 0; j < n; ++j)
    A.col(j) = random_vector<double>(n, seed + static_cast<std::uint64_t>(j));
  Eigen::HouseholderQR<Matrix<double>> qr(A);
  return qr.householderQ();
}

/// Q diag(eig) Qᵀ.
Matrix<double> with_spectrum(const Matrix<double>& Q, const Vector<double>& eig) {
  return Q * eig.asDiagonal() * Q.transpose();
}

/// The dense matrix of y = P^p x.
Matrix<double> dense_power(const SpectralPreconditioner<Vector<double>>& P, Index n, double p) {
  Matrix<double> M(n, n);
  Vector<double> e, y = Vector<double>::Zero(n);
  for (Index j = 0; j < n; ++j) {
    e = Vector<double>::Unit(n, j);
    P.apply_power(e, y, p);
    M.col(j) = y;
  }
  return M;
}

bool same_bits(const Vector<double>& a, const Vector<double>& b) {
  return a.size() == b.size() && (a.array() == b.array()).all();
}

CgParams converge(Index max_iterations, double tolerance = 1e-10) {
  CgParams p;
  p.max_iterations = max_iterations;
  p.tolerance = tolerance;
  return p;
}

TEST(SpectralPreconditioner, IsSymmetricPositiveDefiniteAndItsPowersCompose) {
  const Index n = 15;
  const Matrix<double> Q = orthogonal(n, 7);
  // Arbitrary orthonormal U (not eigenvectors of anything in particular), arbitrary θ > 0.
  std::vector<Vector<double>> U;
  std::vector<double> theta = {40.0, 3.0, 0.2, 1e3};
  for (Index i = 0; i < 4; ++i) U.push_back(Q.col(i));
  const SpectralPreconditioner<Vector<double>> P(U, theta);
  EXPECT_EQ(P.scale(), 0.2);  // c = the smallest kept value
  const Matrix<double> Pinv = dense_power(P, n, -1.0);
  const Matrix<double> Pm = dense_power(P, n, -0.5);
  const Matrix<double> Pp = dense_power(P, n, 0.5);
  const Matrix<double> I = Matrix<double>::Identity(n, n);
  EXPECT_LT((Pinv - Pinv.transpose()).norm(), 1e-14);
  Eigen::SelfAdjointEigenSolver<Matrix<double>> eig(Pinv);
  EXPECT_GT(eig.eigenvalues().minCoeff(), 0.0);
  // Eigenvalues of P⁻¹: c/θ_i on U, 1 elsewhere.
  std::multiset<double> expected;
  for (double t : theta) expected.insert(0.2 / t);
  for (Index i = 4; i < n; ++i) expected.insert(1.0);
  auto it = expected.begin();
  for (Index i = 0; i < n; ++i, ++it) EXPECT_NEAR(eig.eigenvalues()(i), *it, 1e-12);
  EXPECT_LT((Pm * Pm - Pinv).norm(), 1e-12);
  EXPECT_LT((Pp * Pm - I).norm(), 1e-12);
  EXPECT_LT((Pm * Pp - I).norm(), 1e-12);
  // No pair: the identity, bitwise a copy.
  const std::vector<Vector<double>> none;
  const std::vector<double> no_values;
  const SpectralPreconditioner<Vector<double>> identity(none, no_values);
  const Vector<double> x = random_vector<double>(n, 3);
  Vector<double> y = Vector<double>::Zero(n);
  identity.apply_power(x, y, -0.5);
  EXPECT_TRUE(same_bits(x, y));
  // Invalid values are refused.
  std::vector<double> bad = {1.0, 0.0, 2.0, 3.0};
  EXPECT_THROW((SpectralPreconditioner<Vector<double>>(U, bad)), std::invalid_argument);
}

TEST(SpectralPreconditioner, ExactEigenvectorsAreDeflated) {
  // H: 4 large isolated eigenvalues and a bulk of 3 distinct values (each repeated). Plain CG
  // needs 7 steps (7 distinct eigenvalues); with P from the 4 exact outliers (c = the smallest
  // of them, 50) B = P^(−1/2) H P^(−1/2) has eigenvalues {50, 1, 2, 3}: 4 steps.
  const Index n = 20;
  const Matrix<double> Q = orthogonal(n, 11);
  Vector<double> eig(n);
  eig << 1e4, 3e3, 500, 50, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3;
  const Matrix<double> H = with_spectrum(Q, eig);
  const DenseOperator<double> op(H);
  const Vector<double> g = random_vector<double>(n, 5);
  const Vector<double> exact = H.ldlt().solve(g);

  const auto plain = conjugate_gradient(op, g, converge(50));
  ASSERT_EQ(plain.status, SolverStatus::Converged);
  EXPECT_EQ(plain.iterations, 7);

  std::vector<Vector<double>> U;
  std::vector<double> theta;
  for (Index i = 0; i < 4; ++i) {
    U.push_back(Q.col(i));
    theta.push_back(eig(i));
  }
  const SpectralPreconditioner<Vector<double>> P(U, theta);
  const Matrix<double> Pm = dense_power(P, n, -0.5);
  Eigen::SelfAdjointEigenSolver<Matrix<double>> B(Pm * H * Pm);
  std::set<long> distinct;
  for (Index i = 0; i < n; ++i) distinct.insert(std::lround(B.eigenvalues()(i) * 1e6));
  EXPECT_EQ(distinct.size(), 4u);  // 1, 2, 3 and c = 50

  MethodSpec spec = parse_method_spec("cg+ritz");
  spec.steps = 50;
  spec.cg.tolerance = 1e-10;
  generic::SolverState<Vector<double>> state;
  state.ritz_vectors = U;
  state.ritz_values = theta;
  const auto pre = generic::detail::ritz_cg(op, spec, g, nullptr, &state);
  ASSERT_EQ(pre.status, SolverStatus::Converged);
  EXPECT_EQ(pre.iterations, 4);
  EXPECT_LT((pre.x - exact).norm(), 1e-8 * exact.norm());
  EXPECT_NE(pre.message.find("Ritz-preconditioned (m = 4"), std::string::npos) << pre.message;
}

TEST(RitzPairs, ResidualsEqualTheLanczosBound) {
  const Index n = 30;
  const Matrix<double> Q = orthogonal(n, 21);
  Vector<double> eig = Vector<double>::LinSpaced(n, 1.0, 5.0);
  eig(0) = 400;
  eig(1) = 90;
  eig(2) = 30;
  const Matrix<double> H = with_spectrum(Q, eig);
  const DenseOperator<double> op(H);
  const Vector<double> g = random_vector<double>(n, 8);
  const std::vector<Vector<double>> none;
  const std::vector<double> no_values;
  const SpectralPreconditioner<Vector<double>> identity(none, no_values);
  RitzPairs<Vector<double>> pairs;
  std::vector<double> bound;
  Index k = 0;
  const auto r = conjugate_gradient(op, g, converge(6, 0), nullptr, {},
                                    [&](const LanczosRelation<Vector<double>>& rel) {
                                      k = rel.k;
                                      pairs = ritz_pairs(rel, identity, 6);
                                      // |β_k s_ki| from T_k's own eigenvectors.
                                      Matrix<double> T = Matrix<double>::Zero(k, k);
                                      for (Index i = 0; i < k; ++i) {
                                        T(i, i) = rel.alpha[i];
                                        if (i + 1 < k) T(i, i + 1) = T(i + 1, i) = rel.beta[i];
                                      }
                                      Eigen::SelfAdjointEigenSolver<Matrix<double>> e(T);
                                      for (Index j = k - 1; j >= 0; --j)
                                        bound.push_back(std::abs(rel.beta[k - 1] *
                                                                 e.eigenvectors()(k - 1, j)));
                                    });
  EXPECT_EQ(r.iterations, 6);
  ASSERT_EQ(k, 6);
  ASSERT_EQ(pairs.size(), 6u);
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const Vector<double>& u = pairs.vectors[i];
    const double true_residual = (H * u - pairs.values[i] * u).norm();
    EXPECT_NEAR(u.norm(), 1.0, 1e-12);
    EXPECT_NEAR(true_residual, bound[i], 1e-10 * eig(0)) << i;
    EXPECT_NEAR(pairs.residuals[i], true_residual, 1e-10 * eig(0)) << i;
    EXPECT_NEAR(pairs.values[i], u.dot(H * u), 1e-10 * eig(0)) << i;  // Rayleigh quotients
    for (std::size_t j = 0; j < i; ++j) EXPECT_NEAR(u.dot(pairs.vectors[j]), 0.0, 1e-12);
    if (i > 0) {
      EXPECT_GE(pairs.values[i - 1], pairs.values[i]);
    }
  }
  // The largest Ritz value has converged to the isolated eigenvalue 400 (from below).
  EXPECT_NEAR(pairs.values[0], 400.0, 1e-6 * 400);
  EXPECT_LE(pairs.values[0], 400.0 * (1 + 1e-14));

  // From a preconditioned run (P from other, inexact pairs): the Ritz pairs of H on
  // span P^(−1/2) Q_k are still Rayleigh–Ritz pairs of H with the residuals they report.
  std::vector<Vector<double>> U = {Q.col(0) + 0.1 * Q.col(5), Q.col(1)};
  U[0].normalize();
  U[1] -= U[0].dot(U[1]) * U[0];
  U[1].normalize();
  const std::vector<double> theta = {350.0, 100.0};
  const SpectralPreconditioner<Vector<double>> P(U, theta);
  MethodSpec spec = parse_method_spec("cg+ritz");
  spec.steps = 5;
  generic::SolverState<Vector<double>> state;
  state.ritz_vectors = U;
  state.ritz_values = theta;
  RitzPairs<Vector<double>> fresh;
  generic::detail::ritz_cg(op, spec, g, nullptr, &state, {}, &fresh);
  ASSERT_EQ(fresh.size(), 5u);
  for (std::size_t i = 0; i < fresh.size(); ++i) {
    const Vector<double>& u = fresh.vectors[i];
    EXPECT_NEAR(u.norm(), 1.0, 1e-10);
    EXPECT_NEAR(fresh.values[i], u.dot(H * u), 1e-9 * eig(0)) << i;
    EXPECT_NEAR(fresh.residuals[i], (H * u - fresh.values[i] * u).norm(), 1e-9 * eig(0)) << i;
    for (std::size_t j = 0; j < i; ++j) EXPECT_NEAR(u.dot(fresh.vectors[j]), 0.0, 1e-10);
  }
}

TEST(RitzPairs, MergeKeepsAnOrthonormalMemoryOfTheLargestValues) {
  const Index n = 12;
  const Matrix<double> Q = orthogonal(n, 31);
  std::vector<Vector<double>> kept = {Q.col(0), Q.col(1), Q.col(2)};
  std::vector<double> values = {50.0, 20.0, 10.0};
  RitzPairs<Vector<double>> fresh;
  // A fresh, accurate pair along Q.col(1) (replaces the old one), one along a new direction,
  // and an inaccurate one (residual above a tenth of its value: refused).
  fresh.vectors = {Q.col(1), Q.col(3), Q.col(4)};
  fresh.values = {25.0, 15.0, 30.0};
  fresh.residuals = {0.1, 1.0, 10.0};
  RitzParams params;
  params.memory = 3;
  double scale = 0;
  merge_ritz_pairs(kept, values, scale, std::move(fresh), params);
  EXPECT_EQ(scale, 30.0);  // the largest fresh value that was not recycled
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(values, (std::vector<double>{50.0, 25.0, 15.0}));  // the largest 3 of 4 distinct
  for (std::size_t i = 0; i < kept.size(); ++i)
    for (std::size_t j = 0; j <= i; ++j)
      EXPECT_NEAR(kept[i].dot(kept[j]), i == j ? 1.0 : 0.0, 1e-14);
  EXPECT_NEAR(std::abs(kept[1].dot(Q.col(1))), 1.0, 1e-14);
  EXPECT_NEAR(std::abs(kept[2].dot(Q.col(3))), 1.0, 1e-14);
  // Every fresh pair accepted: c = the smallest fresh value; no fresh pair: c unchanged.
  RitzPairs<Vector<double>> accurate;
  accurate.vectors = {Q.col(6), Q.col(7)};
  accurate.values = {8.0, 4.0};
  accurate.residuals = {0.0, 0.0};
  merge_ritz_pairs(kept, values, scale, std::move(accurate), params);
  EXPECT_EQ(scale, 4.0);
  EXPECT_EQ(values, (std::vector<double>{50.0, 25.0, 15.0}));
  merge_ritz_pairs(kept, values, scale, RitzPairs<Vector<double>>{}, params);
  EXPECT_EQ(scale, 4.0);
}

// ---- cg+ritz as a method -------------------------------------------------------------------------

using Problem = RegularizedProblem<SoftmaxRegression<double>>;

/// Softmax regression (3 classes, d features + bias) with per-weight decays at a random point.
struct Point {
  std::unique_ptr<Problem> problem;
};
Point at_random_point(Index n_train, Index d, std::uint64_t seed) {
  using ift::testing::random_classification;
  using ift::testing::shared;
  SoftmaxRegression<double> model(d + 1, 3);
  Point p;
  p.problem = std::make_unique<Problem>(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      shared(random_classification<double>(n_train, d, 3, seed)),
      shared(random_classification<double>(30, d, 3, seed + 1)));
  const Vector<double> lambda =
      Vector<double>::Constant(model.num_params(), std::log(1e-3));
  p.problem->set_point(lambda, random_vector<double>(model.num_params(), seed + 2, 0.3));
  return p;
}

TEST(CgRitz, WithoutRecycledPairsItIsPlainCgBitwise) {
  auto f = at_random_point(50, 6, 13);
  Problem& problem = *f.problem;
  MethodSpec cg = parse_method_spec("cg");
  cg.steps = 5;
  MethodSpec ritz = parse_method_spec("cg+ritz");
  ritz.steps = 5;
  EXPECT_EQ(ritz.name(), "cg+ritz");
  const auto a = generic::hypergradient(problem, cg);
  const auto b = generic::hypergradient(problem, ritz);  // no state
  generic::SolverState<Vector<double>> state;
  const auto c = generic::hypergradient(problem, ritz, nullptr, nullptr, &state);  // empty state
  for (const auto* r : {&b, &c}) {
    EXPECT_TRUE(same_bits(a.v, r->v));
    EXPECT_TRUE(same_bits(a.hypergradient, r->hypergradient));
    EXPECT_EQ(a.hvps, r->hvps);
    EXPECT_EQ(a.iterations, r->iterations);
    EXPECT_EQ(a.status, r->status);
    EXPECT_NE(r->message.find("m = 0: plain cg"), std::string::npos) << r->message;
  }
  // cg+kfac+ritz without recycled pairs is cg+kfac, bitwise.
  MethodSpec kfac = parse_method_spec("cg+kfac");
  kfac.steps = 5;
  MethodSpec kfac_ritz = parse_method_spec("cg+kfac+ritz");
  kfac_ritz.steps = 5;
  generic::SolverState<Vector<double>> kfac_state;
  const auto d = generic::hypergradient(problem, kfac);
  const auto e = generic::hypergradient(problem, kfac_ritz, nullptr, nullptr, &kfac_state);
  EXPECT_TRUE(same_bits(d.v, e.v));
  EXPECT_EQ(d.hvps, e.hvps);
  EXPECT_FALSE(kfac_state.ritz_values.empty());
  // The state now holds this solve's accepted Ritz pairs: orthonormal, values descending and
  // within H's spectrum (Rayleigh quotients).
  ASSERT_FALSE(state.ritz_values.empty());
  EXPECT_LE(state.ritz_values.size(), 5u);
  EXPECT_GT(state.ritz_scale, 0.0);
  Matrix<double> H;
  problem.hessian(H);
  const double top = Eigen::SelfAdjointEigenSolver<Matrix<double>>(H).eigenvalues().maxCoeff();
  for (std::size_t i = 0; i < state.ritz_values.size(); ++i) {
    const Vector<double>& u = state.ritz_vectors[i];
    EXPECT_NEAR(u.norm(), 1.0, 1e-12);
    EXPECT_LE(state.ritz_values[i], top * (1 + 1e-12));
    EXPECT_LE((H * u - state.ritz_values[i] * u).norm(), 0.1 * state.ritz_values[i] * (1 + 1e-9));
  }
}

TEST(CgRitz, RunToConvergenceEqualsTheExactSolveAndSavesIterations) {
  auto f = at_random_point(50, 6, 17);
  Problem& problem = *f.problem;
  MethodSpec exact;
  exact.method = Method::Exact;
  MethodSpec ritz = parse_method_spec("cg+ritz");
  ritz.steps = 500;
  ritz.cg.tolerance = 1e-11;
  const auto reference = generic::hypergradient(problem, exact);
  generic::SolverState<Vector<double>> state;
  // First solve: plain cg (records its Ritz pairs); second, same point: preconditioned by them.
  const auto first = generic::hypergradient(problem, ritz, nullptr, nullptr, &state);
  ASSERT_FALSE(state.ritz_values.empty());
  const auto second = generic::hypergradient(problem, ritz, nullptr, nullptr, &state);
  for (const auto* r : {&first, &second}) {
    ASSERT_EQ(r->status, SolverStatus::Converged) << r->message;
    EXPECT_LT((r->v - reference.v).norm(), 1e-8 * reference.v.norm());
    EXPECT_LT((r->hypergradient - reference.hypergradient).norm(),
              1e-8 * reference.hypergradient.norm());
  }
  // The pairs recycled from the converged first solve (a converged Lanczos stop) are honest:
  // their residuals against the true H pass the acceptance test.
  Matrix<double> H;
  problem.hessian(H);
  for (std::size_t i = 0; i < state.ritz_values.size(); ++i) {
    const Vector<double>& u = state.ritz_vectors[i];
    EXPECT_LE((H * u - state.ritz_values[i] * u).norm(), 0.1 * state.ritz_values[i] * (1 + 1e-9));
  }
  EXPECT_NE(second.message.find("Ritz-preconditioned (m = "), std::string::npos);
  EXPECT_EQ(second.message.find("m = 0"), std::string::npos) << second.message;
  EXPECT_LT(second.iterations, first.iterations);  // the recycled outliers are deflated
}

TEST(CgRitz, NamesChecksAndSweep) {
  EXPECT_EQ(parse_method_spec("cg+ritz+warm").name(), "cg+ritz+warm");
  EXPECT_EQ(parse_method_spec("cg+ritz+warm").preconditioner, Preconditioner::Ritz);
  EXPECT_THROW(parse_method_spec("neumann+ritz"), std::invalid_argument);
  EXPECT_EQ(parse_method_spec("cg+kfac+ritz+warm").preconditioner, Preconditioner::KfacRitz);
  EXPECT_EQ(parse_method_spec("cg+kfac+ritz+warm").name(), "cg+kfac+ritz+warm");
  EXPECT_THROW(parse_method_spec("cg+ritz+kfac"), std::invalid_argument);
  EXPECT_THROW(parse_method_spec("cg+ritz+ritz"), std::invalid_argument);
  MethodSpec s = parse_method_spec("cg+ritz");
  s.ritz.memory = 0;
  EXPECT_THROW(s.check(), std::invalid_argument);
  s.ritz.memory = 4;
  s.cg.reorthogonalize = false;  // plain CG has no Lanczos relation
  EXPECT_THROW(s.check(), std::invalid_argument);

  // A sweep equals its single calls (with the same recycled state).
  auto f = at_random_point(40, 5, 19);
  Problem& problem = *f.problem;
  MethodSpec ritz = parse_method_spec("cg+ritz");
  ritz.steps = 6;
  generic::SolverState<Vector<double>> state;
  generic::hypergradient(problem, ritz, nullptr, nullptr, &state);
  ASSERT_FALSE(state.ritz_values.empty());
  const std::vector<Index> ks = {1, 3, 6};
  const auto sweep = generic::hypergradient_sweep(problem, ritz, ks, nullptr, &state);
  for (std::size_t j = 0; j < ks.size(); ++j) {
    MethodSpec one = ritz;
    one.steps = ks[j];
    generic::SolverState<Vector<double>> copy = state;
    const auto single = generic::hypergradient(problem, one, nullptr, nullptr, &copy);
    EXPECT_LT((sweep[j].v - single.v).norm(), 1e-12 * single.v.norm()) << ks[j];
    EXPECT_EQ(sweep[j].hvps, single.hvps);
  }
}

}  // namespace
