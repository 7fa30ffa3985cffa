// ift-overfit: DESIGN.md P4, the paper's Figures 3/4. With one weight decay per weight as the
// hyperparameters, Algorithm 2 can fit a small validation set perfectly: training and validation
// accuracy reach 100% while test accuracy does not. 50 train / 50 validation rows, log λ = −4,
// the identity inverse (any method may be chosen), inner Adam; logistic regression or a
// one-hidden-layer MLP.
//
// Output DIR/overfit.csv, one row per hyper-step, '#' lines echoing the parameters, then:
//   model,method,step,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,
//   hypergradient_norm,status,iterations,hvps,hypergradient_seconds,elapsed_seconds,message
// (one line), rewritten atomically after every hyper-step. Stops when train and validation
// accuracy reach --target, or after --hyper-steps; prints the final test accuracy.
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "app_common.hpp"
#include "ift/bilevel.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace {

using namespace ift;
using namespace ift::app;

const char* const kUsage =
    "ift-overfit: per-weight weight decay tuned by Algorithm 2 overfits a small validation set\n"
    "(DESIGN.md P4, the paper's Figures 3/4).\n"
    "Usage: ift-overfit [options]      (writes OUT/overfit.csv; plot it with\n"
    "       /usr/bin/python3 plots/plot_overfit.py OUT/overfit.csv -o OUT/overfit.png)";

struct Options {
  CommonOptions common;
  std::string model = "logreg", activation = "tanh", method = "identity";
  Index hidden = 50;
  Index train = 50, val = 50, test = 10000;
  Index hyper_steps = 1000, inner_steps = 10, warmup_steps = 100;
  std::string inner_optimizer = "adam", outer_optimizer = "adam";
  double inner_lr = 0.01, outer_lr = 0.1;
  double init_log_decay = -4, target = 1.0;
  Index steps = 20;
  double alpha = 0, damping = 0;
  std::string on_failure = "continue";
  Index checkpoint_every = 50;
  bool resume = false;
};

/// Builds the problem for the chosen model and runs the loop on it.
template <class Model>
int run_with(const Options& o, const po::variables_map& vm, Model model, Vector<double> w0,
             Splits<double> data, const BilevelParams& params) {
  RegularizedProblem<Model> problem(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      std::make_shared<const Dataset<double>>(std::move(data.train)),
      std::make_shared<const Dataset<double>>(std::move(data.val)),
      data.test.size() ? std::make_shared<const Dataset<double>>(std::move(data.test)) : nullptr);
  const Vector<double> lambda0 = Vector<double>::Constant(model.num_params(), o.init_log_decay);

  std::vector<std::string> header = {"model", "method"};
  for (const auto& c : record_columns()) header.push_back(c);
  namespace fs = std::filesystem;
  io::CsvWriter csv((fs::path(o.common.out) / "overfit.csv").string(), header);
  csv.add_comment(
      "ift-overfit (DESIGN.md P4): per-weight decay, D = " + std::to_string(model.num_params()) +
      ", " + std::to_string(effective_threads()) + " threads");
  csv.add_comment(describe_options(vm));

  BilevelLoop<double> loop(params);
  const std::string method = params.method.name();
  ProgressBar progress(o.model + "/" + method, params.hyper_steps);
  loop.add_observer([&](const HyperStepRecord& r) {
    std::vector<io::CsvCell> row = {o.model, method};
    for (auto& cell : record_cells(r)) row.push_back(cell);
    csv.add_row(row);
    if (!r.restored) csv.save();
    progress.update(r);
  });
  install_stop_signals();
  loop.set_stop_request(stop_requested);
  const BilevelResult<double> result =
      o.resume ? loop.resume(problem, load_checkpoint<double>(params.checkpoint_path))
               : loop.run(problem, w0, lambda0);
  progress.finish();
  csv.save();
  if (result.reason == StopReason::StopRequested) {
    std::cerr << "ift-overfit: interrupted after " << result.steps
              << " hyper-steps; checkpoint written to " << params.checkpoint_path
              << "; continue with the same options and --resume\n";
    return 128 + static_cast<int>(g_stop_signal);
  }
  if (result.records.empty()) {
    std::cout << "no hyper-steps run\nwrote " << csv.path() << "\n";
    return 0;
  }
  const Metrics& m = result.records.back().metrics;
  std::printf(
      "%s after %lld hyper-steps: train accuracy %.4f, validation accuracy %.4f, "
      "test accuracy %.4f (test loss %.4f)\nwrote %s\n",
      result.message.c_str(), static_cast<long long>(result.steps), m.train_accuracy,
      m.val_accuracy, m.test_accuracy, m.test_loss, csv.path().c_str());
  return 0;
}

int run(int argc, char** argv) {
  Options o;
  po::options_description desc("Options");
  add_common_options(desc, o.common);
  desc.add_options()(
      "model", po::value(&o.model)->default_value(o.model),
      "logreg (softmax regression, 785 features with the bias) or mlp (784-hidden-10)")(
      "hidden", po::value(&o.hidden)->default_value(o.hidden), "MLP hidden units")(
      "activation", po::value(&o.activation)->default_value(o.activation),
      "MLP activation: tanh, sigmoid, softplus or relu")(
      "method", po::value(&o.method)->default_value(o.method),
      "inverse approximation: identity, exact, cg, neumann, kfac, zero or unrolled")(
      "train", po::value(&o.train)->default_value(o.train), "training rows")(
      "val", po::value(&o.val)->default_value(o.val), "validation rows (after the training rows)")(
      "test", po::value(&o.test)->default_value(o.test), "test rows")(
      "hyper-steps", po::value(&o.hyper_steps)->default_value(o.hyper_steps),
      "most outer iterations")(
      "target", po::value(&o.target)->default_value(o.target),
      "stop once train and validation accuracy both reach this, in (0, 1]")(
      "inner-steps", po::value(&o.inner_steps)->default_value(o.inner_steps),
      "inner optimiser steps N per hyper-step (w is warm-started)")(
      "warmup-steps", po::value(&o.warmup_steps)->default_value(o.warmup_steps),
      "inner steps before the first hyper-step")(
      "inner-optimizer", po::value(&o.inner_optimizer)->default_value(o.inner_optimizer),
      "sgd, momentum or adam")("inner-lr", po::value(&o.inner_lr)->default_value(o.inner_lr),
                               "inner learning rate")(
      "outer-optimizer", po::value(&o.outer_optimizer)->default_value(o.outer_optimizer),
      "sgd, momentum or adam")("outer-lr", po::value(&o.outer_lr)->default_value(o.outer_lr),
                               "outer learning rate")(
      "init-log-decay", po::value(&o.init_log_decay)->default_value(o.init_log_decay),
      "initial log weight decay of every weight")(
      "steps", po::value(&o.steps)->default_value(o.steps), "CG iterations / Neumann terms k")(
      "alpha", po::value(&o.alpha), "Neumann step size, > 0 (default: 1/λ_max)")(
      "damping", po::value(&o.damping)->default_value(o.damping),
      "δ ≥ 0 added to the curvature by exact, cg, neumann and kfac")(
      "on-failure", po::value(&o.on_failure)->default_value(o.on_failure),
      "continue or stop when the hypergradient fails numerically")(
      "checkpoint-every", po::value(&o.checkpoint_every)->default_value(o.checkpoint_every),
      "hyper-steps between checkpoints (0: only at the end or on SIGINT/SIGTERM)")(
      "resume", po::bool_switch(&o.resume), "continue from OUT/checkpoint-overfit.bin");
  po::variables_map vm;
  if (!parse_options(argc, argv, desc, kUsage, vm)) return 0;

  apply_common_options(o.common);
  require_option(o.model == "logreg" || o.model == "mlp", "model",
                 "unknown model '" + o.model + "' (expected logreg or mlp)");
  require_option(o.hidden >= 1, "hidden", "must be >= 1");
  Activation activation;
  activation = parse_option("activation", [&] { return parse_activation(o.activation); });
  BilevelParams params;
  params.method.method = parse_option("method", [&] { return parse_method(o.method); });
  check_sizes(o.common, o.train, o.val, o.test);
  require_option(o.hyper_steps >= 0, "hyper-steps", "must be >= 0");
  require_option(o.inner_steps >= 0, "inner-steps", "must be >= 0");
  require_option(o.warmup_steps >= 0, "warmup-steps", "must be >= 0");
  require_option(o.target > 0 && o.target <= 1, "target", "must lie in (0, 1]");
  require_option(o.steps >= 0, "steps", "must be >= 0");
  require_option(!vm.count("alpha") || (std::isfinite(o.alpha) && o.alpha > 0), "alpha",
                 "must be > 0 (omit it to choose α from λ_max)");
  require_option(std::isfinite(o.damping) && o.damping >= 0, "damping", "must be >= 0");
  require_option(std::isfinite(o.inner_lr) && o.inner_lr > 0, "inner-lr", "must be > 0");
  require_option(std::isfinite(o.outer_lr) && o.outer_lr > 0, "outer-lr", "must be > 0");
  require_option(std::isfinite(o.init_log_decay), "init-log-decay", "must be finite");
  require_option(o.checkpoint_every >= 0, "checkpoint-every", "must be >= 0");
  params.inner = {
      parse_option("inner-optimizer", [&] { return parse_optimizer(o.inner_optimizer); }),
      o.inner_lr};
  params.outer = {
      parse_option("outer-optimizer", [&] { return parse_optimizer(o.outer_optimizer); }),
      o.outer_lr};
  params.on_failure = parse_option("on-failure", [&] { return parse_on_failure(o.on_failure); });
  params.method.steps = o.steps;
  params.method.damping = o.damping;
  if (vm.count("alpha")) params.method.neumann.alpha = o.alpha;
  params.hyper_steps = o.hyper_steps;
  params.inner_steps = o.inner_steps;
  params.warmup_steps = o.warmup_steps;
  params.seed = o.common.seed;
  params.target_accuracy = o.target;
  params.checkpoint_every = o.checkpoint_every;
  params.checkpoint_path =
      (std::filesystem::path(o.common.out) / "checkpoint-overfit.bin").string();
  {
    std::ostringstream c;
    c << "app=ift-overfit\nmodel=" << o.model << "\nhidden=" << o.hidden
      << "\nactivation=" << o.activation << "\ndata=" << o.common.data << "\ntrain=" << o.train
      << "\nval=" << o.val << "\ntest=" << o.test << "\ninit_log_decay=" << o.init_log_decay
      << "\nthreads=" << effective_threads() << "\n";
    params.configuration = c.str();
  }
  params.check();
  require_option(!o.resume || std::filesystem::exists(params.checkpoint_path), "resume",
                 "no checkpoint at " + params.checkpoint_path);

  Splits<double> data = load_data(o.common, o.train, o.val, o.test);
  if (o.model == "logreg") {
    SoftmaxRegression<double> model(data.train.num_features(), 10);
    const Vector<double> w0 = Vector<double>::Zero(model.num_params());
    return run_with(o, vm, model, w0, std::move(data), params);
  }
  // The MLP has its own biases: drop the constant column load_data appended.
  for (Dataset<double>* d : {&data.train, &data.val, &data.test})
    d->X.conservativeResize(Eigen::NoChange, d->X.cols() - 1);
  Mlp<double> model({data.train.num_features(), o.hidden, 10}, activation,
                    OutputLoss::SoftmaxCrossEntropy);
  const Vector<double> w0 = model.initial_weights(o.common.seed);
  return run_with(o, vm, model, w0, std::move(data), params);
}

}  // namespace

int main(int argc, char** argv) {
  return ift::app::run_main("ift-overfit", [&] { return run(argc, argv); });
}
