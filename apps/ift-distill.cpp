// ift-distill: problem P5 of DESIGN.md §2 (dataset distillation, the paper's Fig. 6). Learns one
// 28×28 image per Fashion-MNIST class (7,840 hyperparameters) such that logistic regression
// trained on those 10 images alone does well on real validation data.
//
// Algorithm 2 of DESIGN.md §1: repeat { inner solve on w, warm-started; hypergradient; Adam step
// on the pixels }. Defaults and why:
//  - inner = newton-cg: Newton with CG on the matrix-free Hessian and an Armijo line search. The
//    library's newton_solve factorises the dense 7,850² Hessian (seconds per iteration); here the
//    Hessian is μI plus a term of rank ≤ m(C − 1) = 90 (ten examples), so CG solves each Newton
//    system exactly in ≤ 91 cheap HVPs, and warm-started Newton needs a few iterations per step.
//  - hypergradient = cg with 100 iterations: for the same reason cg(91) is the exact IFT
//    hypergradient (tests/test_distillation.cpp checks the finite termination) at a small
//    fraction of the exact method's dense Cholesky; the relative residual is reported per step.
// Outputs in --out: distill.csv (one row per outer step), distilled.png (the images as a grid),
// distilled.npy (float64 (C, 784) pixels). Longer runs: --hyper-steps 1000 (about 3× the default
// time); the validation loss keeps falling but test accuracy plateaus after ~200 steps: 7,840
// pixels can fit the validation set (fewer --val rows overfit sooner, hence 10,000 by default).
// Data-parallel: `mpirun -np N ift-distill …` shards the real data, the validation and test rows
// (L_V, its gradient and the metrics are their sums; DistillationProblem::distribute); the
// training examples are the 10 λ images, the same on every rank, and every rank reads all
// --train rows for the class-mean start (bit for bit one process's λ0). Rank 0 alone writes the
// CSV, the images and the checkpoint; a checkpoint resumes with any N.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "app_common.hpp"
#include "ift/bilevel.hpp"
#include "ift/io/csv_writer.hpp"
#include "ift/io/npy.hpp"
#include "ift/io/png.hpp"
#include "ift/problems/distillation.hpp"

using namespace ift;
namespace app = ift::app;

namespace {

const std::vector<std::string> kCsvHeader = {"step",          "val_loss",           "val_accuracy",
                                             "test_accuracy", "hypergradient_norm", "status",
                                             "inner_gradient_norm", "seconds"};
constexpr Index kClasses = 10, kSide = 28, kPixels = kSide * kSide;

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& x : items) s += (s.empty() ? "" : ",") + x;
  return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(int argc, char** argv) {
  const std::string usage =
      "ift-distill: dataset distillation (DESIGN.md §2 P5). Learns one image per class; the "
      "inner problem is logistic regression on the 10 images with a fixed L2 μ, the outer "
      "objective the cross-entropy on real validation data.\n\nOutput: OUT/distill.csv with "
      "header\n  " +
      join(kCsvHeader) +
      "\none row per outer step (step 0: the initial images; step t: after t Adam steps); "
      "test_accuracy is that of logistic regression trained on the distilled images alone "
      "(w*(λ)); status is the hypergradient solver's, or inner-not-converged; seconds since the "
      "start. OUT/distilled.png: the images; OUT/distilled.npy: float64 (10, 784).\n"
      "--train rows serve only the class-mean initialisation; --seed seeds --init noise; "
      "--inner sgd takes --inner-steps steps of size --inner-lr (gradient: its old name), "
      "newton-cg and newton (library newton_solve, dense Hessian: slow at 28×28) stop at "
      "--inner-tol or --inner-steps iterations.";
  app::OptionSet set("ift-distill", usage);
  set.use(app::selection::kData)
      .use({"method", "steps", "hyper-steps", "inner", "inner-steps", "inner-lr", "inner-tol",
            "outer-lr", "checkpoint-every", "resume", "quiet", "exact-precision"})
      .use(app::selection::kRun)
      .add(app::option("", "weight-decay", app::ValueKind::Real, "MU",
                       "μ of the fixed inner penalty ½ μ ||w||² (> 0: a unique w*)")
               .by_default("0.001")
               .reals(app::Interval::open_closed(0, app::limits::kRate)))
      .add(app::option("", "init", app::ValueKind::Text, "NAME",
                       "initial pixels: class-means (of the --train rows) or noise (uniform in "
                       "0.5 ± --noise-scale)")
               .by_default("class-means")
               .one_of({"class-means", "noise"}))
      .add(app::option("", "noise-scale", app::ValueKind::Real, "S",
                       "half-width of the uniform noise for --init noise")
               .by_default("0.1")
               .reals(app::Interval::open_closed(0, app::limits::kRate)));
  // The method: cg is exact here after 91 iterations; unrolled and zero are not offered (zero
  // never moves the pixels).
  set.set_defaults({{"out", "results/distill"},
                    {"train", "5000"},
                    {"val", "10000"},
                    {"test", "10000"},
                    {"hyper-steps", "200"},
                    {"checkpoint-every", "25"},
                    {"method", "cg"},
                    {"steps", "100"},
                    {"inner", "newton-cg"},
                    {"inner-steps", "50"},
                    {"inner-lr", "0.1"},
                    {"inner-tol", "1e-9"},
                    {"outer-lr", "0.005"}});
  set.set_choices("method", {"cg", "exact", "neumann", "identity", "kfac"})
      .set_choices("inner", {"newton-cg", "newton", "sgd", "gradient"});
  const std::optional<app::OptionValues> parsed = app::parse_command_line(argc, argv, set);
  if (!parsed) return 0;
  const app::OptionValues& v = *parsed;
  const app::CommonOptions common = app::apply_common_options(v);
  app::require_option(common.test >= 1, "test", "must be >= 1 (the test accuracy is the point)");
  app::require_option(v.integer("inner-steps") >= 1, "inner-steps", "must be >= 1");
  const Index hyper_steps = v.integer("hyper-steps");
  const bool quiet = v.flag("quiet");
  MethodSpec spec;
  spec.method = parse_method(v.text("method"));
  spec.steps = v.integer("steps");
  spec.cg.tolerance = 1e-10;
  spec.compute_residual = spec.method == Method::Cg;
  app::apply_exact_options(v, spec.exact);
  const bool progress = !quiet && app::is_root() && isatty(fileno(stderr));
  std::filesystem::create_directories(common.out);
  const auto t0 = std::chrono::steady_clock::now();

  // Every rank reads all --train rows (they only make the class-mean start) and its shard of
  // the validation and test rows.
  Splits<double> splits = app::load_data(common, /*whole_train=*/true);
  const Index pixels = splits.val.num_features() - 1;  // 784; the bias column is last
  require(pixels == kPixels, "ift-distill: expected 28×28 images");
  DistillationProblem<double> problem(
      kClasses, kPixels, std::make_shared<const Dataset<double>>(std::move(splits.val)),
      std::make_shared<const Dataset<double>>(std::move(splits.test)), v.real("weight-decay"));
  if (app::world()->size() > 1) {
    const int r = app::world()->rank(), N = app::world()->size();
    problem.distribute(app::world(), parallel::contiguous_shard(common.val, r, N),
                       parallel::contiguous_shard(common.test, r, N));
  }
  Vector<double> lambda;
  if (v.text("init") == "class-means") {
    lambda = problem.class_means(splits.train);
  } else {
    std::mt19937_64 gen(common.seed);
    std::uniform_real_distribution<double> u(0.5 - v.real("noise-scale"),
                                             0.5 + v.real("noise-scale"));
    lambda.resize(problem.num_hyper());
    for (Index i = 0; i < lambda.size(); ++i) lambda(i) = u(gen);
  }
  Vector<double> w = Vector<double>::Zero(problem.num_params());

  io::CsvWriter csv(common.out + "/distill.csv", kCsvHeader);
  csv.add_comment("ift-distill (DESIGN.md P5): " + std::to_string(kClasses) + " images of " +
                  std::to_string(kPixels) + " pixels = " + std::to_string(problem.num_hyper()) +
                  " hyperparameters; hypergradient " + spec.name() + "; options:\n" + v.describe());
  csv.add_comment("test_accuracy: logistic regression trained on the distilled images alone "
                  "(w*(lambda)); status: hypergradient solver status or inner-not-converged");

  // Algorithm 2 through the library's loop: T outer steps, then one more inner solve and
  // hypergradient at the final pixels (evaluate_final), so the CSV has rows 0..T.
  BilevelParams params;
  params.method = spec;
  params.hyper_steps = hyper_steps;
  params.evaluate_final = true;
  parse_inner(v.text("inner") == "gradient" ? "sgd" : v.text("inner"), params);
  if (params.inner_solver == InnerSolver::Optimizer)
    params.inner = {OptimizerKind::Sgd, v.real("inner-lr")};
  params.inner_steps = v.integer("inner-steps");
  params.inner_tolerance = v.real("inner-tol");
  params.outer = {OptimizerKind::Adam, v.real("outer-lr")};
  params.record_inner_gradient_norm = true;  // the CSV's inner_gradient_norm column
  params.checkpoint_every = v.integer("checkpoint-every");
  const std::string checkpoint_path = common.out + "/checkpoint-distill.bin";
  // Rank 0 writes the checkpoint; every rank resumes from it (one file, any process count).
  params.checkpoint_path = app::is_root() ? checkpoint_path : std::string();
  {
    std::ostringstream c;
    c << "app=ift-distill\ndata=" << common.data << "\ntrain=" << common.train
      << "\nval=" << common.val << "\ntest=" << common.test << "\ninit=" << v.text("init")
      << "\nnoise_scale=" << v.real("noise-scale") << "\nweight_decay=" << v.real("weight-decay")
      << "\nseed=" << common.seed << "\nthreads=" << app::effective_threads() << "\n";
    params.configuration = c.str();
  }
  params.check();
  const bool resume = v.flag("resume");
  app::require_option(!resume || std::filesystem::exists(checkpoint_path), "resume",
                      "no checkpoint at " + checkpoint_path);
  BilevelLoop<double> loop(params);
  double initial_test = 0, final_test = 0, final_val = 0;
  std::string last_message;
  loop.add_observer([&](const HyperStepRecord& r) {
    const Index step = r.step - 1;  // outer steps taken before this row's evaluation
    const Metrics& m = r.metrics;
    const double inner_gradient_norm = r.inner_gradient_norm;
    std::string status = r.status;
    if (r.inner_status == "not-converged") status = "inner-not-converged";
    csv.add_row({static_cast<long long>(step), m.val_loss, m.val_accuracy, m.test_accuracy,
                 r.hypergradient_norm, status, inner_gradient_norm, r.elapsed_seconds});
    if (step == 0) initial_test = m.test_accuracy;
    final_test = m.test_accuracy;
    final_val = m.val_loss;
    if (r.status != "converged" && r.status != "max-iterations") last_message = r.message;
    if (!quiet && (step % 25 == 0 || step == hyper_steps)) {
      if (progress) std::fprintf(stderr, "\r\033[K");
      std::printf("step %4lld  L_V = %.5f  val acc %.4f  test acc %.4f  ||h|| = %.3e  %s  "
                  "(inner: %lld it, ||g|| = %.1e; cg residual %.1e)  %.1f s\n",
                  static_cast<long long>(step), m.val_loss, m.val_accuracy, m.test_accuracy,
                  r.hypergradient_norm, status.c_str(), static_cast<long long>(r.inner_iterations),
                  inner_gradient_norm, std::isnan(r.relative_residual) ? 0.0 : r.relative_residual,
                  r.elapsed_seconds);
      std::fflush(stdout);
    } else if (progress) {
      std::fprintf(stderr, "\r  step %lld/%lld  L_V = %.5f  test acc %.4f\033[K",
                   static_cast<long long>(step), static_cast<long long>(hyper_steps), m.val_loss,
                   m.test_accuracy);
    }
    if (!r.restored && app::is_root()) csv.save();  // keep the file current: a stop loses no row
  });
  app::install_stop_signals();
  loop.set_stop_request([] { return app::stop_agreed(app::stop_requested()); });
  const BilevelResult<double> result =
      resume ? loop.resume(problem, load_checkpoint<double>(checkpoint_path))
             : loop.run(problem, w, lambda);
  lambda = result.lambda;
  if (progress) std::fprintf(stderr, "\r\033[K");
  if (!app::is_root()) return result.reason == StopReason::StopRequested
                                 ? 128 + static_cast<int>(app::g_stop_signal != 0 ? app::g_stop_signal : SIGTERM)
                                 : 0;
  csv.save();
  const Matrix<double> images = problem.images(lambda);
  io::write_image_grid_png(common.out + "/distilled.png", images, kSide, kSide, 5,
                           io::PngScaling::MinMaxPerImage, 1, 4);
  io::save_npy(common.out + "/distilled.npy", images);
  if (result.reason == StopReason::StopRequested) {
    std::fprintf(stderr,
                 "ift-distill: interrupted after %lld outer steps; images of that step, the CSV "
                 "and a checkpoint (%s) written; continue with the same options and --resume\n",
                 static_cast<long long>(result.steps), checkpoint_path.c_str());
    return 128 + static_cast<int>(app::g_stop_signal != 0 ? app::g_stop_signal : SIGTERM);
  }
  if (!last_message.empty()) std::printf("note: %s\n", last_message.c_str());
  std::printf("wrote %s, %s/distilled.png, %s/distilled.npy\n", csv.path().c_str(),
              common.out.c_str(), common.out.c_str());
  std::printf("final validation loss %.5f; test accuracy of logistic regression trained on the "
              "%lld distilled images alone: %.4f (initial images: %.4f); %.1f s\n",
              final_val, static_cast<long long>(kClasses), final_test, initial_test,
              seconds_since(t0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return app::run_parallel_main("ift-distill", argc, argv, [&] { return run(argc, argv); });
}
