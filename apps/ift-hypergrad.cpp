// ift-hypergrad: problem P1 of DESIGN.md §2. Per-weight weight decay on multinomial logistic
// regression over Fashion-MNIST; w* by Newton; the hypergradient at w* by any inverse
// approximation, with its relative error and cosine to the exact one.
//
//   ift-hypergrad --method exact                    one method, summary.csv + .npy files
//   ift-hypergrad --sweep --steps-list 0,5,20,50    every method for each k (problem P3)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
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

struct Row {
  MethodSpec spec;
  HypergradientResult<double> result;
};

}  // namespace

int main(int argc, char** argv) {
  app::OptionSet set(
      "ift-hypergrad",
      "ift-hypergrad: the P1 hypergradient (DESIGN.md §2) at w*(λ) for one inverse approximation, "
      "or every approximation with --sweep. w* by Newton with an Armijo line search to "
      "||∇_w L_T|| < --inner-tol.\nOutputs (in --out):\n  summary.csv        one row per method: " +
          [] {
            std::string s;
            for (const auto& h : kHeader) s += (s.empty() ? "" : ",") + h;
            return s;
          }() +
          "\n  hypergradient.npy  float64 (10, 785): dL_V/dλ for the weight W[c, j] (the exact one "
          "with --sweep)\n  w_star.npy         float64 (10, 785): w*(λ)");
  set.use(app::selection::kData)
      .use({"init-log-decay", "method", "curvature", "steps", "alpha", "damping", "steps-list",
            "inner-tol", "quiet"})
      .use(app::selection::kRun)
      .add(app::flag("", "sweep", "run every method for each k in --steps-list (problem P3)"))
      .add(app::option("", "w-start", app::ValueKind::Text, "FILE",
                       "start Newton from this w_star.npy (e.g. of an earlier run with the same "
                       "data and decay) instead of 0")
               .check(app::valid::non_empty()));
  set.set_defaults({{"out", "results/hypergrad"}, {"steps-list", "0,1,2,5,10,20,50"}});
  try {
    const std::optional<app::OptionValues> parsed = app::parse_command_line(argc, argv, set);
    if (!parsed) return 0;
    const app::OptionValues& v = *parsed;
    const app::CommonOptions common = app::apply_common_options(v);
    app::require_option(common.test >= 1, "test", "must be >= 1 (accuracies are reported)");
    const Index n_train = common.train, n_val = common.val, n_test = common.test;
    const double log_decay = v.real("init-log-decay"), grad_tol = v.real("inner-tol");
    const std::string out_dir = common.out, w_start = v.has("w-start") ? v.text("w-start") : "";
    const bool sweep = v.flag("sweep"), quiet = v.flag("quiet");

    MethodSpec base = app::method_spec(v, v.text("method"));
    base.compute_residual = true;
    base.check();
    const std::vector<Index> ks = sweep ? v.index_list("steps-list") : std::vector<Index>{};

    // ---- Problem P1 ----------------------------------------------------------------------------
    auto problem = app::make_p1_problem(app::load_data(common));
    const Index D = problem.num_params();
    const Vector<double> lambda = Vector<double>::Constant(D, log_decay);
    Vector<double> w = Vector<double>::Zero(D);
    if (!w_start.empty()) {
      const Matrix<double> W = io::load_npy_matrix<double>(w_start);
      require(W.rows() == kClasses && W.cols() == kFeatures,
              "--w-start " + w_start + ": expected a (10, 785) float64 array, found (" +
                  std::to_string(W.rows()) + ", " + std::to_string(W.cols()) + ")");
      const Matrix<double> Wt = W.transpose();
      w = Eigen::Map<const Vector<double>>(Wt.data(), D);
    }

    const auto t0 = std::chrono::steady_clock::now();
    NewtonParams newton;
    newton.gradient_tolerance = grad_tol;
    const InnerResult inner = newton_solve<double>(
        problem, lambda, w, newton, [&](Index it, double loss, double gnorm) {
          if (!quiet) std::fprintf(stderr, "  Newton %2lld: L_T = %.12f  ||grad|| = %.3e\n",
                                   static_cast<long long>(it), loss, gnorm);
        });
    const double newton_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!inner.converged) {
      std::cerr << "ift-hypergrad: warning: " << inner.message
                << "; the IFT hypergradient assumes a stationary point\n";
    }
    const Metrics m = problem.metrics();
    std::printf("P1: n_train=%lld n_val=%lld n_test=%lld D=%lld log-decay=%.6f\n",
                static_cast<long long>(n_train), static_cast<long long>(n_val),
                static_cast<long long>(n_test), static_cast<long long>(D), log_decay);
    std::printf("w*: %lld Newton iterations, %.1f s, ||grad L_T|| = %.3e\n",
                static_cast<long long>(inner.iterations), newton_seconds, inner.gradient_norm);
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
    FunctionOperator<Vector<double>> hessian_op(
        D, [&problem](const Vector<double>& x, Vector<double>& y) { problem.hvp(x, y); });
    SpectraParams lanczos;
    lanczos.tolerance = 1e-8;  // κ and α need a few digits, not 1e-10
    lanczos.max_restarts = 200;
    const Spectrum top = largest_eigenvalue(hessian_op, lanczos);
    double lambda_min = std::numeric_limits<double>::quiet_NaN();
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
    }
    std::printf("spectrum of H: λ_max = %.6e (%s, %lld HVPs)  λ_min = %.6e  κ = %.1f\n",
                top.lambda_max, to_string(top.status), static_cast<long long>(top.hvps),
                lambda_min, top.lambda_max / lambda_min);
    Spectrum spectrum = top;
    spectrum.lambda_min = lambda_min;
    const double auto_alpha = spectrum.lambda_max > 0 ? 1.0 / spectrum.lambda_max : 0.0;

    // ---- The requested method(s) ---------------------------------------------------------------
    std::vector<MethodSpec> specs;
    if (sweep) {
      auto add = [&](Method mt, Curvature c, Index k) {
        MethodSpec s = base;
        s.method = mt;
        s.curvature = c;
        s.steps = k;
        if (s.alpha == 0 && (mt == Method::Neumann || mt == Method::Unrolled) &&
            c == Curvature::Hessian)
          s.alpha = auto_alpha;  // one α for every k, as in the paper's comparison
        specs.push_back(s);
      };
      add(Method::Exact, Curvature::GaussNewton, 0);
      add(Method::Identity, Curvature::Hessian, 0);
      add(Method::Zero, Curvature::Hessian, 0);
      add(Method::Kfac, Curvature::Hessian, 0);
      for (Index k : ks) {
        add(Method::Cg, Curvature::Hessian, k);
        add(Method::Neumann, Curvature::Hessian, k);
        add(Method::Unrolled, Curvature::Hessian, k);
        add(Method::Cg, Curvature::GaussNewton, k);
        add(Method::Neumann, Curvature::GaussNewton, k);
        add(Method::Neumann, Curvature::OuterProduct, k);
        add(Method::Neumann, Curvature::Fisher, k);
      }
    } else {
      MethodSpec s = base;
      if (s.alpha == 0 && (s.method == Method::Neumann || s.method == Method::Unrolled) &&
          s.curvature == Curvature::Hessian)
        s.alpha = auto_alpha;
      specs.push_back(s);
    }

    io::CsvWriter csv(out_dir + "/summary.csv", kHeader);
    csv.add_comment("ift-hypergrad P1: n_train=" + std::to_string(n_train) + " n_val=" +
                    std::to_string(n_val) + " n_test=" + std::to_string(n_test) +
                    " log_decay=" + std::to_string(log_decay) + " D=" + std::to_string(D));
    csv.add_comment("w*: Newton " + std::to_string(inner.iterations) +
                    " iterations, ||grad|| = " + std::to_string(inner.gradient_norm) +
                    "; lambda_max = " + std::to_string(spectrum.lambda_max) +
                    ", lambda_min = " + std::to_string(spectrum.lambda_min));
    std::printf("\n%-24s %5s %11s %13s %11s %9s %-22s %6s %8s\n", "method", "k", "alpha", "||h||",
                "rel.error", "cosine", "status", "HVPs", "seconds");
    const double exact_norm = exact.hypergradient.norm();
    HypergradientResult<double> last;
    for (const MethodSpec& s : specs) {
      HypergradientResult<double> r = (s.method == Method::Exact && s.curvature == Curvature::Hessian)
                                          ? exact
                                          : HypergradientEngine<double>(s).compute(problem);
      const double norm = r.hypergradient.norm();
      const double rel = (r.hypergradient - exact.hypergradient).norm() / exact_norm;
      const double cosine = norm > 0 ? r.hypergradient.dot(exact.hypergradient) / (norm * exact_norm) : 0.0;
      const bool uses_k = s.method == Method::Cg || s.method == Method::Neumann || s.method == Method::Unrolled;
      std::printf("%-24s %5s %11.4e %13.6e %11.3e %9.6f %-22s %6lld %8.3f\n", s.name().c_str(),
                  uses_k ? std::to_string(s.steps).c_str() : "-", r.alpha, norm, rel, cosine,
                  to_string(r.status), static_cast<long long>(r.hvps), r.seconds);
      csv.add_row({s.name(), to_string(s.curvature), uses_k ? static_cast<long long>(s.steps) : 0LL,
                   r.alpha, s.damping, static_cast<double>(problem.train_loss()), m.val_loss,
                   m.train_accuracy, m.val_accuracy, m.test_accuracy, norm, rel, cosine,
                   to_string(r.status), static_cast<long long>(r.iterations),
                   static_cast<long long>(r.hvps), r.seconds});
      last = std::move(r);
    }
    if (!sweep && specs.size() == 1 && specs[0].method == Method::Exact && exact.status == SolverStatus::Converged)
      std::printf("\n||h|| = %.10e (exact)\n", exact_norm);
    std::filesystem::create_directories(out_dir);
    csv.save();
    io::save_npy(out_dir + "/hypergradient.npy",
                 as_class_matrix(sweep ? exact.hypergradient : last.hypergradient));
    io::save_npy(out_dir + "/w_star.npy", as_class_matrix(problem.w()));
    std::printf("wrote %s/summary.csv, %s/hypergradient.npy, %s/w_star.npy\n", out_dir.c_str(),
                out_dir.c_str(), out_dir.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ift-hypergrad: " << e.what() << "\n";
  }
  return 2;
}
