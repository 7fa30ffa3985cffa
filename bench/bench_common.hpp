// Shared fixtures of the ift benchmark suites (bench_logreg.cpp, bench_mlp.cpp).
//
// Every figure is reported against two yardsticks measured in the same process:
//   - the machine's own GEMM throughput (Eigen, square C = A B, per scalar type and thread
//     count): BM_Gemm sets it, or it is measured lazily before the first benchmark that needs it;
//   - one gradient evaluation (evaluate with gradient) of the same model on the same data, same
//     scalar type and thread count, timed interleaved with the measured calls (CallMeter).
// So a counter such as x_gradient = 3.1 is a ratio taken within one run, from calls made side by
// side, which is what matters on a shared, noisy machine.
//
// Data: Fashion-MNIST (DESIGN.md §2 P1 rules: x = pixel/255, train file rows), loaded once per
// process into a static pool of 20,000 rows; every data set the benchmarks use is sliced from it
// once (static) and shared by pointer: no copy of a data set per iteration.
//
// Timing, allocation counting and the GEMM yardstick: bench_meter.hpp.
#pragma once

#include <cctype>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench_meter.hpp"
#include "ift/bilevel.hpp"
#include "ift/core.hpp"
#include "ift/data/fashion_mnist.hpp"
#include "ift/dataset.hpp"
#include "ift/hyper/weight_decay.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/nystrom.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problem.hpp"
#include "ift/problems/regularized.hpp"

namespace ift::bench {

// ---- Data ---------------------------------------------------------------------------------------
constexpr Index kPoolRows = 20000;

/// The first kPoolRows rows of the Fashion-MNIST train file, in double, without bias: loaded
/// once per process.
inline const Dataset<double>& pool() {
  static const Dataset<double> data = [] {
    auto splits = load_fashion_mnist<double>(kPoolRows, 0, 0, /*append_bias=*/false);
    return std::move(splits.train);
  }();
  return data;
}

/// Rows [begin, begin + count) of the pool as a shared, immutable data set of scalar S
/// (with the bias column when `bias`); built once per (S, rows, bias) and kept for the process.
template <class S>
std::shared_ptr<const Dataset<S>> rows(Index begin, Index count, bool bias) {
  static std::map<std::tuple<Index, Index, bool>, std::shared_ptr<const Dataset<S>>> cache;
  auto& slot = cache[{begin, count, bias}];
  if (!slot) {
    auto d = std::make_shared<Dataset<S>>(pool().slice(begin, count).template cast<S>());
    if (bias) d->append_bias_column();
    slot = std::move(d);
  }
  return slot;
}

// ---- Models -------------------------------------------------------------------------------------
/// P1: multinomial logistic regression on 785 features (bias appended), 10 classes: D = 7,850.
struct LogRegTag {
  static constexpr const char* name = "LogReg";
  static constexpr bool bias = true;
  static constexpr bool has_trained_point = false;  // convex: one point is representative
  template <class S>
  using Model = SoftmaxRegression<S>;
  template <class S>
  static Model<S> make() {
    return Model<S>(785, 10);
  }
  /// Unique multiply-adds ×2 per example of one gradient / HVP (two n×F×C products).
  static double gradient_flops_per_row() { return 4.0 * 785 * 10; }
  static double hvp_flops_per_row() { return 4.0 * 785 * 10; }
  static double gauss_newton_flops_per_row() { return 4.0 * 785 * 10; }
  /// X (n × 785) is read once per gradient / HVP (the fused row-block pass, issue 15; the two
  /// thin GEMMs before it read it twice).
  template <class S>
  static double bytes_per_row() {
    return 1.0 * 785 * sizeof(S);
  }
};

/// Σ in·out over the layers (from the second layer on when `upper_only`).
inline double sum_in_out(const std::vector<Index>& widths, bool upper_only) {
  double s = 0;
  for (std::size_t l = upper_only ? 1 : 0; l + 1 < widths.size(); ++l)
    s += static_cast<double>(widths[l]) * static_cast<double>(widths[l + 1]);
  return s;
}

template <int Kind>
struct MlpTag {
  static constexpr const char* name = Kind == 0 ? "Mlp784x256x10" : "Mlp784x1000x1000x10";
  static constexpr bool bias = false;
  static constexpr bool has_trained_point = true;  // solver benchmarks at /point:init and /point:trained
  template <class S>
  using Model = Mlp<S>;
  static std::vector<Index> widths() {
    return Kind == 0 ? std::vector<Index>{784, 256, 10} : std::vector<Index>{784, 1000, 1000, 10};
  }
  template <class S>
  static Model<S> make() {
    return Model<S>(widths(), Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  }
  // In units of 2·n·in·out per layer (see mlp.cpp): gradient = forward (1) + weight gradient (1)
  // + input gradient for layers above the first (1); HVP = R-forward (1 + 1 above the first) +
  // R-backward (1 + 3 above the first); Gauss-Newton = (1 + 1 above the first) twice.
  static double all() { return sum_in_out(widths(), false); }
  static double upper() { return sum_in_out(widths(), true); }
  static double gradient_flops_per_row() { return 2.0 * (2 * all() + upper()); }
  static double hvp_flops_per_row() { return 2.0 * (2 * all() + 4 * upper()); }
  static double gauss_newton_flops_per_row() { return 2.0 * (2 * all() + 2 * upper()); }
  template <class S>
  static double bytes_per_row() {
    return 0;  // compute-bound GEMMs
  }
};
using MlpSmallTag = MlpTag<0>;
using MlpDeepTag = MlpTag<1>;

/// Log weight decay everywhere: λ_i = log 1e-3 (DESIGN.md §5 P1 point).
constexpr double kLogDecay = -6.907755278982137;

/// Where the solver benchmarks of a non-convex model are evaluated (issue 15): the Glorot
/// initialisation (where ∇²L_T is indefinite and neumann(20) diverges) or a trained point.
enum class Point { Init = 0, Trained = 1 };
inline const char* to_string(Point p) { return p == Point::Init ? "init" : "trained"; }

/// The trained point: L-BFGS (library's lbfgs_solve, memory 10) on L_T(w; λ = log 1e-3 per
/// weight) over the n training rows, in double, from the Glorot weights of seed 1, until
/// ||∇L_T|| < kTrainTolerance or kTrainIterations iterations. Computed once per (tag, n) and
/// process and kept on disk beside the binary (bench-cache/, keyed by model, n, seed and the
/// stopping rule) so later runs skip it; float set-ups round it to float.
constexpr Index kTrainIterations = 300;
constexpr double kTrainTolerance = 1e-6;

template <class Tag>
const Vector<double>& trained_weights(Index n);

/// One model on train rows [0, n) and validation rows [n, 2n), per-weight decay, at a fixed w
/// (small seeded random weights for logistic regression, Glorot weights for MLPs, or the trained
/// point). Built once per (tag, S, n, point) and kept for the process.
template <class Tag, class S>
struct Setup {
  using Model = typename Tag::template Model<S>;
  Index n;
  Model model;
  std::shared_ptr<const Dataset<S>> train, val;
  WeightDecay<S> decay;
  Vector<S> lambda, w, gradient, out, v;
  typename Model::Cache cache;
  std::unique_ptr<RegularizedProblem<Model>> problem;
  std::map<int, double> alpha;             // 1/|λ_max| per thread count (same value, cached once)

  explicit Setup(Index rows_n, Point point = Point::Init)
      : n(rows_n), model(Tag::template make<S>()), train(rows<S>(0, rows_n, Tag::bias)),
        val(rows<S>(rows_n, rows_n, Tag::bias)),
        decay(DecayKind::PerWeight, model.num_params()) {
    const Index D = model.num_params();
    lambda = Vector<S>::Constant(D, static_cast<S>(kLogDecay));
    if constexpr (Tag::bias) {
      w = Vector<S>::Random(D) * S(0.01);
    } else {
      w = model.initial_weights(1);
    }
    if constexpr (Tag::has_trained_point) {
      if (point == Point::Trained) w = trained_weights<Tag>(rows_n).template cast<S>();
    }
    v = Vector<S>::Random(D);
    problem = std::make_unique<RegularizedProblem<Model>>(model, decay, train, val);
    problem->set_point(lambda, w);
  }

  static Setup& get(Index n, Point point = Point::Init) {
    static std::map<std::pair<Index, Point>, std::unique_ptr<Setup>> table;
    auto& slot = table[{n, point}];
    if (!slot) slot = std::make_unique<Setup>(n, point);
    return *slot;
  }

  void evaluate_gradient() {
    benchmark::DoNotOptimize(model.evaluate(*train, w, cache, &gradient));
  }

  /// α = 1/|λ_max| of ∇²L_T by 30 power iterations (a fixed step, so every Neumann or unrolled
  /// call does exactly k HVPs).
  double neumann_alpha() {
    if (!alpha.empty()) return alpha.begin()->second;
    problem->set_point(lambda, w);
    FunctionOperator<Vector<S>> op(model.num_params(),
                                   [this](const Vector<S>& x, Vector<S>& y) { problem->hvp(x, y); });
    PowerIterationParams p;
    p.max_iterations = 30;
    p.tolerance = 1e-3;
    const PowerIterationResult r = power_iteration(op, w, p);
    const double a = r.eigenvalue != 0 && std::isfinite(r.eigenvalue) ? 1.0 / std::abs(r.eigenvalue)
                                                                       : 1e-3;
    alpha[0] = a;
    return a;
  }
};

template <class Tag>
const Vector<double>& trained_weights(Index n) {
  static std::map<Index, Vector<double>> table;
  if (auto it = table.find(n); it != table.end()) return it->second;
  Setup<Tag, double>& base = Setup<Tag, double>::get(n, Point::Init);
  Vector<double> w = base.w;
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::read_symlink("/proc/self/exe", ec).parent_path() / "bench-cache";
  const fs::path file = dir / (std::string(Tag::name) + "_n" + std::to_string(n) + "_seed1_lbfgs" +
                               std::to_string(kTrainIterations) + "_tol1e-6.bin");
  bool loaded = false;
  if (!ec) {
    std::ifstream in(file, std::ios::binary);
    Index size = -1;
    if (in.read(reinterpret_cast<char*>(&size), sizeof size) && size == w.size() &&
        in.read(reinterpret_cast<char*>(w.data()), std::streamsize(sizeof(double) * size)))
      loaded = true;
  }
  if (!loaded) {
    const auto t0 = std::chrono::steady_clock::now();
    RegularizedProblem<typename Tag::template Model<double>> problem(base.model, base.decay,
                                                                     base.train, base.val);
    LbfgsParams p;
    p.max_iterations = kTrainIterations;
    p.gradient_tolerance = kTrainTolerance;
    const InnerResult r = lbfgs_solve<double>(problem, base.lambda, w, p);
    std::fprintf(stderr,
                 "bench: trained point of %s on %lld rows: L-BFGS %lld iterations, L_T = %.6g, "
                 "||grad L_T|| = %.3g in %.3g s\n",
                 Tag::name, static_cast<long long>(n), static_cast<long long>(r.iterations),
                 r.loss, r.gradient_norm,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!ec) {
      fs::create_directories(dir, ec);
      std::ofstream out(file, std::ios::binary);
      const Index size = w.size();
      out.write(reinterpret_cast<const char*>(&size), sizeof size);
      out.write(reinterpret_cast<const char*>(w.data()), std::streamsize(sizeof(double) * size));
    }
  }
  return table[n] = std::move(w);
}

/// bw_fraction (issue 15): the call's bytes per second over the STREAM copy yardstick of the same
/// size class (in-cache below 16 MB, bench_meter.hpp) on the same thread count. Only for kernels
/// with a byte count (Tag::bytes_per_row > 0: logistic regression's passes over X).
inline void report_bandwidth(benchmark::State& state, double bytes, double stream,
                             const CallMeter& m) {
  if (bytes > 0 && stream > 0) state.counters["bw_fraction"] = bytes / m.per_call() * 1e-9 / stream;
}

// ---- Benchmark bodies shared by the suites --------------------------------------------------------

/// One gradient: evaluate(data, w, cache, &gradient) (forward, loss, backward). Against its own
/// interleaved copy, x_gradient is the noise level of every other ratio of the run.
template <class Tag, class S>
void BM_Gradient(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double bytes = Tag::template bytes_per_row<S>() * double(n);
  const double stream = bytes > 0 ? stream_gbps_for(bytes, threads) : 0;
  set_threads(threads);
  const auto gradient = [&] { s.evaluate_gradient(); };
  const CallMeter m = measure(state, gradient, gradient);
  m.report(state, Tag::gradient_flops_per_row() * double(n), bytes, gemm);
  report_bandwidth(state, bytes, stream, m);
}

/// HVP from scratch (evaluate without gradient, then hvp) or with the forward pass cached
/// (hvp only, the cache filled by the reference gradient at the same w).
template <class Tag, class S>
void BM_Hvp(benchmark::State& state, Index n, int threads, bool from_scratch) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double bytes = Tag::template bytes_per_row<S>() * double(n);
  const double stream = bytes > 0 && !from_scratch ? stream_gbps_for(bytes, threads) : 0;
  set_threads(threads);
  s.model.evaluate(*s.train, s.w, s.cache, nullptr);
  const CallMeter m = measure(
      state,
      [&] {
        if (from_scratch) benchmark::DoNotOptimize(s.model.evaluate(*s.train, s.w, s.cache, nullptr));
        s.model.hvp(*s.train, s.w, s.cache, s.v, s.out);
        benchmark::DoNotOptimize(s.out.data());
      },
      [&] { s.evaluate_gradient(); });
  // From scratch adds a forward pass (about half a gradient's flops for logistic regression).
  const double flops = Tag::hvp_flops_per_row() * double(n);
  m.report(state, from_scratch ? 0 : flops, from_scratch ? 0 : bytes, gemm);
  report_bandwidth(state, bytes, stream, m);
  state.counters["hvps"] = 1;
}

/// Gauss-Newton product Jᵀ H_out J v from the cached forward pass.
template <class Tag, class S>
void BM_GaussNewton(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double bytes = Tag::template bytes_per_row<S>() * double(n);
  const double stream = bytes > 0 ? stream_gbps_for(bytes, threads) : 0;
  set_threads(threads);
  s.model.evaluate(*s.train, s.w, s.cache, nullptr);
  const CallMeter m = measure(
      state,
      [&] {
        s.model.gauss_newton_product(*s.train, s.w, s.cache, s.v, s.out);
        benchmark::DoNotOptimize(s.out.data());
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, Tag::gauss_newton_flops_per_row() * double(n), bytes, gemm);
  report_bandwidth(state, bytes, stream, m);
}

/// Mixed-partial product vᵀ ∂²L_T/∂w∂λᵀ (per-weight decay: elementwise, memory-bound).
template <class Tag, class S>
void BM_MixedProduct(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  set_threads(threads);
  s.problem->set_point(s.lambda, s.w);
  const CallMeter m = measure(
      state,
      [&] {
        s.problem->mixed_product(s.v, s.out);
        benchmark::DoNotOptimize(s.out.data());
      },
      [&] { s.evaluate_gradient(); });
  const double D = double(s.model.num_params());
  m.report(state, 0, 4.0 * D * sizeof(S), gemm);  // reads v, λ, w; writes out
}

/// One hypergradient at a new point: set_point (train loss and the forward/backward cache the
/// curvature products reuse) plus HypergradientEngine::compute (validation gradient, the solve,
/// the mixed product). Neumann and unrolled use a fixed α = 1/|λ_max| so that each call does
/// exactly k HVPs.
template <class Tag, class S>
void BM_Hypergradient(benchmark::State& state, Index n, Method method, Index k, int threads,
                      Point point = Point::Init,
                      DensePrecision exact_precision = DensePrecision::Auto,
                      bool cg_reorthogonalize = true) {
  auto& s = Setup<Tag, S>::get(n, point);
  const double gemm = gemm_gflops<S>(threads);
  MethodSpec spec;
  spec.method = method;
  spec.steps = k;
  spec.exact.precision = exact_precision;
  spec.cg.reorthogonalize = cg_reorthogonalize;
  if (method == Method::Neumann || method == Method::Unrolled) spec.neumann.alpha = s.neumann_alpha();
  if (method == Method::Kfac) spec.damping = 1e-3;
  HypergradientEngine<S> engine(spec);
  set_threads(threads);
  Index hvps = 0;
  std::string status;
  const CallMeter m = measure(
      state,
      [&] {
        s.problem->set_point(s.lambda, s.w);
        HypergradientResult<S> r = engine.compute(*s.problem);
        benchmark::DoNotOptimize(r.hypergradient.data());
        hvps = r.hvps;
        status = to_string(r.status);
      },
      [&] { s.evaluate_gradient(); });
  m.report(state, 0, 0, gemm);
  state.counters["hvps"] = double(hvps);
  if (method == Method::Cg || method == Method::Neumann) {
    // Target (issue): a k-step hypergradient within (k + 2) gradients.
    state.counters["target_x"] = double(k + 2);
    state.counters["meets_target"] = m.ratio() <= double(k + 2) ? 1 : 0;
  }
  state.SetLabel(status);
}

/// Algorithm 2's hyper-step through the library's one loop (ift/generic/bilevel.hpp): N = 5
/// full-batch SGD steps on the n training rows, a neumann(5) hypergradient against the n
/// validation rows, one SGD step on λ (no metrics: the records' losses are not timed). The
/// reference is the loop's inner phase alone: the same 5 SGD steps (warm-up steps of a loop
/// with no hyper-step). w and λ carry over from call to call.
/// Each of the two runs on its own problem (the same model and data, its own forward cache) and
/// its own (w, λ), so that each call continues its own run in its steady state: a hyper-step's
/// first inner step starts at the previous hypergradient's point (only λ moved), whose forward
/// pass and data gradient the problem keeps (RegularizedProblem::set_point), while 5 plain inner
/// steps pay 5 passes. Sharing one problem and one w, as before 2026-12-01, handed that free
/// pass to the reference instead: it started where the hyper-step had stopped (1 of its 20
/// passes free), and the hyper-step where the reference had stopped (a new point), which
/// overstated x_inner_steps by about 0.13 where a pass is most of the cost (bench/README).
/// `variant` kWarm: the hypergradient is neumann+warm with one HVP (SOBA, docs/methods.md), and a
/// call runs kWarmSteps hyper-steps in one loop so that the solver state (the previous v) carries
/// over as in a real run; the reference is then kWarmSteps × 5 inner steps, so x_inner_steps is
/// still per hyper-step. kSoba: the same with that HVP on a fresh minibatch of n/4 training rows
/// (neumann+fresh+warm: stochastic SOBA).
template <class Tag, class S>
struct StepSetup {
  using Model = typename Tag::template Model<S>;
  static constexpr int kInnerSteps = 5;
  static constexpr int kWarmSteps = 4;
  enum Variant { kCold = 0, kWarm = 1, kSoba = 2 };
  Vector<S> lambda, w;          // the hyper-step run's
  Vector<S> ref_lambda, ref_w;  // the inner-steps run's
  std::unique_ptr<RegularizedProblem<Model>> problem, ref_problem;
  std::unique_ptr<BilevelLoop<S>> hyper_loop, inner_loop;
  int steps_per_call = 1;

  explicit StepSetup(Index rows_n, int variant = kCold) {
    auto& base = Setup<Tag, S>::get(rows_n);  // same model and rows: reuse its α
    lambda = base.lambda;
    w = base.w;
    ref_lambda = lambda;
    ref_w = w;
    problem = std::make_unique<RegularizedProblem<Model>>(base.model, base.decay, base.train,
                                                          base.val);
    ref_problem = std::make_unique<RegularizedProblem<Model>>(base.model, base.decay, base.train,
                                                              base.val);
    BilevelParams p;
    p.method.method = Method::Neumann;
    p.method.steps = 5;
    p.method.neumann.alpha = base.neumann_alpha();
    p.inner = {OptimizerKind::Sgd, 0.05};
    p.outer = {OptimizerKind::Sgd, 0.01};
    p.record_metrics = false;
    if (variant != kCold) {
      p.method.steps = 1;
      p.method.warm_start = true;
      steps_per_call = kWarmSteps;
    }
    if (variant == kSoba) {
      p.method.sampling = CurvatureSampling::Fresh;
      p.method.curvature_batch = std::max<Index>(1, rows_n / 4);
    }
    p.hyper_steps = steps_per_call;
    p.inner_steps = kInnerSteps;
    hyper_loop = std::make_unique<BilevelLoop<S>>(p);
    p.hyper_steps = 0;
    p.warmup_steps = kInnerSteps * steps_per_call;
    inner_loop = std::make_unique<BilevelLoop<S>>(p);
  }
  static StepSetup& get(Index n, int variant = kCold) {
    static std::map<std::pair<Index, int>, std::unique_ptr<StepSetup>> table;
    auto& slot = table[{n, variant}];
    if (!slot) slot = std::make_unique<StepSetup>(n, variant);
    return *slot;
  }
  void inner_steps() { ref_w = inner_loop->run(*ref_problem, ref_w, ref_lambda).w; }
  /// HVPs per hyper-step.
  double hyper_step() {
    auto r = hyper_loop->run(*problem, w, lambda);
    w = std::move(r.w);
    lambda = std::move(r.lambda);
    Index hvps = 0;
    for (const auto& rec : r.records) hvps += rec.hvps;
    return double(hvps) / double(r.records.size());
  }
};

/// `hyper`: one Algorithm-2 hyper-step; otherwise the 5 inner SGD steps alone. x_inner_steps is
/// the time per call over 5 inner steps timed interleaved with it (CallMeter). `warm`: the
/// SOBA-style hyper-step (StepSetup's variant), target x_inner_steps <= 1.5 (issue 11).
template <class Tag, class S>
void BM_AlgorithmStep(benchmark::State& state, Index n, int threads, bool hyper,
                      int variant = StepSetup<Tag, S>::kCold) {
  const bool warm = variant != StepSetup<Tag, S>::kCold;
  const double gemm = gemm_gflops<S>(threads);
  auto& s = StepSetup<Tag, S>::get(n, variant);
  set_threads(threads);
  double hvps = 0;
  const CallMeter m = measure(
      state,
      [&] {
        if (hyper)
          hvps = s.hyper_step();
        else
          s.inner_steps();
        benchmark::DoNotOptimize(s.w.data());
      },
      [&] { s.inner_steps(); });
  m.report(state, 0, 0, gemm, "x_inner_steps");
  if (hyper) {
    state.counters["hvps"] = hvps;
    state.counters["meets_target"] = m.ratio() <= (warm ? 1.5 : 2.0) ? 1 : 0;
  }
  if (warm)
    state.SetLabel(std::string(variant == StepSetup<Tag, S>::kSoba
                                   ? "neumann+fresh+warm, 1 HVP on n/4 rows"
                                   : "neumann+warm, 1 HVP") +
                   " per hyper-step (SOBA), " + std::to_string(StepSetup<Tag, S>::kWarmSteps) +
                   " hyper-steps per call");
}

/// nystrom's k column products H E_K (issue 11): ONE block product (problem->hvp_block: for
/// logistic regression two GEMMs with a k-column block, for MLPs the batched R-operator) against
/// k sequential HVPs (problem->hvp per column), the sequential ones timed interleaved as the
/// reference. Counter x_sequential = block time / sequential time in this run (< 1: blocking
/// wins); x_gradient is not reported (the reference is not a gradient).
template <class Tag, class S>
void BM_HvpBlock(benchmark::State& state, Index n, Index k, int threads) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  set_threads(threads);
  s.problem->set_point(s.lambda, s.w);
  const Index D = s.model.num_params();
  const double bytes = Tag::template bytes_per_row<S>() * double(n);  // data read per block product
  const double stream = bytes > 0 ? stream_gbps_for(bytes, threads) : 0;
  const std::vector<Index> columns = sample_uniform(D, k, 1);
  Matrix<S> E = Matrix<S>::Zero(D, k), Y;
  for (Index j = 0; j < k; ++j) E(columns[static_cast<std::size_t>(j)], j) = S(1);
  Vector<S> column, product;
  const CallMeter m = measure(
      state,
      [&] {
        s.problem->hvp_block(E, Y);
        benchmark::DoNotOptimize(Y.data());
      },
      [&] {
        for (Index j = 0; j < k; ++j) {
          column = E.col(j);
          s.problem->hvp(column, product);
          benchmark::DoNotOptimize(product.data());
        }
      });
  m.report(state, Tag::hvp_flops_per_row() * double(n) * double(k), 0, gemm, "x_sequential");
  report_bandwidth(state, bytes, stream, m);
  state.counters["hvps"] = double(k);
}

/// Registers the benchmarks common to every model: gradient, HVPs, Gauss-Newton, mixed product,
/// hypergradients (cg, neumann, unrolled for each k; identity, kfac) and the Algorithm-2 step.
template <class Tag, class S>
void register_model(const std::vector<Index>& sizes, const std::vector<Index>& ks,
                    const std::vector<Index>& step_sizes) {
  const std::string ty = std::string("<") + type_name<S>() + ">";
  for (Index n : sizes)
    for (int t : {1, 2}) {
      const std::string nt = "/n:" + std::to_string(n);
      const std::string th = "/threads:" + std::to_string(t);
      const std::string model = Tag::name;
      add("BM_Gradient_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_Gradient<Tag, S>(st, n, t); });
      add("BM_HvpScratch_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_Hvp<Tag, S>(st, n, t, true); });
      add("BM_HvpCached_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_Hvp<Tag, S>(st, n, t, false); });
      add("BM_GaussNewton_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_GaussNewton<Tag, S>(st, n, t); });
      add("BM_MixedProduct_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_MixedProduct<Tag, S>(st, n, t); });
      // Solver benchmarks: for a non-convex model at the Glorot point and at the trained point.
      std::vector<Point> points{Point::Init};
      if constexpr (Tag::has_trained_point) points.push_back(Point::Trained);
      for (Point point : points) {
        const std::string pt =
            Tag::has_trained_point ? std::string("/point:") + to_string(point) : std::string();
        for (Method method : {Method::Cg, Method::Neumann, Method::Unrolled})
          for (Index k : ks) {
            std::string mname = to_string(method);
            mname[0] = static_cast<char>(std::toupper(mname[0]));
            add("BM_" + mname + "_" + model + ty + nt + "/k:" + std::to_string(k) + th + pt,
                [=](benchmark::State& st) { BM_Hypergradient<Tag, S>(st, n, method, k, t, point); });
          }
        // cg's plain three-term recurrence (MethodSpec::cg.reorthogonalize = false), the algorithm of
        // bench/pytorch_compare.py's PyTorch twin; BM_Cg_* run the default Lanczos form with full
        // reorthogonalisation (the same iterates in exact arithmetic, O(D·k²) more work).
        for (Index k : ks)
          add("BM_CgPlain_" + model + ty + nt + "/k:" + std::to_string(k) + th + pt,
              [=](benchmark::State& st) {
                BM_Hypergradient<Tag, S>(st, n, Method::Cg, k, t, point, DensePrecision::Auto,
                                         /*cg_reorthogonalize=*/false);
              });
        add("BM_Identity_" + model + ty + nt + th + pt, [=](benchmark::State& st) {
          BM_Hypergradient<Tag, S>(st, n, Method::Identity, 0, t, point);
        });
        add("BM_Kfac_" + model + ty + nt + th + pt, [=](benchmark::State& st) {
          BM_Hypergradient<Tag, S>(st, n, Method::Kfac, 0, t, point);
        });
      }
    }
  // Algorithm 2's hyper-step against its 5 inner steps (issue 11's target), at its own sizes.
  for (Index n : step_sizes)
    for (int t : {1, 2}) {
      const std::string nt = "/n:" + std::to_string(n);
      const std::string th = "/threads:" + std::to_string(t);
      const std::string model = Tag::name;
      add("BM_InnerSteps5_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_AlgorithmStep<Tag, S>(st, n, t, false); });
      add("BM_HyperStep_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_AlgorithmStep<Tag, S>(st, n, t, true); });
      add("BM_HyperStepWarm_" + model + ty + nt + th, [=](benchmark::State& st) {
        BM_AlgorithmStep<Tag, S>(st, n, t, true, StepSetup<Tag, S>::kWarm);
      });
      add("BM_HyperStepSoba_" + model + ty + nt + th, [=](benchmark::State& st) {
        BM_AlgorithmStep<Tag, S>(st, n, t, true, StepSetup<Tag, S>::kSoba);
      });
    }
}

}  // namespace ift::bench
