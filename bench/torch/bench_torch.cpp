// The Eigen path against the LibTorch CPU path, in one run (issue "LibTorch adapter", item 6):
// P1 logistic regression (n = 1,000, D = 7,850, per-weight decay) and the MLP 784-256-10 (tanh,
// D = 203,530), double precision, identical data and weights.
//   BM_<Path>_<Problem>_Point         set_point: loss and ∇_w L_T (the torch path also keeps the
//                                     graph of ∇_w L_T for the HVPs that follow)
//   BM_<Path>_<Problem>_Hvp           one Hessian-vector product at that point
//   BM_<Path>_<Problem>_Neumann10     neumann(10, fixed α) hypergradient (10 HVPs)
//   BM_<Path>_<Problem>_Cg10          cg(10) hypergradient (10 HVPs)
// Each Eigen benchmark runs first and records its time per call; the LibTorch twin reports
// torch_over_eigen = (its time) / (Eigen's time), a ratio taken within one process, which is
// what means something on a shared machine. Both paths get the same thread count (--threads
// through IFT_BENCH_THREADS, default 2) and passive OpenMP waiting (DESIGN.md §5).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ift/data/fashion_mnist.hpp"
#include "ift/data/synthetic.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/hypergradient.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problem.hpp"
#include "ift/problems/regularized.hpp"
#include "ift/torch/models.hpp"
#include "ift/torch/problem.hpp"

namespace {

using ift::Index;
using ift::deep::Tensor;
template <class T>
using Vec = ift::Vector<T>;

int threads() {
  const char* t = std::getenv("IFT_BENCH_THREADS");
  return t ? std::max(1, std::atoi(t)) : 2;
}

void set_threads() {
  static const bool done = [] {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
#ifdef _OPENMP
    omp_set_num_threads(threads());
#endif
    Eigen::setNbThreads(threads());
    ::torch::set_num_threads(threads());
    return true;
  }();
  (void)done;
}

/// Fashion-MNIST rows (DESIGN.md P1 rules) when installed, else seeded blobs of the same shape.
struct Data {
  std::shared_ptr<ift::Dataset<double>> train, val;
  std::string source;
};
const Data& data() {
  static const Data d = [] {
    Data out;
    try {
      const auto s = ift::load_fashion_mnist<double>(1000, 1000, 0, false);
      out.train = std::make_shared<ift::Dataset<double>>(s.train);
      out.val = std::make_shared<ift::Dataset<double>>(s.val);
      out.source = "fashion-mnist";
    } catch (const std::exception&) {
      const auto all = ift::make_blobs<double>(2000, 784, 10, 2.0, 5);
      out.train = std::make_shared<ift::Dataset<double>>(all.slice(0, 1000));
      out.val = std::make_shared<ift::Dataset<double>>(all.slice(1000, 1000));
      out.source = "synthetic";
    }
    return out;
  }();
  return d;
}

ift::Dataset<double> with_bias(ift::Dataset<double> d) {
  d.append_bias_column();
  return d;
}

ift::deep::TensorData tensors_of(const ift::Dataset<double>& d) {
  const auto options = ::torch::TensorOptions().dtype(::torch::kDouble);
  Tensor y = ::torch::empty({d.size()}, ::torch::kLong);
  for (Index i = 0; i < d.size(); ++i) y[i] = static_cast<std::int64_t>(d.labels(i));
  return {ift::deep::to_tensor(d.X, options), y};
}

/// Both twins of one problem at one (λ, w).
struct Twins {
  std::unique_ptr<ift::BilevelProblem<double>> eigen;
  std::unique_ptr<ift::deep::TorchProblem> torch;
  Vec<double> lambda, w, v;
  Tensor t_lambda, t_w, t_v;
};

Twins& logreg() {
  static Twins t = [] {
    set_threads();
    Twins out;
    auto train = std::make_shared<ift::Dataset<double>>(with_bias(*data().train));
    auto val = std::make_shared<ift::Dataset<double>>(with_bias(*data().val));
    ift::SoftmaxRegression<double> model(785, 10);
    out.eigen = std::make_unique<ift::RegularizedProblem<ift::SoftmaxRegression<double>>>(
        model, ift::WeightDecay<double>(ift::DecayKind::PerWeight, model.num_params()), train, val);
    ift::deep::SoftmaxRegressionNet net(785, 10);
    net->to(::torch::kDouble);
    auto family = std::make_shared<ift::deep::WeightDecayFamily>(net->parameters(),
                                                                 ift::DecayKind::PerWeight, 0.0);
    out.torch = std::make_unique<ift::deep::TorchProblem>(ift::deep::Model::of(net), family,
                                                          tensors_of(*train), tensors_of(*val));
    out.lambda = Vec<double>::Constant(model.num_params(), std::log(1e-3));
    out.w = Vec<double>::Zero(model.num_params());
    ift::VectorSpace<Vec<double>>::fill_random(out.w, 3);
    out.w *= 0.01;
    return out;
  }();
  return t;
}

Twins& mlp() {
  static Twins t = [] {
    set_threads();
    Twins out;
    ift::Mlp<double> model({784, 256, 10}, ift::Activation::Tanh,
                           ift::OutputLoss::SoftmaxCrossEntropy);
    out.eigen = std::make_unique<ift::RegularizedProblem<ift::Mlp<double>>>(
        model, ift::WeightDecay<double>(ift::DecayKind::PerWeight, model.num_params()),
        data().train, data().val);
    ift::deep::AffineMlp net(std::vector<std::int64_t>{784, 256, 10}, ift::Activation::Tanh);
    net->to(::torch::kDouble);
    auto family = std::make_shared<ift::deep::WeightDecayFamily>(net->parameters(),
                                                                 ift::DecayKind::PerWeight, 0.0);
    out.torch = std::make_unique<ift::deep::TorchProblem>(
        ift::deep::Model::of(net), family, tensors_of(*data().train), tensors_of(*data().val));
    out.lambda = Vec<double>::Constant(model.num_params(), std::log(1e-3));
    out.w = model.initial_weights(3);
    return out;
  }();
  return t;
}

void finish(Twins& t) {
  if (t.v.size() == 0) {
    t.v = Vec<double>::Zero(t.w.size());
    ift::VectorSpace<Vec<double>>::fill_random(t.v, 9);
    const auto options = ::torch::TensorOptions().dtype(::torch::kDouble);
    t.t_lambda = ift::deep::to_tensor(t.lambda, options);
    t.t_w = ift::deep::to_tensor(t.w, options);
    t.t_v = ift::deep::to_tensor(t.v, options);
  }
  t.eigen->set_point(t.lambda, t.w);
  t.torch->set_point(t.t_lambda, t.t_w);
}

ift::MethodSpec spec(const std::string& what) {
  ift::MethodSpec s;
  s.steps = 10;
  if (what == "Neumann10") {
    s.method = ift::Method::Neumann;
    s.neumann.alpha = 1e-3;  // fixed: time the 10 terms, not power iteration
    s.neumann.power_iterations = 1;  // a divergence report then costs one HVP, not 200
  } else {
    s.method = ift::Method::Cg;
    s.cg.tolerance = 0;
    s.cg.reorthogonalize = false;
  }
  return s;
}

std::map<std::string, double>& eigen_seconds() {
  static std::map<std::string, double> m;
  return m;
}

using Clock = std::chrono::steady_clock;

void run(benchmark::State& state, Twins& (*problem)(), const std::string& problem_name,
         const std::string& op, bool torch_path) {
  Twins& t = problem();
  finish(t);
  Vec<double> out;
  Tensor t_out;
  const ift::MethodSpec s = op == "Point" || op == "Hvp" ? ift::MethodSpec{} : spec(op);
  double total = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    if (op == "Point") {
      if (torch_path) t.torch->set_point(t.t_lambda, t.t_w);
      else t.eigen->set_point(t.lambda, t.w);
    } else if (op == "Hvp") {
      if (torch_path) t.torch->hvp(t.t_v, t_out);
      else t.eigen->hvp(t.v, out);
    } else {
      if (torch_path) {
        auto r = ift::generic::hypergradient(*t.torch, s);
        benchmark::DoNotOptimize(r.hypergradient.data_ptr());
      } else {
        auto r = ift::hypergradient(*t.eigen, s);
        benchmark::DoNotOptimize(r.hypergradient.data());
      }
    }
    total += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  benchmark::DoNotOptimize(out.data());
  const double per_call = total / static_cast<double>(state.iterations());
  const std::string key = problem_name + "/" + op;
  if (!torch_path) {
    eigen_seconds()[key] = per_call;
  } else if (eigen_seconds().count(key)) {
    state.counters["torch_over_eigen"] = per_call / eigen_seconds()[key];
  }
  state.counters["D"] = static_cast<double>(t.w.size());
  state.counters["threads"] = threads();
  state.SetLabel(data().source);
}

void register_all() {
  struct P {
    const char* name;
    Twins& (*problem)();
  };
  for (const P p : {P{"LogReg", &logreg}, P{"Mlp784_256_10", &mlp}}) {
    for (const char* op : {"Point", "Hvp", "Neumann10", "Cg10"}) {
      for (const bool torch_path : {false, true}) {
        const std::string name = std::string("BM_") + (torch_path ? "Torch_" : "Eigen_") + p.name + "_" + op;
        benchmark::RegisterBenchmark(name.c_str(), [p, op, torch_path](benchmark::State& s) {
          run(s, p.problem, p.name, op, torch_path);
        })->Unit(benchmark::kMillisecond)->MinTime(0.5);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
