// ift-hypergrad: problem P1 of DESIGN.md §2. Per-weight weight decay on multinomial logistic
// regression over Fashion-MNIST; w* by Newton-CG (or L-BFGS, or dense Newton); the hypergradient
// at w* by any inverse approximation, with its relative error and cosine to the exact one.
//
//   ift-hypergrad --method exact                    one method, summary.csv + .npy files
//   ift-hypergrad --sweep --steps-list 0,5,20,50    every method for each k (problem P3)
//   ift-hypergrad --inner lbfgs --method shine --steps 0   SHINE from the w* solve's L-BFGS pairs
//
// Several processes (`mpirun -np N`): one method runs data-parallel (each rank holds its shard
// of the rows, every data term is summed, as ift-compare); --sweep instead splits its
// independent (method, k) pairs over the ranks (app::split_work, cost-balanced), each rank on the
// full problem, after computing w*, the exact hypergradient and the spectrum itself: every row
// is then one process's bit for bit, and no product waits for another rank. Rank 0 gathers the
// rows and alone writes the CSV, the .npy files and the console output.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <limits>
#include <optional>
#include <sstream>

#include "app_common.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/io/csv_writer.hpp"
#include "ift/io/npy.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/linalg/spectrum.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

using namespace ift;

namespace {

constexpr Index kFeatures = 785, kClasses = 10;

/// Class-major w (w[c·785 + j] = W[c, j]) as the 10 × 785 matrix W, for .npy files.
Matrix<double> as_class_matrix(const Vector<double>& w) {
  return Eigen::Map<const Matrix<double>>(w.data(), kFeatures, kClasses).transpose();
}

const std::vector<std::string> kHeader = {
    "method", "curvature", "steps", "alpha", "damping", "train_objective", "val_loss",
    "train_accuracy", "val_accuracy", "test_accuracy", "hypergradient_norm", "relative_error",
    "cosine", "status", "iterations", "hvps", "seconds"};

/// w*(λ) by the chosen inner solver (newton-cg, lbfgs or newton) to ||∇_w L_T|| < tolerance.
/// lbfgs appends its correction pairs to `pairs` (for shine).
InnerResult solve_inner(const std::string& inner, BilevelProblem<double>& problem,
                        const Vector<double>& lambda, Vector<double>& w, double tolerance,
                        const std::function<void(Index, double, double)>& progress,
                        Index lbfgs_memory, LbfgsPairs<Vector<double>>& pairs) {
  if (inner == "newton-cg") {
    NewtonCgParams p;
    p.gradient_tolerance = tolerance;
    return newton_cg_solve(problem, lambda, w, p, progress);
  }
  if (inner == "lbfgs") {
    LbfgsParams p;
    p.gradient_tolerance = tolerance;
    p.memory = lbfgs_memory;
    return lbfgs_solve<double>(problem, lambda, w, p, progress, &pairs);
  }
  NewtonParams p;
  p.gradient_tolerance = tolerance;
  return newton_solve<double>(problem, lambda, w, p, progress);
}

struct Row {
  MethodSpec spec;
  HypergradientResult<double> result;
};

}  // namespace

int run(int argc, char** argv) {
  app::OptionSet set(
      "ift-hypergrad",
      "ift-hypergrad: the P1 hypergradient (DESIGN.md §2) at w*(λ) for one inverse approximation, "
      "or every approximation with --sweep. w* by --inner (Newton-CG by default) to "
      "||∇_w L_T|| < --inner-tol, then until --w-tol certifies it.\nOutputs (in --out):\n  summary.csv        one row per method: " +
          [] {
            std::string s;
            for (const auto& h : kHeader) s += (s.empty() ? "" : ",") + h;
            return s;
          }() +
          "\n  hypergradient.npy  float64 (10, 785): dL_V/dλ for the weight W[c, j] (the exact one "
          "with --sweep)\n  w_star.npy         float64 (10, 785): w*(λ)");
  set.use(app::selection::kData)
      .use({"init-log-decay", "method", "curvature", "steps", "alpha", "damping", "steps-list",
            "inner-tol", "inner", "lbfgs-memory", "quiet", "curvature-sampling", "curvature-batch",
            "nystrom-sampling", "rho", "exact-precision", "kfac-penalty",
            "kfac-eigenvalues"})
      .use(app::selection::kRun)
      .add(app::flag("", "sweep", "run every method for each k in --steps-list (problem P3)"))
      .add(app::option("", "w-tol", app::ValueKind::Real, "X",
                       "then continues until ||w − w*|| <= w-tol·||w*|| is certified by strong "
                       "convexity: ||w − w*|| <= ||∇_w L_T|| / μ, μ = min_i exp(λ_i) (two "
                       "solves certified to 5e-13 agree to 1e-12)")
               .by_default("5e-13")
               .reals(app::Interval::open(0, 1)))
      .add(app::option("", "w-start", app::ValueKind::Text, "FILE",
                       "start Newton from this w_star.npy (e.g. of an earlier run with the same "
                       "data and decay) instead of 0")
               .check(app::valid::non_empty()));
  set.set_defaults({{"out", "results/hypergrad"}, {"steps-list", "0,1,2,5,10,20,50"},
                    {"inner", "newton-cg"}});
  set.set_choices("inner", {"newton-cg", "lbfgs", "newton"});
  try {
    const std::optional<app::OptionValues> parsed = app::parse_command_line(argc, argv, set);
    if (!parsed) return 0;
    const app::OptionValues& v = *parsed;
    const app::CommonOptions common = app::apply_common_options(v, /*exact_reference=*/true);
    app::require_option(common.test >= 1, "test", "must be >= 1 (accuracies are reported)");
    const Index n_train = common.train, n_val = common.val, n_test = common.test;
    const double log_decay = v.real("init-log-decay"), grad_tol = v.real("inner-tol"),
                 w_tol = v.real("w-tol");
    const std::string inner_solver = v.text("inner");
    const Index lbfgs_memory = v.integer("lbfgs-memory");
    const std::string out_dir = common.out, w_start = v.has("w-start") ? v.text("w-start") : "";
    const bool sweep = v.flag("sweep"), quiet = v.flag("quiet");

    MethodSpec base = app::method_spec(v, v.text("method"));
    // One hypergradient has no previous hyper-step whose v a warm start would continue from.
    app::require_option(!base.warm_start, "method",
                        "+warm needs the previous hyper-step's v; ift-hypergrad computes a single "
                        "hypergradient (warm starts run in ift-compare)");
    const Index curvature_batch = v.has("curvature-batch") ? v.integer("curvature-batch") : 0;
    base.compute_residual = true;
    base.check();
    const std::vector<Index> ks = sweep ? v.index_list("steps-list") : std::vector<Index>{};
    // shine reuses the pairs of the L-BFGS solve that found w*: another inner solver leaves none
    // (an L-BFGS run started at w* would stop at once). --method shine therefore requires
    // --inner lbfgs; --sweep includes shine's rows exactly when --inner is lbfgs (and there is
    // no --damping, which shine refuses).
    app::require_option(base.method != Method::Shine || inner_solver == "lbfgs", "inner",
                        "--method shine reuses the L-BFGS pairs of the w* solve: it needs "
                        "--inner lbfgs (got " + inner_solver + ")");
    const bool sweep_shine = inner_solver == "lbfgs" && base.damping == 0;

    // ---- Problem P1 ----------------------------------------------------------------------------
    // --sweep on several ranks: the pairs are split, each rank holds every row; else sharded.
    const bool split_sweep = sweep && app::world()->size() > 1;
    auto problem = app::make_p1_problem(split_sweep ? app::load_all_rows(common) : app::load_data(common));
    if (!split_sweep) app::distribute_problem(problem, common);
    const Index D = problem.num_params();
    const Vector<double> lambda = Vector<double>::Constant(D, log_decay);
    Vector<double> w = Vector<double>::Zero(D);
    if (!w_start.empty()) {
      const Matrix<double> W = io::load_npy_matrix<double>(w_start);
      require(W.rows() == kClasses && W.cols() == kFeatures,
              "--w-start " + w_start + ": expected a (10, 785) float64 array, found (" +
                  std::to_string(W.rows()) + ", " + std::to_string(W.cols()) + ")");
      require(W.allFinite(), "--w-start " + w_start + ": the array holds NaN or infinite values");
      const Matrix<double> Wt = W.transpose();
      w = Eigen::Map<const Vector<double>>(Wt.data(), D);
    }

    const auto t0 = std::chrono::steady_clock::now();
    const auto progress = [&](Index it, double loss, double gnorm) {
      if (!quiet && app::is_root())
        std::fprintf(stderr, "  %s %3lld: L_T = %.12f  ||grad|| = %.3e\n", inner_solver.c_str(),
                     static_cast<long long>(it), loss, gnorm);
    };
    // The L-BFGS pairs of the w* solve (both parts of it), for shine.
    generic::SolverState<Vector<double>> lbfgs_state;
    InnerResult inner =
        solve_inner(inner_solver, problem, lambda, w, grad_tol, progress, lbfgs_memory,
                    lbfgs_state.lbfgs);
    // L_T = mean cross-entropy (convex in w) + ½ Σ exp(λ_i) w_i², so L_T is μ-strongly convex
    // with μ = min_i exp(λ_i) and ||w − w*|| <= ||∇L_T(w)|| / μ. Continue (warm) until that bound
    // is at most w_tol·||w*|| (using ||w*|| >= ||w|| − ||g||/μ).
    const double mu = std::exp(lambda.minCoeff());
    const auto certified = [&] { return w_tol * mu * w.norm() / (1 + w_tol); };
    if (inner.converged && inner.gradient_norm >= certified()) {
      const InnerResult more =
          solve_inner(inner_solver, problem, lambda, w, certified(), progress, lbfgs_memory,
                      lbfgs_state.lbfgs);
      inner.iterations += more.iterations;
      inner.gradients += more.gradients;
      inner.hvps += more.hvps;
      inner.loss = more.loss;
      inner.gradient_norm = more.gradient_norm;
      inner.message = more.message;
      if (!more.converged && app::is_root())
        std::cerr << "ift-hypergrad: warning: w* not certified to --w-tol " << w_tol << ": "
                  << more.message << "\n";
    }
    const double inner_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!inner.converged && app::is_root()) {
      std::cerr << "ift-hypergrad: warning: " << inner.message
                << "; the IFT hypergradient assumes a stationary point\n";
    }
    const double w_bound = inner.gradient_norm / mu;
    const Metrics m = problem.metrics();
    std::printf("P1: n_train=%lld n_val=%lld n_test=%lld D=%lld log-decay=%.6f\n",
                static_cast<long long>(n_train), static_cast<long long>(n_val),
                static_cast<long long>(n_test), static_cast<long long>(D), log_decay);
    std::printf("w*: %s, %lld iterations, %lld HVPs, %lld gradients, %.2f s, ||grad L_T|| = %.3e, "
                "||w - w*|| <= ||grad||/mu = %.2e (relative %.2e)\n",
                inner_solver.c_str(), static_cast<long long>(inner.iterations),
                static_cast<long long>(inner.hvps), static_cast<long long>(inner.gradients),
                inner_seconds, inner.gradient_norm, w_bound, w_bound / w.norm());
    std::printf("L_T = %.10f  L_V = %.10f\naccuracy: train %.4f  val %.4f  test %.4f\n",
                static_cast<double>(problem.train_loss()), m.val_loss, m.train_accuracy,
                m.val_accuracy, m.test_accuracy);

    // ---- The exact hypergradient: the yardstick of every other method --------------------------
    HypergradientEngine<double> exact_engine([] {
      MethodSpec s;
      s.compute_residual = true;
      return s;
    }());
    const HypergradientResult<double> exact = exact_engine.compute(problem);
    std::printf("exact: ||h|| = %.6e  status %s  relative residual %.2e  (%.1f s)\n",
                exact.hypergradient.norm(), to_string(exact.status),
                exact.relative_residual.value_or(-1), exact.seconds);
    if (exact.status != SolverStatus::Converged)
      std::printf("exact: %s\n", exact.message.c_str());

    // Spectrum of H: λ_max by Lanczos (Spectra) on the matrix-free HVP operator; λ_min as
    // 1/λ_max(H⁻¹) by Lanczos on solves with the exact method's Cholesky factor (Lanczos on H
    // itself needs thousands of HVPs to resolve λ_min at κ in the thousands).
    const auto t_spectrum = std::chrono::steady_clock::now();
    FunctionOperator<Vector<double>> hessian_op(
        D, [&problem](const Vector<double>& x, Vector<double>& y) { problem.hvp(x, y); });
    SpectraParams lanczos;
    lanczos.tolerance = 1e-8;  // κ and α need a few digits, not 1e-10
    lanczos.max_restarts = 200;
    const Spectrum top = largest_eigenvalue(hessian_op, lanczos);
    double lambda_min = std::numeric_limits<double>::quiet_NaN();
    Index inverse_solves = 0;
    std::string inverse_status = "not computed";
    if (exact.status == SolverStatus::Converged) {
      const DenseSolver<double>& factor = exact_engine.dense_solver();
      FunctionOperator<Vector<double>> inverse_op(
          D, [&factor](const Vector<double>& x, Vector<double>& y) { factor.apply_inverse(x, y); });
      // Power iteration: its Rayleigh quotient settles even where λ_min sits in a cluster (the
      // softmax's 785-dimensional null space makes λ_min = e^λ a multiple eigenvalue), where
      // Lanczos keeps restarting to converge the Ritz vector.
      PowerIterationParams power;
      power.max_iterations = 100;
      power.tolerance = 1e-7;
      const PowerIterationResult inv = power_iteration(inverse_op, power);
      if (inv.eigenvalue > 0) lambda_min = 1 / inv.eigenvalue;
      inverse_solves = inv.hvps;
      inverse_status = to_string(inv.status);
    }
    const double spectrum_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t_spectrum).count();
    char lambda_min_text[64] = "not computed (the exact factor failed)", kappa_text[32] = "n/a";
    if (std::isfinite(lambda_min)) {
      std::snprintf(lambda_min_text, sizeof lambda_min_text, "%.6e", lambda_min);
      std::snprintf(kappa_text, sizeof kappa_text, "%.1f", top.lambda_max / lambda_min);
    }
    std::printf("spectrum of H: λ_max = %.6e (%s, %lld HVPs)  λ_min = %s (%s, %lld solves)  "
                "κ = %s  (%.1f s)\n",
                top.lambda_max, to_string(top.status), static_cast<long long>(top.hvps),
                lambda_min_text, inverse_status.c_str(), static_cast<long long>(inverse_solves),
                kappa_text, spectrum_seconds);
    Spectrum spectrum = top;
    spectrum.lambda_min = lambda_min;
    const double auto_alpha = spectrum.lambda_max > 0 ? 1.0 / spectrum.lambda_max : 0.0;

    // ---- The requested method(s) ---------------------------------------------------------------
    std::vector<MethodSpec> specs;
    if (sweep) {
      auto add = [&](Method mt, Curvature c, Index k,
                     CurvatureSampling sampling = CurvatureSampling::Full) {
        MethodSpec s = base;
        s.method = mt;
        s.curvature = c;
        s.steps = k;
        s.sampling = sampling;
        s.curvature_batch = sampling == CurvatureSampling::Full ? 0 : curvature_batch;
        s.preconditioner = Preconditioner::None;  // only the rows added for it below
        if (s.neumann.alpha == 0 && (mt == Method::Neumann || mt == Method::Unrolled) &&
            c == Curvature::Hessian)
          s.neumann.alpha = auto_alpha;  // one α for every k, as in the paper's comparison
        specs.push_back(s);
      };
      add(Method::Exact, Curvature::GaussNewton, 0);
      add(Method::Identity, Curvature::Hessian, 0);
      add(Method::Zero, Curvature::Hessian, 0);
      add(Method::Kfac, Curvature::Hessian, 0);
      for (Index k : ks) {
        add(Method::Cg, Curvature::Hessian, k);
        if (base.preconditioner != Preconditioner::None) {  // --method cg+kfac, cg+ritz: its rows
          add(Method::Cg, Curvature::Hessian, k);
          specs.back().preconditioner = base.preconditioner;
        }
        add(Method::Neumann, Curvature::Hessian, k);
        add(Method::Unrolled, Curvature::Hessian, k);
        add(Method::Cg, Curvature::GaussNewton, k);
        add(Method::Neumann, Curvature::GaussNewton, k);
        add(Method::Neumann, Curvature::OuterProduct, k);
        add(Method::Neumann, Curvature::Fisher, k);
        if (curvature_batch > 0)  // stochastic curvature: --curvature-batch rows per product
          for (CurvatureSampling sm : {CurvatureSampling::Fresh, CurvatureSampling::Fixed}) {
            add(Method::Cg, Curvature::Hessian, k, sm);
            add(Method::Neumann, Curvature::Hessian, k, sm);
          }
        if (sweep_shine) add(Method::Shine, Curvature::Hessian, k);
        add(Method::Nystrom, Curvature::Hessian, k);  // each k from its own nested sample
      }
    } else {
      MethodSpec s = base;
      if (s.neumann.alpha == 0 && (s.method == Method::Neumann || s.method == Method::Unrolled) &&
          s.curvature == Curvature::Hessian)
        s.neumann.alpha = auto_alpha;
      specs.push_back(s);
    }

    io::CsvWriter csv(out_dir + "/summary.csv", kHeader);
    csv.add_comment("ift-hypergrad P1: n_train=" + std::to_string(n_train) + " n_val=" +
                    std::to_string(n_val) + " n_test=" + std::to_string(n_test) +
                    " log_decay=" + format_number(log_decay) + " D=" + std::to_string(D));
    csv.add_comment("w*: " + inner_solver + " " + std::to_string(inner.iterations) +
                    " iterations, ||grad|| = " + detail::format_e(inner.gradient_norm) +
                    ", ||w - w*||/||w*|| <= " + detail::format_e(w_bound / w.norm()) +
                    "; lambda_max = " + format_number(spectrum.lambda_max) +
                    ", lambda_min = " + format_number(spectrum.lambda_min));
    std::printf("\n%-24s %5s %11s %13s %11s %9s %-22s %6s %8s\n", "method", "k", "alpha", "||h||",
                "rel.error", "cosine", "status", "HVPs", "seconds");
    const double exact_norm = exact.hypergradient.norm();
    // Errors relative to a failed reference mean nothing: they are left undefined (empty CSV
    // cells, "n/a" here), the CSV says why and the run ends with exit code 1.
    const bool reference_ok = exact.status == SolverStatus::Converged &&
                              exact.hypergradient.allFinite() && exact_norm > 0;
    if (!reference_ok)
      csv.add_comment("the exact reference failed (" + std::string(to_string(exact.status)) +
                      ": " + exact.message + "): relative_error and cosine are undefined");
    if (sweep && !sweep_shine) {
      const std::string why = inner_solver != "lbfgs" ? "needs --inner lbfgs" : "takes no --damping";
      csv.add_comment("shine omitted from the sweep: it " + why);
      std::printf("(shine omitted from the sweep: it %s)\n", why.c_str());
    }
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const auto uses_k = [](const MethodSpec& s) {
      return s.method == Method::Cg || s.method == Method::Neumann ||
             s.method == Method::Unrolled || s.method == Method::Shine ||
             s.method == Method::Nystrom;
    };
    // The rows: computed by every rank on the distributed problem (one method), or split over
    // the ranks (--sweep; costs estimated in HVPs: a dense Hessian and its factor as D).
    std::vector<double> costs;
    for (const MethodSpec& s : specs)
      costs.push_back(s.method == Method::Exact ? static_cast<double>(D)
                      : uses_k(s) ? 1.0 + static_cast<double>(s.steps) *
                                              (s.method == Method::Unrolled ? 3.0 : 1.0)
                                  : 1.0);
    HypergradientResult<double> last;
    const std::vector<app::WorkRecord> records = app::split_work(costs, split_sweep, [&](std::size_t i) {
      const MethodSpec& s = specs[i];
      HypergradientResult<double> r =
          (s.method == Method::Exact && s.curvature == Curvature::Hessian) ? exact
          : s.method == Method::Shine
              ? HypergradientEngine<double>(s).compute(problem, nullptr, &lbfgs_state)
              : HypergradientEngine<double>(s).compute(problem);
      const double norm = r.hypergradient.norm();
      const double rel =
          reference_ok ? (r.hypergradient - exact.hypergradient).norm() / exact_norm : nan;
      const double cosine =
          !reference_ok ? nan
          : norm > 0    ? r.hypergradient.dot(exact.hypergradient) / (norm * exact_norm)
                        : 0.0;
      app::WorkRecord record{{r.alpha, norm, rel, cosine, static_cast<double>(r.iterations),
                              static_cast<double>(r.hvps), r.seconds},
                             {to_string(r.status)}};
      last = std::move(r);
      return record;
    });
    for (std::size_t i = 0; i < specs.size() && app::is_root(); ++i) {
      const MethodSpec& s = specs[i];
      const std::vector<double>& x = records[i].numbers;
      const double alpha = x[0], norm = x[1], rel = x[2], cosine = x[3], seconds = x[6];
      const auto iterations = static_cast<long long>(x[4]), hvps = static_cast<long long>(x[5]);
      const std::string& status = records[i].texts[0];
      char rel_text[32] = "n/a", cosine_text[32] = "n/a";
      if (reference_ok) {
        std::snprintf(rel_text, sizeof rel_text, "%.3e", rel);
        std::snprintf(cosine_text, sizeof cosine_text, "%.6f", cosine);
      }
      std::printf("%-24s %5s %11.4e %13.6e %11s %9s %-22s %6lld %8.3f\n", s.name().c_str(),
                  uses_k(s) ? std::to_string(s.steps).c_str() : "-", alpha, norm, rel_text,
                  cosine_text, status.c_str(), hvps, seconds);
      csv.add_row({s.name(), to_string(s.curvature), uses_k(s) ? static_cast<long long>(s.steps) : 0LL,
                   alpha, s.damping, static_cast<double>(problem.train_loss()), m.val_loss,
                   m.train_accuracy, m.val_accuracy, m.test_accuracy, norm, rel, cosine,
                   status, iterations, hvps, seconds});
    }
    if (!sweep && specs.size() == 1 && specs[0].method == Method::Exact && exact.status == SolverStatus::Converged)
      std::printf("\n||h|| = %.10e (exact)\n", exact_norm);
    if (app::is_root()) {
      std::filesystem::create_directories(out_dir);
      csv.save();
      io::save_npy(out_dir + "/hypergradient.npy",
                   as_class_matrix(sweep ? exact.hypergradient : last.hypergradient));
      io::save_npy(out_dir + "/w_star.npy", as_class_matrix(problem.w()));
      std::printf("wrote %s/summary.csv, %s/hypergradient.npy, %s/w_star.npy\n", out_dir.c_str(),
                  out_dir.c_str(), out_dir.c_str());
    }
    // Several ranks: rank 0 has written its files before an exit code 1 ends the job.
    app::world()->barrier();
    if (!reference_ok) {
      if (app::is_root())
        std::cerr << "ift-hypergrad: error: the exact reference hypergradient failed ("
                  << to_string(exact.status) << ": " << exact.message
                  << "); relative errors are undefined\n";
      return 1;
    }
    return 0;
  } catch (const app::UsageError& e) {
    std::cerr << "ift-hypergrad: error: " << e.what() << " (see ift-hypergrad --help)\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "ift-hypergrad: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ift-hypergrad: error: " << e.what() << "\n";
    return 1;
  }
}

int main(int argc, char** argv) {
  return app::run_parallel_main("ift-hypergrad", argc, argv, [&] { return run(argc, argv); });
}
