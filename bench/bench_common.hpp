// Shared fixtures of the ift benchmark suites (bench_logreg.cpp, bench_mlp.cpp).
//
// Every figure is reported against two yardsticks measured in the same process:
//   - the machine's own GEMM throughput (Eigen, square C = A B, per scalar type and thread
//     count): BM_Gemm sets it, or it is measured lazily before the first benchmark that needs it;
//   - one gradient evaluation (evaluate with gradient) of the same model on the same data, same
//     scalar type and thread count, timed lazily in the setup of the first benchmark that needs it.
// So a counter such as x_gradient = 3.1 is a ratio taken within one run, which is what matters
// on a shared, noisy machine.
//
// Data: Fashion-MNIST (DESIGN.md §2 P1 rules: x = pixel/255, train file rows), loaded once per
// process into a static pool of 20,000 rows; every data set the benchmarks use is sliced from it
// once (static) and shared by pointer: no copy of a data set per iteration.
//
// Allocation counting: this header defines malloc() (one translation unit per binary includes
// it), forwarding to glibc's __libc_malloc and counting calls, so `allocs_per_call` counts every
// heap allocation made during a timed call (operator new, Eigen's aligned_malloc, ...).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ift/core.hpp"
#include "ift/data/fashion_mnist.hpp"
#include "ift/dataset.hpp"
#include "ift/hyper/weight_decay.hpp"
#include "ift/hypergradient.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problem.hpp"

// ---- Allocation counter -------------------------------------------------------------------------
namespace ift::bench {
inline std::atomic<long long> g_mallocs{0};
}  // namespace ift::bench

extern "C" void* __libc_malloc(std::size_t size);
extern "C" void* malloc(std::size_t size) {
  ift::bench::g_mallocs.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(size);
}

namespace ift::bench {

inline long long mallocs() { return g_mallocs.load(std::memory_order_relaxed); }

// ---- Threads ------------------------------------------------------------------------------------
/// One pool only (DESIGN.md §5): Eigen's GEMMs and the library's loops both use OpenMP.
inline void set_threads(int threads) {
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  Eigen::setNbThreads(threads);
}

template <class S>
const char* type_name() {
  return sizeof(S) == 8 ? "double" : "float";
}

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Median wall time of f() after one warm-up call: at least `min_reps` calls and `min_total`
/// seconds (at most 25 calls).
inline double median_seconds(const std::function<void()>& f, int min_reps = 3,
                             double min_total = 0.3) {
  f();
  std::vector<double> t;
  double total = 0;
  while ((static_cast<int>(t.size()) < min_reps || total < min_total) && t.size() < 25) {
    const auto t0 = Clock::now();
    f();
    t.push_back(seconds_since(t0));
    total += t.back();
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// ---- Yardstick 1: GEMM throughput ---------------------------------------------------------------
constexpr Index kGemmSize = 2000;

inline std::map<std::string, double>& gemm_table() {
  static std::map<std::string, double> table;
  return table;
}
inline std::string gemm_key(const char* type, int threads) {
  return std::string(type) + "/" + std::to_string(threads);
}

template <class S>
struct GemmOperands {
  Matrix<S> A, B, C;
  static GemmOperands& get() {
    static GemmOperands g{Matrix<S>::Random(kGemmSize, kGemmSize),
                          Matrix<S>::Random(kGemmSize, kGemmSize),
                          Matrix<S>::Zero(kGemmSize, kGemmSize)};
    return g;
  }
  void run() { C.noalias() = A * B; }
};

/// GFLOP/s of Eigen's GEMM for this type and thread count (measured once per process).
template <class S>
double gemm_gflops(int threads) {
  auto& table = gemm_table();
  const std::string key = gemm_key(type_name<S>(), threads);
  if (auto it = table.find(key); it != table.end()) return it->second;
  set_threads(threads);
  auto& g = GemmOperands<S>::get();
  const double t = median_seconds([&] { g.run(); });
  const double gflops = 2.0 * std::pow(static_cast<double>(kGemmSize), 3) / t * 1e-9;
  table[key] = gflops;
  return gflops;
}

template <class S>
void BM_Gemm(benchmark::State& state, int threads) {
  set_threads(threads);
  auto& g = GemmOperands<S>::get();
  g.run();
  double busy = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    g.run();
    benchmark::DoNotOptimize(g.C.data());
    benchmark::ClobberMemory();
    busy += seconds_since(t0);
  }
  const double per_call = busy / static_cast<double>(state.iterations());
  const double gflops = 2.0 * std::pow(static_cast<double>(kGemmSize), 3) / per_call * 1e-9;
  gemm_table()[gemm_key(type_name<S>(), threads)] = gflops;
  state.counters["GFLOPs"] = gflops;
}

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
  /// Memory-bound: X (n × 785) is streamed twice per gradient / HVP.
  template <class S>
  static double bytes_per_row() {
    return 2.0 * 785 * sizeof(S);
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

/// One model on train rows [0, n) and validation rows [n, 2n), per-weight decay, at a fixed w
/// (small seeded random weights for logistic regression, Glorot weights for MLPs). Built once per
/// (tag, S, n) and kept for the process.
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
  std::map<int, double> gradient_seconds;  // per thread count
  std::map<int, double> alpha;             // 1/|λ_max| per thread count (same value, cached once)

  explicit Setup(Index rows_n)
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
    v = Vector<S>::Random(D);
    problem = std::make_unique<RegularizedProblem<Model>>(model, decay, train, val);
    problem->set_point(lambda, w);
  }

  static Setup& get(Index n) {
    static std::map<Index, std::unique_ptr<Setup>> table;
    auto& slot = table[n];
    if (!slot) slot = std::make_unique<Setup>(n);
    return *slot;
  }

  void evaluate_gradient() {
    benchmark::DoNotOptimize(model.evaluate(*train, w, cache, &gradient));
  }

  /// Seconds of one gradient evaluation at this thread count, measured once.
  double gradient_time(int threads) {
    auto it = gradient_seconds.find(threads);
    if (it != gradient_seconds.end()) return it->second;
    set_threads(threads);
    const double t = median_seconds([&] { evaluate_gradient(); });
    gradient_seconds[threads] = t;
    return t;
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

/// Accumulates the wall time of the timed part of each iteration (UseRealTime is set too, but
/// this also excludes paused setup) and allocations, and writes the common counters.
struct CallMeter {
  double busy = 0;
  long long allocs = 0;
  Clock::time_point t0;
  long long a0 = 0;
  void start() {
    a0 = mallocs();
    t0 = Clock::now();
  }
  void stop() {
    busy += seconds_since(t0);
    allocs += mallocs() - a0;
  }
  double per_call(const benchmark::State& state) const {
    return busy / static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
  }
  /// x_gradient, allocs_per_call, and GFLOP/s with its fraction of GEMM when flops > 0, GB/s when
  /// bytes > 0.
  void report(benchmark::State& state, double gradient_seconds, double flops, double bytes,
              double gemm) const {
    const double t = per_call(state);
    state.counters["x_gradient"] = t / gradient_seconds;
    state.counters["allocs_per_call"] =
        static_cast<double>(allocs) / static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
    if (flops > 0) {
      state.counters["GFLOPs"] = flops / t * 1e-9;
      state.counters["gemm_fraction"] = flops / t * 1e-9 / gemm;
    }
    if (bytes > 0) state.counters["GBps"] = bytes / t * 1e-9;
  }
};

/// Registers with real time in milliseconds (OpenMP threads make CPU time meaningless).
template <class F>
benchmark::internal::Benchmark* add(const std::string& name, F&& f) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<F>(f))
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

// ---- Benchmark bodies shared by the suites --------------------------------------------------------

/// One gradient: evaluate(data, w, cache, &gradient) (forward, loss, backward).
template <class Tag, class S>
void BM_Gradient(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double tg = s.gradient_time(threads);
  set_threads(threads);
  CallMeter m;
  for (auto _ : state) {
    m.start();
    s.evaluate_gradient();
    benchmark::ClobberMemory();
    m.stop();
  }
  m.report(state, tg, Tag::gradient_flops_per_row() * double(n),
           Tag::template bytes_per_row<S>() * double(n), gemm);
}

/// HVP from scratch (evaluate without gradient, then hvp) or with the forward pass cached
/// (hvp only, the cache filled once in setup).
template <class Tag, class S>
void BM_Hvp(benchmark::State& state, Index n, int threads, bool from_scratch) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double tg = s.gradient_time(threads);
  set_threads(threads);
  s.model.evaluate(*s.train, s.w, s.cache, nullptr);
  CallMeter m;
  for (auto _ : state) {
    m.start();
    if (from_scratch) benchmark::DoNotOptimize(s.model.evaluate(*s.train, s.w, s.cache, nullptr));
    s.model.hvp(*s.train, s.w, s.cache, s.v, s.out);
    benchmark::DoNotOptimize(s.out.data());
    benchmark::ClobberMemory();
    m.stop();
  }
  // From scratch adds a forward pass (about half a gradient's flops for logistic regression).
  const double flops = Tag::hvp_flops_per_row() * double(n);
  m.report(state, tg, from_scratch ? 0 : flops,
           from_scratch ? 0 : Tag::template bytes_per_row<S>() * double(n), gemm);
  state.counters["hvps"] = 1;
}

/// Gauss-Newton product Jᵀ H_out J v from the cached forward pass.
template <class Tag, class S>
void BM_GaussNewton(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double tg = s.gradient_time(threads);
  set_threads(threads);
  s.model.evaluate(*s.train, s.w, s.cache, nullptr);
  CallMeter m;
  for (auto _ : state) {
    m.start();
    s.model.gauss_newton_product(*s.train, s.w, s.cache, s.v, s.out);
    benchmark::DoNotOptimize(s.out.data());
    benchmark::ClobberMemory();
    m.stop();
  }
  m.report(state, tg, Tag::gauss_newton_flops_per_row() * double(n),
           Tag::template bytes_per_row<S>() * double(n), gemm);
}

/// Mixed-partial product vᵀ ∂²L_T/∂w∂λᵀ (per-weight decay: elementwise, memory-bound).
template <class Tag, class S>
void BM_MixedProduct(benchmark::State& state, Index n, int threads) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double tg = s.gradient_time(threads);
  set_threads(threads);
  s.problem->set_point(s.lambda, s.w);
  CallMeter m;
  for (auto _ : state) {
    m.start();
    s.problem->mixed_product(s.v, s.out);
    benchmark::DoNotOptimize(s.out.data());
    benchmark::ClobberMemory();
    m.stop();
  }
  const double D = double(s.model.num_params());
  m.report(state, tg, 0, 4.0 * D * sizeof(S), gemm);  // reads v, λ, w; writes out
}

/// One hypergradient at a new point: set_point (train loss, gradient, forward cache) plus
/// HypergradientEngine::compute (validation gradient, the solve, the mixed product). Neumann and
/// unrolled use a fixed α = 1/|λ_max| so that each call does exactly k HVPs.
template <class Tag, class S>
void BM_Hypergradient(benchmark::State& state, Index n, Method method, Index k, int threads) {
  auto& s = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double tg = s.gradient_time(threads);
  MethodSpec spec;
  spec.method = method;
  spec.steps = k;
  if (method == Method::Neumann || method == Method::Unrolled) spec.alpha = s.neumann_alpha();
  if (method == Method::Kfac) spec.damping = 1e-3;
  HypergradientEngine<S> engine(spec);
  set_threads(threads);
  CallMeter m;
  double hvps = 0;
  std::string status;
  for (auto _ : state) {
    m.start();
    s.problem->set_point(s.lambda, s.w);
    HypergradientResult<S> r = engine.compute(*s.problem);
    benchmark::DoNotOptimize(r.hypergradient.data());
    benchmark::ClobberMemory();
    m.stop();
    hvps += double(r.hvps);
    status = to_string(r.status);
  }
  m.report(state, tg, 0, 0, gemm);
  state.counters["hvps"] = hvps / double(std::max<benchmark::IterationCount>(state.iterations(), 1));
  if (method == Method::Cg || method == Method::Neumann) {
    // Target (issue): a k-step hypergradient within (k + 2) gradients.
    state.counters["target_x"] = double(k + 2);
    state.counters["meets_target"] = m.per_call(state) / tg <= double(k + 2) ? 1 : 0;
  }
  state.SetLabel(status);
}

/// Algorithm 2 pieces written directly against the model API (independent of bilevel.hpp):
/// N = 5 SGD steps on consecutive training batches of n rows, then a neumann(5) hypergradient
/// on the first batch and a validation batch, then one SGD step on λ.
template <class Tag, class S>
struct StepSetup {
  using Model = typename Tag::template Model<S>;
  static constexpr int kInnerSteps = 5;
  Index n;
  Model model;
  std::vector<std::shared_ptr<const Dataset<S>>> batches;
  std::shared_ptr<const Dataset<S>> val;
  WeightDecay<S> decay;
  Vector<S> lambda, w, grad;
  typename Model::Cache cache;
  std::unique_ptr<RegularizedProblem<Model>> problem;
  std::unique_ptr<HypergradientEngine<S>> engine;
  S lr = S(0.05), outer_lr = S(0.01);
  std::map<int, double> inner_seconds;

  explicit StepSetup(Index rows_n)
      : n(rows_n), model(Tag::template make<S>()), val(rows<S>(kInnerSteps * rows_n, rows_n, Tag::bias)),
        decay(DecayKind::PerWeight, model.num_params()) {
    for (int t = 0; t < kInnerSteps; ++t) batches.push_back(rows<S>(t * rows_n, rows_n, Tag::bias));
    auto& base = Setup<Tag, S>::get(rows_n);  // same model on rows [0, n): reuse its α
    lambda = base.lambda;
    w = base.w;
    problem = std::make_unique<RegularizedProblem<Model>>(model, decay, batches[0], val);
    MethodSpec spec;
    spec.method = Method::Neumann;
    spec.steps = 5;
    spec.alpha = base.neumann_alpha();
    engine = std::make_unique<HypergradientEngine<S>>(spec);
  }
  static StepSetup& get(Index n) {
    static std::map<Index, std::unique_ptr<StepSetup>> table;
    auto& slot = table[n];
    if (!slot) slot = std::make_unique<StepSetup>(n);
    return *slot;
  }
  void inner_steps() {
    for (int t = 0; t < kInnerSteps; ++t) {
      model.evaluate(*batches[static_cast<std::size_t>(t)], w, cache, &grad);
      decay.add_gradient(lambda, w, grad);
      w.noalias() -= lr * grad;
    }
  }
  Index hyper_step() {
    inner_steps();
    problem->set_point(lambda, w);
    const HypergradientResult<S> r = engine->compute(*problem);
    lambda.noalias() -= outer_lr * r.hypergradient;
    return r.hvps;
  }
  double inner_time(int threads) {
    if (auto it = inner_seconds.find(threads); it != inner_seconds.end()) return it->second;
    set_threads(threads);
    const double t = median_seconds([&] { inner_steps(); }, 3, 0.5);
    inner_seconds[threads] = t;
    return t;
  }
};

/// `hyper`: one Algorithm-2 hyper-step; otherwise the 5 inner SGD steps alone.
template <class Tag, class S>
void BM_AlgorithmStep(benchmark::State& state, Index n, int threads, bool hyper) {
  auto& base = Setup<Tag, S>::get(n);
  const double gemm = gemm_gflops<S>(threads);
  const double tg = base.gradient_time(threads);
  auto& s = StepSetup<Tag, S>::get(n);
  const double t_inner = s.inner_time(threads);
  set_threads(threads);
  CallMeter m;
  double hvps = 0;
  for (auto _ : state) {
    m.start();
    if (hyper)
      hvps += double(s.hyper_step());
    else
      s.inner_steps();
    benchmark::DoNotOptimize(s.w.data());
    benchmark::ClobberMemory();
    m.stop();
  }
  m.report(state, tg, 0, 0, gemm);
  state.counters["x_inner_steps"] = m.per_call(state) / t_inner;
  if (hyper) {
    state.counters["hvps"] =
        hvps / double(std::max<benchmark::IterationCount>(state.iterations(), 1));
    state.counters["meets_target"] = m.per_call(state) / t_inner <= 2.0 ? 1 : 0;
  }
}

/// Registers the benchmarks common to every model: gradient, HVPs, Gauss-Newton, mixed product,
/// hypergradients (cg, neumann, unrolled for each k; identity, kfac) and the Algorithm-2 step.
template <class Tag, class S>
void register_model(const std::vector<Index>& sizes, const std::vector<Index>& ks,
                    bool algorithm_step) {
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
      for (Method method : {Method::Cg, Method::Neumann, Method::Unrolled})
        for (Index k : ks) {
          std::string mname = to_string(method);
          mname[0] = static_cast<char>(std::toupper(mname[0]));
          add("BM_" + mname + "_" + model + ty + nt + "/k:" + std::to_string(k) + th,
              [=](benchmark::State& st) { BM_Hypergradient<Tag, S>(st, n, method, k, t); });
        }
      add("BM_Identity_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_Hypergradient<Tag, S>(st, n, Method::Identity, 0, t); });
      add("BM_Kfac_" + model + ty + nt + th,
          [=](benchmark::State& st) { BM_Hypergradient<Tag, S>(st, n, Method::Kfac, 0, t); });
      if (algorithm_step) {
        add("BM_InnerSteps5_" + model + ty + nt + th,
            [=](benchmark::State& st) { BM_AlgorithmStep<Tag, S>(st, n, t, false); });
        add("BM_HyperStep_" + model + ty + nt + th,
            [=](benchmark::State& st) { BM_AlgorithmStep<Tag, S>(st, n, t, true); });
      }
    }
}

inline void register_gemm() {
  for (int t : {1, 2}) {
    add("BM_Gemm<double>/N:2000/threads:" + std::to_string(t),
        [t](benchmark::State& s) { BM_Gemm<double>(s, t); });
    add("BM_Gemm<float>/N:2000/threads:" + std::to_string(t),
        [t](benchmark::State& s) { BM_Gemm<float>(s, t); });
  }
}

inline int run_main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace ift::bench
