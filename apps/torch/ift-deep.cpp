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
// Data-parallel: started as N processes with torch.distributed's variables (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT, as torchrun sets them; or under mpirun with MASTER_ADDR/PORT), each
// process takes its contiguous shard of the rows and sums the data terms over a Gloo (CPU) or
// NCCL (CUDA) process group; rank 0 alone writes the CSV and the checkpoint (docs/distributed.md).
//
// Options come from the apps' one table (apps/options.hpp) through its built-in parser (no
// Boost): the binary depends on Torch and ift only, so it also builds on a GPU machine with a pip
// LibTorch and nothing else.
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
#ifdef IFT_HAVE_TORCH_DISTRIBUTED
#include "ift/torch/distributed.hpp"
#endif
#include "../options.hpp"

namespace {

using ift::deep::Tensor;

const char* const kUsage =
    "ift-deep: Algorithm 2 on deep nets through LibTorch (DESIGN.md P4, P6).\n"
    "Usage: ift-deep [options]      (writes OUT/ift-deep.csv; docs/torch.md has examples)\n"
    "--experiment overfit: P4 on a CNN (50/50 rows, per-weight decay from log λ = -4, identity,\n"
    "inner Adam, batch 50, 5 inner steps, 1000 hyper-steps, outer lr 0.2, double, stop at 100%\n"
    "train and validation accuracy), each setting still overridable.";

/// The options: the shared table's groups (apps/options.hpp) and ift-deep's own.
ift::app::OptionSet options() {
  using ift::app::option;
  using ift::app::ValueKind;
  ift::app::OptionSet set("ift-deep", kUsage);
  set.use(ift::app::selection::kData)
      .use({"model", "init-log-decay", "method"})
      .use(ift::app::selection::kMethod)
      .use(ift::app::selection::kLoop)
      .use(ift::app::selection::kRun)
      .use({"device", "dtype"})
      .add(option("", "experiment", ValueKind::Text, "NAME", "bilevel, or overfit (P4, above)")
               .by_default("bilevel")
               .one_of({"bilevel", "overfit"}))
      .add(option("", "hyper", ValueKind::Text, "NAME",
                  "hyperparameters: one log weight decay per weight, or the weights of a small "
                  "U-Net x' = U_λ(x, ε)")
               .by_default("weight-decay")
               .one_of({"weight-decay", "augmentation"}))
      .add(option("", "filters", ValueKind::Integer, "F",
                  "CNN width; ResNet base width (F, 2F, 4F filters; 40: 1,084,970 weights)")
               .by_default("8")
               .integers(1, 1'000'000))
      .add(option("", "checkpoint", ValueKind::Text, "FILE",
                  "checkpoint file, written every --checkpoint-every hyper-steps (none without it)")
               .check(ift::app::valid::non_empty()))
      .add(option("", "csv", ValueKind::Text, "FILE",
                  "output table instead of OUT/ift-deep.csv (deprecated: use --out)")
               .check(ift::app::valid::non_empty()));
  // --damping: 1e-3 for kfac, 0 otherwise; --inner-lr: 0.05 for sgd, 1e-3 otherwise.
  set.set_defaults({{"model", "cnn"},
                    {"init-log-decay", "-5"},
                    {"method", "neumann"},
                    {"steps", "5"},
                    {"power-iterations", "20"},
                    {"inner-steps", "20"},
                    {"batch-size", "100"},
                    {"outer-lr", "0.01"},
                    {"checkpoint-every", "1"},
                    {"seed", "1"}});
  set.set_default("damping", std::nullopt).set_default("inner-lr", std::nullopt);
  set.set_choices("model", {"cnn", "mlp", "resnet"})
      .set_choices("inner", {"sgd", "momentum", "adam", "newton-cg"});
  return set;
}

struct Options {
  std::string experiment, hyper, method, model, device, dtype, data_dir, csv, checkpoint;
  std::string inner_optimizer, outer_optimizer, on_failure;
  std::int64_t steps, power_iterations, filters, n_train, n_val, n_test, hyper_steps, inner_steps,
      batch, threads, checkpoint_every;
  double alpha, damping, inner_lr, outer_lr, init_log_lambda;
  bool synthetic, resume, warm_start;
  std::uint64_t seed;
  ift::KfacParams kfac;  // --kfac-penalty (--kfac-eigenvalues corrected is refused: no EKFAC here)
};

/// The parsed options with every default decided (P4's for --experiment overfit); nothing after
/// printing --help.
std::optional<Options> parse(int argc, char** argv) {
  const std::optional<ift::app::OptionValues> parsed =
      ift::app::parse_builtin(argc, argv, options());
  if (!parsed) return std::nullopt;
  ift::app::OptionValues v = *parsed;
  if (v.text("experiment") == "overfit") {  // P4's settings, each still overridable
    // log λ grows without bound on weights the validation set wants gone: exp(λ) overflows
    // float near λ = 88, so P4 runs in double (50 rows: cheap).
    for (const auto& [name, value] :
         std::vector<std::pair<std::string, std::string>>{{"train", "50"},
                                                          {"val", "50"},
                                                          {"method", "identity"},
                                                          {"hyper", "weight-decay"},
                                                          {"inner", "adam"},
                                                          {"init-log-decay", "-4"},
                                                          {"hyper-steps", "1000"},
                                                          {"batch-size", "50"},
                                                          {"inner-steps", "5"},
                                                          {"outer-lr", "0.2"},
                                                          {"dtype", "double"}})
      v.default_to(name, value);
  }
  v.default_to("inner-lr", v.text("inner") == "sgd" ? "0.05" : "1e-3");
  v.default_to("damping", v.text("method") == "kfac" ? "1e-3" : "0");
  ift::app::require_option(v.text("method") != "exact", "method",
                           "exact forms a dense Hessian: use cg with enough steps on deep nets");
  ift::app::require_option(!v.flag("resume") || v.has("checkpoint"), "resume",
                           "needs --checkpoint");
  Options o;
  o.experiment = v.text("experiment");
  o.hyper = v.text("hyper");
  o.method = v.text("method");
  o.model = v.text("model");
  o.device = v.text("device");
  o.dtype = v.text("dtype");
  o.data_dir = v.has("data-dir") ? v.text("data-dir") : "";
  if (v.has("csv")) {
    const std::filesystem::path parent = std::filesystem::path(v.text("csv")).parent_path();
    ift::app::prepare_output_dir(parent.empty() ? "." : parent.string(), "csv");
    o.csv = v.text("csv");
  } else {
    ift::app::prepare_output_dir(v.text("out"));
    o.csv = (std::filesystem::path(v.text("out")) / "ift-deep.csv").string();
  }
  o.checkpoint = v.has("checkpoint") ? v.text("checkpoint") : "";
  o.inner_optimizer = v.text("inner");
  o.outer_optimizer = v.text("outer-optimizer");
  o.on_failure = v.text("on-failure");
  o.steps = v.integer("steps");
  o.power_iterations = v.integer("power-iterations");
  o.filters = v.integer("filters");
  o.n_train = v.integer("train");
  o.n_val = v.integer("val");
  o.n_test = v.integer("test");
  o.hyper_steps = v.integer("hyper-steps");
  o.inner_steps = v.integer("inner-steps");
  o.batch = v.integer("batch-size");
  o.threads = v.integer("threads");
  o.checkpoint_every = v.integer("checkpoint-every");
  o.alpha = v.has("alpha") ? v.real("alpha") : 0.0;  // 0: 1/λ_max by power iteration
  o.damping = v.real("damping");
  ift::app::apply_kfac_options(v, o.kfac);
  ift::app::require_option(o.kfac.eigenvalues == ift::KfacEigenvalues::Kronecker, "kfac-eigenvalues",
                           "corrected (EKFAC) is provided by the Eigen models (softmax "
                           "regression, MLPs), not by the LibTorch adapter");
  o.inner_lr = v.real("inner-lr");
  o.outer_lr = v.real("outer-lr");
  o.init_log_lambda = v.real("init-log-decay");
  o.synthetic = v.text("data") == "synthetic";
  o.resume = v.flag("resume");
  o.warm_start = v.flag("warm-start");
  o.seed = v.integer_u64("seed");
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

  // A data-parallel run joins its process group first (a peer that never comes fails here,
  // after the timeout, naming the address).
  std::shared_ptr<ift::deep::TensorCommunicator> comm;
#ifdef IFT_HAVE_TORCH_DISTRIBUTED
  if (const auto config = ift::deep::distributed_config_from_env(device.is_cuda() ? "nccl" : "gloo"))
    comm = std::make_shared<ift::deep::ProcessGroupCommunicator>(*config);
#else
  if (const char* size = std::getenv("WORLD_SIZE"); size && std::string(size) != "1")
    throw std::runtime_error("WORLD_SIZE is set but this ift-deep was built without "
                             "torch.distributed (install libgloo-dev and rebuild)");
#endif
  const bool root = !comm || comm->rank() == 0;

  ift::deep::TensorSplits data =
      o.synthetic ? ift::deep::synthetic_images(o.n_train, o.n_val, o.n_test, o.seed + 100)
                  : ift::deep::load_fashion_mnist_images(
                        o.n_train, o.n_val, o.n_test,
                        o.data_dir.empty() ? ift::default_fashion_mnist_dir() : o.data_dir);

  ift::deep::Model model;
  if (o.model == "resnet") {
    ift::deep::ResNet net(1, 10, o.filters);
    net->to(device, dtype);
    model = ift::deep::Model::of(net);
  } else if (o.model == "cnn") {
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
  ift::parallel::Shard train_shard, val_shard, test_shard;
  if (comm) {  // this rank's rows of each split
    const int r = comm->rank(), N = comm->size();
    train_shard = ift::parallel::contiguous_shard(o.n_train, r, N);
    val_shard = ift::parallel::contiguous_shard(o.n_val, r, N);
    if (o.n_test > 0) test_shard = ift::parallel::contiguous_shard(o.n_test, r, N);
    data.train = data.train.slice(train_shard.begin, train_shard.count);
    data.val = data.val.slice(val_shard.begin, val_shard.count);
    if (o.n_test > 0) data.test = data.test.slice(test_shard.begin, test_shard.count);
  }
  std::optional<ift::deep::TensorData> test;
  if (o.n_test > 0) test = data.test;
  ift::deep::TorchProblem problem(model, family, data.train, data.val, test,
                                  ift::deep::cross_entropy_loss(), mix(o.seed, 7));
  if (comm) problem.distribute(comm, train_shard, val_shard, test_shard);

  ift::MethodSpec spec = ift::parse_method_spec(o.method);  // with its +warm / +fresh / +fixed
  spec.steps = o.steps;
  spec.neumann.alpha = o.alpha;
  spec.damping = o.damping;
  spec.neumann.power_iterations = o.power_iterations;
  spec.kfac = o.kfac;
  if (o.warm_start && ift::supports_warm_start(spec.method)) spec.warm_start = true;
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
  params.outer = {ift::parse_optimizer(o.outer_optimizer), o.outer_lr};
  params.on_failure = ift::parse_on_failure(o.on_failure);
  params.seed = o.seed;
  if (o.experiment == "overfit") params.target_accuracy = 1.0;
  params.checkpoint_path = root ? o.checkpoint : std::string();  // one writer
  params.checkpoint_every = o.checkpoint_every;  // default 1: hyper-steps are slow

  const std::vector<std::string> header{
      "step", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss",
      "test_accuracy", "hypergradient_norm", "status", "iterations", "hvps", "alpha",
      "hyper_seconds", "seconds"};
  ift::io::CsvWriter csv(o.csv, header);
  csv.add_comment("ift-deep: Algorithm 2 through LibTorch (DESIGN.md P4/P6)");
  const std::vector<std::pair<std::string, std::string>> echo{
      {"experiment", o.experiment}, {"hyper", o.hyper}, {"method", spec.name()},
      {"steps", std::to_string(o.steps)}, {"alpha", ift::format_number(o.alpha)},
      {"power_iterations", std::to_string(o.power_iterations)},
      {"damping", ift::format_number(o.damping)}, {"model", o.model},
      {"filters", std::to_string(o.filters)}, {"device", o.device}, {"dtype", o.dtype},
      {"data", o.synthetic ? "synthetic" : "fashion-mnist"}, {"n_train", std::to_string(o.n_train)},
      {"n_val", std::to_string(o.n_val)}, {"n_test", std::to_string(o.n_test)},
      {"hyper_steps", std::to_string(o.hyper_steps)}, {"inner_steps", std::to_string(o.inner_steps)},
      {"inner_optimizer", o.inner_optimizer}, {"inner_lr", ift::format_number(o.inner_lr)},
      {"batch", std::to_string(o.batch)}, {"outer_optimizer", o.outer_optimizer},
      {"outer_lr", ift::format_number(o.outer_lr)}, {"init_log_lambda", ift::format_number(o.init_log_lambda)},
      {"seed", std::to_string(o.seed)}, {"num_params", std::to_string(problem.num_params())},
      {"num_hyper", std::to_string(problem.num_hyper())},
      {"threads", std::to_string(::torch::get_num_threads())},
      {"processes", std::to_string(comm ? comm->size() : 1)}};
  std::ostringstream configuration;
  for (const auto& [k, v] : echo) {
    csv.add_comment(k + " = " + v);
    // Not part of the run's identity: a resumed run may change these.
    if (k != "hyper_steps" && k != "threads" && k != "processes") configuration << k << "=" << v << "\n";
  }
  params.configuration = configuration.str();

  ift::generic::BilevelLoop<ift::deep::TorchProblem> loop(params);
  const bool progress = root && ::isatty(2) != 0;
  loop.add_observer([&](const ift::HyperStepRecord& r) {
    const ift::Metrics& m = r.metrics;
    csv.add_row({static_cast<std::int64_t>(r.step - 1), m.train_loss, m.train_accuracy,
                          m.val_loss, m.val_accuracy, m.has_test ? m.test_loss : std::nan(""),
                          m.has_test ? m.test_accuracy : std::nan(""), r.hypergradient_norm,
                          r.status, static_cast<std::int64_t>(r.iterations),
                          static_cast<std::int64_t>(r.hvps), r.alpha, r.hypergradient_seconds,
                          r.elapsed_seconds});
    if (root) csv.save();
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
    if (root) std::cerr << "ift-deep: resuming from " << o.checkpoint << "\n";
    result = loop.resume(problem, ift::load_checkpoint<double>(o.checkpoint), w, lambda);
  } else {
    result = loop.run(problem, w, lambda);
  }
  if (progress) std::cerr << "\n";
  if (!root) return 0;
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
  return ift::app::run_main("ift-deep", [&] {
    const std::optional<Options> o = parse(argc, argv);
    return o ? run(*o) : 0;
  });
}
