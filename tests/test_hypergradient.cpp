// The hypergradient engine against the mathematics: finite differences of λ ↦ L_V(w*(λ)), the
// unification theorem, convergence and divergence of each approximation, and every status.
#include <gtest/gtest.h>

#include <memory>

#include "fixtures.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/models/logistic_regression.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace ift {
namespace {

using testing::rel_error;

template <class S>
std::shared_ptr<const Dataset<S>> shared(Dataset<S> d) {
  return std::make_shared<const Dataset<S>>(std::move(d));
}

template <class S>
RegularizedProblem<SoftmaxRegression<S>> logreg_problem(DecayKind kind, Index n_train = 40,
                                                       std::uint64_t seed = 1) {
  SoftmaxRegression<S> model(5, 3);
  return RegularizedProblem<SoftmaxRegression<S>>(
      model, WeightDecay<S>(kind, model.num_params()),
      shared(testing::random_classification<S>(n_train, 4, 3, seed)),
      shared(testing::random_classification<S>(30, 4, 3, seed + 100)));
}

RegularizedProblem<Mlp<double>> mlp_problem() {
  Mlp<double> model({3, 4, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  return RegularizedProblem<Mlp<double>>(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      shared(testing::random_classification<double>(40, 3, 3, 7, false)),
      shared(testing::random_classification<double>(30, 3, 3, 8, false)));
}

/// Puts the problem at (λ, w*(λ)) by Newton to ||∇L_T|| < 1e-12 and returns w*.
template <class S>
Vector<S> solve_inner(BilevelProblem<S>& problem, const Vector<S>& lambda,
                      Vector<S> w = Vector<S>()) {
  if (w.size() == 0) w = Vector<S>::Zero(problem.num_params());
  NewtonParams p;
  p.gradient_tolerance = std::is_same_v<S, double> ? 1e-12 : 1e-5;
  const InnerResult r = newton_solve(problem, lambda, w, p);
  EXPECT_TRUE(r.converged) << r.message;
  return w;
}

template <class S>
double outer_objective(BilevelProblem<S>& problem, const Vector<S>& lambda, const Vector<S>& w0) {
  solve_inner(problem, lambda, w0);
  return static_cast<double>(problem.val_loss());
}

MethodSpec spec(Method m, Index steps = 20, double alpha = 0) {
  MethodSpec s;
  s.method = m;
  s.steps = steps;
  s.neumann.alpha = alpha;
  return s;
}

// ---- The IFT hypergradient equals the derivative of λ ↦ L_V(w*(λ)) ---------------------------

void expect_matches_finite_differences(BilevelProblem<double>& problem, Vector<double> lambda,
                                       const Vector<double>& w0, const std::vector<Index>& coords) {
  const Vector<double> w_star = solve_inner(problem, lambda, w0);
  const auto result = hypergradient(problem, spec(Method::Exact));
  ASSERT_EQ(result.status, SolverStatus::Converged) << result.message;
  ASSERT_LT(*result.relative_residual, 1e-10);
  const double h = 1e-4;
  for (Index j : coords) {
    Vector<double> lp = lambda, lm = lambda;
    lp(j) += h;
    lm(j) -= h;
    const double fd =
        (outer_objective(problem, lp, w_star) - outer_objective(problem, lm, w_star)) / (2 * h);
    EXPECT_NEAR(result.hypergradient(j), fd, 1e-6 * std::max(1e-3, std::abs(fd)))
        << "coordinate " << j;
  }
}

TEST(Hypergradient, ExactMatchesFiniteDifferencesGlobalDecayLogReg) {
  auto problem = logreg_problem<double>(DecayKind::Global);
  expect_matches_finite_differences(problem, Vector<double>::Constant(1, std::log(1e-2)),
                                    Vector<double>::Zero(15), {0});
}

TEST(Hypergradient, ExactMatchesFiniteDifferencesPerWeightDecayLogReg) {
  auto problem = logreg_problem<double>(DecayKind::PerWeight);
  const Vector<double> lambda = testing::random_vector<double>(15, 3, 0.5).array() + std::log(1e-2);
  expect_matches_finite_differences(problem, lambda, Vector<double>::Zero(15), {0, 4, 7, 14});
}

TEST(Hypergradient, ExactMatchesFiniteDifferencesPerWeightDecayMlpAtLocalMinimum) {
  auto problem = mlp_problem();
  const Vector<double> lambda = Vector<double>::Constant(problem.num_params(), std::log(3e-2));
  const Vector<double> w0 = problem.model().initial_weights(5);
  expect_matches_finite_differences(problem, lambda, w0, {0, 5, 13, 20, 30});
}

TEST(Hypergradient, MixedProductMatchesFiniteDifferences) {
  for (DecayKind kind : {DecayKind::Global, DecayKind::PerWeight}) {
    auto problem = logreg_problem<double>(kind);
    const Index H = problem.num_hyper();
    const Vector<double> lambda = testing::random_vector<double>(H, 4, 0.3);
    const Vector<double> w = testing::random_vector<double>(15, 5);
    const Vector<double> v = testing::random_vector<double>(15, 6);
    problem.set_point(lambda, w);
    Vector<double> mixed;
    problem.mixed_product(v, mixed);
    const double h = 1e-6;
    for (Index j = 0; j < H; ++j) {
      Vector<double> lp = lambda, lm = lambda;
      lp(j) += h;
      lm(j) -= h;
      problem.set_point(lp, w);
      const double up = v.dot(problem.train_gradient());
      problem.set_point(lm, w);
      const double down = v.dot(problem.train_gradient());
      EXPECT_NEAR(mixed(j), (up - down) / (2 * h), 1e-7 * std::max(1.0, std::abs(mixed(j))));
    }
  }
}

// ---- Theorems and limits of the approximations -----------------------------------------------

template <class S>
class HypergradientTyped : public ::testing::Test {};
using Precisions = ::testing::Types<double, float>;
TYPED_TEST_SUITE(HypergradientTyped, Precisions);

TYPED_TEST(HypergradientTyped, UnrolledFromOptimumEqualsNeumannWithOneTermFewer) {
  // Lorraine et al. (2020): unrolled(i, α) started at w* equals neumann(i − 1, α).
  using S = TypeParam;
  auto problem = logreg_problem<S>(DecayKind::PerWeight);
  const Vector<S> lambda = Vector<S>::Constant(15, static_cast<S>(std::log(1e-2)));
  solve_inner(problem, lambda);
  const double alpha = 0.5;
  for (Index i : {1, 2, 5, 20}) {
    const auto unrolled = hypergradient(problem, spec(Method::Unrolled, i, alpha));
    const auto neumann = hypergradient(problem, spec(Method::Neumann, i - 1, alpha));
    EXPECT_EQ(unrolled.hvps, neumann.hvps + 1) << "i = " << i;
    const double tol = std::is_same_v<S, double> ? 1e-9 : 1e-3;
    EXPECT_LT(rel_error(unrolled.hypergradient, neumann.hypergradient), tol)
        << "i = " << i;
  }
}

// Issue 14: unrolled with k = 0 takes no step; its hypergradient is the direct term alone
// (zero for weight decay, whose L_V does not involve λ), and its status must not claim
// convergence. k = 1 differentiates one step exactly and is converged.
TYPED_TEST(HypergradientTyped, UnrolledWithZeroStepsIsNotConverged) {
  using S = TypeParam;
  auto problem = logreg_problem<S>(DecayKind::PerWeight);
  const Vector<S> lambda = Vector<S>::Constant(15, static_cast<S>(std::log(1e-2)));
  solve_inner(problem, lambda);
  const auto none = hypergradient(problem, spec(Method::Unrolled, 0, 0.5));
  EXPECT_EQ(none.status, SolverStatus::MaxIterations) << none.message;
  EXPECT_EQ(none.iterations, 0);
  EXPECT_EQ(none.hvps, 0);
  EXPECT_NE(none.message.find("0 gradient steps"), std::string::npos) << none.message;
  EXPECT_EQ(none.hypergradient, none.direct);
  EXPECT_EQ(none.hypergradient.norm(), S(0));
  const auto one = hypergradient(problem, spec(Method::Unrolled, 1, 0.5));
  EXPECT_EQ(one.status, SolverStatus::Converged) << one.message;
  EXPECT_GT(one.hypergradient.norm(), S(0));
}

TYPED_TEST(HypergradientTyped, CgAndNeumannConvergeToExact) {
  using S = TypeParam;
  auto problem = logreg_problem<S>(DecayKind::PerWeight);
  const Vector<S> lambda = Vector<S>::Constant(15, static_cast<S>(std::log(1e-1)));
  solve_inner(problem, lambda);
  const auto exact = hypergradient(problem, spec(Method::Exact));
  ASSERT_EQ(exact.status, SolverStatus::Converged);
  const double tol = std::is_same_v<S, double> ? 1e-8 : 1e-3;
  // CG reaches the solution within D = 15 iterations.
  const auto cg = hypergradient(problem, spec(Method::Cg, 15));
  EXPECT_LE(cg.iterations, 15);
  EXPECT_LT(rel_error(cg.hypergradient, exact.hypergradient), tol);
  // Neumann's error falls as k grows (α < 2/λ_max chosen by power iteration).
  double previous = 1e300;
  for (Index k : {0, 5, 50}) {
    const auto neumann = hypergradient(problem, spec(Method::Neumann, k));
    const double err = rel_error(neumann.hypergradient, exact.hypergradient);
    EXPECT_LT(err, previous) << "k = " << k;
    previous = err;
  }
  const auto long_series = hypergradient(problem, spec(Method::Neumann, 3000));
  EXPECT_LT(rel_error(long_series.hypergradient, exact.hypergradient), tol);
}

TEST(Hypergradient, NeumannReportsDivergenceWithSaferAlpha) {
  auto problem = logreg_problem<double>(DecayKind::PerWeight);
  const Vector<double> lambda = Vector<double>::Constant(15, std::log(1e-1));
  solve_inner(problem, lambda);
  Matrix<double> H;
  problem.hessian(H);
  const double lambda_max = Eigen::SelfAdjointEigenSolver<Matrix<double>>(H).eigenvalues().maxCoeff();
  const auto r = hypergradient(problem, spec(Method::Neumann, 200, 3.0 / lambda_max));
  EXPECT_EQ(r.status, SolverStatus::Diverged) << r.message;
  ASSERT_TRUE(r.suggested_alpha.has_value());
  EXPECT_NEAR(*r.suggested_alpha, 1.0 / lambda_max, 1e-3 / lambda_max);
  EXPECT_TRUE(r.hypergradient.allFinite());
}

TEST(Hypergradient, IdentityIsNeumannZeroUpToAlphaAndZeroIsTheDirectTerm) {
  auto problem = logreg_problem<double>(DecayKind::PerWeight);
  const Vector<double> lambda = Vector<double>::Constant(15, std::log(1e-2));
  solve_inner(problem, lambda);
  const double alpha = 0.37;
  const auto identity = hypergradient(problem, spec(Method::Identity));
  const auto neumann0 = hypergradient(problem, spec(Method::Neumann, 0, alpha));
  EXPECT_EQ(neumann0.hvps, 0);
  EXPECT_LT(rel_error(neumann0.hypergradient, (alpha * identity.hypergradient).eval()), 1e-14);
  const auto zero = hypergradient(problem, spec(Method::Zero));
  EXPECT_EQ(zero.hypergradient, zero.direct);
  EXPECT_GT(identity.hypergradient.norm(), 0);  // the comparison above is not between zeros
}

TEST(Hypergradient, GaussNewtonEqualsExactForLogisticRegression) {
  auto problem = logreg_problem<double>(DecayKind::PerWeight);
  const Vector<double> lambda = Vector<double>::Constant(15, std::log(1e-2));
  solve_inner(problem, lambda);
  const auto exact = hypergradient(problem, spec(Method::Exact));
  MethodSpec gn = spec(Method::Exact);
  gn.curvature = Curvature::GaussNewton;
  EXPECT_LT(rel_error(hypergradient(problem, gn).hypergradient, exact.hypergradient), 1e-12);
  gn.method = Method::Cg;
  gn.steps = 15;
  EXPECT_LT(rel_error(hypergradient(problem, gn).hypergradient, exact.hypergradient), 1e-8);
}

TEST(Hypergradient, KfacIsExactForOneTrainingExampleWithGlobalDecay) {
  // One example: the curvature is exactly G ⊗ A, and global decay adds exactly e^λ I.
  auto problem = logreg_problem<double>(DecayKind::Global, /*n_train=*/1);
  const Vector<double> lambda = Vector<double>::Constant(1, std::log(1e-1));
  solve_inner(problem, lambda);
  const auto exact = hypergradient(problem, spec(Method::Exact));
  const auto kfac = hypergradient(problem, spec(Method::Kfac));
  EXPECT_EQ(kfac.status, SolverStatus::Converged) << kfac.message;
  EXPECT_LT(rel_error(kfac.hypergradient, exact.hypergradient), 1e-10);
  // Explicit damping changes the answer: it is really applied.
  MethodSpec damped = spec(Method::Kfac);
  damped.damping = 1.0;
  EXPECT_GT(rel_error(hypergradient(problem, damped).hypergradient, exact.hypergradient), 1e-3);
  // With many examples KFAC is an approximation, close but not equal.
  auto big = logreg_problem<double>(DecayKind::Global, 60);
  solve_inner(big, lambda);
  const double err = rel_error(hypergradient(big, spec(Method::Kfac)).hypergradient,
                               hypergradient(big, spec(Method::Exact)).hypergradient);
  EXPECT_GT(err, 1e-8);
  EXPECT_LT(err, 0.5);
}

TEST(Hypergradient, OuterProductAndFisherRunWithNeumannOnly) {
  auto problem = logreg_problem<double>(DecayKind::PerWeight);
  const Vector<double> lambda = Vector<double>::Constant(15, std::log(1e-2));
  problem.set_point(lambda, testing::random_vector<double>(15, 9, 0.1));
  for (Curvature c : {Curvature::OuterProduct, Curvature::Fisher}) {
    MethodSpec s = spec(Method::Neumann, 2);
    s.curvature = c;
    const auto r = hypergradient(problem, s);
    EXPECT_TRUE(r.hypergradient.allFinite());
    EXPECT_NE(r.status, SolverStatus::Diverged);
    s.method = Method::Cg;
    EXPECT_THROW(s.check(), std::invalid_argument);
  }
  EXPECT_EQ(MethodSpec{}.name(), "exact");
  MethodSpec named = spec(Method::Neumann);
  named.curvature = Curvature::OuterProduct;
  EXPECT_EQ(named.name(), "outer-product/neumann");
}

// ---- Statuses reach the caller ---------------------------------------------------------------

TEST(Hypergradient, StatusesReportIndefiniteHessianAndTruncation) {
  auto problem = mlp_problem();
  // Far from a minimum, with tiny decay, the MLP's Hessian is indefinite.
  const Vector<double> lambda = Vector<double>::Constant(problem.num_params(), std::log(1e-6));
  problem.set_point(lambda, 3.0 * problem.model().initial_weights(9));
  const auto exact = hypergradient(problem, spec(Method::Exact));
  EXPECT_EQ(exact.status, SolverStatus::NotPositiveDefinite) << exact.message;
  const auto cg = hypergradient(problem, spec(Method::Cg, 60));
  EXPECT_TRUE(cg.status == SolverStatus::NegativeCurvature) << to_string(cg.status);
  auto convex = logreg_problem<double>(DecayKind::PerWeight);
  solve_inner<double>(convex, Vector<double>::Constant(15, std::log(1e-3)));
  EXPECT_EQ(hypergradient(convex, spec(Method::Cg, 2)).status, SolverStatus::MaxIterations);
  EXPECT_EQ(hypergradient(convex, spec(Method::Neumann, 2)).status, SolverStatus::MaxIterations);
}

TEST(Hypergradient, RejectsBadSpecs) {
  EXPECT_THROW(parse_method("newton"), std::invalid_argument);
  EXPECT_THROW(parse_curvature("fim"), std::invalid_argument);
  MethodSpec s;
  s.steps = -1;
  EXPECT_THROW(s.check(), std::invalid_argument);
  s = MethodSpec{};
  s.neumann.alpha = -1;
  EXPECT_THROW(HypergradientEngine<double>{s}, std::invalid_argument);
}

}  // namespace
}  // namespace ift

namespace ift {
namespace {

// A problem with the required interface only: L_T = ½ wᵀ A w − λᵀ w (A = diag(a) + u uᵀ, SPD),
// L_V = ½ ||w − t||². The IFT gives w* = A⁻¹ λ and dL_V*/dλ = A⁻¹ (w* − t).
class QuadraticProblem final : public BilevelProblem<double> {
 public:
  explicit QuadraticProblem(Index n) : a_(Vector<double>::LinSpaced(n, 1.0, 3.0)),
                                       u_(Vector<double>::LinSpaced(n, -0.5, 0.5)),
                                       t_(Vector<double>::LinSpaced(n, 0.2, -0.3)) {}
  Matrix<double> A() const {
    Matrix<double> A = u_ * u_.transpose();
    A.diagonal() += a_;
    return A;
  }
  Index num_params() const override { return a_.size(); }
  Index num_hyper() const override { return a_.size(); }
  void set_point(const Vector<double>& lambda, const Vector<double>& w) override {
    lambda_ = lambda;
    w_ = w;
    Vector<double> Aw;
    hvp(w, Aw);
    gradient_ = Aw - lambda;
    loss_ = 0.5 * w.dot(Aw) - lambda.dot(w);
    val_gradient_ = w - t_;
  }
  const Vector<double>& lambda() const override { return lambda_; }
  const Vector<double>& w() const override { return w_; }
  double train_loss() const override { return loss_; }
  const Vector<double>& train_gradient() const override { return gradient_; }
  double val_loss() override { return 0.5 * val_gradient_.squaredNorm(); }
  const Vector<double>& val_gradient() override { return val_gradient_; }
  void val_direct_gradient(Vector<double>& out) override { out.setZero(num_hyper()); }
  void hvp(const Vector<double>& v, Vector<double>& out) override {
    out = a_.cwiseProduct(v) + u_ * u_.dot(v);
  }
  void mixed_product(const Vector<double>& v, Vector<double>& out) override { out = -v; }
  Metrics metrics() override { return {}; }

 private:
  Vector<double> a_, u_, t_, lambda_, w_, gradient_, val_gradient_;
  double loss_ = 0;
};

// Capabilities are opt-in: a problem with the required interface alone gets every matrix-free
// method, and a method needing a capability it lacks is refused with the capability's name,
// whether the problem is seen through its own type (compile time) or through BilevelProblem
// (run time). RegularizedProblem opts into all of them.
TEST(ProblemCapabilities, RequiredInterfaceAloneServesTheMatrixFreeMethods) {
  static_assert(generic::HypergradientProblem<QuadraticProblem>);
  static_assert(!generic::HasDenseHessian<QuadraticProblem>);
  static_assert(!generic::HasGaussNewton<QuadraticProblem>);
  static_assert(!generic::HasDenseHessian<BilevelProblem<double>>);
  static_assert(generic::HasDenseHessian<
                RegularizedProblem<SoftmaxRegression<double>>>);  // through its static type
  QuadraticProblem problem(12);
  const Vector<double> lambda = Vector<double>::LinSpaced(12, 1.0, -1.0);
  const Matrix<double> A = problem.A();
  const Vector<double> w_star = A.llt().solve(lambda);
  problem.set_point(lambda, w_star);
  const Vector<double> expected = A.llt().solve(w_star - Vector<double>::LinSpaced(12, 0.2, -0.3));
  MethodSpec cg;
  cg.method = Method::Cg;
  cg.steps = 12;
  const auto h = generic::hypergradient(problem, cg);
  EXPECT_LT((h.hypergradient - expected).norm(), 1e-10 * expected.norm());
  BilevelProblem<double>& erased = problem;
  for (const Method m : {Method::Exact, Method::Kfac}) {
    MethodSpec spec;
    spec.method = m;
    for (const bool through_interface : {false, true}) {
      try {
        if (through_interface)
          HypergradientEngine<double>(spec).compute(erased);
        else
          generic::hypergradient(problem, spec);
        FAIL() << to_string(m) << " accepted a problem without the capability";
      } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("capability::"), std::string::npos) << e.what();
      }
    }
  }
  MethodSpec gn = cg;
  gn.curvature = Curvature::GaussNewton;
  EXPECT_THROW(HypergradientEngine<double>(gn).compute(erased), std::invalid_argument);
  NewtonParams newton;
  Vector<double> w = Vector<double>::Zero(12);
  EXPECT_THROW(newton_solve(erased, lambda, w, newton), std::invalid_argument);
  // Newton-CG needs only the HVP: it finds w* of the capability-free problem.
  const InnerResult r = newton_cg_solve(problem, lambda, w);
  EXPECT_TRUE(r.converged) << r.message;
  EXPECT_LT((w - w_star).norm(), 1e-9 * w_star.norm());
}

TEST(ProblemCapabilities, TypeErasedProblemFindsItsCapabilitiesAtRunTime) {
  // The same exact and Gauss-Newton hypergradients through the static type and the interface.
  auto train = std::make_shared<const Dataset<double>>(testing::random_classification<double>(60, 5, 3, 1));
  auto val = std::make_shared<const Dataset<double>>(testing::random_classification<double>(30, 5, 3, 2));
  SoftmaxRegression<double> model(6, 3);
  RegularizedProblem problem(model, WeightDecay<double>(DecayKind::PerWeight, 18), train, val);
  problem.set_point(Vector<double>::Constant(18, -2.0), Vector<double>::LinSpaced(18, -0.3, 0.3));
  BilevelProblem<double>& erased = problem;
  for (const Curvature c : {Curvature::Hessian, Curvature::GaussNewton}) {
    for (const Method m : {Method::Exact, Method::Kfac, Method::Cg}) {
      if (m == Method::Kfac && c != Curvature::Hessian) continue;
      MethodSpec spec;
      spec.method = m;
      spec.curvature = c;
      const auto direct = generic::hypergradient(problem, spec);
      const auto through = generic::hypergradient(erased, spec);
      EXPECT_EQ(direct.status, SolverStatus::Converged) << spec.name();
      EXPECT_LE((direct.hypergradient - through.hypergradient).norm(),
                1e-14 * direct.hypergradient.norm())
          << spec.name();
    }
  }
}

// set_point keeps the data terms when only λ moves (the loop's first inner step after a
// hypergradient): every quantity at (λ₂, w) after a visit to (λ₁, w) and every product there
// (which share the forward pass's cache) equals a fresh problem's at (λ₂, w) bitwise, and a w
// one ulp away is a new point.
template <class Problem>
void expect_point_reuse_is_exact(Problem a, Problem fresh) {
  using S = typename Problem::S;
  const Index D = a.num_params(), H = a.num_hyper();
  const Vector<S> w = Vector<S>::LinSpaced(D, S(-0.4), S(0.5));
  const Vector<S> lambda1 = Vector<S>::Constant(H, S(-1));
  const Vector<S> lambda2 = Vector<S>::LinSpaced(H, S(-3), S(0.5));
  const Vector<S> v = Vector<S>::LinSpaced(D, S(1), S(-0.7));
  Vector<S> out;
  Matrix<S> dense;
  std::vector<S> shift;
  a.set_point(lambda1, w);
  const Vector<S> gradient1 = a.train_gradient();
  const S loss1 = a.train_loss();
  // Every product that reads the forward pass's cache, then the move to (λ₂, w).
  a.hvp(v, out);
  a.gauss_newton_product(v, out);
  a.fisher_product(v, out);
  a.hessian(dense);
  a.kfac_factors(shift);
  a.val_gradient();
  a.set_point(lambda2, w);
  fresh.set_point(lambda2, w);
  EXPECT_TRUE(a.train_gradient() == fresh.train_gradient());
  EXPECT_FALSE(a.train_gradient() == gradient1);  // the penalty's part did move with λ
  EXPECT_EQ(a.train_loss(), fresh.train_loss());
  EXPECT_NE(a.train_loss(), loss1);
  EXPECT_TRUE(a.val_gradient() == fresh.val_gradient());
  EXPECT_EQ(a.val_loss(), fresh.val_loss());
  Vector<S> expected;
  a.hvp(v, out);
  fresh.hvp(v, expected);
  EXPECT_TRUE(out == expected);
  a.mixed_product(v, out);
  fresh.mixed_product(v, expected);
  EXPECT_TRUE(out == expected);
  const Metrics ma = a.metrics(), mf = fresh.metrics();
  EXPECT_EQ(ma.train_loss, mf.train_loss);
  EXPECT_EQ(ma.val_loss, mf.val_loss);
  EXPECT_EQ(ma.train_accuracy, mf.train_accuracy);
  EXPECT_EQ(ma.val_accuracy, mf.val_accuracy);
  // One ulp in one weight is another point: the forward pass is redone.
  Vector<S> w2 = w;
  w2(D / 2) = std::nextafter(w2(D / 2), S(1));
  a.set_point(lambda2, w2);
  fresh.set_point(lambda2, w2);
  EXPECT_TRUE(a.train_gradient() == fresh.train_gradient());
  EXPECT_EQ(a.train_loss(), fresh.train_loss());
  EXPECT_TRUE(a.val_gradient() == fresh.val_gradient());
}

TEST(ProblemPoint, NewLambdaAtTheSamePointEqualsAFreshEvaluationBitwise) {
  expect_point_reuse_is_exact(logreg_problem<double>(DecayKind::PerWeight),
                              logreg_problem<double>(DecayKind::PerWeight));
  expect_point_reuse_is_exact(logreg_problem<float>(DecayKind::PerWeight),
                              logreg_problem<float>(DecayKind::PerWeight));
  expect_point_reuse_is_exact(logreg_problem<double>(DecayKind::Global),
                              logreg_problem<double>(DecayKind::Global));
  expect_point_reuse_is_exact(mlp_problem(), mlp_problem());
}

// The first curvature product at a point also forms the data gradient in its pass over the
// rows (SoftmaxRegression::hvp_and_gradient: backward Xᵀ [R{∂L/∂Z}, (P − Y)/n]): both equal
// the separate passes' bitwise (the same kernel per column, the same row blocks and group
// sums), on one row block and on several groups (n = 1,000, F = 601: 4 blocks), with 2C ≤ and
// > the kernels' widest chunk (C = 3, 10).
template <class S>
void expect_hvp_with_gradient_is_exact(Index n, Index d, Index C) {
  SoftmaxRegression<S> model(d + 1, C);
  auto train = shared(testing::random_classification<S>(n, d, C, 5));
  auto val = shared(testing::random_classification<S>(30, d, C, 6));
  const Index D = model.num_params();
  using Problem = RegularizedProblem<SoftmaxRegression<S>>;
  Problem a(model, WeightDecay<S>(DecayKind::PerWeight, D), train, val);
  Problem fresh(model, WeightDecay<S>(DecayKind::PerWeight, D), train, val);
  const Vector<S> w = Vector<S>::LinSpaced(D, S(-0.4), S(0.5));
  const Vector<S> lambda = Vector<S>::LinSpaced(D, S(-3), S(0.5));
  const Vector<S> v = Vector<S>::LinSpaced(D, S(1), S(-0.7));
  // Model level: one pass against hvp() and gradient_from_cache().
  typename SoftmaxRegression<S>::Cache cache;
  model.evaluate(*train, w, cache, nullptr);
  Vector<S> hv, gradient, hv_separate, gradient_separate;
  model.hvp_and_gradient(*train, w, cache, v, hv, gradient);
  model.hvp(*train, w, cache, v, hv_separate);
  model.gradient_from_cache(*train, cache, gradient_separate);
  EXPECT_TRUE(hv == hv_separate) << "n = " << n << ", C = " << C;
  EXPECT_TRUE(gradient == gradient_separate) << "n = " << n << ", C = " << C;
  // And the gradient is the gradient: against evaluate's fused forward-backward pass.
  Vector<S> fused;
  model.evaluate(*train, w, cache, &fused);
  EXPECT_TRUE(gradient == fused);
  // The point, its gradient and a product in one pass (evaluate_with_hvp: forward X [W, V])
  // against evaluate() with a gradient and hvp(): the loss, the cache and both vectors.
  typename SoftmaxRegression<S>::Cache one;
  Vector<S> g_one, hv_one;
  const S loss_one = model.evaluate_with_hvp(*train, w, one, v, g_one, hv_one);
  const S loss_two = model.evaluate(*train, w, cache, &fused);
  model.hvp(*train, w, cache, v, hv_separate);
  EXPECT_EQ(loss_one, loss_two) << "n = " << n << ", C = " << C;
  EXPECT_TRUE(g_one == fused) << "n = " << n << ", C = " << C;
  EXPECT_TRUE(hv_one == hv_separate) << "n = " << n << ", C = " << C;
  EXPECT_TRUE(one.probs == cache.probs && one.residual == cache.residual);
  // Problem level: hvp first (gradient formed in its pass), then train_gradient(), against the
  // order train_gradient(), hvp() on a fresh problem.
  a.set_point(lambda, w);
  fresh.set_point(lambda, w);
  Vector<S> out_a, out_fresh;
  a.hvp(v, out_a);
  const Vector<S> g_fresh = fresh.train_gradient();
  fresh.hvp(v, out_fresh);
  EXPECT_TRUE(out_a == out_fresh);
  EXPECT_TRUE(a.train_gradient() == g_fresh);
  EXPECT_EQ(a.train_loss(), fresh.train_loss());
}

TEST(ProblemPoint, FirstHvpFormsTheTrainGradientInTheSamePassBitwise) {
  for (const Index C : {3, 10}) {
    expect_hvp_with_gradient_is_exact<double>(40, 4, C);
    expect_hvp_with_gradient_is_exact<double>(1000, 600, C);
    expect_hvp_with_gradient_is_exact<float>(40, 4, C);
    expect_hvp_with_gradient_is_exact<float>(1000, 600, C);
  }
}

// The validation rows are streamed in block by block (row_block::Workspace::stream, set by
// RegularizedProblem): only the reads change, so the loss and gradient equal a plain pass's
// bitwise, and the problem's validation gradient is the model's.
TEST(ProblemPoint, StreamedValidationPassGivesTheSameBits) {
  for (const Index n : {40, 1000}) {
    const Index d = 600, C = 10;
    SoftmaxRegression<double> model(d + 1, C);
    auto train = shared(testing::random_classification<double>(60, d, C, 7));
    auto val = shared(testing::random_classification<double>(n, d, C, 8));
    const Index D = model.num_params();
    const Vector<double> w = Vector<double>::LinSpaced(D, -0.2, 0.3);
    typename SoftmaxRegression<double>::Cache plain, streamed;
    streamed.blocks.stream = true;
    Vector<double> g_plain, g_streamed;
    const double loss_plain = model.evaluate(*val, w, plain, &g_plain);
    const double loss_streamed = model.evaluate(*val, w, streamed, &g_streamed);
    EXPECT_EQ(loss_plain, loss_streamed) << "n = " << n;
    EXPECT_TRUE(g_plain == g_streamed) << "n = " << n;
    RegularizedProblem problem(model, WeightDecay<double>(DecayKind::PerWeight, D), train, val);
    problem.set_point(Vector<double>::Constant(D, -2.0), w);
    EXPECT_TRUE(problem.val_gradient() == g_plain) << "n = " << n;
    EXPECT_EQ(problem.val_loss(), loss_plain) << "n = " << n;
  }
}

// set_point_with_gradient (every inner optimiser step of the loop) forms the data gradient in
// the forward's own pass (the model's evaluate with a gradient): every value and product after
// it equals set_point + train_gradient()'s, bitwise, on one row block and on several groups
// (n = 1,000, F = 601: 4 blocks), for the three models; moving λ alone keeps the point, and a
// later set_point at a new w drops the gradient it formed.
template <class Problem>
void expect_point_with_gradient_is_exact(Problem a, Problem b) {
  using S = typename Problem::S;
  const Index D = a.num_params(), H = a.num_hyper();
  const Vector<S> w = Vector<S>::LinSpaced(D, S(-0.4), S(0.5));
  const Vector<S> lambda1 = Vector<S>::LinSpaced(H, S(-3), S(0.5));
  const Vector<S> lambda2 = Vector<S>::Constant(H, S(-1));
  const Vector<S> v = Vector<S>::LinSpaced(D, S(1), S(-0.7));
  a.set_point_with_gradient(lambda1, w);
  b.set_point(lambda1, w);
  EXPECT_EQ(a.train_loss(), b.train_loss());
  EXPECT_TRUE(a.train_gradient() == b.train_gradient());
  Vector<S> out, expected;
  a.hvp(v, out);
  b.hvp(v, expected);
  EXPECT_TRUE(out == expected);
  // The point, its gradient and a product at once (softmax regression: one pass), against the
  // separate calls at a new point (b), then at the same point with λ alone moved.
  for (const S scale : {S(0.75), S(0.75)}) {
    const Vector<S> w3 = w * scale;
    const Vector<S> lambda3 = lambda1 * scale;
    Vector<S> hv_a, hv_b;
    a.set_point_with_gradient_and_hvp(lambda3, w3, v, hv_a);
    b.set_point_with_gradient(lambda3, w3);
    b.hvp(v, hv_b);
    EXPECT_TRUE(hv_a == hv_b);
    EXPECT_TRUE(a.train_gradient() == b.train_gradient());
    EXPECT_EQ(a.train_loss(), b.train_loss());
    EXPECT_TRUE(a.val_gradient() == b.val_gradient());
  }
  a.set_point(lambda1, w);
  b.set_point(lambda1, w);
  a.gauss_newton_product(v, out);
  b.gauss_newton_product(v, expected);
  EXPECT_TRUE(out == expected);
  EXPECT_TRUE(a.val_gradient() == b.val_gradient());
  // λ alone moves: the point (and the gradient formed with it) is kept.
  a.set_point_with_gradient(lambda2, w);
  b.set_point(lambda2, w);
  EXPECT_TRUE(a.train_gradient() == b.train_gradient());
  EXPECT_EQ(a.train_loss(), b.train_loss());
  const Vector<S> at_w = a.train_gradient();
  // A new w through plain set_point: the old gradient is not reused.
  const Vector<S> w2 = w * S(0.5);
  a.set_point(lambda2, w2);
  b.set_point_with_gradient(lambda2, w2);
  EXPECT_TRUE(a.train_gradient() == b.train_gradient());
  EXPECT_FALSE(a.train_gradient() == at_w);
}

template <class S>
RegularizedProblem<SoftmaxRegression<S>> wide_logreg_problem(Index n) {
  SoftmaxRegression<S> model(601, 10);
  return RegularizedProblem<SoftmaxRegression<S>>(
      model, WeightDecay<S>(DecayKind::PerWeight, model.num_params()),
      shared(testing::random_classification<S>(n, 600, 10, 11)),
      shared(testing::random_classification<S>(30, 600, 10, 12)));
}

TEST(ProblemPoint, SetPointWithGradientGivesTheSameBits) {
  expect_point_with_gradient_is_exact(logreg_problem<double>(DecayKind::PerWeight),
                                      logreg_problem<double>(DecayKind::PerWeight));
  expect_point_with_gradient_is_exact(logreg_problem<float>(DecayKind::PerWeight),
                                      logreg_problem<float>(DecayKind::PerWeight));
  expect_point_with_gradient_is_exact(wide_logreg_problem<double>(1000),
                                      wide_logreg_problem<double>(1000));
  expect_point_with_gradient_is_exact(wide_logreg_problem<float>(1000),
                                      wide_logreg_problem<float>(1000));
  expect_point_with_gradient_is_exact(mlp_problem(), mlp_problem());
  const auto binary = [] {
    LogisticRegression<double> model(601);
    return RegularizedProblem<LogisticRegression<double>>(
        model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
        shared(testing::random_classification<double>(1000, 600, 2, 13)),
        shared(testing::random_classification<double>(30, 600, 2, 14)));
  };
  expect_point_with_gradient_is_exact(binary(), binary());
}

TEST(ProblemPoint, MetricsNeedAPoint) {
  auto problem = logreg_problem<double>(DecayKind::PerWeight);
  EXPECT_THROW(problem.metrics(), std::invalid_argument);
}

}  // namespace
}  // namespace ift
