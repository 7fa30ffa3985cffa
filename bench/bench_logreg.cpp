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

/// "converged mixed-cholesky 2 steps": what a dense solve did (the benchmarks' label).
template <class S>
std::string dense_label(const DenseSolver<S>& solver, const SolveResult<Vector<S>>& r) {
  return std::string(to_string(r.status)) + " " + to_string(solver.factorization()) +
         (solver.factorization() == DenseFactorization::MixedCholesky
              ? " " + std::to_string(r.iterations) + " steps"
              : "");
}

/// Cholesky factorisation and solve (DenseSolver, its factor storage reused between calls as the
/// exact method's workspace does) of the regularised D × D Hessian, in the precision the exact
/// method picks by default (auto: mixed for double at this D) or in double throughout.
template <class S>
void BM_Cholesky(benchmark::State& state, Index n, int threads, DensePrecision precision) {
  auto& s = Setup<LogRegTag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const Matrix<S>& H = hessian_of<S>(n);
  set_threads(threads);
  static DenseSolver<S> solver;
  DenseParams params;
  params.precision = precision;
  std::string label;
  const CallMeter m = measure(
      state,
      [&] {
        solver.compute(H, params);
        const auto r = solver.solve(s.v);
        benchmark::DoNotOptimize(r.x.data());
        label = dense_label(solver, r);
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, cholesky_flops(), 0, gemm);
  state.SetLabel(label);
}

/// The dense path: regularised Hessian build plus Cholesky solve (what `exact` does), in the
/// precision as BM_Cholesky.
template <class S>
void BM_DensePath(benchmark::State& state, Index n, int threads, DensePrecision precision) {
  auto& s = Setup<LogRegTag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  set_threads(threads);
  s.problem->set_point(s.lambda, s.w);
  static Matrix<S> H;
  static DenseSolver<S> solver;
  DenseParams params;
  params.precision = precision;
  std::string label;
  const CallMeter m = measure(
      state,
      [&] {
        s.problem->hessian(H);
        solver.compute(H, params);
        const auto r = solver.solve(s.v);
        benchmark::DoNotOptimize(r.x.data());
        label = dense_label(solver, r);
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, hessian_flops(n) + cholesky_flops(), 0, gemm);
  // Target (issue): the dense path at >= 50% of the measured GEMM throughput.
  state.counters["meets_target"] =
      (hessian_flops(n) + cholesky_flops()) / m.per_call() * 1e-9 / gemm >= 0.5 ? 1 : 0;
  state.SetLabel(label);
}

/// The regularised Hessian built in float by the problem (capability::FloatCurvature: what the
/// exact method's mixed path factorises for double), against BM_Hessian's double data term.
void BM_HessianFloat(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<LogRegTag, double>::get(n);
  const double gemm = gemm_gflops<float>(threads);
  set_threads(threads);
  s.problem->set_point(s.lambda, s.w);
  static Matrix<float> H;
  const CallMeter m = measure(
      state,
      [&] {
        s.problem->hessian_float(H);
        benchmark::DoNotOptimize(H.data());
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, hessian_flops(n), 0, gemm);
}

/// The exact method's dense part as generic::detail::solve runs it (its workspace reused between
/// calls, as the engine's): for double at this D, H built in float, spotrf, and the refinement's
/// residual by the matrix-free HVP (DenseSolver::compute_mixed); BM_DensePath's counterpart.
void BM_DensePathFloatH(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<LogRegTag, double>::get(n);
  const double gemm = gemm_gflops<double>(threads);
  set_threads(threads);
  s.problem->set_point(s.lambda, s.w);
  static generic::DenseWorkspace<double> workspace;
  const MethodSpec spec;  // exact, --exact-precision auto
  generic::Result<Vector<double>> out;
  std::string label;
  const CallMeter m = measure(
      state,
      [&] {
        generic::detail::solve(*s.problem, spec, s.v, out, &workspace, nullptr);
        benchmark::DoNotOptimize(out.v.data());
        label = std::string(to_string(out.status)) + " " +
                to_string(workspace.solver.factorization()) + " " +
                std::to_string(out.iterations) + " steps " + std::to_string(out.hvps) + " hvps";
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, hessian_flops(n) + cholesky_flops(), 0, gemm);
  state.SetLabel(label);
}

/// compute + solve of a random SPD matrix of size D (eigenvalues geometric in [1, 1e3], a
/// P1-like conditioning), mixed against double: where the mixed path starts to pay
/// (DenseParams::mixed_min_size). Counter x_double = this precision's time / double's, timed
/// interleaved in the same run.
void BM_DenseSize(benchmark::State& state, Index D, int threads, DensePrecision precision) {
  static std::map<Index, Matrix<double>> table;
  if (!table.count(D)) {
    Matrix<double> M = Matrix<double>::Random(D, D);
    const Eigen::HouseholderQR<Matrix<double>> qr(M);
    const Matrix<double> Q = qr.householderQ() * Matrix<double>::Identity(D, D);
    Vector<double> e(D);
    for (Index i = 0; i < D; ++i) e[i] = std::pow(1e3, double(i) / double(std::max<Index>(D - 1, 1)));
    table[D] = Q * e.asDiagonal() * Q.transpose();
  }
  const Matrix<double>& H = table[D];
  const Vector<double> g = Vector<double>::Ones(D);
  set_threads(threads);
  DenseSolver<double> solver, reference;
  DenseParams params, full;
  params.precision = precision;
  full.precision = DensePrecision::Double;
  std::string label;
  const CallMeter m = measure(
      state,
      [&] {
        solver.compute(H, params);
        const auto r = solver.solve(g);
        benchmark::DoNotOptimize(r.x.data());
        label = dense_label(solver, r);
      },
      [&] {
        reference.compute(H, full);
        const auto r = reference.solve(g);
        benchmark::DoNotOptimize(r.x.data());
      });
  m.report(state, std::pow(double(D), 3) / 3.0, 0, gemm_gflops<double>(threads), "x_double");
  state.SetLabel(label);
}

/// The kernels before issue 15, kept as the in-run reference of the fused row-block passes: two
/// thin GEMMs with the whole X (X V, the per-row map, Xᵀ R), so X is read twice. Same formulas as
/// SoftmaxRegression's (tests/test_fused_kernels.cpp checks those against them).
template <class S>
struct TwoGemm {
  Matrix<S> z, probs;
  /// Mean cross-entropy's gradient at w (forward GEMM, softmax, backward GEMM).
  void gradient(const Dataset<S>& data, const Vector<S>& w, Vector<S>& out) {
    const Index n = data.size(), F = data.num_features(), C = w.size() / F;
    z.noalias() = data.X * Eigen::Map<const Matrix<S>>(w.data(), F, C);
    probs.resize(n, C);
#pragma omp parallel for schedule(static) if (n * C > 20000)
    for (Index i = 0; i < n; ++i) {
      const S zmax = z.row(i).maxCoeff();
      S sum = 0;
      for (Index c = 0; c < C; ++c) sum += (z(i, c) = std::exp(z(i, c) - zmax));
      for (Index c = 0; c < C; ++c) z(i, c) = (z(i, c) / sum - (c == data.labels(i))) / S(n);
    }
    out.resize(w.size());
    Eigen::Map<Matrix<S>>(out.data(), F, C).noalias() = data.X.transpose() * z;
  }
  /// H V for the m columns of V (m = 1: one HVP) at the probabilities P.
  void hvp(const Dataset<S>& data, const Matrix<S>& P, const Matrix<S>& V, Matrix<S>& out) {
    const Index n = data.size(), F = data.num_features(), C = P.cols(), m = V.cols();
    z.noalias() = data.X * Eigen::Map<const Matrix<S>>(V.data(), F, C * m);
    for (Index j = 0; j < m; ++j)
      for (Index i = 0; i < n; ++i) {
        S mean = 0;
        for (Index c = 0; c < C; ++c) mean += P(i, c) * z(i, j * C + c);
        for (Index c = 0; c < C; ++c) z(i, j * C + c) = P(i, c) * (z(i, j * C + c) - mean) / S(n);
      }
    out.resize(V.rows(), m);
    Eigen::Map<Matrix<S>>(out.data(), F, C * m).noalias() = data.X.transpose() * z;
  }
};

/// The fused pass against the two-GEMM kernels timed interleaved in the same run (counter
/// x_two_gemm = fused time / two-GEMM time; < 1: fusion wins): kind 0 the gradient (evaluate
/// with gradient), 1 one HVP from the cached forward pass, 2 a block of k = 20 HVPs.
template <class S>
void BM_FusedVsTwoGemm(benchmark::State& state, Index n, int kind, int threads) {
  auto& s = Setup<LogRegTag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const Index k = kind == 2 ? 20 : 1;
  const double bytes = LogRegTag::bytes_per_row<S>() * double(n);
  const double stream = stream_gbps_for(bytes, threads);
  set_threads(threads);
  s.model.evaluate(*s.train, s.w, s.cache, nullptr);
  Matrix<S> V(kD, k), out;
  for (Index j = 0; j < k; ++j) V.col(j) = s.v.reverse() * S(j + 1);
  V.col(0) = s.v;
  TwoGemm<S> old;
  Vector<S> g;
  const CallMeter m = measure(
      state,
      [&] {
        if (kind == 0) {
          s.evaluate_gradient();
        } else if (kind == 1) {
          s.model.hvp(*s.train, s.w, s.cache, s.v, s.out);
          benchmark::DoNotOptimize(s.out.data());
        } else {
          s.model.hvp_block(*s.train, s.w, s.cache, V, out);
          benchmark::DoNotOptimize(out.data());
        }
      },
      [&] {
        if (kind == 0) {
          old.gradient(*s.train, s.w, g);
          benchmark::DoNotOptimize(g.data());
        } else {
          old.hvp(*s.train, s.cache.probs, kind == 1 ? Matrix<S>(s.v) : V, out);
          benchmark::DoNotOptimize(out.data());
        }
      });
  m.report(state, LogRegTag::hvp_flops_per_row() * double(n) * double(k), bytes, gemm,
           "x_two_gemm");
  report_bandwidth(state, bytes, stream, m);
}

template <class S>
void register_dense(Index n) {
  const std::string ty = std::string("<") + type_name<S>() + ">";
  for (int t : {1, 2}) {
    const std::string suffix = ty + "/n:" + std::to_string(n) + "/threads:" + std::to_string(t);
    add("BM_Hessian_LogReg" + suffix, [=](benchmark::State& st) { BM_Hessian<S>(st, n, t); });
    // The default precision (auto: mixed for double at D = 7,850) and, for double, the double
    // path beside it as the in-run reference.
    add("BM_Cholesky_LogReg" + suffix, [=](benchmark::State& st) {
      BM_Cholesky<S>(st, n, t, DensePrecision::Auto);
    });
    add("BM_DensePath_LogReg" + suffix, [=](benchmark::State& st) {
      BM_DensePath<S>(st, n, t, DensePrecision::Auto);
    });
    add("BM_Exact_LogReg" + suffix, [=](benchmark::State& st) {
      BM_Hypergradient<LogRegTag, S>(st, n, Method::Exact, 0, t);
    });
    if constexpr (std::is_same_v<S, double>) {
      add("BM_CholeskyDouble_LogReg" + suffix, [=](benchmark::State& st) {
        BM_Cholesky<S>(st, n, t, DensePrecision::Double);
      });
      add("BM_DensePathDouble_LogReg" + suffix, [=](benchmark::State& st) {
        BM_DensePath<S>(st, n, t, DensePrecision::Double);
      });
      add("BM_HessianFloat_LogReg" + suffix,
          [=](benchmark::State& st) { BM_HessianFloat(st, n, t); });
      add("BM_DensePathFloatH_LogReg" + suffix,
          [=](benchmark::State& st) { BM_DensePathFloatH(st, n, t); });
      add("BM_ExactDouble_LogReg" + suffix, [=](benchmark::State& st) {
        BM_Hypergradient<LogRegTag, S>(st, n, Method::Exact, 0, t, Point::Init,
                                       DensePrecision::Double);
      });
    }
  }
}

void register_dense_sizes() {
  for (Index D : {250, 500, 1000, 1500, 2000, 3000})
    for (int t : {1, 2})
      for (DensePrecision p : {DensePrecision::Mixed, DensePrecision::Double})
        add("BM_DenseSize<double>/D:" + std::to_string(D) + "/precision:" + to_string(p) +
                "/threads:" + std::to_string(t),
            [=](benchmark::State& st) { BM_DenseSize(st, D, t, p); });
}

}  // namespace
}  // namespace ift::bench

int main(int argc, char** argv) {
  using namespace ift::bench;
  register_gemm();
  register_stream();
  const std::vector<ift::Index> sizes{1000, 10000}, ks{1, 5, 20};
  for (ift::Index n : sizes)
    for (int kind : {0, 1, 2})
      for (int t : {1, 2}) {
        const char* what[] = {"Gradient", "Hvp", "HvpBlock20"};
        const std::string suffix =
            "_LogReg/n:" + std::to_string(n) + "/threads:" + std::to_string(t);
        ift::bench::add(std::string("BM_FusedVsTwoGemm") + what[kind] + "<double>" + suffix,
                        [=](benchmark::State& st) {
                          ift::bench::BM_FusedVsTwoGemm<double>(st, n, kind, t);
                        });
        ift::bench::add(std::string("BM_FusedVsTwoGemm") + what[kind] + "<float>" + suffix,
                        [=](benchmark::State& st) {
                          ift::bench::BM_FusedVsTwoGemm<float>(st, n, kind, t);
                        });
      }
  // The hyper-step also at P2's shape (the main job: 3,500 training and 3,500 validation rows),
  // where X_train and X_val together (44 MB in double) no longer fit the 32 MB L3 beside each
  // other, as they do at n = 1,000 (bench/README.md, "The hyper-step at three sizes").
  const std::vector<ift::Index> step_sizes{1000, 3500, 10000};
  register_model<LogRegTag, double>(sizes, ks, step_sizes);
  register_model<LogRegTag, float>(sizes, ks, step_sizes);
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
  register_dense_sizes();
  return run_main(argc, argv);
}
