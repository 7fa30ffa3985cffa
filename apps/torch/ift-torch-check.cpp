// ift-torch-check: the LibTorch-vs-Eigen cross-checks on any device, plus a short timing of the
// deep-net operations, without GoogleTest or Google Benchmark (so it runs on a GPU machine whose
// LibTorch comes from pip and whose system lacks the apt packages). Exit status 0 when every
// check is within tolerance, 1 otherwise, 2 on misuse.
//   ift-torch-check [--device cpu|cuda|cuda:N] [--dtype double|float] [--timing] [--repeats R]
//                   [--threads T] [--n N]      (options: apps/options.hpp's built-in parser)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include "ift/generic/hypergradient.hpp"
#include "ift/torch/cross_check.hpp"
#include "ift/torch/models.hpp"
#include "ift/torch/problem.hpp"
#include "ift/torch/training.hpp"
#include "../options.hpp"

namespace {

using ift::deep::Tensor;

void synchronize(const ::torch::Device& device) {
  if (device.is_cuda()) {
    // A tiny host read waits for every queued kernel (no CUDA headers needed).
    (void)::torch::zeros({1}, ::torch::TensorOptions().device(device)).sum().item<double>();
  }
}

/// Median wall time of `repeats` calls (after one warm-up), in milliseconds.
double median_ms(const std::function<void()>& f, int repeats, const ::torch::Device& device) {
  f();
  synchronize(device);
  std::vector<double> times;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    synchronize(device);
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

/// Times gradient, HVP and cg(10)/neumann(10) hypergradients of one problem.
void time_problem(const std::string& name, ift::deep::TorchProblem& problem, int repeats,
                  const ::torch::Device& device) {
  const Tensor lambda = problem.current_lambda();
  const Tensor w = problem.current_weights();
  problem.set_point(lambda, w);
  Tensor v = ::torch::randn_like(w), out;
  ift::MethodSpec cg;
  cg.method = ift::Method::Cg;
  cg.steps = 10;
  cg.cg.tolerance = 0;
  cg.cg.reorthogonalize = false;
  ift::MethodSpec neumann;
  neumann.method = ift::Method::Neumann;
  neumann.steps = 10;
  neumann.neumann.alpha = 1e-3;  // fixed: the timing is of the 10 terms, not of power iteration
  // On a non-convex net the series may grow and report `diverged`, which then estimates λ_max
  // for a suggested α: one power iteration keeps that from dominating the timing.
  neumann.neumann.power_iterations = 1;
  const double grad = median_ms([&] { problem.set_point(lambda, w); }, repeats, device);
  const double hvp = median_ms([&] { problem.hvp(v, out); }, repeats, device);
  const double hc = median_ms([&] { (void)ift::generic::hypergradient(problem, cg); }, repeats, device);
  const double hn = median_ms([&] { (void)ift::generic::hypergradient(problem, neumann); }, repeats, device);
  std::printf("timing %-28s D=%-8lld gradient %9.3f ms  hvp %9.3f ms  cg(10) %9.3f ms  neumann(10) %9.3f ms\n",
              name.c_str(), static_cast<long long>(problem.num_params()), grad, hvp, hc, hn);
}

int run(int argc, char** argv) {
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  using ift::app::ValueKind;
  ift::app::OptionSet set(
      "ift-torch-check",
      "ift-torch-check: the LibTorch-vs-Eigen cross-checks on any device, plus a short timing of\n"
      "the deep-net operations. Exit status 0 when every check is within tolerance, 1 otherwise,\n"
      "2 on misuse.\nUsage: ift-torch-check [options]");
  set.use({"device", "dtype", "threads"})
      .add(ift::app::flag("", "timing", "also time gradient, HVP and hypergradients"))
      .add(ift::app::option("", "repeats", ValueKind::Integer, "R",
                            "timed calls per operation (the median is shown)")
               .by_default("5")
               .integers(1, ift::app::limits::kMethodSteps))
      .add(ift::app::option("", "n", ValueKind::Integer, "N", "rows of the timing problems")
               .by_default("1000")
               .integers(1, ift::app::limits::kRows));
  set.set_defaults(
      {{"device", ::torch::cuda::is_available() ? "cuda" : "cpu"}, {"dtype", "double"}});
  const std::optional<ift::app::OptionValues> parsed = ift::app::parse_builtin(argc, argv, set);
  if (!parsed) return 0;
  const ift::app::OptionValues& v = *parsed;
  const std::string device_name = v.text("device"), dtype_name = v.text("dtype");
  const bool timing = v.flag("timing");
  const int repeats = static_cast<int>(v.integer("repeats"));
  const int threads = static_cast<int>(v.integer("threads"));
  const std::int64_t n = v.integer("n");
  if (threads > 0) ::torch::set_num_threads(threads);
  const auto device = ift::deep::parse_device(device_name);
  const auto dtype = ift::deep::parse_dtype(dtype_name);
  std::printf("ift-torch-check: device %s, dtype %s, cuda available %d, threads %d\n",
              device.str().c_str(), dtype_name.c_str(), static_cast<int>(::torch::cuda::is_available()),
              ::torch::get_num_threads());

  ift::deep::CrossCheckOptions options;
  options.device = device;
  options.dtype = dtype;
  int failures = 0;
  for (const auto& group : {ift::deep::cross_check_logistic(options), ift::deep::cross_check_mlp(options),
                            ift::deep::check_unification(options)}) {
    for (const auto& r : group) {
      std::printf("%-4s %-44s error %10.3e  tol %8.1e  %s\n", r.ok() ? "ok" : "FAIL", r.name.c_str(),
                  r.error, r.tolerance, r.detail.c_str());
      failures += r.ok() ? 0 : 1;
    }
  }

  if (timing) {
    const ift::deep::TensorSplits data = ift::deep::synthetic_images(n, n, 0, 3);
    {  // P1: softmax regression on 785 features (D = 7,850), per-weight decay.
      ift::deep::SoftmaxRegressionNet net(785, 10);
      net->to(device, dtype);
      auto x = [&](const Tensor& images) {
        return ::torch::cat({images.flatten(1), ::torch::ones({images.size(0), 1}, images.options())}, 1);
      };
      ift::deep::TensorData train{x(data.train.inputs), data.train.labels};
      ift::deep::TensorData val{x(data.val.inputs), data.val.labels};
      auto family = std::make_shared<ift::deep::WeightDecayFamily>(net->parameters(), ift::DecayKind::PerWeight, -7.0);
      ift::deep::TorchProblem p(ift::deep::Model::of(net), family, train, val);
      time_problem("logreg n=" + std::to_string(n), p, repeats, device);
    }
    {
      ift::deep::AffineMlp net(std::vector<std::int64_t>{784, 256, 10}, ift::Activation::Tanh);
      net->to(device, dtype);
      auto family = std::make_shared<ift::deep::WeightDecayFamily>(net->parameters(), ift::DecayKind::PerWeight, -7.0);
      ift::deep::TorchProblem p(ift::deep::Model::of(net), family, data.train, data.val);
      time_problem("mlp 784-256-10 n=" + std::to_string(n), p, repeats, device);
    }
    {
      ift::deep::SmallCnn net(1, 28, 28, 10, 8);
      net->to(device, dtype);
      auto family = std::make_shared<ift::deep::WeightDecayFamily>(net->parameters(), ift::DecayKind::PerWeight, -5.0);
      ift::deep::TorchProblem p(ift::deep::Model::of(net), family, data.train, data.val);
      time_problem("cnn weight-decay n=" + std::to_string(n), p, repeats, device);
    }
    {
      ift::deep::SmallCnn net(1, 28, 28, 10, 8);
      net->to(device, dtype);
      ift::deep::UNet unet(1, 8);
      unet->to(device, dtype);
      auto u = unet.ptr();
      auto family = std::make_shared<ift::deep::AugmentationFamily>(
          u, [u](const Tensor& a, const Tensor& e) { return u->forward(a, e); });
      ift::deep::TorchProblem p(ift::deep::Model::of(net), family, data.train, data.val);
      time_problem("cnn augmentation n=" + std::to_string(n), p, repeats, device);
    }
  }
  std::printf("ift-torch-check: %d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return ift::app::run_main("ift-torch-check", [&] { return run(argc, argv); });
}
