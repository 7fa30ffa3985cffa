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
#include <optional>
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

/// Runs the loop on the problem and writes OUT/overfit.csv.
template <class Model>
int run_with(const OptionValues& v, const CommonOptions& common, RegularizedProblem<Model> problem,
             const Vector<double>& w0, const BilevelParams& params) {
  distribute_problem(problem, common);  // mpirun -np N: this rank's rows, data terms summed
  const Vector<double> lambda0 =
      Vector<double>::Constant(problem.num_params(), v.real("init-log-decay"));
  const std::string model = v.text("model");

  std::vector<std::string> header = {"model", "method"};
  for (const auto& c : record_columns()) header.push_back(c);
  namespace fs = std::filesystem;
  io::CsvWriter csv((fs::path(common.out) / "overfit.csv").string(), header);
  csv.add_comment(
      "ift-overfit (DESIGN.md P4): per-weight decay, D = " + std::to_string(problem.num_params()) +
      ", " + std::to_string(effective_threads()) + " threads");
  csv.add_comment(v.describe());

  BilevelParams run_params = params;  // rank 0 writes the checkpoint; every rank resumes from it
  if (!is_root()) run_params.checkpoint_path.clear();
  BilevelLoop<double> loop(run_params);
  const std::string method = params.method.name();
  auto save = [&] {
    if (is_root()) csv.save();
  };
  ProgressBar progress(model + "/" + method, params.hyper_steps);
  loop.add_observer([&](const HyperStepRecord& r) {
    std::vector<io::CsvCell> row = {model, method};
    for (auto& cell : record_cells(r)) row.push_back(cell);
    csv.add_row(row);
    if (!r.restored) save();
    progress.update(r);
  });
  install_stop_signals();
  loop.set_stop_request([] { return stop_agreed(stop_requested()); });
  const BilevelResult<double> result =
      v.flag("resume") ? loop.resume(problem, load_checkpoint<double>(params.checkpoint_path))
                       : loop.run(problem, w0, lambda0);
  progress.finish();
  save();
  if (!is_root()) return result.reason == StopReason::StopRequested ? 128 + SIGTERM : 0;
  if (result.reason == StopReason::StopRequested) {
    std::cerr << "ift-overfit: interrupted after " << result.steps
              << " hyper-steps; checkpoint written to " << params.checkpoint_path
              << "; continue with the same options and --resume\n";
    return 128 + static_cast<int>(g_stop_signal != 0 ? g_stop_signal : SIGTERM);
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
  OptionSet set("ift-overfit", kUsage);
  set.use(selection::kData)
      .use({"model", "hidden", "activation", "init-log-decay", "method"})
      .use(selection::kMethod)
      .use({"exact-precision"})
      .use(selection::kLoop)
      .use({"warmup-steps"})
      .use(selection::kRun)
      .add(option("", "target", ValueKind::Real, "ACC",
                  "stop once train and validation accuracy both reach this")
               .by_default("1")
               .reals(Interval::open_closed(0, 1)));
  set.set_defaults({{"train", "50"},
                    {"val", "50"},
                    {"test", "10000"},
                    {"init-log-decay", "-4"},
                    {"method", "identity"},
                    {"hyper-steps", "1000"},
                    {"warmup-steps", "100"},
                    {"checkpoint-every", "50"}});
  set.set_choices("inner", {"sgd", "momentum", "adam"});
  const std::optional<OptionValues> parsed = parse_command_line(argc, argv, set);
  if (!parsed) return 0;
  const OptionValues& v = *parsed;
  const CommonOptions common = apply_common_options(v);  // validates the sizes, sets threads

  const Activation activation =
      parse_option("activation", [&] { return parse_activation(v.text("activation")); });
  BilevelParams params;
  params.method = method_spec(v, v.text("method"));
  apply_loop_options(v, params);
  params.warmup_steps = v.integer("warmup-steps");
  params.target_accuracy = v.real("target");
  params.checkpoint_path = (std::filesystem::path(common.out) / "checkpoint-overfit.bin").string();
  {
    std::ostringstream c;
    c << "app=ift-overfit\nmodel=" << v.text("model") << "\nhidden=" << v.integer("hidden")
      << "\nactivation=" << v.text("activation") << "\ndata=" << common.data
      << "\ntrain=" << common.train << "\nval=" << common.val << "\ntest=" << common.test
      << "\ninit_log_decay=" << v.real("init-log-decay") << "\nthreads=" << effective_threads()
      << "\n";
    params.configuration = c.str();
  }
  params.check();
  require_option(!v.flag("resume") || std::filesystem::exists(params.checkpoint_path), "resume",
                 "no checkpoint at " + params.checkpoint_path);

  Splits<double> data = load_data(common);
  if (v.text("model") == "logreg") {
    auto problem = make_p1_problem(std::move(data));
    const Vector<double> w0 = Vector<double>::Zero(problem.num_params());
    return run_with(v, common, std::move(problem), w0, params);
  }
  // The MLP has its own biases: drop the constant column load_data appended.
  for (Dataset<double>* d : {&data.train, &data.val, &data.test})
    d->X.conservativeResize(Eigen::NoChange, d->X.cols() - 1);
  Mlp<double> model({data.train.num_features(), v.integer("hidden"), 10}, activation,
                    OutputLoss::SoftmaxCrossEntropy);
  const Vector<double> w0 = model.initial_weights(common.seed);
  return run_with(v, common, make_decay_problem(std::move(model), std::move(data)), w0, params);
}

}  // namespace

int main(int argc, char** argv) {
  return ift::app::run_parallel_main("ift-overfit", argc, argv, [&] { return run(argc, argv); });
}
