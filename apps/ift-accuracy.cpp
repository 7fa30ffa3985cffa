// ift-accuracy: problem P3 of DESIGN.md §2. At a fixed (λ, w*), every inverse approximation of
// DESIGN.md §1 for k = 0..K steps, with its relative error and cosine to the exact IFT
// hypergradient dL_V*/dλ = ∂L_V/∂λ − vᵀ ∂²L_T/∂w∂λᵀ, v = H⁻¹ ∂L_V/∂w.
//
//   ift-accuracy --model logreg     P1 set-up: softmax regression on Fashion-MNIST, per-weight decay
//   ift-accuracy --model mlp        784-h-10 tanh MLP at a local minimum found by Newton
//
// Output DIR/accuracy.csv, one row per (method, k), header kCsvHeader below. Each k-dependent
// method runs ONCE over k = 0..K (HypergradientEngine::sweep, generic::hypergradient_sweep):
// neumann and cg hand out every partial result of one series of K steps, each exactly the
// result of cg(k) / neumann(k) as the library defines it (one definition everywhere, DESIGN.md
// §1; tests/test_sweep.cpp checks every k against the single-k call), so a row's hvps is still
// its own k's cost, and its seconds the time from the start of that method's sweep until k's
// result was ready. neumann and cg cost K HVPs per method instead of K(K+1)/2. unrolled(k)
// differentiates a different L_V(w_k) for each k, so its reverse passes cannot be shared: it
// costs Σ k = K(K+1)/2 HVPs and mixed products, with one shared forward trajectory (K gradients
// instead of Σ k) and each w_t visited once by all passes together.
// Before the sweep, each (method, k) was a separate call: the logreg default took 16.4 min wall
// (4.1 min CPU) on 2 shared cores at load 7–12, of which Newton 185 s, exact 37 s,
// gauss-newton/exact 36 s, and the seven k-sweeps about 12 min. With the sweep and passive
// OpenMP waiting (main): 2.5 min wall (54 s CPU) at load 8–9, of which Newton 122 s (42 s CPU:
// 11 dense Hessians and Cholesky factorisations at D = 7,850) and everything after it 26 s
// (13 s CPU: exact and gauss-newton/exact 8–9 s each, unrolled 7 s, each series under 1 s).
// w* now comes from --inner newton-cg by default (the library's truncated Newton: 2–3 s at
// n = 1,000 where dense Newton takes 40–120 s); --inner newton restores the dense solve.
//
// The MLP's w* is found by newton_solve from Mlp::initial_weights(--seed): every Newton
// iteration builds the dense Hessian from D HVPs and factorises it, and from the random start it
// took 158 iterations (1,159 s of a 1,200 s run under load, sweep 41 s) at the default --hidden 2
// (D = 1,600); at --hidden 4 (D = 3,190) a Newton iteration took 5–7 s on 300 rows. The optional
// --pretrain-steps (Adam on L_T first) lowers the loss cheaply, but in one trial Newton still
// crawled (||∇L_T|| ≈ 5e-3 after 20 iterations): the small decay leaves flat directions.
//
// Several processes (`mpirun -np N`): the methods are independent work on one problem, so they
// are split over the ranks (app::split_work, cost-balanced by HVPs), each rank on the full
// problem after computing w*, the exact hypergradient and the α's itself; rank 0 gathers the
// rows (one process's bit for bit) and alone writes the CSV and the console output. A
// k-series stays on one rank: its k share one series.
// GCC 12 reports -Wuninitialized false positives inside its own AVX-512 intrinsics
// (`__m512d __Y = __Y;` in _mm512_undefined_pd) when Eigen's vectorised exp is inlined here
// (WeightDecay's exp(λ)); the project already silences the -Wmaybe- twin for the same reason.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "app_common.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/io/csv_writer.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/optimizers.hpp"
#include "ift/problem.hpp"
#include "ift/problems/regularized.hpp"

using namespace ift;
namespace app = ift::app;

namespace {

const std::vector<std::string> kCsvHeader = {"model",  "method", "k",    "relative_error",
                                             "cosine", "status", "hvps", "seconds"};

/// Every method the sweep knows, in CSV order. k-independent ones get one row with k empty.
const std::vector<std::string> kAllMethods = {
    "exact",         "gauss-newton/exact",    "kfac",           "identity",
    "cg",            "neumann",               "gauss-newton/cg", "gauss-newton/neumann",
    "outer-product/neumann", "fisher/neumann", "unrolled",         "shine",
    "nystrom",       "cg+kfac"};
/// Stochastic curvature (docs/methods.md): not in the default list, they need --curvature-batch.
const std::vector<std::string> kSampledMethods = {"cg+fresh", "cg+fixed", "neumann+fresh",
                                                  "neumann+fixed"};
/// Ritz recycling (docs/methods.md "cg+ritz"): not in the default list, since a single
/// hypergradient has no previous solve to recycle from: its rows equal cg's / cg+kfac's.
const std::vector<std::string> kRecyclingMethods = {"cg+ritz", "cg+kfac+ritz"};

std::string join(const std::vector<std::string>& items, const char* sep = ",") {
  std::string s;
  for (const auto& x : items) s += (s.empty() ? "" : sep) + x;
  return s;
}

/// The spec of a method named as in the CSV ("gauss-newton/cg", "kfac", …).
MethodSpec spec_from_name(const std::string& name, Index k, double kfac_damping,
                          const KfacParams& kfac = {}) {
  MethodSpec s;
  const auto slash = name.find('/');
  s.curvature = slash == std::string::npos ? Curvature::Hessian
                                           : parse_curvature(name.substr(0, slash));
  const MethodSpec named =
      parse_method_spec(slash == std::string::npos ? name : name.substr(slash + 1));
  s.method = named.method;
  s.sampling = named.sampling;              // +fresh / +fixed
  s.preconditioner = named.preconditioner;  // +kfac, +ritz
  s.steps = k;
  s.cg.tolerance = 0;  // cg(k) means k iterations: no early stop (DESIGN.md §1)
  if (s.method == Method::Kfac) s.damping = kfac_damping;
  s.kfac = kfac;  // kfac and the +kfac preconditioner: --kfac-penalty, --kfac-eigenvalues
  return s;
}

bool uses_steps(Method m) {
  return m == Method::Cg || m == Method::Neumann || m == Method::Unrolled || m == Method::Shine ||
         m == Method::Nystrom;
}

/// CPU seconds of the whole process (all threads) so far: with wall time, shows how much of a
/// phase was computing and how much waiting for cores on a shared machine.
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Options {
  app::CommonOptions common;  // --seed (MLP initial weights), --threads, --out, --data
  std::string model = "logreg", methods = join(kAllMethods), steps_list;
  Index n_train = 1000, n_val = 1000, max_steps = 50, hidden = 2, pretrain_steps = 0;
  Index curvature_batch = 0;  // rows per sampled HVP (+fresh / +fixed methods)
  double pretrain_lr = 0.01;
  double log_decay = std::log(1e-3), grad_tol = 1e-10, kfac_damping = 0;
  KfacParams kfac;  // --kfac-penalty, --kfac-eigenvalues
  std::string inner = "newton-cg";  // the inner solver for w*
  std::string activation = "tanh";
  bool quiet = false;
  NystromParams nystrom;  // --nystrom-sampling, --rho, --seed
  DenseParams exact;      // --exact-precision (the reference and the exact rows)
};

/// Runs the sweep on a problem already at (λ, w*); returns the number of rows written.
/// `state` holds the L-BFGS pairs of the w* solve (--inner lbfgs) that shine reuses.
int sweep(BilevelProblem<double>& problem, const Options& opt, const std::vector<Index>& ks,
          const std::vector<std::string>& methods, io::CsvWriter& csv, bool progress,
          const generic::SolverState<Vector<double>>& state) {
  const auto t_total = std::chrono::steady_clock::now();
  const double cpu_total = cpu_seconds();
  const Index ks_max = *std::max_element(ks.begin(), ks.end());
  MethodSpec exact_spec = spec_from_name("exact", 0, 0);
  exact_spec.exact = opt.exact;
  const HypergradientResult<double> exact = HypergradientEngine<double>(exact_spec).compute(problem);
  const double exact_norm = exact.hypergradient.norm();
  std::printf("exact: ||h|| = %.6e  status %s  (%.1f s)  %s\n", exact_norm, to_string(exact.status),
              exact.seconds, exact.message.c_str());
  // The relative error needs h_exact ≠ 0 and a trustworthy solve. An indefinite H (a saddle,
  // possible for the MLP) still defines the IFT hypergradient, so only a numerical failure stops.
  if (!(exact_norm > 0) || exact.status == SolverStatus::NumericalIssue ||
      exact.status == SolverStatus::Diverged)
    throw std::runtime_error("the exact hypergradient is unusable (" +
                             std::string(to_string(exact.status)) + ": " + exact.message +
                             "); no relative error can be measured");
  csv.add_comment("exact: status " + std::string(to_string(exact.status)) + " (" + exact.message +
                  "), ||h_exact|| = " + std::to_string(exact_norm) +
                  (exact.status == SolverStatus::Converged ? "; H at w* is positive definite"
                                                           : "; H at w* is NOT positive definite"));

  // One α per curvature for neumann and unrolled at every k: 1/λ_max by power iteration (the
  // engine's automatic choice, DESIGN.md §1), computed once so the k-sweep is one series.
  std::map<Curvature, double> alpha;
  auto alpha_for = [&](Curvature c) {
    if (!alpha.count(c)) {
      MethodSpec s;
      s.method = Method::Neumann;
      s.curvature = c;
      s.steps = 0;
      const auto r = HypergradientEngine<double>(s).compute(problem);
      alpha[c] = r.alpha;
      csv.add_comment(std::string("alpha(") + to_string(c) + ") = 1/lambda_max = " +
                      format_number(r.alpha) + " (power iteration, " + std::to_string(r.hvps) +
                      " HVPs)");
      std::printf("α for %s: %.6e (1/λ_max by power iteration)\n", to_string(c), r.alpha);
    }
    return alpha[c];
  };

  // The specs, and the α's they need, on every rank before the methods are split.
  std::vector<MethodSpec> specs;
  for (const std::string& name : methods) {
    MethodSpec s = spec_from_name(name, 0, opt.kfac_damping, opt.kfac);
    if (s.sampling != CurvatureSampling::Full) {
      s.curvature_batch = opt.curvature_batch;
      s.sampling_seed = opt.common.seed;
    }
    s.nystrom = opt.nystrom;
    s.exact = opt.exact;
    if (s.method == Method::Neumann) s.neumann.alpha = alpha_for(s.curvature);
    if (s.method == Method::Unrolled) s.neumann.alpha = alpha_for(Curvature::Hessian);
    specs.push_back(s);
  }
  // Each method's outcome: per result (one, or one per k) relative error, cosine, HVPs and
  // seconds, then the method's total seconds; texts: the statuses. Costs in HVPs: a dense
  // Hessian and its factor count as D, unrolled's reverse passes Σ k.
  std::vector<double> costs;
  const double K = static_cast<double>(ks_max);
  for (const MethodSpec& s : specs)
    costs.push_back(s.method == Method::Exact      ? static_cast<double>(problem.num_params())
                    : s.method == Method::Unrolled ? 1 + K * (K + 1) / 2
                    : uses_steps(s.method)         ? 1 + K
                                                   : 1);
  const std::vector<app::WorkRecord> records =
      app::split_work(costs, app::world()->size() > 1, [&](std::size_t i) {
        const MethodSpec& s = specs[i];
        const std::string& name = methods[i];
        std::vector<HypergradientResult<double>> results;
        const auto t_method = std::chrono::steady_clock::now();
        if (!uses_steps(s.method)) {
          results.push_back(name == "exact" ? exact : HypergradientEngine<double>(s).compute(problem));
        } else {
          // Unrolled from w*: w_0 = w*, so unrolled(k) = neumann(k − 1) (Lorraine et al. 2020).
          if (progress) std::fprintf(stderr, "\r  %-24s k = 0..%lld\033[K", name.c_str(),
                                     static_cast<long long>(ks_max));
          results = HypergradientEngine<double>(s).sweep(problem, ks, nullptr, &state);
          if (progress) std::fprintf(stderr, "\r\033[K");
        }
        const double method_seconds = seconds_since(t_method);
        app::WorkRecord record;
        for (const HypergradientResult<double>& r : results) {
          const double norm = r.hypergradient.norm();
          const double rel = (r.hypergradient - exact.hypergradient).norm() / exact_norm;
          const double cosine = norm > 0 ? r.hypergradient.dot(exact.hypergradient) / (norm * exact_norm)
                                         : 0.0;  // zero hypergradient (unrolled(0)): no direction
          record.numbers.insert(record.numbers.end(),
                                {rel, cosine, static_cast<double>(r.hvps), r.seconds});
          record.texts.push_back(to_string(r.status));
        }
        record.numbers.push_back(method_seconds);
        return record;
      });
  if (!app::is_root()) return 0;

  std::printf("\n%-24s %4s %11s %10s %-16s %7s %8s\n", "method", "k", "rel.error", "cosine", "status",
              "HVPs", "seconds");
  int rows = 0;
  struct Row {
    double rel, cosine;
    long long hvps;
    double seconds;
    std::string status;
  };
  auto add_row = [&](const std::string& name, bool has_k, Index k, const Row& r, bool print) {
    csv.add_row({opt.model, name, has_k ? io::CsvCell(static_cast<long long>(k)) : io::CsvCell(""),
                 r.rel, r.cosine, r.status, r.hvps, r.seconds});
    ++rows;
    if (!opt.quiet && print)
      std::printf("%-24s %4s %11.3e %10.6f %-16s %7lld %8.3f\n", name.c_str(),
                  has_k ? std::to_string(k).c_str() : "-", r.rel, r.cosine, r.status.c_str(),
                  r.hvps, r.seconds);
  };
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const MethodSpec& s = specs[i];
    const std::string& name = methods[i];
    const app::WorkRecord& record = records[i];
    std::vector<Row> results;
    for (std::size_t j = 0; j < record.texts.size(); ++j) {
      const double* x = record.numbers.data() + 4 * j;
      results.push_back({x[0], x[1], static_cast<long long>(x[2]), x[3], record.texts[j]});
    }
    const double method_seconds = record.numbers.back();
    if (!uses_steps(s.method)) {
      add_row(name, false, 0, results[0], true);
      continue;
    }
    for (std::size_t j = 0; j < ks.size(); ++j)
      add_row(name, true, ks[j], results[j], ks[j] % 10 == 0 || j + 1 == ks.size());
    // HVPs actually spent: one series (the largest k's count) for neumann and cg, one nested
    // sample of max k columns for nystrom; one reverse
    // pass per distinct k for unrolled (α is given, so no power iteration inside).
    long long spent = 0;
    std::set<Index> seen;
    for (std::size_t j = 0; j < ks.size(); ++j) {
      const auto h = results[j].hvps;
      if (s.method == Method::Unrolled) {
        if (seen.insert(ks[j]).second) spent += h;
      } else {
        spent = std::max(spent, h);
      }
    }
    if (ks.size() > 1)
      std::printf("%-24s all k: %lld HVPs in one %s, %.2f s\n", name.c_str(), spent,
                  s.method == Method::Unrolled  ? "trajectory (a reverse pass per k)"
                  : s.method == Method::Nystrom ? "block of columns (nested samples)"
                                                : "series",
                  method_seconds);
  }
  std::printf("sweep: %.1f s (%.1f s CPU%s)\n", seconds_since(t_total), cpu_seconds() - cpu_total,
              app::world()->size() > 1 ? " of rank 0" : "");
  return rows;
}

int run(int argc, char** argv) {
  Options opt;
  const std::string usage =
      "ift-accuracy: hypergradient accuracy sweep (DESIGN.md §2 P3). At (λ, w*) with w* by --inner "
      "(newton-cg, newton or lbfgs) to ||∇_w L_T|| < --inner-tol, every inverse approximation for k = 0..--max-steps, with "
      "relative error and cosine to the exact IFT hypergradient.\n\nOutput: OUT/accuracy.csv "
      "with header\n  " + join(kCsvHeader) +
      "\none row per (method, k); k is empty for k-independent methods (exact, "
      "gauss-newton/exact, kfac, identity); status is the solver's (converged, max-iterations, "
      "diverged, not-positive-definite, ...); '#' lines echo the parameters. The MLP's initial "
      "weights come from --seed; its exact method factorises a dense D × D Hessian (D = 795 h + "
      "10) built from D HVPs, and so does every Newton iteration.";
  app::OptionSet set("ift-accuracy", usage);
  set.use({"data", "data-dir", "train", "val", "model", "hidden", "activation", "init-log-decay",
           "methods", "steps-list", "inner", "inner-tol", "lbfgs-memory", "out", "quiet", "threads",
           "seed", "curvature-batch", "nystrom-sampling", "rho", "exact-precision", "kfac-penalty",
           "kfac-eigenvalues"})
      .add(app::option("", "max-steps", app::ValueKind::Integer, "K",
                       "k runs over 0..K (unless --steps-list)")
               .by_default("50")
               .integers(0, app::limits::kMethodSteps))
      .add(app::option("", "kfac-damping", app::ValueKind::Real, "D",
                       "KFAC's explicit damping on top of the penalty's curvature")
               .by_default("0")
               .reals(app::Interval::closed(0, app::limits::kRate)))
      .add(app::option("", "pretrain-steps", app::ValueKind::Integer, "N",
                       "mlp: Adam steps on L_T from the initial weights before Newton (0: Newton "
                       "from the initial weights, as P3 specifies)")
               .by_default("0")
               .integers(0, app::limits::kSteps))
      .add(app::option("", "pretrain-lr", app::ValueKind::Real, "E",
                       "mlp: Adam learning rate of the pre-training")
               .by_default("0.01")
               .reals(app::Interval::open_closed(0, app::limits::kRate)));
  set.set_defaults({{"out", "results/accuracy"}, {"hidden", "2"}, {"inner", "newton-cg"}});
  set.set_choices("inner", {"newton-cg", "newton", "lbfgs"});
  std::vector<std::string> choices = kAllMethods;
  choices.insert(choices.end(), kSampledMethods.begin(), kSampledMethods.end());
  choices.insert(choices.end(), kRecyclingMethods.begin(), kRecyclingMethods.end());
  set.set_default("methods", join(kAllMethods)).set_choices("methods", choices);
  const std::optional<app::OptionValues> parsed = app::parse_command_line(argc, argv, set);
  if (!parsed) return 0;
  const app::OptionValues& v = *parsed;
  opt.common = app::apply_common_options(v, /*exact_reference=*/true);
  opt.model = v.text("model");
  opt.n_train = opt.common.train;
  opt.n_val = opt.common.val;
  opt.hidden = v.integer("hidden");
  opt.activation = v.text("activation");
  opt.pretrain_steps = v.integer("pretrain-steps");
  opt.pretrain_lr = v.real("pretrain-lr");
  opt.log_decay = v.real("init-log-decay");
  opt.max_steps = v.integer("max-steps");
  opt.kfac_damping = v.real("kfac-damping");
  app::apply_kfac_options(v, opt.kfac);
  app::apply_nystrom_options(v, opt.nystrom);
  app::apply_exact_options(v, opt.exact);
  opt.grad_tol = v.real("inner-tol");
  opt.inner = v.text("inner");
  opt.quiet = v.flag("quiet");
  const Activation activation = parse_activation(opt.activation);
  app::require_option(activation != Activation::Relu, "activation",
                      "relu has a zero second derivative almost everywhere; use tanh, sigmoid or "
                      "softplus");
  std::vector<Index> ks;
  if (v.has("steps-list")) {
    ks = v.index_list("steps-list");
  } else {
    for (Index k = 0; k <= opt.max_steps; ++k) ks.push_back(k);
  }
  std::vector<std::string> methods = v.list("methods");
  if (v.has("curvature-batch")) opt.curvature_batch = v.integer("curvature-batch");
  for (const std::string& name : methods)
    app::require_option(parse_method_spec(name.substr(name.find('/') + 1)).sampling ==
                                CurvatureSampling::Full ||
                            opt.curvature_batch > 0,
                        "curvature-batch", "needed by " + name + " (rows per sampled HVP)");
  // shine (k = 0: the L-BFGS estimate, k > 0: refined by k CG steps) reuses the pairs of the
  // L-BFGS solve that found w*: with another --inner there are none. Asked for by name it then
  // is an error; in the default list it is left out, with a note.
  std::string shine_note;
  if (opt.inner != "lbfgs" && std::count(methods.begin(), methods.end(), "shine")) {
    app::require_option(!v.given("methods"), "methods",
                        "shine reuses the L-BFGS pairs of the w* solve: it needs --inner lbfgs "
                        "(got " + opt.inner + ")");
    methods.erase(std::remove(methods.begin(), methods.end(), "shine"), methods.end());
    shine_note = "shine left out: it needs --inner lbfgs";
    std::printf("(%s)\n", shine_note.c_str());
  }
  const bool progress = !opt.quiet && app::is_root() && isatty(fileno(stderr));
  std::filesystem::create_directories(opt.common.out);

  const bool logreg = opt.model == "logreg";
  // Every rank holds the full problem (the methods, not the rows, are split over the ranks).
  Splits<double> splits = app::load_all_rows(opt.common);
  std::unique_ptr<BilevelProblem<double>> problem;
  Vector<double> w;
  if (logreg) {
    auto p1 = app::make_p1_problem(std::move(splits));
    w = Vector<double>::Zero(p1.num_params());  // P1: Newton from w = 0 (convex)
    problem = std::make_unique<decltype(p1)>(std::move(p1));
  } else {
    // The MLP has its own biases: drop the bias feature load_data appends.
    for (Dataset<double>* d : {&splits.train, &splits.val})
      d->X.conservativeResize(Eigen::NoChange, d->X.cols() - 1);
    Mlp<double> model({splits.train.num_features(), opt.hidden, 10}, activation,
                      OutputLoss::SoftmaxCrossEntropy);
    w = model.initial_weights(opt.common.seed);  // non-convex: Newton finds a local minimum
    problem = std::make_unique<RegularizedProblem<Mlp<double>>>(
        app::make_decay_problem(std::move(model), std::move(splits)));
  }
  const Index D = problem->num_params();
  const Vector<double> lambda = Vector<double>::Constant(D, opt.log_decay);

  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  std::string pretrain_note;
  if (!logreg && opt.pretrain_steps > 0) {
    // From a random start Newton spends most of its (dense, D-HVP) iterations far from any
    // minimum under Levenberg shifts; cheap first-order steps get it to the basin first. Newton
    // then converges to the same kind of point: a stationary point with ||∇L_T|| < --grad-tol.
    OptimizerParams adam_params;
    adam_params.kind = OptimizerKind::Adam;
    adam_params.learning_rate = opt.pretrain_lr;
    Optimizer<double> adam(adam_params, D);
    problem->set_point(lambda, w);
    for (Index t = 0; t < opt.pretrain_steps; ++t) {
      adam.step(w, problem->train_gradient());
      problem->set_point(lambda, w);
      if (progress && t % 100 == 0)
        std::fprintf(stderr, "\r  pre-training %lld/%lld: L_T = %.6f\033[K",
                     static_cast<long long>(t), static_cast<long long>(opt.pretrain_steps),
                     static_cast<double>(problem->train_loss()));
    }
    pretrain_note = std::to_string(opt.pretrain_steps) + " Adam steps to L_T = " +
                    format_number(problem->train_loss()) + ", ||grad|| = " +
                    format_number(problem->train_gradient().norm()) + " (" +
                    format_number(seconds_since(t0)) + " s)";
    std::printf("pre-training: %s\n", pretrain_note.c_str());
  }
  const auto report = [&](Index it, double loss, double gnorm) {
    if (progress)
      std::fprintf(stderr, "\r  %s %3lld: L_T = %.10f  ||grad|| = %.3e (%.0f s)\033[K",
                   opt.inner.c_str(), static_cast<long long>(it), loss, gnorm, seconds_since(t0));
  };
  InnerResult inner;
  generic::SolverState<Vector<double>> state;  // the L-BFGS pairs, for shine
  if (opt.inner == "newton") {
    NewtonParams newton;
    newton.gradient_tolerance = opt.grad_tol;
    newton.max_iterations = 200;
    inner = newton_solve<double>(*problem, lambda, w, newton, report);
  } else if (opt.inner == "lbfgs") {
    LbfgsParams lbfgs;
    lbfgs.gradient_tolerance = opt.grad_tol;
    lbfgs.max_iterations = 20000;
    lbfgs.memory = v.integer("lbfgs-memory");
    inner = lbfgs_solve<double>(*problem, lambda, w, lbfgs, report, &state.lbfgs);
  } else {
    NewtonCgParams newton_cg;
    newton_cg.gradient_tolerance = opt.grad_tol;
    newton_cg.max_iterations = 500;
    inner = newton_cg_solve(*problem, lambda, w, newton_cg, report);
  }
  if (progress) std::fprintf(stderr, "\r\033[K");
  const double newton_seconds = seconds_since(t0);
  const double newton_cpu = cpu_seconds() - cpu0;
  std::printf("P3 %s (%s): train=%lld val=%lld D=%lld log-decay=%.6f\n", opt.model.c_str(),
              opt.common.data.c_str(), static_cast<long long>(opt.n_train),
              static_cast<long long>(opt.n_val), static_cast<long long>(D), opt.log_decay);
  std::printf("w*: %s (%lld iterations, %.1f s, %.1f s CPU)\n", inner.message.c_str(),
              static_cast<long long>(inner.iterations), newton_seconds, newton_cpu);
  std::fflush(stdout);
  if (!inner.converged && app::is_root())
    std::cerr << "ift-accuracy: warning: " << inner.message
              << "; the IFT hypergradient assumes a stationary point\n";

  io::CsvWriter csv(opt.common.out + "/accuracy.csv", kCsvHeader);
  csv.add_comment("ift-accuracy (DESIGN.md P3), D = " + std::to_string(D) + ", options:\n" +
                  v.describe());
  if (!pretrain_note.empty()) csv.add_comment("pre-training: " + pretrain_note);
  csv.add_comment("w*: " + inner.message + " after " + std::to_string(inner.iterations) +
                  " " + opt.inner + " iterations (" + std::to_string(newton_seconds) + " s)" +
                  (inner.converged ? "" : " -- NOT CONVERGED"));
  csv.add_comment("columns: relative_error = ||h - h_exact|| / ||h_exact||, cosine = "
                  "<h, h_exact> / (||h|| ||h_exact||) (0 when h = 0); k empty for "
                  "k-independent methods; unrolled(k) starts at w*; shine(k) = the L-BFGS estimate of "
                  "the w* solve refined by k CG steps (k = 0: the estimate, 0 HVPs); hvps = the cost of k on its "
                  "own; seconds = for k-dependent methods, the time from the start of the "
                  "method's one sweep over all k until k's result was ready");
  if (!shine_note.empty()) csv.add_comment(shine_note);
  const int rows = sweep(*problem, opt, ks, methods, csv, progress, state);
  if (!app::is_root()) return 0;
  csv.save();
  std::printf("wrote %s (%d rows); total %.1f s (%.1f s CPU)\n", csv.path().c_str(), rows,
              seconds_since(t0), cpu_seconds() - cpu0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Measured for the default run at load ≈ 8 on 2 cores: 5 min 14 s with spinning OpenMP
  // threads, 2 min 3 s with passive waiting (identical numbers).
  app::prefer_passive_omp_wait(argv);
  return app::run_parallel_main("ift-accuracy", argc, argv, [&] { return run(argc, argv); });
}
