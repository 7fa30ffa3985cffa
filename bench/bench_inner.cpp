// The inner solve of problem P1 (DESIGN.md §2): w*(λ) = argmin_w L_T(λ, w) for multinomial
// logistic regression on Fashion-MNIST rows [0, n) (D = 7,850, per-weight decay λ_i = log 1e-3),
// from w = 0 to ||∇_w L_T|| < 1e-10, by the three library solvers side by side in one run:
//   BM_InnerNewton    newton_solve     (dense Hessian + Cholesky per iteration)
//   BM_InnerNewtonCg  newton_cg_solve  (CG on the matrix-free HVP, Eisenstat–Walker forcing)
//   BM_InnerLbfgs     lbfgs_solve      (LBFGSpp, gradients only)
// Dense Newton runs first; its w* is the reference of w_rel_diff = ||w − w*_Newton|| / ||w*_Newton||
// and its time per solve the reference of x_newton_speedup = t(dense Newton) / t(this solver),
// a ratio of two timings from the same process (run the three together: a filter that drops
// BM_InnerNewton leaves the speed-up out and takes w* from an untimed dense solve).
// Each solver runs to ||∇L_T|| < 1e-10 (tol:1e-10, DESIGN.md P1's rule) and, for Newton-CG and
// L-BFGS, to the tolerance at which strong convexity certifies ||w − w*|| ≤ 5e-13·||w*||
// (w_tol:5e-13; ||w − w*|| ≤ ||∇L_T|| / μ, μ = min exp(λ) = 1e-3, ||w*|| from dense Newton):
// what ift-hypergrad does by default, so that its w* matches dense Newton's to 1e-12.
// Counters: iterations, hvps, gradients (evaluations of ∇L_T), grad_norm (final ||∇L_T||),
// converged, w_rel_diff, x_newton_speedup, allocs_per_call.
#include "bench_common.hpp"

#include <optional>

#include "ift/inner.hpp"
#include "ift/problems/regularized.hpp"

namespace ift::bench {
namespace {

constexpr double kTolerance = 1e-10, kWTolerance = 5e-13;

/// The P1 problem at n training rows (validation rows [n, 2n), unused by the inner solve).
struct InnerSetup {
  std::unique_ptr<RegularizedProblem<SoftmaxRegression<double>>> problem;
  Vector<double> lambda;
  std::optional<Vector<double>> newton_w;  // dense Newton's w*, the reference
  double newton_seconds = 0;               // its time per solve when BM_InnerNewton ran

  explicit InnerSetup(Index n) {
    SoftmaxRegression<double> model(785, 10);
    problem = std::make_unique<RegularizedProblem<SoftmaxRegression<double>>>(
        model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
        rows<double>(0, n, true), rows<double>(n, n, true));
    lambda = Vector<double>::Constant(model.num_params(), kLogDecay);
  }
  static InnerSetup& get(Index n) {
    static std::map<Index, std::unique_ptr<InnerSetup>> table;
    auto& slot = table[n];
    if (!slot) slot = std::make_unique<InnerSetup>(n);
    return *slot;
  }
  const Vector<double>& reference() {
    if (!newton_w) {
      Vector<double> w = Vector<double>::Zero(problem->num_params());
      newton_solve<double>(*problem, lambda, w);
      newton_w = std::move(w);
    }
    return *newton_w;
  }
};

enum class Solver { Newton, NewtonCg, Lbfgs };

template <Solver K>
void BM_Inner(benchmark::State& state, Index n, int threads, bool certified) {
  auto& s = InnerSetup::get(n);
  set_threads(threads);
  Vector<double> w;
  InnerResult r;
  double tolerance = kTolerance;
  if (certified) {
    const double mu = std::exp(s.lambda.minCoeff());
    tolerance = kWTolerance * mu * s.reference().norm() / (1 + kWTolerance);
  }
  state.counters["tolerance"] = tolerance;
  const auto solve = [&] {
    w = Vector<double>::Zero(s.problem->num_params());
    if constexpr (K == Solver::Newton) {
      NewtonParams p;
      p.gradient_tolerance = tolerance;
      r = newton_solve<double>(*s.problem, s.lambda, w, p);
    } else if constexpr (K == Solver::NewtonCg) {
      NewtonCgParams p;
      p.gradient_tolerance = tolerance;
      r = newton_cg_solve(*s.problem, s.lambda, w, p);
    } else {
      LbfgsParams p;
      p.gradient_tolerance = tolerance;
      r = lbfgs_solve<double>(*s.problem, s.lambda, w, p);
    }
  };
  // No untimed warm-up call for dense Newton (tens of seconds); the others get measure()'s.
  CallMeter m;
  if constexpr (K != Solver::Newton) solve();
  for (auto _ : state) {
    m.start();
    solve();
    benchmark::ClobberMemory();
    m.stop();
  }
  if constexpr (K == Solver::Newton) {
    s.newton_w = w;
    s.newton_seconds = m.per_call();
  }
  const Vector<double>& ref = s.reference();
  state.counters["iterations"] = static_cast<double>(r.iterations);
  state.counters["hvps"] = static_cast<double>(r.hvps);
  state.counters["gradients"] = static_cast<double>(r.gradients);
  state.counters["grad_norm"] = r.gradient_norm;
  state.counters["converged"] = r.converged ? 1 : 0;
  state.counters["w_rel_diff"] = (w - ref).norm() / ref.norm();
  if (s.newton_seconds > 0) state.counters["x_newton_speedup"] = s.newton_seconds / m.per_call();
  state.counters["allocs_per_call"] =
      static_cast<double>(m.allocs) / static_cast<double>(std::max<long long>(m.calls, 1));
  if (!r.converged) state.SetLabel(r.message);
}

void register_inner(Index n, int threads) {
  const std::string suffix = "/n:" + std::to_string(n) + "/threads:" + std::to_string(threads);
  add("BM_InnerNewton" + suffix + "/tol:1e-10", [=](benchmark::State& st) {
    BM_Inner<Solver::Newton>(st, n, threads, false);
  })->Iterations(1);
  for (const bool certified : {false, true}) {
    const std::string tol = certified ? "/w_tol:5e-13" : "/tol:1e-10";
    add("BM_InnerNewtonCg" + suffix + tol, [=](benchmark::State& st) {
      BM_Inner<Solver::NewtonCg>(st, n, threads, certified);
    })->Iterations(3);
    add("BM_InnerLbfgs" + suffix + tol, [=](benchmark::State& st) {
      BM_Inner<Solver::Lbfgs>(st, n, threads, certified);
    })->Iterations(3);
  }
}

}  // namespace
}  // namespace ift::bench

int main(int argc, char** argv) {
  ift::bench::register_inner(1000, 2);
  return ift::bench::run_main(argc, argv);
}
