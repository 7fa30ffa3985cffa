// Uses the installed ift::ift: a CG solve on a small SPD system (residual checked here, not by
// the solver), then a hypergradient of per-weight decay by exact and by CG, which must agree.
// Exit status 0 on success, 1 with a message on failure.
#include <cmath>
#include <cstdio>
#include <memory>

#include <ift/data/synthetic.hpp>
#include <ift/hypergradient.hpp>
#include <ift/inner.hpp>
#include <ift/linalg/cg.hpp>
#include <ift/linalg/operators.hpp>
#include <ift/models/softmax_regression.hpp>
#include <ift/problems/regularized.hpp>
#include <ift/version.hpp>

namespace {

int fail(const char* what, double value) {
  std::fprintf(stderr, "consumer: FAILED: %s (%g)\n", what, value);
  return 1;
}

}  // namespace

int main() {
  using ift::Index;
  using M = ift::Matrix<double>;
  using V = ift::Vector<double>;

  // 1. CG on H = B Bᵀ + I, n = 40.
  const Index n = 40;
  M B(n, n);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j) B(i, j) = std::sin(0.37 * double((i + 1) * (j + 2)));
  const M H = B * B.transpose() + M::Identity(n, n);
  V g(n);
  for (Index i = 0; i < n; ++i) g(i) = std::cos(double(i));
  ift::CgParams params;
  params.max_iterations = 200;
  params.tolerance = 1e-12;
  const auto cg = ift::conjugate_gradient(ift::DenseOperator<double>(H), g, params);
  const double cg_residual = (H * cg.x - g).norm() / g.norm();
  if (cg.status != ift::SolverStatus::Converged) return fail("cg did not converge", cg_residual);
  if (!(cg_residual < 1e-9)) return fail("cg residual", cg_residual);

  // 2. Hypergradient of per-weight decay on Gaussian blobs at w*(λ): exact vs cg.
  auto train = std::make_shared<ift::Dataset<double>>(ift::make_blobs<double>(60, 4, 3, 2.0, 1));
  auto val = std::make_shared<ift::Dataset<double>>(ift::make_blobs<double>(40, 4, 3, 2.0, 2));
  train->append_bias_column();
  val->append_bias_column();
  ift::SoftmaxRegression<double> model(5, 3);
  ift::RegularizedProblem problem(
      model, ift::WeightDecay<double>(ift::DecayKind::PerWeight, model.num_params()), train, val);
  const V lambda = V::Constant(problem.num_hyper(), std::log(1e-2));
  V w = V::Zero(problem.num_params());
  const ift::InnerResult inner = ift::newton_solve(problem, lambda, w);
  if (!inner.converged) return fail("newton did not converge", 0);
  ift::MethodSpec exact;
  exact.method = ift::Method::Exact;
  ift::MethodSpec cg_spec;
  cg_spec.method = ift::Method::Cg;
  cg_spec.steps = 100;
  cg_spec.cg.tolerance = 1e-12;
  const auto h_exact = ift::hypergradient(problem, exact);
  const auto h_cg = ift::hypergradient(problem, cg_spec);
  if (h_exact.status != ift::SolverStatus::Converged) return fail("exact status", 0);
  const double difference =
      (h_exact.hypergradient - h_cg.hypergradient).norm() / h_exact.hypergradient.norm();
  if (!(h_exact.hypergradient.norm() > 0)) return fail("zero hypergradient", 0);
  if (!(difference < 1e-8)) return fail("exact and cg hypergradients differ", difference);

  std::printf("consumer: ift %s: cg residual %.2e in %ld iterations; exact vs cg hypergradient "
              "%.2e (||h|| = %.3e)\n",
              ift::version(), cg_residual, static_cast<long>(cg.iterations), difference,
              h_exact.hypergradient.norm());
  return 0;
}
