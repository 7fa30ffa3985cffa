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
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
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

namespace po = boost::program_options;
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

struct Options {
  app::CommonOptions common;  // --seed (noise initialisation), --threads, --out, --data
  Index n_init = 5000, n_val = 10000, n_test = 10000, hyper_steps = 200, steps = 100,
        inner_steps = 50;
  double outer_lr = 0.005, weight_decay = 1e-3, inner_tol = 1e-9, inner_lr = 0.1,
         noise_scale = 0.1;
  std::string init = "class-means", method = "cg", inner = "newton-cg";
  bool quiet = false;
};

int run(int argc, char** argv) {
  Options opt;
  opt.common.out = "results/distill";
  po::options_description desc("Options");
  app::add_common_options(desc, opt.common);
  desc.add_options()
      ("hyper-steps", po::value(&opt.hyper_steps)->default_value(opt.hyper_steps),
       "Adam steps on the pixels (>= 0); about 0.25 s each with the defaults")
      ("outer-lr", po::value(&opt.outer_lr)->default_value(opt.outer_lr),
       "Adam learning rate on the pixels (> 0)")
      ("method", po::value(&opt.method)->default_value(opt.method),
       "hypergradient: cg (exact here after 91 iterations), exact (dense Cholesky, seconds per "
       "step), neumann, identity, kfac")
      ("steps", po::value(&opt.steps)->default_value(opt.steps),
       "CG iterations / Neumann terms of the hypergradient (>= 0)")
      ("inner", po::value(&opt.inner)->default_value(opt.inner),
       "inner solver: newton-cg, newton (library newton_solve, dense Hessian: slow at 28×28) or "
       "gradient (--inner-steps steps of size --inner-lr)")
      ("inner-steps", po::value(&opt.inner_steps)->default_value(opt.inner_steps),
       "gradient: steps per outer step; newton-cg/newton: maximum iterations (>= 1)")
      ("inner-lr", po::value(&opt.inner_lr)->default_value(opt.inner_lr),
       "gradient inner step size (> 0)")
      ("inner-tol", po::value(&opt.inner_tol)->default_value(opt.inner_tol),
       "newton-cg/newton stop at ||∇_w L_T|| below this (> 0)")
      ("weight-decay", po::value(&opt.weight_decay)->default_value(opt.weight_decay),
       "μ of the fixed inner penalty ½ μ ||w||² (> 0: a unique w*)")
      ("init", po::value(&opt.init)->default_value(opt.init),
       "initial pixels: class-means (of the --train rows) or noise (uniform in 0.5 ± "
       "--noise-scale, seeded by --seed)")
      ("noise-scale", po::value(&opt.noise_scale)->default_value(opt.noise_scale),
       "half-width of the uniform noise for --init noise (> 0)")
      ("train", po::value(&opt.n_init)->default_value(opt.n_init),
       "real training rows [0, train), used only for the class-mean initialisation")
      ("val", po::value(&opt.n_val)->default_value(opt.n_val),
       "validation rows (the outer objective): the next val rows of the train file")
      ("test", po::value(&opt.n_test)->default_value(opt.n_test),
       "test rows [0, test) of the t10k file")
      ("quiet", po::bool_switch(&opt.quiet), "print only the summary");
  const std::string usage =
      "ift-distill: dataset distillation (DESIGN.md §2 P5). Learns one image per class; the "
      "inner problem is logistic regression on the 10 images with a fixed L2 μ, the outer "
      "objective the cross-entropy on real validation data.\n\nOutput: OUT/distill.csv with "
      "header\n  " + join(kCsvHeader) +
      "\none row per outer step (step 0: the initial images; step t: after t Adam steps); "
      "test_accuracy is that of logistic regression trained on the distilled images alone "
      "(w*(λ)); status is the hypergradient solver's, or inner-not-converged; seconds since the "
      "start. OUT/distilled.png: the images; OUT/distilled.npy: float64 (10, 784).";
  po::variables_map vm;
  if (!app::parse_options(argc, argv, desc, usage, vm)) return 0;
  app::apply_common_options(opt.common);
  app::check_sizes(opt.common, opt.n_init, opt.n_val, opt.n_test);
  app::require_option(opt.n_test >= 1, "test", "must be >= 1 (the test accuracy is the point)");
  app::require_option(opt.hyper_steps >= 0, "hyper-steps", "must be >= 0");
  app::require_option(opt.outer_lr > 0 && std::isfinite(opt.outer_lr), "outer-lr", "must be > 0");
  app::require_option(opt.steps >= 0, "steps", "must be >= 0");
  app::require_option(opt.inner == "newton-cg" || opt.inner == "newton" || opt.inner == "gradient",
                      "inner", "must be newton-cg, newton or gradient (got '" + opt.inner + "')");
  app::require_option(opt.inner_steps >= 1, "inner-steps", "must be >= 1");
  app::require_option(opt.inner_lr > 0, "inner-lr", "must be > 0");
  app::require_option(opt.inner_tol > 0, "inner-tol", "must be > 0");
  app::require_option(opt.weight_decay > 0, "weight-decay", "must be > 0");
  app::require_option(opt.init == "class-means" || opt.init == "noise", "init",
                      "must be class-means or noise (got '" + opt.init + "')");
  app::require_option(opt.noise_scale > 0, "noise-scale", "must be > 0");
  MethodSpec spec;
  try {
    spec.method = parse_method(opt.method);
  } catch (const std::invalid_argument& e) {
    throw app::UsageError(std::string("--method: ") + e.what());
  }
  app::require_option(spec.method != Method::Unrolled && spec.method != Method::Zero, "method",
                      "unrolled and zero are not offered here (zero never moves the pixels)");
  spec.steps = opt.steps;
  spec.cg.tolerance = 1e-10;
  spec.compute_residual = spec.method == Method::Cg;
  const bool progress = !opt.quiet && isatty(fileno(stderr));
  std::filesystem::create_directories(opt.common.out);
  const auto t0 = std::chrono::steady_clock::now();

  Splits<double> splits = app::load_data(opt.common, opt.n_init, opt.n_val, opt.n_test);
  const Index pixels = splits.val.num_features() - 1;  // 784; the bias column is last
  require(pixels == kPixels, "ift-distill: expected 28×28 images");
  DistillationProblem<double> problem(
      kClasses, kPixels, std::make_shared<const Dataset<double>>(std::move(splits.val)),
      std::make_shared<const Dataset<double>>(std::move(splits.test)), opt.weight_decay);
  Vector<double> lambda;
  if (opt.init == "class-means") {
    lambda = problem.class_means(splits.train);
  } else {
    std::mt19937_64 gen(opt.common.seed);
    std::uniform_real_distribution<double> u(0.5 - opt.noise_scale, 0.5 + opt.noise_scale);
    lambda.resize(problem.num_hyper());
    for (Index i = 0; i < lambda.size(); ++i) lambda(i) = u(gen);
  }
  Vector<double> w = Vector<double>::Zero(problem.num_params());

  io::CsvWriter csv(opt.common.out + "/distill.csv", kCsvHeader);
  csv.add_comment("ift-distill (DESIGN.md P5): " + std::to_string(kClasses) + " images of " +
                  std::to_string(kPixels) + " pixels = " + std::to_string(problem.num_hyper()) +
                  " hyperparameters; hypergradient " + spec.name() + "; options:\n" +
                  app::describe_options(vm));
  csv.add_comment("test_accuracy: logistic regression trained on the distilled images alone "
                  "(w*(lambda)); status: hypergradient solver status or inner-not-converged");

  // Algorithm 2 through the library's loop: T outer steps, then one more inner solve and
  // hypergradient at the final pixels (evaluate_final), so the CSV has rows 0..T.
  BilevelParams params;
  params.method = spec;
  params.hyper_steps = opt.hyper_steps;
  params.evaluate_final = true;
  if (opt.inner == "gradient") {
    params.inner_solver = InnerSolver::Optimizer;
    params.inner = {OptimizerKind::Sgd, opt.inner_lr};
  } else {
    parse_inner(opt.inner, params);
  }
  params.inner_steps = opt.inner_steps;
  params.inner_tolerance = opt.inner_tol;
  params.outer = {OptimizerKind::Adam, opt.outer_lr};
  BilevelLoop<double> loop(params);
  double initial_test = 0, final_test = 0, final_val = 0;
  std::string last_message;
  loop.add_observer([&](const HyperStepRecord& r) {
    const Index step = r.step - 1;  // outer steps taken before this row's evaluation
    const Metrics& m = r.metrics;
    // Fixed gradient steps do not measure ||∇_w L_T||: the problem is still at the (λ, w) of
    // this record's hypergradient, so measure it here.
    const double inner_gradient_norm = std::isnan(r.inner_gradient_norm)
                                           ? static_cast<double>(problem.train_gradient().norm())
                                           : r.inner_gradient_norm;
    std::string status = r.status;
    if (r.inner_status == "not-converged") status = "inner-not-converged";
    csv.add_row({static_cast<long long>(step), m.val_loss, m.val_accuracy, m.test_accuracy,
                 r.hypergradient_norm, status, inner_gradient_norm, seconds_since(t0)});
    if (step == 0) initial_test = m.test_accuracy;
    final_test = m.test_accuracy;
    final_val = m.val_loss;
    if (r.status != "converged" && r.status != "max-iterations") last_message = r.message;
    if (!opt.quiet && (step % 25 == 0 || step == opt.hyper_steps)) {
      if (progress) std::fprintf(stderr, "\r\033[K");
      std::printf("step %4lld  L_V = %.5f  val acc %.4f  test acc %.4f  ||h|| = %.3e  %s  "
                  "(inner: %lld it, ||g|| = %.1e; cg residual %.1e)  %.1f s\n",
                  static_cast<long long>(step), m.val_loss, m.val_accuracy, m.test_accuracy,
                  r.hypergradient_norm, status.c_str(), static_cast<long long>(r.inner_iterations),
                  inner_gradient_norm, std::isnan(r.relative_residual) ? 0.0 : r.relative_residual,
                  seconds_since(t0));
      std::fflush(stdout);
    } else if (progress) {
      std::fprintf(stderr, "\r  step %lld/%lld  L_V = %.5f  test acc %.4f\033[K",
                   static_cast<long long>(step), static_cast<long long>(opt.hyper_steps),
                   m.val_loss, m.test_accuracy);
    }
    if (step % 25 == 0) csv.save();  // keep the file current on long runs
  });
  const BilevelResult<double> result = loop.run(problem, w, lambda);
  lambda = result.lambda;
  if (progress) std::fprintf(stderr, "\r\033[K");
  csv.save();
  const Matrix<double> images = problem.images(lambda);
  io::write_image_grid_png(opt.common.out + "/distilled.png", images, kSide, kSide, 5,
                           io::PngScaling::MinMaxPerImage, 1, 4);
  io::save_npy(opt.common.out + "/distilled.npy", images);
  if (!last_message.empty()) std::printf("note: %s\n", last_message.c_str());
  std::printf("wrote %s, %s/distilled.png, %s/distilled.npy\n", csv.path().c_str(),
              opt.common.out.c_str(), opt.common.out.c_str());
  std::printf("final validation loss %.5f; test accuracy of logistic regression trained on the "
              "%lld distilled images alone: %.4f (initial images: %.4f); %.1f s\n",
              final_val, static_cast<long long>(kClasses), final_test, initial_test,
              seconds_since(t0));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return app::run_main("ift-distill", [&] { return run(argc, argv); });
}
