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
// Data-parallel: `mpirun -np N ift-compare …` shards the rows over N processes (each reads its
// own); the results equal one process's to rounding, rank 0 alone writes, and a checkpoint
// resumes with any N.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
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

int run(int argc, char** argv) {
  OptionSet set("ift-compare", kUsage);
  set.use(selection::kData)
      .use({"init-log-decay", "methods"})
      .use(selection::kMethod)
      .use({"exact-precision"})
      .use(selection::kLoop)
      .use({"warmup-steps", "inner-tol", "tolerance-schedule", "tolerance0", "curvature-sampling",
            "curvature-batch"})
      .use(selection::kRun)
      .add(flag("", "full",
                "the paper-size run: 200 hyper-steps (overrides --hyper-steps; the exact method "
                "then takes most of an hour on 2 cores)"));
  // Defaults sized so all six methods finish in about five minutes on 2 cores: the exact method
  // builds and factorises a 7850² Hessian every hyper-step (10–20 s each there). --full: 200.
  set.set_defaults(
      {{"train", "3500"}, {"val", "3500"}, {"test", "10000"}, {"warmup-steps", "200"}});
  // lbfgs: an inner solver to --inner-tol in at most --inner-steps iterations, whose pairs
  // --methods shine reuses (the one inner phase that provides them).
  set.set_choices("inner", {"sgd", "momentum", "adam", "lbfgs"});
  const std::optional<OptionValues> parsed = parse_command_line(argc, argv, set);
  if (!parsed) return 0;
  const OptionValues& v = *parsed;
  const CommonOptions common = apply_common_options(v);  // validates the sizes, sets threads
  const Index warmup_steps = v.integer("warmup-steps");
  const double init_log_decay = v.real("init-log-decay");
  const bool resume = v.flag("resume");

  // Validate everything before loading data or writing anything.
  std::vector<MethodSpec> specs;
  for (const std::string& name : v.list("methods")) specs.push_back(method_spec(v, name));
  BilevelParams base;
  apply_loop_options(v, base);
  if (v.flag("full")) base.hyper_steps = 200;
  for (const MethodSpec& s : specs)
    require_option(s.method != Method::Shine || base.inner_solver == InnerSolver::Lbfgs, "inner",
                   "--methods shine reuses the inner L-BFGS's pairs: it needs --inner lbfgs (got " +
                       v.text("inner") + ")");
  {
    std::ostringstream c;
    c << "app=ift-compare\nmodel=softmax-regression\ndecay=per-weight\ndata=" << common.data
      << "\ntrain=" << common.train << "\nval=" << common.val << "\ntest=" << common.test
      << "\ninit_log_decay=" << init_log_decay << "\nwarmup_steps=" << warmup_steps
      << "\nthreads=" << effective_threads() << "\n";
    base.configuration = c.str();
  }
  namespace fs = std::filesystem;
  const fs::path out_dir(common.out);
  auto checkpoint_path = [&](const MethodSpec& s) {
    return (out_dir / ("checkpoint-" + s.name() + ".bin")).string();
  };
  // --resume: the method list must be the one the run was started with (else rows of a dropped
  // method would vanish from compare.csv), and every checkpoint is read, and so verified, now:
  // a damaged one must fail before anything is computed or written, not after compare.csv was
  // rewritten with the methods before it.
  std::vector<std::optional<Checkpoint<double>>> restored(specs.size());
  if (resume) {
    const std::vector<std::string> given = v.list("methods");
    auto joined = [](const std::vector<std::string>& items) {
      std::string s;
      for (const auto& item : items) s += (s.empty() ? "" : ",") + item;
      return s;
    };
    std::vector<std::string> started;  // the "# methods = …" line of the run's compare.csv
    {
      std::ifstream previous(out_dir / "compare.csv");
      for (std::string line; std::getline(previous, line);)
        if (line.rfind("# methods = ", 0) == 0)
          for (auto& item : split_list(line.substr(12)))
            if (!item.empty()) started.push_back(item);
    }
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(out_dir, error)) {  // checkpoint-<method>.bin
      const std::string file = entry.path().filename().string();
      if (file.rfind("checkpoint-", 0) != 0 || entry.path().extension() != ".bin") continue;
      const std::string method = file.substr(11, file.size() - 15);
      if (std::none_of(specs.begin(), specs.end(), [&](const MethodSpec& s) { return s.name() == method; }) &&
          std::find(started.begin(), started.end(), method) == started.end())
        started.push_back(method);
    }
    if (!started.empty() && started != given)
      throw UsageError("--methods: " + joined(given) + " is not the list the run in " + common.out +
                       " was started with (" + joined(started) +
                       ", from its compare.csv and checkpoints); resume with that list, or start "
                       "afresh in another --out");
    bool any = false;
    for (std::size_t i = 0; i < specs.size(); ++i)
      if (fs::exists(checkpoint_path(specs[i]))) {
        restored[i] = load_checkpoint<double>(checkpoint_path(specs[i]));
        any = true;
      }
    require_option(any, "resume", "no checkpoint-<method>.bin in " + common.out);
  }

  auto problem = make_p1_problem(load_data(common));
  distribute_problem(problem, common);  // mpirun -np N: this rank's rows, data terms summed
  const Index D = problem.num_params();
  const Vector<double> lambda0 = Vector<double>::Constant(D, init_log_decay);
  // The common start w0: --warmup-steps inner steps from w = 0 at λ0, done once here rather than
  // once per method (the runs would repeat the same deterministic steps).
  Vector<double> w0 = Vector<double>::Zero(D);
  if (!std::all_of(restored.begin(), restored.end(), [](const auto& c) { return c.has_value(); })) {
    // The loop's own warm-up (full batch, the inner optimiser), with no hyper-step.
    BilevelParams warmup = base;
    warmup.hyper_steps = 0;
    warmup.warmup_steps = warmup_steps;
    warmup.batch_size = 0;
    warmup.record_metrics = false;
    warmup.checkpoint_path.clear();
    w0 = BilevelLoop<double>(warmup).run(problem, w0, lambda0).w;
  }

  std::vector<std::string> header = {"method"};
  for (const auto& c : record_columns()) header.push_back(c);
  io::CsvWriter csv((out_dir / "compare.csv").string(), header);
  auto save = [&] {
    if (is_root()) csv.save();
  };
  csv.add_comment("ift-compare (DESIGN.md P2): per-weight decay, logistic regression, D = " +
                  std::to_string(D) + ", " + std::to_string(effective_threads()) + " threads");
  csv.add_comment(v.describe());

  install_stop_signals();
  struct Summary {
    std::string method;
    HyperStepRecord last;
    std::string outcome;
  };
  std::vector<Summary> summary;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const MethodSpec& spec = specs[i];
    BilevelParams params = base;
    params.method = spec;
    // Rank 0 writes the checkpoint; every rank resumes from it (one file, any process count).
    params.checkpoint_path = is_root() ? checkpoint_path(spec) : std::string();
    BilevelLoop<double> loop(params);
    const std::string name = spec.name();
    ProgressBar progress(name, params.hyper_steps);
    loop.add_observer([&](const HyperStepRecord& r) {
      std::vector<io::CsvCell> row = {name};
      for (auto& cell : record_cells(r)) row.push_back(cell);
      csv.add_row(row);
      if (!r.restored) save();
      progress.update(r);
    });
    loop.set_stop_request([] { return stop_agreed(stop_requested()); });
    BilevelResult<double> result;
    if (restored[i]) {
      result = loop.resume(problem, std::move(*restored[i]));
      save();
    } else {
      result = loop.run(problem, w0, lambda0);
    }
    progress.finish();
    if (result.reason == StopReason::StopRequested) {
      save();
      if (is_root())
        std::cerr << "ift-compare: interrupted during " << name << " after " << result.steps
                  << " hyper-steps; checkpoint written to " << checkpoint_path(spec)
                  << "; continue with the same options and --resume\n";
      return 128 + static_cast<int>(g_stop_signal != 0 ? g_stop_signal : SIGTERM);
    }
    if (!result.records.empty()) summary.push_back({name, result.records.back(), result.message});
  }
  save();
  if (!is_root()) return 0;

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
  return ift::app::run_parallel_main("ift-compare", argc, argv, [&] { return run(argc, argv); });
}
