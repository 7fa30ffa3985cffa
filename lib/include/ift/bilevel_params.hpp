// The bilevel loop's parameters (DESIGN.md §1, Algorithm 2 of Lorraine et al. 2020). The loop
// itself is written once, for every problem and backend, in ift/generic/bilevel.hpp; this header
// holds what does not depend on the vector type.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ift/core.hpp"
#include "ift/inner.hpp"
#include "ift/method.hpp"
#include "ift/optimizers.hpp"

namespace ift {

/// What to do when a hypergradient fails (a status other than converged or max-iterations, or
/// non-finite values). A non-finite hypergradient is never applied to λ either way.
enum class OnFailure { Continue, Stop };
OnFailure parse_on_failure(const std::string& name);
const char* to_string(OnFailure f);

/// How w moves in the inner phase of a hyper-step:
///   optimizer  `inner_steps` steps of `inner` (sgd, momentum or adam), full batch or minibatch;
///   newton     full-batch Newton with the dense Hessian and Armijo (Eigen problems);
///   newton-cg  truncated Newton: CG on Hessian-vector products, Armijo (any backend);
///   lbfgs      L-BFGS (LBFGSpp) on full-batch gradients (Eigen problems).
/// The solvers run from the current w (warm-started) to ||∇_w L_T|| < inner_tolerance or
/// `inner_steps` iterations.
enum class InnerSolver { Optimizer, Newton, NewtonCg, Lbfgs };
const char* to_string(InnerSolver s);
/// "sgd", "momentum", "adam" (optimizer steps of that kind), "newton", "newton-cg", "lbfgs";
/// sets params.inner_solver and, for the optimisers, params.inner.kind. Throws
/// std::invalid_argument naming the value.
struct BilevelParams;
void parse_inner(const std::string& name, BilevelParams& params);

/// HOAG's decreasing tolerances (Pedregosa 2016): at hyper-step t (1-based) ε_t = ε0/t²
/// (quadratic), ε0/t³ (cubic) or ε0·0.9^t (geometric); none keeps the fixed tolerances.
enum class ToleranceSchedule { None, Quadratic, Cubic, Geometric };
ToleranceSchedule parse_tolerance_schedule(const std::string& name);
const char* to_string(ToleranceSchedule s);

struct BilevelParams {
  Index hyper_steps = 100;   ///< outer iterations T, ≥ 0
  Index inner_steps = 10;    ///< N inner optimiser steps (solver iterations) per hyper-step, ≥ 0
  Index warmup_steps = 0;    ///< inner optimiser steps before the first hyper-step (fresh runs only), ≥ 0
  Index batch_size = 0;      ///< 0: full-batch inner gradients; else rows per minibatch, ≥ 1
  InnerSolver inner_solver = InnerSolver::Optimizer;
  double inner_tolerance = 1e-10;  ///< inner solvers: stop at ||∇_w L_T|| below this, > 0
  OptimizerParams inner{OptimizerKind::Adam, 1e-2};  ///< the optimiser on w
  OptimizerParams outer{OptimizerKind::Adam, 1e-2};  ///< the optimiser on λ
  MethodSpec method;         ///< the hypergradient's inverse approximation
  /// HOAG: ε_t = tolerance_at(t) replaces, at hyper-step t, both inner_tolerance (inner solvers
  /// Newton, Newton-CG, L-BFGS) and the linear solve's tolerance (method.cg.tolerance, CG's
  /// relative residual, and method.neumann.tolerance, the last term / ||g||); the iteration caps
  /// (inner_steps, method.steps) stay. None: the fixed tolerances.
  ToleranceSchedule tolerance_schedule = ToleranceSchedule::None;
  double tolerance0 = 1e-3;  ///< ε0 of the schedule, > 0
  std::uint64_t seed = 0;    ///< minibatch sampling (std::mt19937_64)
  OnFailure on_failure = OnFailure::Continue;
  /// Stop once train and validation accuracy both reach this (P4); unset: never.
  std::optional<double> target_accuracy;
  /// Evaluate Metrics (losses and accuracies on every set) for each record; off for timing
  /// runs that do not read them (target_accuracy needs them).
  bool record_metrics = true;
  /// Optimiser steps: also record ||∇_w L_T|| at the end of the inner phase (one full gradient
  /// per hyper-step; inner solvers always report it).
  bool record_inner_gradient_norm = false;
  /// After the last outer step, one more inner phase and hypergradient at the final λ, reported
  /// as record hyper_steps + 1 with final_evaluation set (no outer step is taken).
  bool evaluate_final = false;
  Index checkpoint_every = 0;   ///< write a checkpoint every K hyper-steps (0: only at the end/stop)
  std::string checkpoint_path;  ///< empty: no checkpoints at all
  /// The caller's description of everything else that determines the run (data, sizes, model,
  /// initial point, thread count): part of the fingerprint a resume must match.
  std::string configuration;

  /// Throws std::invalid_argument naming the field.
  void check() const;
  /// ε_t of the schedule at hyper-step t >= 1 (nothing with schedule none): the one place the
  /// schedule is computed.
  std::optional<double> tolerance_at(Index t) const;
  /// Every field that determines the trajectory, one "key=value" per line. hyper_steps and the
  /// checkpoint settings are left out, so a finished run can be extended by resuming it with
  /// more hyper-steps.
  std::string fingerprint() const;
};

enum class StopReason { Completed, TargetReached, Failure, StopRequested };
const char* to_string(StopReason r);

}  // namespace ift

