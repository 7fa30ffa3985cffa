// Sweeps over the step count k from one run: the solvers' partial results (PartialResults) and
// generic::hypergradient_sweep against the single-k calls they stand for, and against the
// mathematics (Neumann's partial sums in closed form, CG's iterates minimising the energy norm
// over growing Krylov spaces), for every k, with statuses and HVP counts, in double and float.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "fixtures.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/linalg/linalg.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace ift {
namespace {

using testing::rel_error;

template <class S>
class SweepTyped : public ::testing::Test {};
using Precisions = ::testing::Types<double, float>;
TYPED_TEST_SUITE(SweepTyped, Precisions);

// ---- fixtures --------------------------------------------------------------------------------

/// Q diag(eigenvalues) Qᵀ with a seeded random orthogonal Q, built in double.
template <class S>
Matrix<S> symmetric_with_spectrum(const Vector<double>& eigenvalues, std::uint64_t seed) {
  const Index n = eigenvalues.size();
  Matrix<double> M(n, n);
  for (Index j = 0; j < n; ++j) M.col(j) = testing::random_vector<double>(n, seed * 1000 + j);
  const Matrix<double> Q = Eigen::HouseholderQR<Matrix<double>>(M).householderQ();
  Matrix<double> H = Q * eigenvalues.asDiagonal() * Q.transpose();
  return (0.5 * (H + H.transpose())).cast<S>();
}

/// Eigenvalues spaced geometrically from lo to hi.
inline Vector<double> geometric_spectrum(Index n, double lo, double hi) {
  Vector<double> d(n);
  for (Index i = 0; i < n; ++i) d(i) = lo * std::pow(hi / lo, double(i) / double(n - 1));
  return d;
}

/// Collects the partial results by k.
template <class S>
struct Collector {
  std::map<Index, SolveResult<Vector<S>>> by_k;
  std::vector<Index> order;
  PartialResults<Vector<S>> at(std::vector<Index> ks) {
    PartialResults<Vector<S>> p;
    p.at = std::move(ks);
    p.report = [this](Index k, SolveResult<Vector<S>>&& r) {
      order.push_back(k);
      by_k.emplace(k, std::move(r));
    };
    return p;
  }
};

std::vector<Index> all_up_to(Index K) {
  std::vector<Index> ks;
  for (Index k = 0; k <= K; ++k) ks.push_back(k);
  return ks;
}

/// The partial result for k is the k-step call's result: same x to the bit and same diagnostics.
template <class S>
void expect_same_solve(const SolveResult<Vector<S>>& partial, const SolveResult<Vector<S>>& single,
                       Index k) {
  EXPECT_EQ(partial.status, single.status) << "k = " << k << ": " << partial.message << " | "
                                           << single.message;
  EXPECT_EQ(partial.iterations, single.iterations) << "k = " << k;
  EXPECT_EQ(partial.hvps, single.hvps) << "k = " << k;
  EXPECT_EQ(partial.relative_residual, single.relative_residual) << "k = " << k;
  EXPECT_EQ(partial.alpha, single.alpha) << "k = " << k;
  EXPECT_EQ(partial.suggested_alpha, single.suggested_alpha) << "k = " << k;
  EXPECT_EQ(partial.message, single.message) << "k = " << k;
  EXPECT_EQ(partial.residual_history, single.residual_history) << "k = " << k;
  ASSERT_EQ(partial.x.size(), single.x.size());
  EXPECT_TRUE(partial.x == single.x) << "k = " << k << ": max difference "
                                     << (partial.x - single.x).cwiseAbs().maxCoeff();
}

// ---- Neumann: partial sums -------------------------------------------------------------------

TYPED_TEST(SweepTyped, NeumannPartialSumsAreTheKStepSeriesAndTheClosedForm) {
  using S = TypeParam;
  const Index n = 30, K = 25;
  const Matrix<S> H = symmetric_with_spectrum<S>(geometric_spectrum(n, 0.05, 4.0), 3);
  const Vector<S> g = testing::random_vector<S>(n, 4);
  const DenseOperator<S> op(H);
  for (bool automatic : {false, true}) {
    NeumannParams p;
    p.steps = K;
    p.alpha = automatic ? 0.0 : 0.2;
    p.compute_residual = true;  // one more HVP per reported k, counted in each k's hvps
    p.record_history = true;
    Collector<S> c;
    const auto full = neumann(op, g, p, c.at(all_up_to(K)));
    ASSERT_EQ(c.order, all_up_to(K));  // ascending, once each
    expect_same_solve(c.by_k.at(K), full, K);
    // v_k = α Σ_{j<=k} (I − αH)^j g, formed densely in double.
    const double alpha = full.alpha;
    const Matrix<double> M =
        Matrix<double>::Identity(n, n) - alpha * H.template cast<double>();
    Vector<double> term = g.template cast<double>(), sum = term;
    for (Index k = 0; k <= K; ++k) {
      if (k > 0) {
        term = M * term;
        sum += term;
      }
      NeumannParams pk = p;
      pk.steps = k;
      expect_same_solve(c.by_k.at(k), neumann(op, g, pk), k);
      EXPECT_EQ(c.by_k.at(k).status, SolverStatus::MaxIterations);
      EXPECT_EQ(c.by_k.at(k).hvps, k + 1 + (automatic ? full.hvps - K - 1 : 0)) << "k = " << k;
      const double tol = std::is_same_v<S, double> ? 1e-12 : 1e-5;
      EXPECT_LT(rel_error(c.by_k.at(k).x.template cast<double>().eval(), (alpha * sum).eval()),
                tol)
          << "k = " << k;
    }
  }
}

TEST(Sweep, NeumannDivergenceReachesEveryLaterK) {
  // α = 3/λ_max: the component along the top eigenvector grows by 2 per term. Every k at or past
  // the offending term gets the diverged result of a call with that k (power iteration for the
  // suggested α included in hvps); earlier k are plain truncations.
  const Index n = 12, K = 60;
  const Matrix<double> H = symmetric_with_spectrum<double>(geometric_spectrum(n, 0.5, 2.0), 5);
  const Vector<double> g = testing::random_vector<double>(n, 6);
  const DenseOperator<double> op(H);
  NeumannParams p;
  p.steps = K;
  p.alpha = 1.5;
  Collector<double> c;
  const auto full = neumann(op, g, p, c.at(all_up_to(K)));
  ASSERT_EQ(full.status, SolverStatus::Diverged) << full.message;
  ASSERT_TRUE(full.suggested_alpha.has_value());
  const Index last_good = full.iterations;
  ASSERT_LT(last_good, K);
  for (Index k = 0; k <= K; ++k) {
    NeumannParams pk = p;
    pk.steps = k;
    const auto single = neumann(op, g, pk);
    expect_same_solve(c.by_k.at(k), single, k);
    EXPECT_EQ(single.status, k <= last_good ? SolverStatus::MaxIterations : SolverStatus::Diverged)
        << "k = " << k;
  }
}

TEST(Sweep, NeumannConvergedAndEarlyReturnsAreReportedAtEveryK) {
  const Index n = 8, K = 200;
  const Matrix<double> H = symmetric_with_spectrum<double>(geometric_spectrum(n, 0.5, 1.0), 7);
  const DenseOperator<double> op(H);
  NeumannParams p;
  p.steps = K;
  p.alpha = 1.0;  // contraction ≤ 1/2 per term: converges to 1e-10 well before K
  const Vector<double> g = testing::random_vector<double>(n, 8);
  Collector<double> c;
  neumann(op, g, p, c.at({K, 0, 30, 100, 30}));
  ASSERT_EQ(c.order, (std::vector<Index>{0, 30, 100, K}));
  for (Index k : c.order) {
    NeumannParams pk = p;
    pk.steps = k;
    expect_same_solve(c.by_k.at(k), neumann(op, g, pk), k);
  }
  EXPECT_EQ(c.by_k.at(100).status, SolverStatus::Converged);
  // Zero right-hand side: x = 0 at every k.
  Collector<double> z;
  neumann(op, Vector<double>::Zero(n), p, z.at({0, 3}));
  ASSERT_EQ(z.order, (std::vector<Index>{0, 3}));
  for (Index k : z.order) {
    EXPECT_EQ(z.by_k.at(k).status, SolverStatus::Converged);
    EXPECT_EQ(z.by_k.at(k).x, Vector<double>::Zero(n));
  }
  // Asking for a k past the budget is misuse.
  Collector<double> bad;
  EXPECT_THROW(neumann(op, g, p, bad.at({K + 1})), std::invalid_argument);
}

// ---- CG: iterates ----------------------------------------------------------------------------

TYPED_TEST(SweepTyped, CgIteratesAreTheKIterationRunsInBothForms) {
  using S = TypeParam;
  const Index n = 40, K = 30;
  const Matrix<S> H = symmetric_with_spectrum<S>(geometric_spectrum(n, 1e-2, 10.0), 9);
  const Vector<S> g = testing::random_vector<S>(n, 10);
  const Vector<S> x0 = testing::random_vector<S>(n, 11, 0.1);
  const DenseOperator<S> op(H);
  const Vector<double> x_star = H.template cast<double>().ldlt().solve(g.template cast<double>());
  for (bool reorthogonalize : {false, true}) {
    for (bool warm : {false, true}) {
      CgParams p;
      p.max_iterations = K;
      p.tolerance = 0;
      p.reorthogonalize = reorthogonalize;
      p.true_residual = true;
      p.record_history = true;
      Collector<S> c;
      const auto full = conjugate_gradient(op, g, p, warm ? &x0 : nullptr, c.at(all_up_to(K)));
      ASSERT_EQ(c.order, all_up_to(K));
      expect_same_solve(c.by_k.at(K), full, K);
      double previous_error = 1e300;
      for (Index k = 0; k <= K; ++k) {
        CgParams pk = p;
        pk.max_iterations = k;
        SCOPED_TRACE(std::string(reorthogonalize ? "lanczos" : "plain") + (warm ? ", warm" : ""));
        expect_same_solve(c.by_k.at(k), conjugate_gradient(op, g, pk, warm ? &x0 : nullptr), k);
        EXPECT_EQ(c.by_k.at(k).iterations, k);
        EXPECT_EQ(c.by_k.at(k).hvps, k + 1 + (warm ? 1 : 0));  // + true residual (+ warm start)
        // CG minimises the H-norm error over x0 + K_k: it never increases with k.
        const Vector<double> e = c.by_k.at(k).x.template cast<double>() - x_star;
        const double energy = std::sqrt(e.dot(H.template cast<double>() * e));
        const double slack = std::is_same_v<S, double> ? 1e-10 : 1e-3;
        EXPECT_LE(energy, previous_error * (1 + slack) + slack) << "k = " << k;
        previous_error = energy;
      }
    }
  }
}

TEST(Sweep, CgConvergenceAndNegativeCurvatureReachEveryLaterK) {
  const Index n = 10, K = 25;
  for (bool reorthogonalize : {false, true}) {
    SCOPED_TRACE(reorthogonalize ? "lanczos" : "plain");
    CgParams p;
    p.max_iterations = K;
    p.tolerance = 1e-10;
    p.reorthogonalize = reorthogonalize;
    // SPD with n = 10 distinct eigenvalues: converged within about n iterations.
    const Matrix<double> H = symmetric_with_spectrum<double>(geometric_spectrum(n, 1.0, 3.0), 12);
    const Vector<double> g = testing::random_vector<double>(n, 13);
    const DenseOperator<double> op(H);
    Collector<double> c;
    const auto full = conjugate_gradient(op, g, p, nullptr, c.at(all_up_to(K)));
    ASSERT_EQ(full.status, SolverStatus::Converged);
    ASSERT_LT(full.iterations, K);
    for (Index k = 0; k <= K; ++k) {
      CgParams pk = p;
      pk.max_iterations = k;
      const auto single = conjugate_gradient(op, g, pk);
      expect_same_solve(c.by_k.at(k), single, k);
      EXPECT_EQ(single.status,
                k < full.iterations ? SolverStatus::MaxIterations : SolverStatus::Converged);
    }
    // Indefinite: negative curvature at some iteration, reported for every k from there on.
    Vector<double> spectrum = geometric_spectrum(n, 1.0, 3.0);
    spectrum(0) = -2.0;
    const Matrix<double> A = symmetric_with_spectrum<double>(spectrum, 14);
    const DenseOperator<double> indefinite(A);
    Collector<double> d;
    const auto nc = conjugate_gradient(indefinite, g, p, nullptr, d.at(all_up_to(K)));
    ASSERT_EQ(nc.status, SolverStatus::NegativeCurvature) << nc.message;
    for (Index k = 0; k <= K; ++k) {
      CgParams pk = p;
      pk.max_iterations = k;
      expect_same_solve(d.by_k.at(k), conjugate_gradient(indefinite, g, pk), k);
    }
  }
}

// ---- The hypergradient sweep -----------------------------------------------------------------

template <class S>
std::shared_ptr<const Dataset<S>> shared(Dataset<S> d) {
  return std::make_shared<const Dataset<S>>(std::move(d));
}

template <class S>
RegularizedProblem<SoftmaxRegression<S>> logreg_at_optimum(double log_decay) {
  SoftmaxRegression<S> model(5, 3);
  RegularizedProblem<SoftmaxRegression<S>> problem(
      model, WeightDecay<S>(DecayKind::PerWeight, model.num_params()),
      shared(testing::random_classification<S>(40, 4, 3, 1)),
      shared(testing::random_classification<S>(30, 4, 3, 101)));
  const Vector<S> lambda = Vector<S>::Constant(problem.num_params(), static_cast<S>(log_decay));
  Vector<S> w = Vector<S>::Zero(problem.num_params());
  NewtonParams newton;
  newton.gradient_tolerance = std::is_same_v<S, double> ? 1e-12 : 1e-5;
  EXPECT_TRUE(newton_solve(problem, lambda, w, newton).converged);
  return problem;
}

MethodSpec spec(Method m, Curvature c = Curvature::Hessian, double alpha = 0) {
  MethodSpec s;
  s.method = m;
  s.curvature = c;
  s.neumann.alpha = alpha;
  return s;
}

/// Every k of the sweep against hypergradient() with steps = k.
template <class P>
void expect_sweep_matches_single(P& problem, MethodSpec s, const std::vector<Index>& ks,
                                 double tol, const Vector<typename P::Scalar>* start = nullptr) {
  SCOPED_TRACE(s.name() + (s.cg.reorthogonalize ? "" : " (plain)"));
  const auto sweep = generic::hypergradient_sweep(problem, s, ks, start);
  ASSERT_EQ(sweep.size(), ks.size());
  for (std::size_t j = 0; j < ks.size(); ++j) {
    s.steps = ks[j];
    const auto single = generic::hypergradient(problem, s, start);
    const auto& r = sweep[j];
    EXPECT_EQ(r.status, single.status) << "k = " << ks[j] << ": " << r.message;
    EXPECT_EQ(r.iterations, single.iterations) << "k = " << ks[j];
    EXPECT_EQ(r.hvps, single.hvps) << "k = " << ks[j];
    EXPECT_EQ(r.alpha, single.alpha) << "k = " << ks[j];
    EXPECT_EQ(r.message, single.message) << "k = " << ks[j];
    ASSERT_EQ(r.hypergradient.size(), single.hypergradient.size());
    if (!single.hypergradient.allFinite()) {  // reported as numerical-issue by both
      EXPECT_FALSE(r.hypergradient.allFinite()) << "k = " << ks[j];
    } else if (single.hypergradient.norm() == 0) {
      EXPECT_EQ(r.hypergradient.norm(), 0) << "k = " << ks[j];
    } else {
      EXPECT_LE(rel_error(r.hypergradient, single.hypergradient), tol) << "k = " << ks[j];
    }
    if (single.direct.allFinite()) {
      EXPECT_LE(rel_error(r.direct, single.direct), tol) << "k = " << ks[j];
    }
  }
}

TYPED_TEST(SweepTyped, EveryMethodMatchesItsSingleKHypergradient) {
  using S = TypeParam;
  const double tol = std::is_same_v<S, double> ? 1e-12 : 1e-5;
  auto problem = logreg_at_optimum<S>(std::log(1e-2));
  const Vector<S> w_star = problem.w();
  const std::vector<Index> ks = all_up_to(20);
  MethodSpec cg = spec(Method::Cg);
  cg.cg.tolerance = 0;  // cg(k) is k iterations
  for (bool reorthogonalize : {true, false}) {
    cg.cg.reorthogonalize = reorthogonalize;
    expect_sweep_matches_single(problem, cg, ks, tol);
  }
  expect_sweep_matches_single(problem, spec(Method::Neumann), ks, tol);        // automatic α
  expect_sweep_matches_single(problem, spec(Method::Neumann, Curvature::Hessian, 0.3), ks, tol);
  expect_sweep_matches_single(problem, spec(Method::Unrolled), ks, tol);       // automatic α
  expect_sweep_matches_single(problem, spec(Method::Unrolled, Curvature::Hessian, 0.3), ks, tol);
  MethodSpec gn = cg;
  gn.curvature = Curvature::GaussNewton;
  gn.cg.reorthogonalize = true;
  expect_sweep_matches_single(problem, gn, ks, tol);
  expect_sweep_matches_single(problem, spec(Method::Neumann, Curvature::GaussNewton), ks, tol);
  expect_sweep_matches_single(problem, spec(Method::Neumann, Curvature::OuterProduct), ks, tol);
  expect_sweep_matches_single(problem, spec(Method::Neumann, Curvature::Fisher), ks, tol);
  for (Method m : {Method::Exact, Method::Identity, Method::Zero, Method::Kfac})
    expect_sweep_matches_single(problem, spec(m), {0, 5}, tol);
  // The sweep leaves the problem where it was.
  EXPECT_EQ(problem.w(), w_star);
}

TEST(Sweep, UnrolledAwayFromTheOptimumAndItsDivergence) {
  // From a non-stationary start the trajectory moves and each unrolled(i) has its own reverse
  // pass: no Neumann identity to lean on. The sweep must still equal each single run.
  auto problem = logreg_at_optimum<double>(std::log(1e-2));
  const Vector<double> start = problem.w() + testing::random_vector<double>(problem.num_params(), 21);
  const MethodSpec s = spec(Method::Unrolled, Curvature::Hessian, 0.5);
  expect_sweep_matches_single(problem, s, {30, 0, 7, 7, 1, 12}, 1e-12, &start);
  // Far too large a step (α e^λ = 10³ on the penalty's curvature alone): every pass multiplies
  // its adjoint by about −10³ per step, so long unrolls overflow; reported per i, as alone.
  const MethodSpec huge = spec(Method::Unrolled, Curvature::Hessian, 1e5);
  const std::vector<Index> ks = {0, 1, 2, 5, 50, 150};
  expect_sweep_matches_single(problem, huge, ks, 1e-12, &start);
  const auto r = generic::hypergradient_sweep(problem, huge, ks, &start);
  // k = 0 takes no step (max-iterations, not converged: issue 14); k = 1 is one finite step.
  EXPECT_EQ(r.front().status, SolverStatus::MaxIterations) << r.front().message;
  EXPECT_EQ(r[1].status, SolverStatus::Converged) << r[1].message;
  EXPECT_TRUE(r.back().status == SolverStatus::Diverged ||
              r.back().status == SolverStatus::NumericalIssue)
      << to_string(r.back().status) << ": " << r.back().message;
}

TEST(Sweep, MlpAtALocalMinimum) {
  Mlp<double> model({3, 4, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  RegularizedProblem<Mlp<double>> problem(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      shared(testing::random_classification<double>(40, 3, 3, 7, false)),
      shared(testing::random_classification<double>(30, 3, 3, 8, false)));
  const Vector<double> lambda = Vector<double>::Constant(problem.num_params(), std::log(3e-2));
  Vector<double> w = model.initial_weights(5);
  NewtonParams newton;
  newton.gradient_tolerance = 1e-12;
  ASSERT_TRUE(newton_solve(problem, lambda, w, newton).converged);
  const std::vector<Index> ks = all_up_to(15);
  MethodSpec cg = spec(Method::Cg);
  cg.cg.tolerance = 0;
  expect_sweep_matches_single(problem, cg, ks, 1e-12);
  cg.curvature = Curvature::GaussNewton;
  expect_sweep_matches_single(problem, cg, ks, 1e-12);
  expect_sweep_matches_single(problem, spec(Method::Neumann, Curvature::GaussNewton), ks, 1e-12);
  expect_sweep_matches_single(problem, spec(Method::Unrolled), ks, 1e-12);
}

TEST(Sweep, RejectsMisuse) {
  auto problem = logreg_at_optimum<double>(std::log(1e-2));
  EXPECT_THROW(generic::hypergradient_sweep(problem, spec(Method::Cg), {}), std::invalid_argument);
  EXPECT_THROW(generic::hypergradient_sweep(problem, spec(Method::Cg), {3, -1}),
               std::invalid_argument);
  MethodSpec bad = spec(Method::Cg, Curvature::Fisher);
  EXPECT_THROW(generic::hypergradient_sweep(problem, bad, {1}), std::invalid_argument);
}

}  // namespace
}  // namespace ift
