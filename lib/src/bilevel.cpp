#include "ift/bilevel.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <sstream>

namespace ift {

OnFailure parse_on_failure(const std::string& name) {
  if (name == "continue") return OnFailure::Continue;
  if (name == "stop") return OnFailure::Stop;
  throw std::invalid_argument("unknown failure policy '" + name + "' (expected continue or stop)");
}

const char* to_string(OnFailure f) { return f == OnFailure::Continue ? "continue" : "stop"; }

const char* to_string(StopReason r) {
  switch (r) {
    case StopReason::Completed: return "completed";
    case StopReason::TargetReached: return "target accuracy reached";
    case StopReason::Failure: return "stopped by a failed hypergradient";
    case StopReason::StopRequested: return "stop requested";
  }
  return "?";
}

const char* to_string(InnerSolver s) {
  switch (s) {
    case InnerSolver::Optimizer: return "optimizer";
    case InnerSolver::Newton: return "newton";
    case InnerSolver::NewtonCg: return "newton-cg";
    case InnerSolver::Lbfgs: return "lbfgs";
  }
  return "?";
}

void parse_inner(const std::string& name, BilevelParams& params) {
  if (name == "newton") {
    params.inner_solver = InnerSolver::Newton;
  } else if (name == "newton-cg") {
    params.inner_solver = InnerSolver::NewtonCg;
  } else if (name == "lbfgs") {
    params.inner_solver = InnerSolver::Lbfgs;
  } else if (name == "sgd" || name == "momentum" || name == "adam") {
    params.inner_solver = InnerSolver::Optimizer;
    params.inner.kind = parse_optimizer(name);
  } else {
    throw std::invalid_argument("unknown inner solver '" + name +
                                "' (expected sgd, momentum, adam, newton, newton-cg or lbfgs)");
  }
}

ToleranceSchedule parse_tolerance_schedule(const std::string& name) {
  if (name == "none") return ToleranceSchedule::None;
  if (name == "quadratic") return ToleranceSchedule::Quadratic;
  if (name == "cubic") return ToleranceSchedule::Cubic;
  if (name == "geometric") return ToleranceSchedule::Geometric;
  throw std::invalid_argument("unknown tolerance schedule '" + name +
                              "' (expected none, quadratic, cubic or geometric)");
}

const char* to_string(ToleranceSchedule s) {
  switch (s) {
    case ToleranceSchedule::None: return "none";
    case ToleranceSchedule::Quadratic: return "quadratic";
    case ToleranceSchedule::Cubic: return "cubic";
    case ToleranceSchedule::Geometric: return "geometric";
  }
  return "?";
}

std::optional<double> BilevelParams::tolerance_at(Index t) const {
  require(t >= 1, "BilevelParams::tolerance_at: hyper-steps count from 1");
  const double k = static_cast<double>(t);
  switch (tolerance_schedule) {
    case ToleranceSchedule::None: return std::nullopt;
    case ToleranceSchedule::Quadratic: return tolerance0 / (k * k);
    case ToleranceSchedule::Cubic: return tolerance0 / (k * k * k);
    case ToleranceSchedule::Geometric: return tolerance0 * std::pow(0.9, k);
  }
  return std::nullopt;
}

void BilevelParams::check() const {
  require(hyper_steps >= 0, "BilevelParams::hyper_steps must be >= 0 (got " +
                                std::to_string(hyper_steps) + ")");
  require(inner_steps >= 0, "BilevelParams::inner_steps must be >= 0 (got " +
                                std::to_string(inner_steps) + ")");
  require(warmup_steps >= 0, "BilevelParams::warmup_steps must be >= 0 (got " +
                                 std::to_string(warmup_steps) + ")");
  require(batch_size >= 0, "BilevelParams::batch_size must be >= 0 (0 = full batch)");
  require(checkpoint_every >= 0, "BilevelParams::checkpoint_every must be >= 0");
  require(inner_solver == InnerSolver::Optimizer || inner_steps >= 1,
          std::string("BilevelParams::inner_steps must be >= 1 for the ") +
              to_string(inner_solver) + " inner solver (its iteration cap)");
  require(std::isfinite(inner_tolerance) && inner_tolerance > 0,
          "BilevelParams::inner_tolerance must be > 0");
  require(std::isfinite(tolerance0) && tolerance0 > 0, "BilevelParams::tolerance0 must be > 0");
  require(!target_accuracy || (*target_accuracy >= 0 && *target_accuracy <= 1),
          "BilevelParams::target_accuracy must lie in [0, 1]");
  require(!target_accuracy || record_metrics,
          "BilevelParams::target_accuracy needs record_metrics (the accuracies it compares)");
  inner.check("BilevelParams::inner");
  outer.check("BilevelParams::outer");
  method.check();
  require(method.method != Method::Shine || inner_solver == InnerSolver::Lbfgs,
          std::string("BilevelParams: method shine reuses the inner L-BFGS's pairs: it needs the "
                      "lbfgs inner solver (got ") +
              to_string(inner_solver) + ")");
}

namespace {

std::string exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::string BilevelParams::fingerprint() const {
  std::ostringstream s;
  s << "method=" << method.name() << "\n"
    << "method.steps=" << method.steps << "\n"
    << "method.alpha=" << exact(method.neumann.alpha) << "\n"
    << "method.safety=" << exact(method.neumann.safety) << "\n"
    << "method.damping=" << exact(method.damping) << "\n"
    << "method.kfac_damping_mode=" << to_string(method.kfac.damping_mode) << "\n"
    << "method.tolerance=" << exact(method.cg.tolerance) << "\n"
    << "method.reorthogonalize=" << method.cg.reorthogonalize << "\n"
    << "method.power_iterations=" << method.neumann.power_iterations << "\n"
    << "method.neumann.power_tolerance=" << exact(method.neumann.power_tolerance) << "\n"
    << "method.neumann.seed=" << method.neumann.seed << "\n"
    << "method.neumann.divergence_factor=" << exact(method.neumann.divergence_factor) << "\n"
    << "method.neumann.growth_patience=" << method.neumann.growth_patience << "\n"
    << "method.neumann.growth_tolerance=" << exact(method.neumann.growth_tolerance) << "\n"
    << "method.neumann.tolerance=" << exact(method.neumann.tolerance) << "\n"
    << "method.compute_residual=" << method.compute_residual << "\n"
    << "method.warm_start=" << method.warm_start << "\n";
  // Written only when not the default, so that checkpoints written before the option existed
  // keep their fingerprint.
  if (method.kfac.penalty != KfacPenalty::Mean)
    s << "method.kfac_penalty=" << to_string(method.kfac.penalty) << "\n";
  if (method.kfac.eigenvalues != KfacEigenvalues::Kronecker)
    s << "method.kfac_eigenvalues=" << to_string(method.kfac.eigenvalues) << "\n";
  // Lines for the newer settings only where they differ from the defaults, so checkpoints of
  // runs that do not use them keep their fingerprint.
  if (method.sampling != CurvatureSampling::Full)
    s << "method.curvature_batch=" << method.curvature_batch << "\n"
      << "method.sampling_seed=" << method.sampling_seed << "\n";
  if (uses_ritz(method.preconditioner))
    s << "method.ritz.memory=" << method.ritz.memory << "\n"
      << "method.ritz.accept=" << exact(method.ritz.accept) << "\n";
  if (tolerance_schedule != ToleranceSchedule::None)
    s << "tolerance_schedule=" << to_string(tolerance_schedule) << "\n"
      << "tolerance0=" << exact(tolerance0) << "\n";
  s
    << "inner_steps=" << inner_steps << "\n"
    << "warmup_steps=" << warmup_steps << "\n"
    << "batch_size=" << batch_size << "\n"
    << "inner=" << inner.describe() << "\n"
    << "inner_solver=" << to_string(inner_solver) << "\n"
    << "inner_tolerance=" << exact(inner_tolerance) << "\n"
    << "evaluate_final=" << evaluate_final << "\n"
    << "outer=" << outer.describe() << "\n"
    << "seed=" << seed << "\n"
    << "on_failure=" << to_string(on_failure) << "\n"
    << "target_accuracy=" << (target_accuracy ? exact(*target_accuracy) : "none") << "\n"
    << configuration;
  return s.str();
}

namespace generic::detail {

std::string first_difference(const std::string& stored, const std::string& expected) {
  std::istringstream a(stored), b(expected);
  std::string la, lb;
  while (true) {
    const bool ga = static_cast<bool>(std::getline(a, la));
    const bool gb = static_cast<bool>(std::getline(b, lb));
    if (!ga && !gb) break;
    if (!ga) la = "(nothing)";
    if (!gb) lb = "(nothing)";
    if (la != lb || !ga || !gb) break;
  }
  return "'" + la + "', this run has '" + lb + "'";
}

}  // namespace generic::detail

}  // namespace ift

template class ift::generic::BilevelLoop<ift::BilevelProblem<float>>;
template class ift::generic::BilevelLoop<ift::BilevelProblem<double>>;
