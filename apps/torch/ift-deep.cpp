// ift-deep: Algorithm 2 on deep nets through LibTorch (DESIGN.md P4, P6).
//   repeat { N inner SGD/Adam steps on w (warm-started); one hypergradient by --method;
//            one outer Adam step on λ }
// on Fashion-MNIST (or seeded synthetic images) with a small CNN (or an MLP), hyperparameters
// --hyper weight-decay (one log λ per weight) or augmentation (the weights of a small U-Net
// x' = U_λ(x, ε)). CSV: one row per hyper-step, fixed header, parameters echoed as '#'
// comments, written atomically after every step. --checkpoint saves w, λ, both optimisers'
// states and the step after every step; --resume continues from it.
// --experiment overfit: P4 on a CNN (50 train / 50 val, per-weight decay from log λ = −4,
// identity inverse, inner Adam) until train and validation accuracy both reach 100%.
//
// Options are parsed by hand (no Boost): the binary depends on Torch and ift only, so it also
// builds on a GPU machine with a pip LibTorch and nothing else.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "ift/data/fashion_mnist.hpp"
#include "ift/bilevel_params.hpp"
#include "ift/generic/bilevel.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/io/csv_writer.hpp"
#include "ift/torch/models.hpp"
#include "ift/torch/problem.hpp"
#include "ift/torch/training.hpp"
#include "ift/checkpoint.hpp"

namespace {

using ift::deep::Tensor;

const char* const kUsage = R"(usage: ift-deep [options]
  --experiment NAME     bilevel (default) | overfit (P4: 50/50 rows, per-weight decay from
                        log λ = -4, identity, inner Adam, outer lr 0.2, double, stop at 100%
                        train and val accuracy)
  --hyper NAME          weight-decay (default) | augmentation
  --method NAME         cg | neumann (default) | identity | zero | kfac | unrolled
  --steps K             CG iterations / Neumann terms / unrolled steps (default 5)
  --alpha A             Neumann / unrolled step size; 0 = 1/λ_max by power iteration (default 0)
  --power-iterations P  power iterations for the automatic α (default 20)
  --damping D           added to the curvature; KFAC's explicit damping (default 0; kfac 1e-3)
  --model NAME          cnn (default) | mlp (784-128-10, tanh)
  --filters F           CNN width (default 8)
  --device NAME         cpu (default) | cuda | cuda:N
  --dtype NAME          float (default) | double
  --n-train N           training rows (default 1000)
  --n-val N             validation rows (default 1000)
  --n-test N            test rows (default 1000)
  --data-dir DIR        Fashion-MNIST IDX files (default $IFT_FASHION_MNIST_DIR or
                        /usr/share/datasets/fashion-mnist)
  --synthetic           seeded synthetic images instead of Fashion-MNIST
  --hyper-steps T       outer steps (default 10)
  --inner-steps N       inner optimiser steps per hyper-step (default 20)
  --inner-optimizer O   sgd | momentum | adam (default adam) | newton-cg (to --inner-steps
                        Newton iterations)
  --inner-lr E          inner learning rate (default 1e-3 adam, 0.05 sgd)
  --batch B             inner minibatch size (default 100)
  --outer-lr E          outer Adam learning rate (default 0.01)
  --init-log-lambda L   initial log weight decay (default -5; overfit -4)
  --seed S              seed of initial weights, batches and noise (default 1)
  --threads T           LibTorch intra-op threads (default: all cores)
  --csv PATH            output table (default ift-deep.csv)
  --checkpoint PATH     save a checkpoint after every hyper-step
  --resume              continue from --checkpoint (the CSV is rebuilt from its records)
  --help
)";

struct Options {
  std::string experiment = "bilevel", hyper = "weight-decay", method = "neumann", model = "cnn";
  std::string device = "cpu", dtype = "float", data_dir, csv = "ift-deep.csv", checkpoint;
  std::string inner_optimizer = "adam";
  std::int64_t steps = 5, power_iterations = 20, filters = 8, n_train = 1000, n_val = 1000,
               n_test = 1000, hyper_steps = 10, inner_steps = 20, batch = 100, threads = 0;
  double alpha = 0, damping = -1, inner_lr = 0, outer_lr = 0.01, init_log_lambda = -5;
  bool synthetic = false, resume = false;
  std::uint64_t seed = 1;
  std::map<std::string, std::string> given;  // as typed, echoed into the CSV
};

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string> values;
  for (int i = 1; i < argc; ++i) {
    std::string key = argv[i];
    if (key == "--help" || key == "-h") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (key.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + key + "'");
    key = key.substr(2);
    if (key == "synthetic" || key == "resume") {
      values[key] = "1";
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument("option --" + key + " needs a value");
    values[key] = argv[++i];
  }
  const bool overfit = values.count("experiment") && values["experiment"] == "overfit";
  if (overfit) {  // P4's settings, each still overridable
    o.n_train = 50;
    o.n_val = 50;
    o.method = "identity";
    o.hyper = "weight-decay";
    o.inner_optimizer = "adam";
    o.init_log_lambda = -4;
    o.hyper_steps = 1000;
    o.batch = 50;
    o.inner_steps = 5;
    o.outer_lr = 0.2;
    // log λ grows without bound on weights the validation set wants gone: exp(λ) overflows
    // float near λ = 88, so P4 runs in double (50 rows: cheap).
    o.dtype = "double";
  }
  auto take_int = [&](const char* k, std::int64_t& field) {
    if (auto it = values.find(k); it != values.end()) {
      std::size_t used = 0;
      field = std::stoll(it->second, &used);
      if (used != it->second.size()) throw std::invalid_argument(std::string("--") + k + ": not an integer");
      values.erase(it);
    }
  };
  auto take_double = [&](const char* k, double& field) {
    if (auto it = values.find(k); it != values.end()) {
      std::size_t used = 0;
      field = std::stod(it->second, &used);
      if (used != it->second.size()) throw std::invalid_argument(std::string("--") + k + ": not a number");
      values.erase(it);
    }
  };
  auto take_string = [&](const char* k, std::string& field) {
    if (auto it = values.find(k); it != values.end()) {
      field = it->second;
      values.erase(it);
    }
  };
  o.given = values;
  take_string("experiment", o.experiment);
  take_string("hyper", o.hyper);
  take_string("method", o.method);
  take_string("model", o.model);
  take_string("device", o.device);
  take_string("dtype", o.dtype);
  take_string("data-dir", o.data_dir);
  take_string("csv", o.csv);
  take_string("checkpoint", o.checkpoint);
  take_string("inner-optimizer", o.inner_optimizer);
  take_int("steps", o.steps);
  take_int("power-iterations", o.power_iterations);
  take_int("filters", o.filters);
  take_int("n-train", o.n_train);
  take_int("n-val", o.n_val);
  take_int("n-test", o.n_test);
  take_int("hyper-steps", o.hyper_steps);
  take_int("inner-steps", o.inner_steps);
  take_int("batch", o.batch);
  take_int("threads", o.threads);
  take_double("alpha", o.alpha);
  take_double("damping", o.damping);
  take_double("inner-lr", o.inner_lr);
  take_double("outer-lr", o.outer_lr);
  take_double("init-log-lambda", o.init_log_lambda);
  std::int64_t seed = static_cast<std::int64_t>(o.seed);
  take_int("seed", seed);
  o.seed = static_cast<std::uint64_t>(seed);
  o.synthetic = values.erase("synthetic") > 0;
  o.resume = values.erase("resume") > 0;
  if (!values.empty()) throw std::invalid_argument("unknown option --" + values.begin()->first);

  ift::require(o.experiment == "bilevel" || o.experiment == "overfit",
               "--experiment must be bilevel or overfit");
  ift::require(o.hyper == "weight-decay" || o.hyper == "augmentation",
               "--hyper must be weight-decay or augmentation");
  ift::require(o.model == "cnn" || o.model == "mlp", "--model must be cnn or mlp");
  ift::require(o.n_train > 0 && o.n_val > 0 && o.n_test >= 0, "--n-train/--n-val must be > 0");
  ift::require(o.hyper_steps >= 0 && o.inner_steps >= 0, "--hyper-steps/--inner-steps must be >= 0");
  ift::require(o.batch > 0, "--batch must be > 0");
  ift::require(!o.resume || !o.checkpoint.empty(), "--resume needs --checkpoint");
  if (o.inner_lr == 0) o.inner_lr = o.inner_optimizer == "sgd" ? 0.05 : 1e-3;
  if (o.damping < 0) o.damping = o.method == "kfac" ? 1e-3 : 0.0;
  return o;
}

/// SplitMix-style mixing of (seed, a, b) into one 64-bit seed: every inner step and hyper-step
/// gets its own reproducible stream, so a resumed run draws what an uninterrupted one did.
std::uint64_t mix(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0) {
  ift::detail::SplitMix64 r(seed ^ (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL));
  r.next();
  return r.next();
}

std::string fixed(double v, int digits = 4) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(digits);
  s << v;
  return s.str();
}

int run(const Options& o) {
  // Two thread pools on two cores spin against each other (DESIGN.md §5): passive waiting.
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  if (o.threads > 0) ::torch::set_num_threads(static_cast<int>(o.threads));
  ::torch::manual_seed(o.seed);
  const auto device = ift::deep::parse_device(o.device);
  const auto dtype = ift::deep::parse_dtype(o.dtype);

  ift::deep::TensorSplits data =
      o.synthetic ? ift::deep::synthetic_images(o.n_train, o.n_val, o.n_test, o.seed + 100)
                  : ift::deep::load_fashion_mnist_images(
                        o.n_train, o.n_val, o.n_test,
                        o.data_dir.empty() ? ift::default_fashion_mnist_dir() : o.data_dir);

  ift::deep::Model model;
  if (o.model == "cnn") {
    ift::deep::SmallCnn net(1, 28, 28, 10, o.filters);
    net->to(device, dtype);
    model = ift::deep::Model::of(net);
  } else {
    ift::deep::AffineMlp net(std::vector<std::int64_t>{784, 128, 10}, ift::Activation::Tanh);
    net->to(device, dtype);
    model = ift::deep::Model::of(net);
  }
  std::shared_ptr<ift::deep::HyperFamily> family;
  if (o.hyper == "weight-decay") {
    family = std::make_shared<ift::deep::WeightDecayFamily>(model.module->parameters(),
                                                            ift::DecayKind::PerWeight,
                                                            o.init_log_lambda);
  } else {
    ift::deep::UNet unet(1, 8);
    unet->to(device, dtype);
    auto u = unet.ptr();
    family = std::make_shared<ift::deep::AugmentationFamily>(
        u, [u](const Tensor& x, const Tensor& e) { return u->forward(x, e); });
  }
  std::optional<ift::deep::TensorData> test;
  if (o.n_test > 0) test = data.test;
  ift::deep::TorchProblem problem(model, family, data.train, data.val, test,
                                  ift::deep::cross_entropy_loss(), mix(o.seed, 7));

  ift::MethodSpec spec;
  spec.method = ift::parse_method(o.method);
  ift::require(spec.method != ift::Method::Exact,
               "--method exact forms a dense Hessian: use cg with enough steps on deep nets");
  spec.steps = o.steps;
  spec.neumann.alpha = o.alpha;
  spec.damping = o.damping;
  spec.neumann.power_iterations = o.power_iterations;
  spec.cg.reorthogonalize = false;  // k is small here; plain CG keeps memory at a few vectors
  spec.check();

  // Algorithm 2 through the library's one loop (ift/generic/bilevel.hpp) on flat tensors.
  ift::BilevelParams params;
  params.method = spec;
  params.hyper_steps = o.hyper_steps;
  params.inner_steps = o.inner_steps;
  params.batch_size = std::min<std::int64_t>(o.batch, problem.num_train_examples());
  ift::parse_inner(o.inner_optimizer, params);
  params.inner.learning_rate = o.inner_lr;
  params.outer = {ift::OptimizerKind::Adam, o.outer_lr};
  params.seed = o.seed;
  if (o.experiment == "overfit") params.target_accuracy = 1.0;
  params.checkpoint_path = o.checkpoint;
  params.checkpoint_every = 1;  // a checkpoint after every hyper-step (they are slow)

  const std::vector<std::string> header{
      "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
      "test_accuracy", "hypergradient_norm", "status", "iterations", "hvps", "alpha",
      "hyper_seconds", "seconds"};
  ift::io::CsvWriter csv(o.csv, header);
  csv.add_comment("ift-deep: Algorithm 2 through LibTorch (DESIGN.md P4/P6)");
  const std::vector<std::pair<std::string, std::string>> echo{
      {"experiment", o.experiment}, {"hyper", o.hyper}, {"method", spec.name()},
      {"steps", std::to_string(o.steps)}, {"alpha", std::to_string(o.alpha)},
      {"power_iterations", std::to_string(o.power_iterations)},
      {"damping", std::to_string(o.damping)}, {"model", o.model},
      {"filters", std::to_string(o.filters)}, {"device", o.device}, {"dtype", o.dtype},
      {"data", o.synthetic ? "synthetic" : "fashion-mnist"}, {"n_train", std::to_string(o.n_train)},
      {"n_val", std::to_string(o.n_val)}, {"n_test", std::to_string(o.n_test)},
      {"hyper_steps", std::to_string(o.hyper_steps)}, {"inner_steps", std::to_string(o.inner_steps)},
      {"inner_optimizer", o.inner_optimizer}, {"inner_lr", std::to_string(o.inner_lr)},
      {"batch", std::to_string(o.batch)}, {"outer_optimizer", "adam"},
      {"outer_lr", std::to_string(o.outer_lr)}, {"init_log_lambda", std::to_string(o.init_log_lambda)},
      {"seed", std::to_string(o.seed)}, {"num_params", std::to_string(problem.num_params())},
      {"num_hyper", std::to_string(problem.num_hyper())},
      {"threads", std::to_string(::torch::get_num_threads())}};
  std::ostringstream configuration;
  for (const auto& [k, v] : echo) {
    csv.add_comment(k + " = " + v);
    if (k != "hyper_steps" && k != "threads") configuration << k << "=" << v << "\n";
  }
  params.configuration = configuration.str();

  ift::generic::BilevelLoop<ift::deep::TorchProblem> loop(params);
  const bool progress = ::isatty(2) != 0;
  loop.add_observer([&](const ift::HyperStepRecord& r) {
    const ift::Metrics& m = r.metrics;
    csv.add_row_and_save({static_cast<std::int64_t>(r.step - 1), m.train_loss, m.train_accuracy,
                          m.val_loss, m.val_accuracy, m.has_test ? m.test_loss : std::nan(""),
                          m.has_test ? m.test_accuracy : std::nan(""), r.hypergradient_norm,
                          r.status, static_cast<std::int64_t>(r.iterations),
                          static_cast<std::int64_t>(r.hvps), r.alpha, r.hypergradient_seconds,
                          r.elapsed_seconds});
    if (progress && !r.restored) {
      std::cerr << "\rstep " << r.step << "/" << o.hyper_steps << "  train acc "
                << fixed(m.train_accuracy, 3) << "  val loss " << fixed(m.val_loss) << " acc "
                << fixed(m.val_accuracy, 3) << "  |h| " << r.hypergradient_norm << "  "
                << r.status << "  " << fixed(r.hypergradient_seconds, 2) << " s   " << std::flush;
    }
  });
  const Tensor w = problem.current_weights();
  const Tensor lambda = problem.current_lambda();
  ift::generic::BilevelResult<Tensor> result;
  if (o.resume && std::filesystem::exists(o.checkpoint)) {
    std::cerr << "ift-deep: resuming from " << o.checkpoint << "\n";
    result = loop.resume(problem, ift::load_checkpoint<double>(o.checkpoint), w, lambda);
  } else {
    result = loop.run(problem, w, lambda);
  }
  if (progress) std::cerr << "\n";
  csv.save();
  if (result.reason == ift::StopReason::TargetReached && !result.records.empty()) {
    const ift::Metrics& m = result.records.back().metrics;
    std::cerr << "ift-deep: train and validation accuracy reached 100% at step "
              << result.records.back().step - 1 << " (test accuracy " << fixed(m.test_accuracy, 4)
              << ")\n";
  }
  std::cerr << "ift-deep: " << result.message << "; wrote " << o.csv << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::invalid_argument& e) {
    std::cerr << "ift-deep: " << e.what() << "\n(see ift-deep --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ift-deep: " << e.what() << "\n";
    return 1;
  }
}
