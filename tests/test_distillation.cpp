// Dataset distillation (DESIGN.md P5) against the mathematics: the mixed partial against finite
// differences of λ ↦ vᵀ∇_w L_T(λ, w), the exact IFT hypergradient against finite differences of
// λ ↦ L_V(w*(λ)), the unrolled/Neumann identity, and CG's finite termination on its low-rank
// Hessian (the reason the app defaults to cg).
#include <gtest/gtest.h>

#include <memory>

#include "fixtures.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/problems/distillation.hpp"

namespace ift {
namespace {

using testing::rel_error;

constexpr Index kClasses = 3;
constexpr Index kPixels = 6;

template <class S>
DistillationProblem<S> make_problem(std::uint64_t seed = 1, S weight_decay = S(1e-2)) {
  auto val = std::make_shared<const Dataset<S>>(
      testing::random_classification<S>(30, kPixels, kClasses, seed));
  auto test = std::make_shared<const Dataset<S>>(
      testing::random_classification<S>(20, kPixels, kClasses, seed + 50));
  return DistillationProblem<S>(kClasses, kPixels, val, test, weight_decay);
}

/// Class means of a separate real sample plus noise: images that look like their class.
template <class S>
Vector<S> initial_pixels(const DistillationProblem<S>& problem, std::uint64_t seed) {
  const auto train = testing::random_classification<S>(60, kPixels, kClasses, seed);
  return problem.class_means(train) +
         testing::random_vector<S>(problem.num_hyper(), seed + 1, 0.3);
}

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

MethodSpec spec(Method m, Index steps = 20, double alpha = 0) {
  MethodSpec s;
  s.method = m;
  s.steps = steps;
  s.neumann.alpha = alpha;
  return s;
}

template <class S>
class DistillationTyped : public ::testing::Test {};
using Precisions = ::testing::Types<double, float>;
TYPED_TEST_SUITE(DistillationTyped, Precisions);

TYPED_TEST(DistillationTyped, MixedProductMatchesFiniteDifferences) {
  using S = TypeParam;
  auto problem = make_problem<S>();
  const Vector<S> lambda = initial_pixels(problem, 2);
  const Vector<S> w = testing::random_vector<S>(problem.num_params(), 3, 0.5);
  const Vector<S> v = testing::random_vector<S>(problem.num_params(), 4);
  problem.set_point(lambda, w);
  Vector<S> mixed;
  problem.mixed_product(v, mixed);
  ASSERT_EQ(mixed.size(), kClasses * kPixels);
  // Central differences of λ ↦ vᵀ ∇_w L_T(λ, w), every pixel of every image.
  const S h = static_cast<S>(testing::Tol<S>::fd_step);
  Vector<S> fd(problem.num_hyper());
  for (Index j = 0; j < problem.num_hyper(); ++j) {
    Vector<S> lp = lambda, lm = lambda;
    lp(j) += h;
    lm(j) -= h;
    problem.set_point(lp, w);
    const double up = static_cast<double>(v.dot(problem.train_gradient()));
    problem.set_point(lm, w);
    const double down = static_cast<double>(v.dot(problem.train_gradient()));
    fd(j) = static_cast<S>((up - down) / (2 * static_cast<double>(h)));
  }
  EXPECT_LT(rel_error(mixed, fd), testing::Tol<S>::fd);
}

TYPED_TEST(DistillationTyped, GradientHvpAndHessianAgree) {
  using S = TypeParam;
  auto problem = make_problem<S>();
  const Vector<S> lambda = initial_pixels(problem, 5);
  const Vector<S> w = testing::random_vector<S>(problem.num_params(), 6, 0.5);
  problem.set_point(lambda, w);
  Matrix<S> H;
  problem.hessian(H);
  const Vector<S> v = testing::random_vector<S>(problem.num_params(), 7);
  Vector<S> Hv, GNv, Pv;
  problem.hvp(v, Hv);
  problem.gauss_newton_product(v, GNv);
  problem.penalty_hvp(v, Pv);
  const Vector<S> dense = H * v;
  EXPECT_LT(rel_error(Hv, dense), testing::Tol<S>::exact);
  EXPECT_LT(rel_error(GNv, dense), testing::Tol<S>::exact);
  EXPECT_LT(rel_error(Pv, Vector<S>(problem.weight_decay() * v)), testing::Tol<S>::exact);
  // ∇_w L_T against central differences along v.
  const S h = static_cast<S>(testing::Tol<S>::fd_step);
  problem.set_point(lambda, Vector<S>(w + h * v));
  const double up = static_cast<double>(problem.train_loss());
  problem.set_point(lambda, Vector<S>(w - h * v));
  const double down = static_cast<double>(problem.train_loss());
  problem.set_point(lambda, w);
  const double directional = static_cast<double>(problem.train_gradient().dot(v));
  EXPECT_NEAR((up - down) / (2 * static_cast<double>(h)), directional,
              testing::Tol<S>::fd * std::max(1.0, std::abs(directional)));
}

TEST(Distillation, ExactHypergradientMatchesFiniteDifferences) {
  auto problem = make_problem<double>();
  const Vector<double> lambda = initial_pixels(problem, 8);
  const Vector<double> w_star = solve_inner(problem, lambda);
  const auto exact = hypergradient(problem, spec(Method::Exact));
  ASSERT_EQ(exact.status, SolverStatus::Converged) << exact.message;
  const double h = 1e-4;
  // A sample of pixels from every image (λ ↦ L_V(w*(λ)), w* re-solved by Newton each time).
  for (Index j : {0, 3, 5, 7, 10, 12, 17}) {
    Vector<double> lp = lambda, lm = lambda;
    lp(j) += h;
    lm(j) -= h;
    solve_inner(problem, lp, w_star);
    const double up = problem.val_loss();
    solve_inner(problem, lm, w_star);
    const double down = problem.val_loss();
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(exact.hypergradient(j), fd, 1e-6 * std::max(1e-3, std::abs(fd)))
        << "pixel " << j;
  }
}

TYPED_TEST(DistillationTyped, UnrolledFromOptimumEqualsNeumannWithOneTermFewer) {
  // Lorraine et al. (2020): unrolled(i, α) started at w* equals neumann(i − 1, α).
  using S = TypeParam;
  auto problem = make_problem<S>();
  const Vector<S> lambda = initial_pixels(problem, 9);
  solve_inner(problem, lambda);
  const double alpha = 0.5;
  for (Index i : {1, 2, 5, 20}) {
    const auto unrolled = hypergradient(problem, spec(Method::Unrolled, i, alpha));
    const auto neumann = hypergradient(problem, spec(Method::Neumann, i - 1, alpha));
    EXPECT_EQ(unrolled.hvps, neumann.hvps + 1) << "i = " << i;
    const double tol = std::is_same_v<S, double> ? 1e-8 : 2e-3;
    EXPECT_LT(rel_error(unrolled.hypergradient, neumann.hypergradient), tol) << "i = " << i;
  }
}

TEST(Distillation, CgIsExactAfterRankPlusOneIterations) {
  // H = μI + (1/m) Σ_n S_n ⊗ x_n x_nᵀ with rank(S_n) = C − 1: H has at most m(C − 1) + 1
  // distinct eigenvalues, so CG terminates in m(C − 1) + 1 iterations (here 7 of D = 21).
  auto problem = make_problem<double>();
  const Vector<double> lambda = initial_pixels(problem, 10);
  solve_inner(problem, lambda);
  const auto exact = hypergradient(problem, spec(Method::Exact));
  const auto cg = hypergradient(problem, spec(Method::Cg, kClasses * (kClasses - 1) + 1));
  EXPECT_LE(cg.iterations, kClasses * (kClasses - 1) + 1);
  EXPECT_LT(rel_error(cg.hypergradient, exact.hypergradient), 1e-8);
}

TEST(Distillation, KfacAndMetricsOnTheSyntheticImages) {
  auto problem = make_problem<double>();
  const Vector<double> lambda = initial_pixels(problem, 11);
  solve_inner(problem, lambda);
  std::vector<double> shift;
  const auto factors = problem.kfac_factors(shift);
  ASSERT_EQ(factors.size(), 1u);
  EXPECT_EQ(factors[0].A.rows(), kPixels + 1);
  EXPECT_EQ(factors[0].G.rows(), kClasses);
  ASSERT_EQ(shift.size(), 1u);
  EXPECT_DOUBLE_EQ(shift[0], problem.weight_decay());
  const Metrics m = problem.metrics();
  EXPECT_TRUE(m.has_accuracy && m.has_test);
  EXPECT_DOUBLE_EQ(m.train_accuracy, 1.0);  // C images, C parameters per feature: separable
  EXPECT_EQ(problem.images(lambda).rows(), kClasses);
  EXPECT_EQ(problem.images(lambda).cols(), kPixels);
  EXPECT_EQ(problem.images(lambda).row(1).transpose(), lambda.segment(kPixels, kPixels));
  Vector<double> direct;
  problem.val_direct_gradient(direct);
  EXPECT_EQ(direct.size(), problem.num_hyper());
  EXPECT_EQ(direct.norm(), 0.0);
}

TEST(Distillation, RejectsMisuse) {
  auto val = std::make_shared<const Dataset<double>>(
      testing::random_classification<double>(10, kPixels, kClasses, 1, /*bias=*/false));
  EXPECT_THROW(DistillationProblem<double>(kClasses, kPixels, val), std::invalid_argument);
  auto with_bias = std::make_shared<const Dataset<double>>(
      testing::random_classification<double>(10, kPixels, kClasses, 1));
  EXPECT_THROW(DistillationProblem<double>(kClasses, kPixels, with_bias, nullptr, 0.0),
               std::invalid_argument);
  DistillationProblem<double> problem(kClasses, kPixels, with_bias);
  EXPECT_THROW(problem.set_point(Vector<double>::Zero(5), Vector<double>::Zero(21)),
               std::invalid_argument);
}

}  // namespace
}  // namespace ift
