// SHINE (Ramzi et al., ICLR 2022): v from the inverse-Hessian estimate of the inner L-BFGS.
//   - the two-loop recursion equals the dense BFGS inverse built from the same pairs by the BFGS
//     update formula, and LBFGSpp's own BFGSMat::apply_Hv on them;
//   - the hereditary theorem: on a quadratic with A-conjugate steps (exact line searches) every
//     earlier secant condition H y_j = s_j survives, so D pairs give H⁻¹ exactly;
//   - lbfgs_solve records exactly LBFGSpp's pairs: s_k = x_{k+1} − x_k, y_k = g_{k+1} − g_k of its
//     iterates, the newest m, and each step is along −H g of the pairs before it;
//   - the pairs round-trip through a checkpoint bitwise and a resumed shine run is bitwise the
//     uninterrupted one; every way to lack pairs ends in SolverStatus::MissingState;
//   - shine refined by enough CG steps equals cold CG's solution, and its sweep equals its
//     single-k calls.
#include <gtest/gtest.h>
#include <unistd.h>

#include <LBFGSpp/BFGSMat.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <random>

#include "blobs_problem.hpp"
#include "fixtures.hpp"
#include "ift/bilevel.hpp"
#include "ift/checkpoint.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/linalg/lbfgs_inverse.hpp"

namespace {

using namespace ift;
using Problem = ift::testing::BlobsProblem;
using Pairs = LbfgsPairs<Vector<double>>;

Matrix<double> random_spd(Index n, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal;
  Matrix<double> B(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) B(i, j) = normal(gen);
  return B * B.transpose() + 0.5 * Matrix<double>::Identity(n, n);
}

Vector<double> random_vector(Index n, std::uint64_t seed) {
  return ift::testing::random_vector<double>(n, seed);
}

/// The BFGS inverse update H⁺ = (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ applied to H0 = γ I for each
/// pair in order, γ = sᵀy / yᵀy of the newest: the matrix the two-loop recursion applies.
Matrix<double> dense_bfgs_inverse(const Pairs& pairs) {
  const Index n = pairs.s.front().size();
  const Vector<double>& s_new = pairs.s.back();
  const Vector<double>& y_new = pairs.y.back();
  Matrix<double> H = (s_new.dot(y_new) / y_new.dot(y_new)) * Matrix<double>::Identity(n, n);
  const Matrix<double> I = Matrix<double>::Identity(n, n);
  for (std::size_t i = 0; i < pairs.s.size(); ++i) {
    const Vector<double>& s = pairs.s[i];
    const Vector<double>& y = pairs.y[i];
    const double rho = 1 / s.dot(y);
    H = (I - rho * s * y.transpose()) * H * (I - rho * y * s.transpose()) + rho * s * s.transpose();
  }
  return H;
}

double relative(const Vector<double>& a, const Vector<double>& b) {
  return (a - b).norm() / b.norm();
}

/// Pairs of a noisy quadratic: y = A s + small noise (sᵀy > 0).
Pairs quadratic_pairs(const Matrix<double>& A, Index count, Index memory, std::uint64_t seed) {
  Pairs pairs;
  Vector<double> x = Vector<double>::Zero(A.rows());
  for (Index i = 0; i < count; ++i) {
    const Vector<double> s = random_vector(A.rows(), seed + 10 * i);
    const Vector<double> y = A * s + 0.01 * random_vector(A.rows(), seed + 10 * i + 1);
    x += s;
    pairs.push(s, y, x, memory);
  }
  return pairs;
}

TEST(LbfgsInverse, TwoLoopEqualsTheDenseBfgsInverseAndLbfgsppsCompactForm) {
  const Index n = 7;
  const Matrix<double> A = random_spd(n, 1);
  const Vector<double> g = random_vector(n, 2);
  for (Index count : {1, 3, 4, 9}) {  // 9 pairs into memory 4: the newest 4 are kept
    const Pairs pairs = quadratic_pairs(A, count, 4, 100 + count);
    ASSERT_EQ(pairs.size(), std::min<Index>(count, 4));
    const SolveResult<Vector<double>> r = lbfgs_inverse_solve(pairs, g);
    ASSERT_EQ(r.status, SolverStatus::Converged) << r.message;
    EXPECT_EQ(r.hvps, 0);
    const Vector<double> dense = dense_bfgs_inverse(pairs) * g;
    EXPECT_LT(relative(r.x, dense), 1e-12) << count;
    // LBFGSpp's own L-BFGS matrix (BFGSMat, the one its solver steps with) fed every pair.
    LBFGSpp::BFGSMat<double> bfgs;
    bfgs.reset(static_cast<int>(n), 4);
    Pairs all = quadratic_pairs(A, count, count, 100 + count);
    for (std::size_t i = 0; i < all.s.size(); ++i) bfgs.add_correction(all.s[i], all.y[i]);
    Vector<double> lbfgspp;
    bfgs.apply_Hv(g, 1.0, lbfgspp);
    EXPECT_LT(relative(r.x, lbfgspp), 1e-13) << count;
  }
}

TEST(LbfgsInverse, SkipsPairsWithoutPositiveCurvatureAndSaysSo) {
  const Index n = 5;
  const Matrix<double> A = random_spd(n, 3);
  const Vector<double> g = random_vector(n, 4);
  const Pairs good = quadratic_pairs(A, 3, 10, 7);
  Pairs mixed;
  mixed.push(good.s[0], good.y[0], good.point, 10);
  mixed.push(good.s[1], -good.y[1], good.point, 10);  // sᵀy < 0: would make H indefinite
  mixed.push(good.s[2], good.y[2], good.point, 10);
  Pairs kept;
  kept.push(good.s[0], good.y[0], good.point, 10);
  kept.push(good.s[2], good.y[2], good.point, 10);
  const auto r = lbfgs_inverse_solve(mixed, g);
  ASSERT_EQ(r.status, SolverStatus::Converged);
  EXPECT_LT(relative(r.x, dense_bfgs_inverse(kept) * g), 1e-12);
  EXPECT_NE(r.message.find("1 pairs with sᵀy <= 0 skipped"), std::string::npos) << r.message;
  // Every pair unusable, or none at all: MissingState, x = g (H0 = I), never NaN.
  Pairs bad;
  bad.push(good.s[0], -good.y[0], good.point, 10);
  for (const Pairs* p : {static_cast<const Pairs*>(&bad), static_cast<const Pairs*>(nullptr)}) {
    const auto m = lbfgs_inverse_solve(p ? *p : Pairs{}, g);
    EXPECT_EQ(m.status, SolverStatus::MissingState);
    EXPECT_STREQ(to_string(m.status), "missing-state");
    EXPECT_TRUE(m.x == g);
    EXPECT_NE(m.message.find(p ? "no usable" : "no L-BFGS pairs"), std::string::npos) << m.message;
  }
}

// The hereditary property of BFGS: with s_iᵀ A s_j = 0 (i ≠ j; what exact line searches give on
// a quadratic) and y = A s, each update keeps the earlier secant conditions H y_j = s_j, for
// any H0. So k pairs make H_k = A⁻¹ on span{y_j}, and D pairs make H_D = A⁻¹.
TEST(LbfgsInverse, ConjugatePairsOfAQuadraticGiveTheInverseOnTheirSpan) {
  const Index n = 8;
  const Matrix<double> A = random_spd(n, 11);
  // A-conjugate directions: Gram-Schmidt of random vectors in the A inner product.
  std::vector<Vector<double>> dirs;
  for (Index i = 0; i < n; ++i) {
    Vector<double> d = random_vector(n, 200 + i);
    for (const auto& e : dirs) d -= (e.dot(A * d) / e.dot(A * e)) * e;
    dirs.push_back(d);
  }
  Pairs pairs;
  Vector<double> x = Vector<double>::Zero(n);
  for (Index k = 1; k <= n; ++k) {
    x += dirs[k - 1];
    pairs.push(dirs[k - 1], A * dirs[k - 1], x, n);
    for (Index j = 0; j < k; ++j) {
      const auto r = lbfgs_inverse_solve(pairs, Vector<double>(A * dirs[j]));
      EXPECT_LT(relative(r.x, dirs[j]), 1e-10) << "k = " << k << ", j = " << j;
    }
  }
  const Vector<double> g = random_vector(n, 5);
  EXPECT_LT(relative(lbfgs_inverse_solve(pairs, g).x, A.llt().solve(g)), 1e-10);
}

TEST(LbfgsInverse, FloatCompilesAndAgreesWithDouble) {
  const Matrix<double> A = random_spd(6, 21);
  const Pairs pairs = quadratic_pairs(A, 3, 3, 9);
  LbfgsPairs<Vector<float>> single;
  for (std::size_t i = 0; i < pairs.s.size(); ++i)
    single.push(pairs.s[i].cast<float>(), pairs.y[i].cast<float>(), pairs.point.cast<float>(), 3);
  const Vector<double> g = random_vector(6, 22);
  const auto r = lbfgs_inverse_solve(single, Vector<float>(g.cast<float>()));
  ASSERT_EQ(r.status, SolverStatus::Converged);
  EXPECT_LT(relative(r.x.cast<double>(), lbfgs_inverse_solve(pairs, g).x), 1e-4);
}

// ---- On a bilevel problem ----------------------------------------------------------------------

struct Fixture {
  std::unique_ptr<Problem> problem;
  Vector<double> w0, lambda;
};

Fixture make_fixture(std::uint64_t seed) {
  Fixture f;
  f.problem = ift::testing::blobs_decay_problem(40, 30, 6, seed);
  f.w0 = Vector<double>::Zero(f.problem->num_params());
  f.lambda = Vector<double>::Constant(f.problem->num_params(), std::log(1e-2));
  return f;
}

// lbfgs_solve(max_iterations = j) repeats the first j iterations of any longer run, so the runs
// j = 1, 2, … expose every iterate x_j and the pairs LBFGSpp held at each.
TEST(LbfgsPairsRecorded, AreTheIteratesDifferencesAndDriveEachStep) {
  Fixture f = make_fixture(3);
  const Index memory = 3, runs = 9;
  LbfgsParams p;
  p.memory = memory;
  p.gradient_tolerance = 1e-12;
  std::vector<Vector<double>> xs{f.w0};
  std::vector<Pairs> held{Pairs{}};
  for (Index j = 1; j <= runs; ++j) {
    p.max_iterations = j;
    Vector<double> w = f.w0;
    Pairs pairs;
    const InnerResult r = lbfgs_solve<double>(*f.problem, f.lambda, w, p, {}, &pairs);
    ASSERT_EQ(r.iterations, j) << r.message;
    ASSERT_EQ(pairs.size(), std::min(j, memory));
    EXPECT_EQ(pairs.memory, memory);
    EXPECT_TRUE(pairs.point == w);
    xs.push_back(w);
    held.push_back(pairs);
  }
  const auto gradient = [&](const Vector<double>& x) {
    f.problem->set_point(f.lambda, x);
    return Vector<double>(f.problem->train_gradient());
  };
  for (Index j = 1; j <= runs; ++j) {
    const Pairs& now = held[j];
    const Pairs& before = held[j - 1];
    // The newest pair: the last step's x and g differences (s bitwise: the same subtraction).
    EXPECT_TRUE(now.s.back() == Vector<double>(xs[j] - xs[j - 1])) << j;
    const Vector<double> dg = gradient(xs[j]) - gradient(xs[j - 1]);
    EXPECT_LT(relative(now.y.back(), dg), 1e-12) << j;
    // The older ones: the run before's newest m − 1, bitwise (LBFGSpp's cyclic buffer).
    const Index kept = now.size() - 1;
    for (Index i = 0; i < kept; ++i) {
      EXPECT_TRUE(now.s[i] == before.s[before.size() - kept + i]) << j << "," << i;
      EXPECT_TRUE(now.y[i] == before.y[before.size() - kept + i]) << j << "," << i;
    }
    // The step LBFGSpp took from x_{j−1} is along −H g(x_{j−1}) with H from the pairs it held.
    const Vector<double> g = gradient(xs[j - 1]);
    const Vector<double> direction =
        j == 1 ? Vector<double>(-g) : Vector<double>(-lbfgs_inverse_solve(before, g).x);
    const Vector<double>& s = now.s.back();
    EXPECT_LT(1 - s.dot(direction) / (s.norm() * direction.norm()), 1e-10) << j;
  }
}

/// w* by L-BFGS with its pairs in a solver state; the problem at (λ, w*).
generic::SolverState<Vector<double>> solve_with_pairs(Fixture& f, Vector<double>& w) {
  generic::SolverState<Vector<double>> state;
  LbfgsParams p;
  p.gradient_tolerance = 1e-10;
  w = f.w0;
  const InnerResult r = lbfgs_solve<double>(*f.problem, f.lambda, w, p, {}, &state.lbfgs);
  EXPECT_TRUE(r.converged) << r.message;
  EXPECT_EQ(state.lbfgs.size(), p.memory);
  return state;
}

TEST(Shine, EstimateCostsNoHvpAndRefinementReachesColdCgsSolution) {
  Fixture f = make_fixture(5);
  Vector<double> w;
  auto state = solve_with_pairs(f, w);
  const Index D = f.problem->num_params();
  MethodSpec shine;
  shine.method = Method::Shine;
  shine.steps = 0;
  shine.compute_residual = true;
  const auto pure = generic::hypergradient(*f.problem, shine, nullptr, nullptr, &state);
  ASSERT_EQ(pure.status, SolverStatus::Converged) << pure.message;
  EXPECT_EQ(pure.hvps, 1);  // the residual's product only
  ASSERT_TRUE(pure.relative_residual.has_value());
  EXPECT_EQ(shine.name(), "shine");
  MethodSpec exact;
  const auto reference = generic::hypergradient(*f.problem, exact);
  // Refined by D CG steps (tolerance 0: all of them) it is the solution cold CG reaches.
  shine.steps = D;
  shine.cg.tolerance = 1e-13;
  MethodSpec cg = shine;
  cg.method = Method::Cg;
  const auto refined = generic::hypergradient(*f.problem, shine, nullptr, nullptr, &state);
  const auto cold = generic::hypergradient(*f.problem, cg);
  EXPECT_EQ(refined.status, SolverStatus::Converged) << refined.message;
  EXPECT_LT(relative(refined.v, cold.v), 1e-8);
  EXPECT_LT(relative(refined.hypergradient, reference.hypergradient), 1e-8);
  EXPECT_LT(*refined.relative_residual, 1e-10);
  EXPECT_NE(refined.message.find("refined by"), std::string::npos);
  // The sweep: one estimate and one CG series, each k equal to its single-k call.
  const std::vector<Index> ks = {3, 0, 1, 7};
  shine.cg.tolerance = 0;
  const auto sweep = generic::hypergradient_sweep(*f.problem, shine, ks, nullptr, &state);
  for (std::size_t j = 0; j < ks.size(); ++j) {
    MethodSpec single = shine;
    single.steps = ks[j];
    const auto one = generic::hypergradient(*f.problem, single, nullptr, nullptr, &state);
    EXPECT_LT(relative(sweep[j].hypergradient, one.hypergradient), 1e-12) << ks[j];
    EXPECT_EQ(sweep[j].hvps, one.hvps) << ks[j];
    EXPECT_EQ(sweep[j].status, one.status) << ks[j];
  }
  EXPECT_EQ(sweep[1].hvps, 1);  // k = 0 with the residual
}

TEST(Shine, WithoutPairsAtThisPointTheStatusIsMissingState) {
  Fixture f = make_fixture(7);
  Vector<double> w;
  auto state = solve_with_pairs(f, w);
  MethodSpec shine;
  shine.method = Method::Shine;
  shine.steps = 5;
  // No state, an empty state, pairs that end at another w: no estimate, no CG, no HVP.
  generic::SolverState<Vector<double>> empty;
  const auto none = generic::hypergradient(*f.problem, shine);
  const auto nothing = generic::hypergradient(*f.problem, shine, nullptr, nullptr, &empty);
  f.problem->set_point(f.lambda, Vector<double>(w * 1.01));
  const auto moved = generic::hypergradient(*f.problem, shine, nullptr, nullptr, &state);
  for (const auto* r : {&none, &nothing, &moved}) {
    EXPECT_EQ(r->status, SolverStatus::MissingState) << r->message;
    EXPECT_EQ(r->hvps, 0);
    EXPECT_TRUE(r->hypergradient.allFinite());
  }
  EXPECT_NE(moved.message.find("another w"), std::string::npos) << moved.message;
  const auto swept = generic::hypergradient_sweep(*f.problem, shine, {0, 2}, nullptr, &empty);
  for (const auto& r : swept) EXPECT_EQ(r.status, SolverStatus::MissingState);
  // Options it cannot honour are refused up front.
  MethodSpec damped = shine;
  damped.damping = 0.1;
  EXPECT_THROW(damped.check(), std::invalid_argument);
  MethodSpec gn = shine;
  gn.curvature = Curvature::GaussNewton;
  EXPECT_THROW(gn.check(), std::invalid_argument);
  EXPECT_EQ(parse_method("shine"), Method::Shine);
  BilevelParams loop;
  loop.method = shine;
  EXPECT_THROW(loop.check(), std::invalid_argument);  // the optimiser inner phase has no pairs
  parse_inner("lbfgs", loop);
  loop.inner_steps = 50;
  EXPECT_NO_THROW(loop.check());
}

TEST(ShineCheckpoint, PairsRoundTripBitwise) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("ift_test_shine_" + std::to_string(::getpid()) + "_pairs"))
                               .string();
  Checkpoint<double> c;
  c.fingerprint = "x=1\n";
  c.w = Vector<double>::LinSpaced(4, 0, 1);
  c.lambda = Vector<double>::Constant(4, -3);
  for (int i = 0; i < 3; ++i) {
    c.solver_lbfgs_s.push_back(random_vector(4, 30 + i) / 3.0);
    c.solver_lbfgs_y.push_back(random_vector(4, 40 + i) / 7.0);
  }
  c.solver_lbfgs_point = random_vector(4, 50) / 11.0;
  c.solver_lbfgs_memory = 5;
  save_checkpoint(path, c);
  const auto back = load_checkpoint<double>(path);
  ASSERT_EQ(back.solver_lbfgs_s.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(back.solver_lbfgs_s[i] == c.solver_lbfgs_s[i]);
    EXPECT_TRUE(back.solver_lbfgs_y[i] == c.solver_lbfgs_y[i]);
  }
  EXPECT_TRUE(back.solver_lbfgs_point == c.solver_lbfgs_point);
  EXPECT_EQ(back.solver_lbfgs_memory, 5);
  std::filesystem::remove(path);
}

// Algorithm 2 with SHINE: every hyper-step uses the pairs of its own L-BFGS inner solve (0
// HVPs), a run stopped and resumed is bitwise the uninterrupted one, and the checkpoint holds
// the pairs of the last inner phase.
TEST(ShineLoop, RunsWithLbfgsAndResumesBitwise) {
  Fixture f = make_fixture(9);
  BilevelParams p;
  p.method.method = Method::Shine;
  p.method.steps = 0;
  p.inner_solver = InnerSolver::Lbfgs;
  p.inner_steps = 200;
  p.inner_tolerance = 1e-9;
  p.hyper_steps = 4;
  p.outer = {OptimizerKind::Adam, 0.1};
  p.configuration = "test=shine\n";
  const auto full = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda);
  ASSERT_EQ(full.records.size(), 4u);
  for (const auto& r : full.records) {
    EXPECT_EQ(r.status, "converged") << r.message;
    EXPECT_EQ(r.hvps, 0);
    EXPECT_EQ(r.inner_status, "converged");
  }
  EXPECT_FALSE(full.lambda == f.lambda);
  p.checkpoint_path = (std::filesystem::temp_directory_path() /
                       ("ift_test_shine_" + std::to_string(::getpid()) + "_loop"))
                          .string();
  BilevelLoop<double> first(p);
  Index seen = 0;
  first.add_observer([&](const HyperStepRecord&) { ++seen; });
  first.set_stop_request([&] { return seen >= 2; });
  ASSERT_EQ(first.run(*f.problem, f.w0, f.lambda).steps, 2);
  const auto checkpoint = load_checkpoint<double>(p.checkpoint_path);
  EXPECT_GE(checkpoint.solver_lbfgs_s.size(), 1u);  // the second inner phase's pairs
  EXPECT_LE(checkpoint.solver_lbfgs_s.size(), 10u);  // at most LbfgsParams' default memory
  EXPECT_EQ(checkpoint.solver_lbfgs_memory, 10);
  const auto resumed = BilevelLoop<double>(p).resume(*f.problem, checkpoint);
  EXPECT_TRUE(resumed.lambda == full.lambda);
  EXPECT_TRUE(resumed.w == full.w);
  ASSERT_EQ(resumed.records.size(), full.records.size());
  for (std::size_t i = 0; i < full.records.size(); ++i)
    EXPECT_EQ(resumed.records[i].hypergradient_norm, full.records[i].hypergradient_norm) << i;
  std::filesystem::remove(p.checkpoint_path);
}

}  // namespace
