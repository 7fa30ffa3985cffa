// The inner solvers (newton_solve, newton_cg_solve, lbfgs_solve) against the mathematics: each
// reaches ||∇_w L_T|| < tolerance, finds the same w* as dense Newton (for a μ-strongly convex L_T,
// ||w − w*|| ≤ ||∇L_T(w)|| / μ), leaves the problem at (λ, w), counts its work, and reports caps,
// non-finite values and bad parameters honestly.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <memory>
#include <random>
#include <vector>

#include "fixtures.hpp"
#include "ift/inner.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace ift {
namespace {

template <class S>
std::shared_ptr<const Dataset<S>> shared(Dataset<S> d) {
  return std::make_shared<const Dataset<S>>(std::move(d));
}

/// Softmax regression, 4 classes on 12 features + bias (D = 52), per-weight decay.
template <class S>
RegularizedProblem<SoftmaxRegression<S>> logreg_problem() {
  SoftmaxRegression<S> model(13, 4);
  return RegularizedProblem<SoftmaxRegression<S>>(
      model, WeightDecay<S>(DecayKind::PerWeight, model.num_params()),
      shared(testing::random_classification<S>(200, 12, 4, 11)),
      shared(testing::random_classification<S>(50, 12, 4, 12)));
}

/// λ_i = log 0.05 + U(−½, ½): a different decay per weight.
template <class S>
Vector<S> spread_lambda(Index n) {
  std::mt19937_64 gen(3);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  Vector<S> lambda(n);
  for (Index i = 0; i < n; ++i) lambda(i) = static_cast<S>(std::log(0.05) + u(gen));
  return lambda;
}

/// L_T = mean cross-entropy + ½ Σ exp(λ_i) w_i²: the data term is convex, so L_T is μ-strongly
/// convex with μ = min_i exp(λ_i).
template <class S>
double strong_convexity(const Vector<S>& lambda) {
  return std::exp(static_cast<double>(lambda.minCoeff()));
}

template <class S>
double relative_difference(const Vector<S>& a, const Vector<S>& b) {
  return static_cast<double>((a - b).norm() / b.norm());
}

/// The returned result describes the problem's current point, which is (λ, w).
template <class S>
void expect_at_point(BilevelProblem<S>& problem, const Vector<S>& lambda, const Vector<S>& w,
                     const InnerResult& r) {
  EXPECT_EQ(problem.w(), w);
  EXPECT_EQ(problem.lambda(), lambda);
  EXPECT_EQ(static_cast<double>(problem.train_gradient().norm()), r.gradient_norm);
  EXPECT_EQ(static_cast<double>(problem.train_loss()), r.loss);
}

struct Reference {
  Vector<double> lambda, w;
  InnerResult result;
};

/// For a μ-strongly convex L_T, ||w − w*|| ≤ ||∇L_T(w)|| / μ. Two points whose gradients are
/// below ½·1e-12·μ·||w*|| are therefore within 1e-12·||w*|| of each other: the gradient
/// tolerance that makes "the same w* to 1e-12 relative" a theorem rather than luck (with the
/// default 1e-10 only the bound holds: a Newton step that lands at 1e-12 is as valid as one
/// that lands at 1e-16).
double certified_tolerance(double mu, double w_norm) { return 0.5e-12 * mu * w_norm; }

/// w* by dense Newton (the yardstick), to the certified tolerance (warm-started from the
/// default-tolerance solution, whose norm sets the tolerance).
const Reference& newton_reference() {
  static const Reference ref = [] {
    auto problem = logreg_problem<double>();
    Reference r;
    r.lambda = spread_lambda<double>(problem.num_params());
    r.w = Vector<double>::Zero(problem.num_params());
    r.result = newton_solve(problem, r.lambda, r.w);
    NewtonParams p;
    p.gradient_tolerance = certified_tolerance(strong_convexity(r.lambda), r.w.norm());
    if (r.result.converged) r.result = newton_solve(problem, r.lambda, r.w, p);
    return r;
  }();
  return ref;
}

TEST(Inner, NewtonReference) {
  const Reference& ref = newton_reference();
  ASSERT_TRUE(ref.result.converged) << ref.result.message;
  EXPECT_LT(ref.result.gradient_norm,
            certified_tolerance(strong_convexity(ref.lambda), ref.w.norm()));
  EXPECT_EQ(ref.result.hvps, 0);
  EXPECT_GE(ref.result.gradients, ref.result.iterations + 1);
}

TEST(Inner, NewtonCgMatchesDenseNewton) {
  const Reference& ref = newton_reference();
  auto problem = logreg_problem<double>();
  const double mu = strong_convexity(ref.lambda);
  NewtonCgParams params;
  params.gradient_tolerance = certified_tolerance(mu, ref.w.norm());
  Vector<double> w = Vector<double>::Zero(problem.num_params());
  std::vector<double> losses;
  const InnerResult r = newton_cg_solve(problem, ref.lambda, w, params,
                                        [&](Index, double loss, double) { losses.push_back(loss); });
  ASSERT_TRUE(r.converged) << r.message;
  EXPECT_LT(r.gradient_norm, params.gradient_tolerance);
  expect_at_point<double>(problem, ref.lambda, w, r);
  EXPECT_LE((w - ref.w).norm(), (r.gradient_norm + ref.result.gradient_norm) / mu);
  EXPECT_LE(relative_difference(w, ref.w), 1e-12);
  // Work counters: one gradient per iteration at least, CG's HVPs.
  EXPECT_GE(r.gradients, r.iterations + 1);
  EXPECT_GE(r.hvps, r.iterations);
  EXPECT_LE(r.hvps, r.iterations * (params.cg.max_iterations + 1));
  // A descent method: the loss never rises (beyond the rounding floor the line search allows).
  ASSERT_EQ(losses.size(), static_cast<std::size_t>(r.iterations + 1));
  for (std::size_t i = 1; i < losses.size(); ++i)
    EXPECT_LE(losses[i], losses[i - 1] + 64 * std::numeric_limits<double>::epsilon() *
                                             std::max(1.0, std::abs(losses[i - 1])));
}

TEST(Inner, NewtonCgDefaultTolerance) {
  const Reference& ref = newton_reference();
  auto problem = logreg_problem<double>();
  Vector<double> w = Vector<double>::Zero(problem.num_params());
  const InnerResult r = newton_cg_solve(problem, ref.lambda, w);
  ASSERT_TRUE(r.converged) << r.message;
  EXPECT_LT(r.gradient_norm, NewtonCgParams{}.gradient_tolerance);
  expect_at_point<double>(problem, ref.lambda, w, r);
  EXPECT_LE((w - ref.w).norm(),
            (r.gradient_norm + ref.result.gradient_norm) / strong_convexity(ref.lambda));
}

TEST(Inner, NewtonCgForcingSavesProducts) {
  // Eisenstat–Walker forcing and accurate directions (CG to cg.tolerance every step) reach the
  // same w*; the forcing term costs no more HVPs (it skips accuracy early steps cannot use).
  const Reference& ref = newton_reference();
  auto problem = logreg_problem<double>();
  const double mu = strong_convexity(ref.lambda);
  NewtonCgParams params;
  params.gradient_tolerance = certified_tolerance(mu, ref.w.norm());
  Vector<double> w_forcing = Vector<double>::Zero(problem.num_params()), w_exact = w_forcing;
  const InnerResult forcing = newton_cg_solve(problem, ref.lambda, w_forcing, params);
  params.forcing = false;
  const InnerResult exact = newton_cg_solve(problem, ref.lambda, w_exact, params);
  ASSERT_TRUE(forcing.converged && exact.converged) << forcing.message << " / " << exact.message;
  EXPECT_LE(forcing.hvps, exact.hvps);
  EXPECT_LE(relative_difference(w_exact, ref.w), 1e-12);
  EXPECT_LE(relative_difference(w_forcing, w_exact), 1e-12);
}

TEST(Inner, NewtonCgThroughTheBaseClass) {
  // The generic template accepts the abstract BilevelProblem as well as the concrete problem,
  // with the same arithmetic.
  const Reference& ref = newton_reference();
  auto concrete = logreg_problem<double>();
  Vector<double> w_concrete = Vector<double>::Zero(concrete.num_params()), w_base = w_concrete;
  const InnerResult a = newton_cg_solve(concrete, ref.lambda, w_concrete);
  BilevelProblem<double>& base = concrete;
  const InnerResult b = newton_cg_solve(base, ref.lambda, w_base);
  ASSERT_TRUE(a.converged && b.converged) << a.message << " / " << b.message;
  EXPECT_EQ(w_concrete, w_base);
  EXPECT_EQ(a.hvps, b.hvps);
}

TEST(Inner, LbfgsMatchesDenseNewton) {
  const Reference& ref = newton_reference();
  auto problem = logreg_problem<double>();
  const double mu = strong_convexity(ref.lambda);
  LbfgsParams params;
  params.gradient_tolerance = certified_tolerance(mu, ref.w.norm());
  Vector<double> w = Vector<double>::Zero(problem.num_params());
  Index calls = 0;
  const InnerResult r =
      lbfgs_solve(problem, ref.lambda, w, params, [&](Index, double, double) { ++calls; });
  ASSERT_TRUE(r.converged) << r.message;
  EXPECT_LT(r.gradient_norm, params.gradient_tolerance);
  expect_at_point<double>(problem, ref.lambda, w, r);
  EXPECT_LE((w - ref.w).norm(), (r.gradient_norm + ref.result.gradient_norm) / mu);
  EXPECT_LE(relative_difference(w, ref.w), 1e-12);
  EXPECT_EQ(r.hvps, 0);
  EXPECT_GE(r.gradients, r.iterations + 1);
  EXPECT_EQ(calls, r.iterations + 1);  // the start and every iteration
}

TEST(Inner, LbfgsDefaultTolerance) {
  // With the default tolerance the strong-convexity bound is what L-BFGS guarantees.
  const Reference& ref = newton_reference();
  auto problem = logreg_problem<double>();
  Vector<double> w = Vector<double>::Zero(problem.num_params());
  const InnerResult r = lbfgs_solve(problem, ref.lambda, w);
  ASSERT_TRUE(r.converged) << r.message;
  EXPECT_LT(r.gradient_norm, LbfgsParams{}.gradient_tolerance);
  EXPECT_LE((w - ref.w).norm(),
            (r.gradient_norm + ref.result.gradient_norm) / strong_convexity(ref.lambda));
}

TEST(Inner, FloatSolvers) {
  // In float each solver reaches a float-sized tolerance, and its w is as close to the double
  // w* as its gradient — evaluated in double — allows.
  const Reference& ref = newton_reference();
  auto problem_f = logreg_problem<float>();
  auto problem_d = logreg_problem<double>();
  const Vector<float> lambda = ref.lambda.cast<float>();
  const double mu = strong_convexity(ref.lambda);
  const double tol = 1e-4;
  for (const char* solver : {"newton", "newton-cg", "lbfgs"}) {
    SCOPED_TRACE(solver);
    Vector<float> w = Vector<float>::Zero(problem_f.num_params());
    InnerResult r;
    if (std::string(solver) == "newton") {
      NewtonParams p;
      p.gradient_tolerance = tol;
      r = newton_solve(problem_f, lambda, w, p);
    } else if (std::string(solver) == "newton-cg") {
      NewtonCgParams p;
      p.gradient_tolerance = tol;
      p.cg.tolerance = 1e-5;  // float carries ~7 digits
      r = newton_cg_solve(problem_f, lambda, w, p);
    } else {
      LbfgsParams p;
      p.gradient_tolerance = tol;
      r = lbfgs_solve(problem_f, lambda, w, p);
    }
    ASSERT_TRUE(r.converged) << r.message;
    EXPECT_LT(r.gradient_norm, tol);
    expect_at_point<float>(problem_f, lambda, w, r);
    const Vector<double> wd = w.cast<double>();
    problem_d.set_point(ref.lambda, wd);
    const double g = problem_d.train_gradient().norm();
    EXPECT_LT(g, 2 * tol);  // float rounding of the gradient is far below tol
    EXPECT_LE((wd - ref.w).norm(), (g + ref.result.gradient_norm) / mu * (1 + 1e-6));
  }
}

RegularizedProblem<Mlp<double>> mlp_problem() {
  Mlp<double> model({4, 6, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  return RegularizedProblem<Mlp<double>>(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      shared(testing::random_classification<double>(60, 4, 3, 21, false)),
      shared(testing::random_classification<double>(30, 4, 3, 22, false)));
}

double smallest_hessian_eigenvalue(capability::DenseHessian<double>& problem) {
  Matrix<double> H;
  problem.hessian(H);
  return Eigen::SelfAdjointEigenSolver<Matrix<double>>(H, Eigen::EigenvaluesOnly)
      .eigenvalues()
      .minCoeff();
}

TEST(Inner, NewtonCgOnMlpNearMinimum) {
  auto problem = mlp_problem();
  const Index D = problem.num_params();
  const Vector<double> lambda = Vector<double>::Constant(D, std::log(1e-2));
  Vector<double> w_star = problem.model().initial_weights(5);
  InnerResult ref = newton_solve<double>(problem, lambda, w_star);
  ASSERT_TRUE(ref.converged) << ref.message;
  // A strict local minimum: H positive definite there, with H ⪰ λ_min/2 in a neighbourhood, where
  // ||w − w*|| ≤ 2||g|| / λ_min; the certified tolerance (see above) with μ = λ_min / 2.
  const double lambda_min = smallest_hessian_eigenvalue(problem);
  ASSERT_GT(lambda_min, 0);
  NewtonParams np;
  np.gradient_tolerance = certified_tolerance(lambda_min / 2, w_star.norm());
  ref = newton_solve<double>(problem, lambda, w_star, np);
  ASSERT_TRUE(ref.converged) << ref.message;
  // From a perturbation of w*, Newton-CG returns to the same minimum.
  Vector<double> w = w_star + 1e-2 * testing::random_vector<double>(D, 9);
  NewtonCgParams params;
  params.gradient_tolerance = np.gradient_tolerance;
  const InnerResult r = newton_cg_solve(problem, lambda, w, params);
  ASSERT_TRUE(r.converged) << r.message;
  EXPECT_LT(r.gradient_norm, params.gradient_tolerance);
  expect_at_point<double>(problem, lambda, w, r);
  EXPECT_LE(relative_difference(w, w_star), 1e-12);
  EXPECT_GT(smallest_hessian_eigenvalue(problem), 0);
}

TEST(Inner, NewtonCgOnMlpFromIndefiniteStart) {
  // From Glorot weights the MLP's Hessian is indefinite: CG meets negative curvature, the
  // Levenberg shift makes each direction one of descent, and a stationary point is reached.
  auto problem = mlp_problem();
  const Index D = problem.num_params();
  const Vector<double> lambda = Vector<double>::Constant(D, std::log(1e-2));
  Vector<double> w = problem.model().initial_weights(5);
  problem.set_point(lambda, w);
  EXPECT_LT(smallest_hessian_eigenvalue(problem), 0) << "the start should be non-convex";
  std::vector<double> losses;
  const InnerResult r = newton_cg_solve(problem, lambda, w, {},
                                        [&](Index, double loss, double) { losses.push_back(loss); });
  ASSERT_TRUE(r.converged) << r.message;
  EXPECT_LT(r.gradient_norm, 1e-10);
  EXPECT_NE(r.message.find("Levenberg shifts"), std::string::npos) << r.message;
  for (std::size_t i = 1; i < losses.size(); ++i)
    EXPECT_LE(losses[i], losses[i - 1] + 64 * std::numeric_limits<double>::epsilon() *
                                             std::max(1.0, std::abs(losses[i - 1])));
}

/// L(w) = ½ wᵀAw − bᵀw as a user-defined generic problem (no BilevelProblem): newton_cg_solve
/// needs only the generic::HypergradientProblem operations and train_loss(). `broken_hvp` makes
/// every Hessian-vector product NaN.
struct Quadratic {
  Matrix<double> A;
  Vector<double> b;
  bool broken_hvp = false;
  Vector<double> lambda_, w_, g_;
  void set_point(const Vector<double>& lambda, const Vector<double>& w) {
    lambda_ = lambda;
    w_ = w;
    g_ = A * w - b;
  }
  const Vector<double>& lambda() const { return lambda_; }
  const Vector<double>& w() const { return w_; }
  const Vector<double>& train_gradient() const { return g_; }
  double train_loss() const { return 0.5 * w_.dot(A * w_) - b.dot(w_); }
  const Vector<double>& val_gradient() const { return g_; }
  void val_direct_gradient(Vector<double>& out) const { out.setZero(lambda_.size()); }
  void hvp(const Vector<double>& v, Vector<double>& out) const {
    out = A * v;
    if (broken_hvp) out.setConstant(std::numeric_limits<double>::quiet_NaN());
  }
  void mixed_product(const Vector<double>&, Vector<double>& out) const {
    out.setZero(lambda_.size());
  }
  Index num_params() const { return A.rows(); }
};
static_assert(generic::HypergradientProblem<Quadratic>);

/// A = Q diag(eigenvalues) Qᵀ with a seeded random orthogonal Q.
Quadratic quadratic(const Vector<double>& eigenvalues) {
  const Index n = eigenvalues.size();
  Matrix<double> M(n, n);
  for (Index j = 0; j < n; ++j) M.col(j) = testing::random_vector<double>(n, 40 + j);
  const Matrix<double> Q = Eigen::HouseholderQR<Matrix<double>>(M).householderQ();
  Quadratic q;
  q.A = Q * eigenvalues.asDiagonal() * Q.transpose();
  q.b = testing::random_vector<double>(n, 99);
  return q;
}

TEST(Inner, NewtonCgOnAGenericQuadratic) {
  // One Newton step with an exact CG solve: w* = A⁻¹b.
  Quadratic q = quadratic(Vector<double>::LinSpaced(30, 0.5, 20.0));
  const Vector<double> lambda = Vector<double>::Zero(1);
  Vector<double> w = Vector<double>::Zero(30);
  const InnerResult r = newton_cg_solve(q, lambda, w);
  ASSERT_TRUE(r.converged) << r.message;
  const Vector<double> w_star = q.A.llt().solve(q.b);
  EXPECT_LE(relative_difference(w, w_star), 1e-12);
  EXPECT_LE(r.hvps, 30 * r.iterations);  // CG on a 30 × 30 operator: at most 30 per solve
}

TEST(Inner, NewtonCgFallsBackToSteepestDescent) {
  // Every HVP is NaN: CG yields no direction, steepest descent −g (t = 1 since gᵀHg is not
  // finite) still converges on A with spectrum in [1, 1.5] (contraction 1/2 per step), and the
  // message says how often the fallback was taken.
  Quadratic q = quadratic(Vector<double>::LinSpaced(10, 1.0, 1.5));
  q.broken_hvp = true;
  const Vector<double> lambda = Vector<double>::Zero(1);
  Vector<double> w = Vector<double>::Zero(10);
  const InnerResult r = newton_cg_solve(q, lambda, w);
  ASSERT_TRUE(r.converged) << r.message;
  EXPECT_TRUE(w.allFinite());
  EXPECT_NE(r.message.find(std::to_string(r.iterations) + " steepest-descent fallbacks"),
            std::string::npos)
      << r.message;
  EXPECT_LE((w - q.A.llt().solve(q.b)).norm(), r.gradient_norm);  // μ = 1
}

TEST(Inner, NewtonCgOnAnUnboundedQuadratic) {
  // An indefinite A: L_T has no minimum. Newton-CG must stop at its cap, finite, and say so.
  Vector<double> eigenvalues = Vector<double>::LinSpaced(12, -1.0, 4.0);
  Quadratic q = quadratic(eigenvalues);
  const Vector<double> lambda = Vector<double>::Zero(1);
  Vector<double> w = Vector<double>::Zero(12);
  NewtonCgParams p;
  p.max_iterations = 20;
  const InnerResult r = newton_cg_solve(q, lambda, w, p);
  EXPECT_FALSE(r.converged);
  EXPECT_TRUE(w.allFinite());
  EXPECT_TRUE(std::isfinite(r.loss) && std::isfinite(r.gradient_norm));
  EXPECT_LT(r.loss, 0);  // it descended (L(0) = 0)
  EXPECT_NE(r.message.find("stopped after 20"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("Levenberg"), std::string::npos) << r.message;
}

TEST(Inner, IterationCapIsNotConvergence) {
  const Reference& ref = newton_reference();
  auto problem = logreg_problem<double>();
  for (const char* solver : {"newton", "newton-cg", "lbfgs"}) {
    SCOPED_TRACE(solver);
    Vector<double> w = Vector<double>::Zero(problem.num_params());
    InnerResult r;
    if (std::string(solver) == "newton") {
      NewtonParams p;
      p.max_iterations = 2;
      r = newton_solve<double>(problem, ref.lambda, w, p);
    } else if (std::string(solver) == "newton-cg") {
      NewtonCgParams p;
      p.max_iterations = 2;
      r = newton_cg_solve(problem, ref.lambda, w, p);
    } else {
      LbfgsParams p;
      p.max_iterations = 2;
      r = lbfgs_solve<double>(problem, ref.lambda, w, p);
    }
    EXPECT_FALSE(r.converged);
    EXPECT_EQ(r.iterations, 2);
    EXPECT_GE(r.gradient_norm, 1e-10);
    EXPECT_NE(r.message.find("stopped after 2"), std::string::npos) << r.message;
    expect_at_point<double>(problem, ref.lambda, w, r);
  }
}

TEST(Inner, NonFiniteIsReportedNotReturned) {
  auto problem = logreg_problem<double>();
  Vector<double> lambda = spread_lambda<double>(problem.num_params());
  lambda(3) = std::numeric_limits<double>::quiet_NaN();
  const Vector<double> w0 = Vector<double>::Constant(problem.num_params(), 0.1);
  for (const char* solver : {"newton-cg", "lbfgs"}) {
    SCOPED_TRACE(solver);
    Vector<double> w = w0;
    const InnerResult r = std::string(solver) == "lbfgs"
                              ? lbfgs_solve<double>(problem, lambda, w)
                              : newton_cg_solve(problem, lambda, w);
    EXPECT_FALSE(r.converged);
    EXPECT_NE(r.message.find("not finite"), std::string::npos) << r.message;
    EXPECT_EQ(w, w0);  // the starting point is kept
    EXPECT_EQ(problem.w(), w0);
  }
}

template <class Params>
void expect_rejected(Params p, const std::string& field) {
  try {
    p.check();
    ADD_FAILURE() << field << " was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(Inner, BadParametersNameTheField) {
  NewtonCgParams cg;
  EXPECT_NO_THROW(cg.check());
  auto c = cg;
  c.gradient_tolerance = 0;
  expect_rejected(c, "gradient_tolerance");
  c = cg;
  c.gradient_tolerance = std::numeric_limits<double>::quiet_NaN();
  expect_rejected(c, "gradient_tolerance");
  c = cg;
  c.max_iterations = 0;
  expect_rejected(c, "NewtonCgParams::max_iterations");
  c = cg;
  c.cg.max_iterations = 0;
  expect_rejected(c, "cg.max_iterations");
  c = cg;
  c.cg.tolerance = -1;
  expect_rejected(c, "cg.tolerance");
  c = cg;
  c.forcing_max = 1;
  expect_rejected(c, "forcing_max");
  c = cg;
  c.armijo = 1;
  expect_rejected(c, "armijo");
  c = cg;
  c.backtrack = 0;
  expect_rejected(c, "backtrack");
  c = cg;
  c.max_backtracks = 0;
  expect_rejected(c, "max_backtracks");

  LbfgsParams lb;
  EXPECT_NO_THROW(lb.check());
  auto l = lb;
  l.gradient_tolerance = -1;
  expect_rejected(l, "LbfgsParams::gradient_tolerance");
  l = lb;
  l.max_iterations = 0;
  expect_rejected(l, "LbfgsParams::max_iterations");
  l = lb;
  l.memory = 0;
  expect_rejected(l, "memory");
  l = lb;
  l.armijo = 0.5;
  expect_rejected(l, "armijo");
  l = lb;
  l.wolfe = l.armijo;
  expect_rejected(l, "wolfe");
  l = lb;
  l.max_linesearch = 0;
  expect_rejected(l, "max_linesearch");

  // The solvers check before touching anything.
  auto problem = logreg_problem<double>();
  const Vector<double> lambda = spread_lambda<double>(problem.num_params());
  Vector<double> w = Vector<double>::Zero(problem.num_params());
  c = cg;
  c.armijo = 0;
  EXPECT_THROW(newton_cg_solve(problem, lambda, w, c), std::invalid_argument);
  EXPECT_THROW(lbfgs_solve<double>(problem, lambda, w, l), std::invalid_argument);
  Vector<double> wrong = Vector<double>::Zero(3);
  EXPECT_THROW(newton_cg_solve(problem, lambda, wrong), std::invalid_argument);
  EXPECT_THROW(lbfgs_solve<double>(problem, lambda, wrong), std::invalid_argument);
}

}  // namespace
}  // namespace ift
