// P1 logistic regression (SoftmaxRegression, D = 7,850, per-weight decay) on Fashion-MNIST rows:
// gradient, HVPs, Gauss-Newton and mixed products, the dense path (Kronecker-block Hessian build,
// Cholesky), and each method's hypergradient for k in {1, 5, 20}, in double and float, on 1 and
// 2 threads. Counters are relative to the GEMM throughput and one gradient measured in this run
// (bench_common.hpp).
#include "bench_common.hpp"

#include "ift/linalg/dense_solver.hpp"

namespace ift::bench {
namespace {

constexpr Index kC = 10, kF = 785, kD = kC * kF;

/// Unique flops of the Hessian build: C(C+1)/2 symmetric F × F blocks, each Σ_i s_i x_i x_iᵀ
/// (F(F+1)/2 multiply-adds per row).
double hessian_flops(Index n) {
  return double(kC * (kC + 1) / 2) * double(kF) * double(kF + 1) * double(n);
}
double cholesky_flops() { return std::pow(double(kD), 3) / 3.0; }

/// The regularised Hessian of L_T at the setup's point, built once per (S, n) for the Cholesky
/// benchmark (493 MB in double).
template <class S>
const Matrix<S>& hessian_of(Index n) {
  static std::map<Index, Matrix<S>> table;
  auto it = table.find(n);
  if (it != table.end()) return it->second;
  auto& s = Setup<LogRegTag, S>::get(n);
  s.problem->set_point(s.lambda, s.w);
  Matrix<S>& H = table[n];
  s.problem->hessian(H);
  return H;
}

/// Dense Hessian of the data term (model.hessian, Kronecker-block formula).
template <class S>
void BM_Hessian(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<LogRegTag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  set_threads(threads);
  s.model.evaluate(*s.train, s.w, s.cache, nullptr);
  static Matrix<S> H;
  const CallMeter m = measure(
      state,
      [&] {
        s.model.hessian(*s.train, s.w, s.cache, H);
        benchmark::DoNotOptimize(H.data());
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, hessian_flops(n), 0, gemm);
}

/// Cholesky factorisation and solve (DenseSolver, its factor storage reused between calls as the
/// exact method's workspace does) of the regularised D × D Hessian.
template <class S>
void BM_Cholesky(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<LogRegTag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const Matrix<S>& H = hessian_of<S>(n);
  set_threads(threads);
  static DenseSolver<S> solver;
  std::string status;
  const CallMeter m = measure(
      state,
      [&] {
        solver.compute(H);
        const auto r = solver.solve(s.v);
        benchmark::DoNotOptimize(r.x.data());
        status = to_string(r.status);
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, cholesky_flops(), 0, gemm);
  state.SetLabel(status);
}

/// The dense path: regularised Hessian build plus Cholesky solve (what `exact` does).
template <class S>
void BM_DensePath(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<LogRegTag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  set_threads(threads);
  s.problem->set_point(s.lambda, s.w);
  static Matrix<S> H;
  static DenseSolver<S> solver;
  const CallMeter m = measure(
      state,
      [&] {
        s.problem->hessian(H);
        solver.compute(H);
        const auto r = solver.solve(s.v);
        benchmark::DoNotOptimize(r.x.data());
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, hessian_flops(n) + cholesky_flops(), 0, gemm);
  // Target (issue): the dense path at >= 50% of the measured GEMM throughput.
  state.counters["meets_target"] =
      (hessian_flops(n) + cholesky_flops()) / m.per_call() * 1e-9 / gemm >= 0.5 ? 1 : 0;
}

template <class S>
void register_dense(Index n) {
  const std::string ty = std::string("<") + type_name<S>() + ">";
  for (int t : {1, 2}) {
    const std::string suffix = ty + "/n:" + std::to_string(n) + "/threads:" + std::to_string(t);
    add("BM_Hessian_LogReg" + suffix, [=](benchmark::State& st) { BM_Hessian<S>(st, n, t); });
    add("BM_Cholesky_LogReg" + suffix, [=](benchmark::State& st) { BM_Cholesky<S>(st, n, t); });
    add("BM_DensePath_LogReg" + suffix, [=](benchmark::State& st) { BM_DensePath<S>(st, n, t); });
    add("BM_Exact_LogReg" + suffix, [=](benchmark::State& st) {
      BM_Hypergradient<LogRegTag, S>(st, n, Method::Exact, 0, t);
    });
  }
}

}  // namespace
}  // namespace ift::bench

int main(int argc, char** argv) {
  using namespace ift::bench;
  register_gemm();
  const std::vector<ift::Index> sizes{1000, 10000}, ks{1, 5, 20};
  register_model<LogRegTag, double>(sizes, ks, /*algorithm_step=*/true);
  register_model<LogRegTag, float>(sizes, ks, true);
  for (ift::Index n : sizes)
    for (ift::Index k : {20, 50, 200})
      for (int t : {1, 2}) {
        const std::string suffix = "/n:" + std::to_string(n) + "/k:" + std::to_string(k) +
                                   "/threads:" + std::to_string(t);
        ift::bench::add("BM_HvpBlock_LogReg<double>" + suffix, [=](benchmark::State& st) {
          ift::bench::BM_HvpBlock<ift::bench::LogRegTag, double>(st, n, k, t);
        });
        ift::bench::add("BM_HvpBlock_LogReg<float>" + suffix, [=](benchmark::State& st) {
          ift::bench::BM_HvpBlock<ift::bench::LogRegTag, float>(st, n, k, t);
        });
      }
  for (ift::Index n : sizes) {
    register_dense<double>(n);
    register_dense<float>(n);
  }
  return run_main(argc, argv);
}
