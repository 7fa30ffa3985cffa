// ift-compare: DESIGN.md P2, the paper's Figure 5. Algorithm 2 on per-weight weight decay for
// multinomial logistic regression (785 features with the bias, D = 7850), once per inverse
// approximation, every run from the same (w0 = 0, λ0, seed).
//
// Output DIR/compare.csv, one row per hyper-step, '#' lines echoing the parameters, then:
//   method,step,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,
//   hypergradient_norm,status,iterations,hvps,hypergradient_seconds,elapsed_seconds,message
// (one line). Losses are mean cross-entropies without the penalty, measured where the
// hypergradient was taken (after the inner steps, before the outer step); elapsed_seconds is
// per method. A failed solve (for example the exact Hessian turning numerically singular) is
// reported in status/message, never hidden; --on-failure chooses whether that method's run
// continues. The file is rewritten atomically after every hyper-step; checkpoints
// DIR/checkpoint-<method>.bin make the run resumable (--resume) after SIGINT/SIGTERM or a crash.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "app_common.hpp"
#include "ift/bilevel.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace {

using namespace ift;
using namespace ift::app;

const char* const kUsage =
    "ift-compare: the inverse-Hessian approximations of the IFT hypergradient compared inside\n"
    "Algorithm 2 (DESIGN.md P2, the paper's Figure 5): per-weight weight decay for logistic\n"
    "regression on Fashion-MNIST, one run per method from the same start.\n"
    "Usage: ift-compare [options]      (writes OUT/compare.csv; plot it with\n"
    "       /usr/bin/python3 plots/plot_compare.py OUT/compare.csv -o OUT/compare.png)";

struct Options {
  CommonOptions common;
  std::string methods = "exact,kfac,cg,neumann,identity,zero";
  Index train = 3500, val = 3500, test = 10000;
  // Defaults sized so all six methods finish in about five minutes on 2 cores: the exact method
  // builds and factorises a 7850² Hessian every hyper-step (10–20 s each there). --full: 200.
  Index hyper_steps = 10, inner_steps = 10, warmup_steps = 200, batch_size = 0;
  std::string inner_optimizer = "adam", outer_optimizer = "adam";
  double inner_lr = 0.01, outer_lr = 0.1;
  double init_log_decay = -6.907755278982137;  // log 1e-3
  Index steps = 20;
  double alpha = 0, damping = 0;
  std::string on_failure = "continue";
  Index checkpoint_every = 5;
  bool resume = false, full = false;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

int run(int argc, char** argv) {
  Options o;
  po::options_description desc("Options");
  add_common_options(desc, o.common);
  desc.add_options()(
      "methods", po::value(&o.methods)->default_value(o.methods),
      "comma-separated inverse approximations: exact, kfac, cg, neumann, identity, zero "
      "(also unrolled)")("train", po::value(&o.train)->default_value(o.train), "training rows")(
      "val", po::value(&o.val)->default_value(o.val), "validation rows (after the training rows)")(
      "test", po::value(&o.test)->default_value(o.test), "test rows")(
      "hyper-steps", po::value(&o.hyper_steps)->default_value(o.hyper_steps),
      "outer iterations per method")("inner-steps",
                                     po::value(&o.inner_steps)->default_value(o.inner_steps),
                                     "inner optimiser steps N per hyper-step (w is warm-started)")(
      "warmup-steps", po::value(&o.warmup_steps)->default_value(o.warmup_steps),
      "inner steps from w = 0 at λ0 before the first hyper-step (shared by all methods, so "
      "the first hypergradient is taken near w*)")(
      "batch-size", po::value(&o.batch_size)->default_value(o.batch_size),
      "rows per inner minibatch (0: full batch)")(
      "inner-optimizer", po::value(&o.inner_optimizer)->default_value(o.inner_optimizer),
      "sgd, momentum or adam")("inner-lr", po::value(&o.inner_lr)->default_value(o.inner_lr),
                               "inner learning rate")(
      "outer-optimizer", po::value(&o.outer_optimizer)->default_value(o.outer_optimizer),
      "sgd, momentum or adam")("outer-lr", po::value(&o.outer_lr)->default_value(o.outer_lr),
                               "outer learning rate")(
      "init-log-decay", po::value(&o.init_log_decay)->default_value(o.init_log_decay),
      "initial log weight decay of every weight (log 1e-3)")(
      "steps", po::value(&o.steps)->default_value(o.steps), "CG iterations / Neumann terms k")(
      "alpha", po::value(&o.alpha),
      "Neumann step size, > 0 (default: 1/λ_max by power iteration at every hyper-step)")(
      "damping", po::value(&o.damping)->default_value(o.damping),
      "δ ≥ 0 added to the curvature by exact, cg, neumann and kfac")(
      "on-failure", po::value(&o.on_failure)->default_value(o.on_failure),
      "continue or stop a method's run when its hypergradient fails numerically")(
      "checkpoint-every", po::value(&o.checkpoint_every)->default_value(o.checkpoint_every),
      "hyper-steps between checkpoints (0: only at the end or on SIGINT/SIGTERM)")(
      "resume", po::bool_switch(&o.resume), "continue from OUT/checkpoint-<method>.bin")(
      "full", po::bool_switch(&o.full),
      "the paper-size run: 200 hyper-steps (overrides --hyper-steps; the exact method then "
      "takes most of an hour on 2 cores)");
  po::variables_map vm;
  if (!parse_options(argc, argv, desc, kUsage, vm)) return 0;

  // Validate everything before loading data or writing anything.
  apply_common_options(o.common);
  if (o.full) o.hyper_steps = 200;
  const std::vector<std::string> methods = split_list(o.methods);
  require_option(!methods.empty(), "methods", "names no method");
  std::vector<MethodSpec> specs;
  for (const std::string& name : methods) {
    MethodSpec spec;
    try {
      spec.method = parse_method(name);
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--methods: ") + e.what());
    }
    spec.steps = o.steps;
    spec.damping = o.damping;
    if (vm.count("alpha")) spec.neumann.alpha = o.alpha;
    specs.push_back(spec);
  }
  check_sizes(o.common, o.train, o.val, o.test);
  require_option(o.hyper_steps >= 0, "hyper-steps", "must be >= 0");
  require_option(o.inner_steps >= 0, "inner-steps", "must be >= 0");
  require_option(o.warmup_steps >= 0, "warmup-steps", "must be >= 0");
  require_option(o.batch_size >= 0 && o.batch_size <= o.train, "batch-size",
                 "must lie in [0, --train] (0: full batch)");
  require_option(o.steps >= 0, "steps", "must be >= 0");
  require_option(!vm.count("alpha") || (std::isfinite(o.alpha) && o.alpha > 0), "alpha",
                 "must be > 0 (omit it to choose α from λ_max)");
  require_option(std::isfinite(o.damping) && o.damping >= 0, "damping", "must be >= 0");
  require_option(std::isfinite(o.inner_lr) && o.inner_lr > 0, "inner-lr", "must be > 0");
  require_option(std::isfinite(o.outer_lr) && o.outer_lr > 0, "outer-lr", "must be > 0");
  require_option(std::isfinite(o.init_log_decay), "init-log-decay", "must be finite");
  require_option(o.checkpoint_every >= 0, "checkpoint-every", "must be >= 0");
  BilevelParams base;
  base.inner = {parse_option("inner-optimizer", [&] { return parse_optimizer(o.inner_optimizer); }),
                o.inner_lr};
  base.outer = {parse_option("outer-optimizer", [&] { return parse_optimizer(o.outer_optimizer); }),
                o.outer_lr};
  base.on_failure = parse_option("on-failure", [&] { return parse_on_failure(o.on_failure); });
  base.hyper_steps = o.hyper_steps;
  base.inner_steps = o.inner_steps;
  base.batch_size = o.batch_size;
  base.seed = o.common.seed;
  base.checkpoint_every = o.checkpoint_every;
  {
    std::ostringstream c;
    c << "app=ift-compare\nmodel=softmax-regression\ndecay=per-weight\ndata=" << o.common.data
      << "\ntrain=" << o.train << "\nval=" << o.val << "\ntest=" << o.test
      << "\ninit_log_decay=" << o.init_log_decay << "\nwarmup_steps=" << o.warmup_steps
      << "\nthreads=" << effective_threads() << "\n";
    base.configuration = c.str();
  }
  namespace fs = std::filesystem;
  const fs::path out_dir(o.common.out);
  auto checkpoint_path = [&](const MethodSpec& s) {
    return (out_dir / ("checkpoint-" + s.name() + ".bin")).string();
  };
  if (o.resume) {
    bool any = false;
    for (const auto& s : specs) any = any || fs::exists(checkpoint_path(s));
    require_option(any, "resume", "no checkpoint-<method>.bin in " + o.common.out);
  }

  const Splits<double> data = load_data(o.common, o.train, o.val, o.test);
  const Index features = data.train.num_features();
  SoftmaxRegression<double> model(features, 10);
  RegularizedProblem<SoftmaxRegression<double>> problem(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      std::make_shared<const Dataset<double>>(data.train),
      std::make_shared<const Dataset<double>>(data.val),
      data.test.size() ? std::make_shared<const Dataset<double>>(data.test) : nullptr);
  const Vector<double> lambda0 = Vector<double>::Constant(model.num_params(), o.init_log_decay);
  // The common start w0: --warmup-steps inner steps from w = 0 at λ0, done once here rather than
  // once per method (the runs would repeat the same deterministic steps).
  Vector<double> w0 = Vector<double>::Zero(model.num_params());
  if (!o.resume || !std::all_of(specs.begin(), specs.end(), [&](const MethodSpec& s) {
        return fs::exists(checkpoint_path(s));
      })) {
    Optimizer<double> warmup(base.inner, model.num_params());
    for (Index i = 0; i < o.warmup_steps; ++i) {
      problem.set_point(lambda0, w0);
      warmup.step(w0, problem.train_gradient());
    }
  }

  std::vector<std::string> header = {"method"};
  for (const auto& c : record_columns()) header.push_back(c);
  io::CsvWriter csv((out_dir / "compare.csv").string(), header);
  csv.add_comment("ift-compare (DESIGN.md P2): per-weight decay, logistic regression, D = " +
                  std::to_string(model.num_params()) + ", " + std::to_string(effective_threads()) +
                  " threads");
  csv.add_comment(describe_options(vm));

  install_stop_signals();
  struct Summary {
    std::string method;
    HyperStepRecord last;
    std::string outcome;
  };
  std::vector<Summary> summary;
  for (const MethodSpec& spec : specs) {
    BilevelParams params = base;
    params.method = spec;
    params.checkpoint_path = checkpoint_path(spec);
    BilevelLoop<double> loop(params);
    const std::string name = spec.name();
    ProgressBar progress(name, params.hyper_steps);
    loop.add_observer([&](const HyperStepRecord& r) {
      std::vector<io::CsvCell> row = {name};
      for (auto& cell : record_cells(r)) row.push_back(cell);
      csv.add_row(row);
      if (!r.restored) csv.save();
      progress.update(r);
    });
    loop.set_stop_request(stop_requested);
    BilevelResult<double> result;
    if (o.resume && fs::exists(params.checkpoint_path)) {
      result = loop.resume(problem, load_checkpoint<double>(params.checkpoint_path));
      csv.save();
    } else {
      result = loop.run(problem, w0, lambda0);
    }
    progress.finish();
    if (result.reason == StopReason::StopRequested) {
      csv.save();
      std::cerr << "ift-compare: interrupted during " << name << " after " << result.steps
                << " hyper-steps; checkpoint written to " << params.checkpoint_path
                << "; continue with the same options and --resume\n";
      return 128 + static_cast<int>(g_stop_signal);
    }
    if (!result.records.empty()) summary.push_back({name, result.records.back(), result.message});
  }
  csv.save();

  std::cout << "method            steps  val_loss  test_acc  status            seconds  outcome\n";
  for (const auto& s : summary) {
    char line[256];
    std::snprintf(line, sizeof line, "%-16s %6lld  %8.5f  %8.4f  %-16s %8.1f  %s\n",
                  s.method.c_str(), static_cast<long long>(s.last.step), s.last.metrics.val_loss,
                  s.last.metrics.test_accuracy, s.last.status.c_str(), s.last.elapsed_seconds,
                  s.outcome.c_str());
    std::cout << line;
  }
  std::cout << "wrote " << csv.path() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return ift::app::run_main("ift-compare", [&] { return run(argc, argv); });
}
