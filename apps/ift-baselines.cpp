// ift-baselines (issue 13): gradient-based hyperparameter optimisation by the IFT against the
// paper's "related algorithms" on the same problem, data split and compute budget:
//   random-search, bayes-opt   trials over a box of log weight decays (at most 32 of them), each
//                              trial w*(λ) by the loop's inner phase, re-initialised or
//                              warm-started (--starts, --warm-from);
//   hypernetwork               a linear (or low-rank) best response w_φ(λ) trained at perturbed λ,
//                              λ moved along dL_V(w_φ(λ))/dλ (self-tuning networks);
//   exact, cg, neumann, …      Algorithm 2 (the bilevel loop) with that inverse approximation.
// The budget is in gradient-equivalents: every method runs on a CountingProblem, whose counts
// (training forward passes, gradients, HVPs, validation evaluations, dense Hessians, KFAC
// factors) are weighted by ratios timed once at the start on the actual problem (printed, and in
// the CSV header). Metrics for the table are not charged.
//
// Output DIR/baselines.csv, one row per trial / hyper-step / hypernetwork round:
//   method,start,step,cost,seconds,train_loss,val_loss,val_accuracy,test_loss,test_accuracy,
//   best_val_loss,lambda_mean,lambda_min,lambda_max,inner_iterations,inner_status,
//   hypergradient_norm,gp_jitter,status,message
// (one line); '#' lines echo the parameters and the cost ratios. Losses are mean cross-entropies
// without the penalty. The file is rewritten atomically after every row, so Ctrl-C (SIGINT or
// SIGTERM) leaves every finished row (exit code 128 + signal; there is no --resume: rerun).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <sstream>

#include "app_common.hpp"
#include "ift/baselines/cost.hpp"
#include "ift/baselines/hypernetwork.hpp"
#include "ift/baselines/search.hpp"
#include "ift/bilevel.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace {

using namespace ift;
using namespace ift::app;
using namespace ift::baselines;

const char* const kUsage =
    "ift-baselines: IFT hypergradients against random search, Bayesian optimisation (Matérn 5/2\n"
    "GP, expected improvement) and a hypernetwork best response, on one problem and one budget\n"
    "in gradient-equivalents; search trials re-initialised or warm-started.\n"
    "Usage: ift-baselines [options]    (writes OUT/baselines.csv; plot it with\n"
    "       /usr/bin/python3 plots/plot_baselines.py OUT/baselines.csv -o OUT/baselines.png)";

const std::vector<std::string> kIftMethods = {"exact", "cg",   "neumann", "identity",
                                              "zero",  "kfac", "unrolled"};
const std::vector<std::string> kOtherMethods = {"random-search", "bayes-opt", "hypernetwork"};

/// The methods' shared state: the counted problem, the cost model and the CSV.
struct Bench {
  CountingProblem<double>* counted;
  CostModel model;
  io::CsvWriter* csv;
  double budget;
  bool quiet;

  double cost() const { return model.cost(counted->counts()); }
};

struct Row {
  std::string method, start;
  Index step = 0;
  double seconds = 0;
  Metrics metrics;
  Vector<double> lambda;
  Index inner_iterations = 0;
  std::string inner_status;
  double hypergradient_norm = std::numeric_limits<double>::quiet_NaN();
  double gp_jitter = std::numeric_limits<double>::quiet_NaN();
  std::string status = "ok", message;
};

/// Writes one row (atomically: the whole file) and returns the best validation loss so far.
double write_row(Bench& b, const Row& r, double& best) {
  const Metrics& m = r.metrics;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (std::isfinite(m.val_loss)) best = std::min(best, m.val_loss);
  b.csv->add_row({r.method,
                  r.start,
                  r.step,
                  b.cost(),
                  r.seconds,
                  m.train_loss,
                  m.val_loss,
                  m.has_accuracy ? m.val_accuracy : nan,
                  m.has_test ? m.test_loss : nan,
                  m.has_test && m.has_accuracy ? m.test_accuracy : nan,
                  best,
                  r.lambda.mean(),
                  r.lambda.minCoeff(),
                  r.lambda.maxCoeff(),
                  r.inner_iterations,
                  r.inner_status,
                  r.hypergradient_norm,
                  r.gp_jitter,
                  r.status,
                  r.message});
  b.csv->save();
  return best;
}

struct Outcome {
  std::string method, start;
  Index steps = 0;
  double best = std::numeric_limits<double>::infinity(), cost = 0, seconds = 0;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Outcome run_search(Bench& b, SearchParams params, const Vector<double>& w_init) {
  const std::string name = to_string(params.kind), start = to_string(params.start);
  Outcome out{name, start};
  Search search(*b.counted, std::move(params), w_init);
  const auto t0 = std::chrono::steady_clock::now();
  while (b.cost() < b.budget && !stop_requested()) {
    const Trial t = search.next();
    Row r{name, start, t.index, seconds_since(t0), t.metrics, t.lambda, t.inner_iterations,
          t.inner_status, std::numeric_limits<double>::quiet_NaN(),
          std::numeric_limits<double>::quiet_NaN(), "ok", ""};
    if (t.proposed_by_gp) r.gp_jitter = t.gp_jitter;
    if (t.inner_status == "not-converged") {
      r.status = "inner-not-converged";
      r.message = "||grad L_T|| = " + std::to_string(t.inner_gradient_norm);
    }
    if (!std::isfinite(t.metrics.val_loss)) {
      r.status = "numerical-issue";
      r.message = "validation loss not finite (the inner phase diverged)";
    }
    out.best = write_row(b, r, out.best);
    out.steps = t.index;
  }
  out.cost = b.cost();
  out.seconds = seconds_since(t0);
  return out;
}

Outcome run_hypernetwork(Bench& b, const HypernetworkParams& hp, const OptimizerParams& outer_params,
                         const Vector<double>& w_init, const Vector<double>& lambda0,
                         std::uint64_t seed) {
  Outcome out{"hypernetwork", "warm"};
  Hypernetwork hn(w_init, lambda0, hp.rank, seed);
  Optimizer<double> outer(outer_params, lambda0.size());
  std::mt19937_64 rng(seed);
  const auto t0 = std::chrono::steady_clock::now();
  Index round = 0;
  while (b.cost() < b.budget && !stop_requested()) {
    const HypernetworkTrainResult trained = hn.train(*b.counted, hp, rng);
    const Vector<double> h = hn.hypergradient(*b.counted);  // problem at (λ̂, w0)
    Row r{"hypernetwork", "warm", ++round, 0, b.counted->metrics(), hn.center(), 0, "",
          std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN(),
          "ok", ""};
    r.inner_iterations = trained.evaluations;
    r.hypergradient_norm = h.norm();
    r.seconds = seconds_since(t0);
    if (!h.allFinite()) {
      r.status = "numerical-issue";
      r.message = "hypergradient not finite: λ not moved";
    } else {
      Vector<double> lambda = hn.center();
      outer.step(lambda, h);
      hn.recenter(lambda);
    }
    out.best = write_row(b, r, out.best);
    out.steps = round;
  }
  out.cost = b.cost();
  out.seconds = seconds_since(t0);
  return out;
}

Outcome run_ift(Bench& b, BilevelParams params, const Vector<double>& w_init,
                const Vector<double>& lambda0) {
  const std::string name = params.method.name();
  Outcome out{name, "warm"};
  params.hyper_steps = std::numeric_limits<int>::max();  // the budget ends the run
  params.checkpoint_path.clear();
  BilevelLoop<double> loop(params);
  loop.add_observer([&](const HyperStepRecord& rec) {
    // The problem is still at (λ, w) where the hypergradient was taken (the outer step moves
    // the loop's λ, not the problem's point).
    Row r{name, "warm", rec.step, rec.elapsed_seconds, rec.metrics, b.counted->lambda(),
          rec.inner_iterations, rec.inner_status, rec.hypergradient_norm,
          std::numeric_limits<double>::quiet_NaN(), rec.status, rec.message};
    out.best = write_row(b, r, out.best);
    out.steps = rec.step;
    out.seconds = rec.elapsed_seconds;
  });
  loop.set_stop_request([&] { return stop_requested() || b.cost() >= b.budget; });
  loop.run(*b.counted, w_init, lambda0);
  out.cost = b.cost();
  return out;
}

int run(int argc, char** argv) {
  OptionSet set("ift-baselines", kUsage);
  std::vector<std::string> all_methods = kOtherMethods;
  all_methods.insert(all_methods.end(), kIftMethods.begin(), kIftMethods.end());
  set.use(selection::kData)
      .use({"model", "hidden", "activation", "init-log-decay", "methods"})
      .use(selection::kMethod)
      .use({"exact-precision"})
      .use({"inner-steps", "batch-size", "inner", "inner-lr", "inner-tol", "outer-optimizer",
            "outer-lr", "on-failure", "quiet"})
      .use(selection::kRun)
      .add(option("", "family", ValueKind::Text, "NAME",
                  "the hyperparameters: one global weight decay, one per class (logreg: 10), or "
                  "one per weight (random-search and bayes-opt refuse more than 32)")
               .by_default("global")
               .one_of({"global", "per-class", "per-weight"}))
      .add(option("", "budget", ValueKind::Real, "G",
                  "compute per method and start, in gradient-equivalents (one full-batch gradient "
                  "of L_T = 1; HVPs etc. by the ratios timed at the start)")
               .by_default("300")
               .reals(Interval::open_closed(0, 1e12)))
      .add(option("", "starts", ValueKind::Text, "LIST",
                  "random-search and bayes-opt: each trial's w from the initial weights (reinit) "
                  "or from an earlier trial's w (warm, see --warm-from)")
               .by_default("reinit,warm")
               .list_of({"reinit", "warm"}))
      .add(option("", "warm-from", ValueKind::Text, "NAME",
                  "warm starts take the w of the best trial so far or of the last one")
               .by_default("best")
               .one_of({"best", "last"}))
      .add(option("", "log-decay-min", ValueKind::Real, "L",
                  "random-search and bayes-opt: lower end of the box of every log decay")
               .by_default("-10")
               .reals(Interval::closed(-limits::kLogDecay, limits::kLogDecay)))
      .add(option("", "log-decay-max", ValueKind::Real, "L", "upper end of that box")
               .by_default("1")
               .reals(Interval::closed(-limits::kLogDecay, limits::kLogDecay)))
      .add(option("", "initial-trials", ValueKind::Integer, "N",
                  "bayes-opt: uniform random trials before the GP proposes")
               .by_default("3")
               .integers(1, 100'000))
      .add(option("", "perturbation", ValueKind::Real, "S",
                  "hypernetwork: standard deviation of the log-decay perturbations it trains on")
               .by_default("0.5")
               .reals(Interval::open_closed(0, limits::kLogDecay)))
      .add(option("", "hyper-rank", ValueKind::Integer, "R",
                  "hypernetwork: rank of W = U Vᵀ (0: a full D × h W; default: full when D·h "
                  "<= 2e6, else 10)")
               .integers(0, 1'000'000))
      .add(option("", "hyper-samples", ValueKind::Integer, "K",
                  "hypernetwork: antithetic pairs of perturbations per round")
               .by_default("2")
               .integers(1, 100'000))
      .add(option("", "hyper-iterations", ValueKind::Integer, "N",
                  "hypernetwork: L-BFGS iterations on its parameters per round (then one step "
                  "on λ)")
               .by_default("5")
               .integers(1, limits::kMethodSteps));
  set.set_choices("methods", all_methods);
  set.set_defaults({{"methods", "random-search,bayes-opt,hypernetwork,cg"},
                    {"inner", "newton-cg"},
                    {"inner-steps", "50"},
                    {"inner-tol", "1e-5"},
                    {"train", "1000"},
                    {"val", "1000"},
                    {"test", "1000"}});
  const std::optional<OptionValues> parsed = parse_command_line(argc, argv, set);
  if (!parsed) return 0;
  const OptionValues& v = *parsed;
  const CommonOptions common = apply_common_options(v);
  const std::string model_name = v.text("model"), family = v.text("family");
  const double init_log_decay = v.real("init-log-decay");
  const std::vector<std::string> methods = v.list("methods");
  const bool quiet = v.flag("quiet");

  // Everything checked before any work.
  const Index features = 785;  // 784 pixels (or synthetic features) + the bias column
  const Index hidden = v.integer("hidden");
  // The MLP adds its own bias row to every layer: (785 + 1) × H + (H + 1) × 10.
  const Index D = model_name == "logreg" ? features * 10 : ((features + 1) * hidden + (hidden + 1) * 10);
  require_option(!(family == "per-class" && model_name != "logreg"), "family",
                 "per-class needs --model logreg (one decay per class of softmax regression's "
                 "class-major weights)");
  const Index h = family == "global" ? 1 : family == "per-class" ? 10 : D;
  const bool searches = std::any_of(methods.begin(), methods.end(), [](const std::string& m) {
    return m == "random-search" || m == "bayes-opt";
  });
  require_option(!searches || h <= kMaxSearchDimension, "methods",
                 "random-search and bayes-opt take at most " +
                     std::to_string(kMaxSearchDimension) + " hyperparameters; --family " + family +
                     " has " + std::to_string(h) +
                     " (use the IFT methods or hypernetwork, or --family global/per-class)");
  const double lo = v.real("log-decay-min"), hi = v.real("log-decay-max");
  require_option(lo < hi, "log-decay-max", "must exceed --log-decay-min");
  Index rank = v.has("hyper-rank") ? v.integer("hyper-rank") : (D * h <= 2000000 ? 0 : 10);
  require_option(rank <= h, "hyper-rank",
                 "must be at most the number of hyperparameters (" + std::to_string(h) + ")");
  require_option(rank > 0 || D * h <= 50000000, "hyper-rank",
                 "a full W has D·h = " + std::to_string(D * h) +
                     " entries: give a rank >= 1 for this family");
  std::vector<MethodSpec> ift_specs;
  for (const std::string& m : methods)
    if (std::find(kIftMethods.begin(), kIftMethods.end(), m) != kIftMethods.end())
      ift_specs.push_back(method_spec(v, m));
  BilevelParams loop_params;
  apply_loop_options(v, loop_params);
  loop_params.check();
  HypernetworkParams hp;
  hp.rank = rank;
  hp.perturbation = v.real("perturbation");
  hp.samples = v.integer("hyper-samples");
  hp.iterations = v.integer("hyper-iterations");
  hp.check();
  const std::vector<std::string> starts = v.list("starts");
  const TrialStart warm =
      v.text("warm-from") == "best" ? TrialStart::WarmBest : TrialStart::WarmLast;

  // The problem.
  Splits<double> data = load_data(common);
  std::unique_ptr<BilevelProblem<double>> problem;
  Vector<double> w_init;
  const DecayKind kind = parse_decay_kind(family);
  if (model_name == "logreg") {
    SoftmaxRegression<double> model(data.train.num_features(), 10);
    w_init = Vector<double>::Zero(model.num_params());
    problem = std::make_unique<RegularizedProblem<SoftmaxRegression<double>>>(
        make_decay_problem(std::move(model), std::move(data), kind, 10));
  } else {
    Mlp<double> model({data.train.num_features(), hidden, 10},
                      parse_activation(v.text("activation")), OutputLoss::SoftmaxCrossEntropy);
    w_init = model.initial_weights(common.seed);
    problem = std::make_unique<RegularizedProblem<Mlp<double>>>(
        make_decay_problem(std::move(model), std::move(data), kind, 10));
  }
  require(problem->num_params() == D && problem->num_hyper() == h,
          "ift-baselines: unexpected problem size");
  const Vector<double> lambda0 = Vector<double>::Constant(h, init_log_decay);

  // The cost ratios, timed once here on this problem.
  const bool time_hessian = std::any_of(ift_specs.begin(), ift_specs.end(), [](const MethodSpec& s) {
    return s.method == Method::Exact;
  });
  const CostModel cost_model = measure_cost_model(*problem, lambda0, w_init, 10, time_hessian);
  CountingProblem<double> counted(*problem);

  namespace fs = std::filesystem;
  fs::create_directories(common.out);
  io::CsvWriter csv((fs::path(common.out) / "baselines.csv").string(),
                    {"method", "start", "step", "cost", "seconds", "train_loss", "val_loss",
                     "val_accuracy", "test_loss", "test_accuracy", "best_val_loss", "lambda_mean",
                     "lambda_min", "lambda_max", "inner_iterations", "inner_status",
                     "hypergradient_norm", "gp_jitter", "status", "message"});
  csv.add_comment("ift-baselines (issue 13): model " + model_name + ", family " + family +
                  ", D = " + std::to_string(D) + ", " + std::to_string(h) +
                  " hyperparameters, " + std::to_string(effective_threads()) + " threads");
  csv.add_comment("cost in gradient-equivalents, ratios timed at the start: " +
                  cost_model.describe());
  csv.add_comment(v.describe());
  csv.save();
  if (!quiet)
    std::cout << "ift-baselines: D = " << D << ", " << h << " hyperparameters; cost ratios "
              << cost_model.describe() << "\n";

  install_stop_signals();
  Bench bench{&counted, cost_model, &csv, v.real("budget"), quiet};
  std::vector<Outcome> outcomes;
  const auto report = [quiet](const Outcome& o) {
    if (quiet) return;
    std::printf("%-14s %-9s %5lld steps  best val loss %.5f  cost %.1f  %.1f s\n",
                o.method.c_str(), o.start.c_str(), static_cast<long long>(o.steps), o.best,
                o.cost, o.seconds);
    std::fflush(stdout);
  };
  for (const std::string& m : methods) {
    if (stop_requested()) break;
    counted.reset();
    if (m == "random-search" || m == "bayes-opt") {
      for (const std::string& start : starts) {
        if (stop_requested()) break;
        counted.reset();
        SearchParams sp;
        sp.kind = m == "random-search" ? SearchKind::Random : SearchKind::BayesOpt;
        sp.start = start == "reinit" ? TrialStart::Reinitialize : warm;
        sp.lower = Vector<double>::Constant(h, lo);
        sp.upper = Vector<double>::Constant(h, hi);
        sp.initial_trials = v.integer("initial-trials");
        sp.seed = common.seed;
        sp.inner = loop_params;
        outcomes.push_back(run_search(bench, sp, w_init));
        report(outcomes.back());
      }
    } else if (m == "hypernetwork") {
      outcomes.push_back(run_hypernetwork(bench, hp, loop_params.outer, w_init, lambda0, common.seed));
      report(outcomes.back());
    } else {
      BilevelParams p = loop_params;
      p.method = method_spec(v, m);
      outcomes.push_back(run_ift(bench, p, w_init, lambda0));
      report(outcomes.back());
    }
  }
  csv.save();
  if (stop_requested()) {
    std::cerr << "ift-baselines: interrupted; " << csv.path()
              << " holds every finished row (no --resume: rerun to redo)\n";
    return 128 + static_cast<int>(g_stop_signal);
  }
  if (quiet) {
    for (const Outcome& o : outcomes)
      std::printf("%s,%s,%lld,%.6f,%.3f\n", o.method.c_str(), o.start.c_str(),
                  static_cast<long long>(o.steps), o.best, o.cost);
  }
  std::cout << "wrote " << csv.path() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ift::app::prefer_passive_omp_wait(argv);
  return ift::app::run_main("ift-baselines", [&] { return run(argc, argv); });
}
