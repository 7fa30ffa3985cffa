// The generic hypergradient templates (ift/generic/hypergradient.hpp) are the one implementation
// behind both the Eigen HypergradientEngine and the LibTorch adapter. Here: a long-lived engine,
// whose dense workspace is reused from call to call, agrees with fresh workspace-free calls for
// every method and curvature (no state leaks between calls), and misuse is reported.
#include <gtest/gtest.h>

#include <memory>

#include "../fixtures.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problem.hpp"
#include "ift/problems/regularized.hpp"

namespace ift {
namespace {

static_assert(generic::HypergradientProblem<BilevelProblem<double>>);
static_assert(generic::HypergradientProblem<BilevelProblem<float>>);

std::vector<MethodSpec> all_specs() {
  std::vector<MethodSpec> specs;
  auto add = [&](Method m, Curvature c, Index steps, double damping = 0) {
    MethodSpec s;
    s.method = m;
    s.curvature = c;
    s.steps = steps;
    s.damping = damping;
    s.neumann.power_iterations = 60;
    specs.push_back(s);
  };
  add(Method::Exact, Curvature::Hessian, 0);
  add(Method::Exact, Curvature::GaussNewton, 0, 1e-3);
  add(Method::Cg, Curvature::Hessian, 12);
  add(Method::Cg, Curvature::GaussNewton, 12, 1e-4);
  add(Method::Neumann, Curvature::Hessian, 15);
  add(Method::Neumann, Curvature::OuterProduct, 3);
  add(Method::Neumann, Curvature::Fisher, 5);
  add(Method::Identity, Curvature::Hessian, 0);
  add(Method::Zero, Curvature::Hessian, 0);
  add(Method::Kfac, Curvature::Hessian, 0, 1e-3);
  add(Method::Unrolled, Curvature::Hessian, 6);
  MethodSpec plain;
  plain.method = Method::Cg;
  plain.steps = 8;
  plain.cg.reorthogonalize = false;
  plain.compute_residual = true;
  specs.push_back(plain);
  return specs;
}

template <class Problem>
void expect_same(Problem& problem, const std::string& what) {
  for (const MethodSpec& spec : all_specs()) {
    SCOPED_TRACE(what + " " + spec.name());
    HypergradientEngine<double> engine(spec);
    engine.compute(problem);  // fills the workspace
    const auto reference = generic::hypergradient(problem, spec);
    const auto mine = engine.compute(problem);  // reuses it
    ASSERT_EQ(mine.hypergradient.size(), reference.hypergradient.size());
    const double scale = std::max(reference.hypergradient.norm(), 1e-300);
    EXPECT_LE((mine.hypergradient - reference.hypergradient).norm() / scale, 1e-12);
    EXPECT_EQ(mine.status, reference.status);
    EXPECT_EQ(mine.hvps, reference.hvps);
    EXPECT_EQ(mine.iterations, reference.iterations);
    EXPECT_EQ(mine.alpha, reference.alpha);
    EXPECT_EQ(mine.relative_residual.has_value(), reference.relative_residual.has_value());
  }
}

TEST(GenericHypergradient, ReusedEngineMatchesFreshCallsOnSoftmaxRegression) {
  for (const Index n : {Index(40), Index(90)}) {
    auto data = std::make_shared<Dataset<double>>(testing::random_classification<double>(n, 6, 3, 5));
    auto val = std::make_shared<Dataset<double>>(testing::random_classification<double>(30, 6, 3, 6));
    SoftmaxRegression<double> model(data->num_features(), 3);
    RegularizedProblem<SoftmaxRegression<double>> problem(
        model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()), data, val);
    const Vector<double> lambda =
        Vector<double>::Constant(model.num_params(), std::log(0.05)) +
        0.3 * testing::random_vector<double>(model.num_params(), 9);
    Vector<double> w = Vector<double>::Zero(model.num_params());
    newton_solve<double>(problem, lambda, w);
    expect_same(problem, "softmax n=" + std::to_string(n));
  }
}

TEST(GenericHypergradient, ReusedEngineMatchesFreshCallsOnMlpAwayFromOptimum) {
  auto data = std::make_shared<Dataset<double>>(testing::random_classification<double>(50, 5, 3, 7, false));
  auto val = std::make_shared<Dataset<double>>(testing::random_classification<double>(20, 5, 3, 8, false));
  Mlp<double> model({5, 4, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  RegularizedProblem<Mlp<double>> problem(model, WeightDecay<double>(DecayKind::Global, model.num_params()),
                                          data, val);
  Vector<double> lambda(1);
  lambda(0) = std::log(0.1);
  problem.set_point(lambda, model.initial_weights(3));
  expect_same(problem, "mlp");
}

TEST(GenericHypergradient, FloatProblemsCompile) {
  auto data = std::make_shared<Dataset<float>>(testing::random_classification<float>(30, 4, 2, 5));
  SoftmaxRegression<float> model(data->num_features(), 2);
  RegularizedProblem<SoftmaxRegression<float>> problem(
      model, WeightDecay<float>(DecayKind::Global, model.num_params()), data, data);
  Vector<float> lambda = Vector<float>::Constant(1, -2.0f);
  problem.set_point(lambda, Vector<float>::Zero(model.num_params()));
  MethodSpec spec;
  spec.method = Method::Cg;
  spec.steps = 5;
  const auto a = generic::hypergradient(problem, spec);
  const auto b = hypergradient(problem, spec);
  EXPECT_LE((a.hypergradient - b.hypergradient).norm(), 1e-6f * b.hypergradient.norm());
}

TEST(GenericHypergradient, UnsupportedCurvatureIsMisuse) {
  auto data = std::make_shared<Dataset<double>>(testing::random_classification<double>(20, 3, 2, 5));
  SoftmaxRegression<double> model(data->num_features(), 2);
  RegularizedProblem<SoftmaxRegression<double>> problem(
      model, WeightDecay<double>(DecayKind::Global, model.num_params()), data, data);
  problem.set_point(Vector<double>::Constant(1, -2.0), Vector<double>::Zero(model.num_params()));
  MethodSpec bad;
  bad.method = Method::Cg;
  bad.curvature = Curvature::OuterProduct;  // rank-one curvature is for neumann only
  EXPECT_THROW(generic::hypergradient(problem, bad), std::invalid_argument);
}

}  // namespace
}  // namespace ift
