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

void BilevelParams::check() const {
  require(hyper_steps >= 0, "BilevelParams::hyper_steps must be >= 0 (got " +
                                std::to_string(hyper_steps) + ")");
  require(inner_steps >= 0, "BilevelParams::inner_steps must be >= 0 (got " +
                                std::to_string(inner_steps) + ")");
  require(warmup_steps >= 0, "BilevelParams::warmup_steps must be >= 0 (got " +
                                 std::to_string(warmup_steps) + ")");
  require(batch_size >= 0, "BilevelParams::batch_size must be >= 0 (0 = full batch)");
  require(checkpoint_every >= 0, "BilevelParams::checkpoint_every must be >= 0");
  require(!target_accuracy || (*target_accuracy >= 0 && *target_accuracy <= 1),
          "BilevelParams::target_accuracy must lie in [0, 1]");
  inner.check("BilevelParams::inner");
  outer.check("BilevelParams::outer");
  method.check();
}

namespace {

std::string exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

bool failed(SolverStatus s) {
  return s != SolverStatus::Converged && s != SolverStatus::MaxIterations;
}

/// k distinct rows of [0, n) by Floyd's algorithm, sorted. Draws only from the engine, so its
/// state is the whole RNG state a checkpoint needs (std::uniform_int_distribution may buffer);
/// the modulo bias of a 64-bit draw is below n / 2⁶⁴, negligible.
std::vector<Index> sample_rows(std::mt19937_64& engine, Index n, Index k) {
  std::vector<Index> rows;
  rows.reserve(static_cast<std::size_t>(k));
  for (Index j = n - k; j < n; ++j) {
    const Index t = static_cast<Index>(engine() % static_cast<std::uint64_t>(j + 1));
    if (std::find(rows.begin(), rows.end(), t) == rows.end())
      rows.push_back(t);
    else
      rows.push_back(j);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
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
    << "method.compute_residual=" << method.compute_residual << "\n"
    << "method.warm_start=" << method.warm_start << "\n"
    << "inner_steps=" << inner_steps << "\n"
    << "warmup_steps=" << warmup_steps << "\n"
    << "batch_size=" << batch_size << "\n"
    << "inner=" << inner.describe() << "\n"
    << "outer=" << outer.describe() << "\n"
    << "seed=" << seed << "\n"
    << "on_failure=" << to_string(on_failure) << "\n"
    << "target_accuracy=" << (target_accuracy ? exact(*target_accuracy) : "none") << "\n"
    << configuration;
  return s.str();
}

template <class S>
struct BilevelLoop<S>::State {
  Vector<S> w, lambda;
  Optimizer<S> inner, outer;
  std::mt19937_64 engine;
  Index step = 0;
  std::vector<HyperStepRecord> records;
  double elapsed_before = 0;  // wall time of the run's earlier sessions
};

template <class S>
BilevelLoop<S>::BilevelLoop(BilevelParams params) : params_(std::move(params)) {
  params_.check();
}

template <class S>
BilevelResult<S> BilevelLoop<S>::run(BilevelProblem<S>& problem, const Vector<S>& w0,
                                     const Vector<S>& lambda0) {
  require(w0.size() == problem.num_params(),
          "BilevelLoop::run: w0 has " + std::to_string(w0.size()) + " entries, the problem " +
              std::to_string(problem.num_params()));
  require(lambda0.size() == problem.num_hyper(),
          "BilevelLoop::run: λ0 has " + std::to_string(lambda0.size()) + " entries, the problem " +
              std::to_string(problem.num_hyper()));
  State state{w0,
              lambda0,
              Optimizer<S>(params_.inner, problem.num_params()),
              Optimizer<S>(params_.outer, problem.num_hyper()),
              std::mt19937_64(params_.seed),
              0,
              {},
              0};
  return loop(problem, state);
}

template <class S>
BilevelResult<S> BilevelLoop<S>::resume(BilevelProblem<S>& problem, const Checkpoint<S>& c) {
  const std::string expected = params_.fingerprint();
  if (c.fingerprint != expected) {
    // Name the first setting that differs: that is what the user has to fix.
    std::istringstream a(c.fingerprint), b(expected);
    std::string la, lb;
    while (true) {
      const bool ga = static_cast<bool>(std::getline(a, la));
      const bool gb = static_cast<bool>(std::getline(b, lb));
      if (!ga && !gb) break;
      if (!ga) la = "(nothing)";
      if (!gb) lb = "(nothing)";
      if (la != lb || !ga || !gb) break;
    }
    throw std::invalid_argument(
        "the checkpoint was written by a run with another configuration: it has '" + la +
        "', this run has '" + lb + "'; start afresh (without --resume) or use the same options");
  }
  require(c.w.size() == problem.num_params() && c.lambda.size() == problem.num_hyper(),
          "the checkpoint's w/λ sizes (" + std::to_string(c.w.size()) + "/" +
              std::to_string(c.lambda.size()) + ") do not match the problem (" +
              std::to_string(problem.num_params()) + "/" + std::to_string(problem.num_hyper()) +
              ")");
  require(c.step <= params_.hyper_steps,
          "the checkpoint already holds " + std::to_string(c.step) +
              " hyper-steps, more than the " + std::to_string(params_.hyper_steps) + " asked for");
  require(static_cast<Index>(c.records.size()) == c.step,
          "the checkpoint is inconsistent: " + std::to_string(c.records.size()) +
              " records for " + std::to_string(c.step) + " hyper-steps");
  State state{c.w,
              c.lambda,
              Optimizer<S>(params_.inner, problem.num_params()),
              Optimizer<S>(params_.outer, problem.num_hyper()),
              std::mt19937_64(),
              c.step,
              c.records,
              c.records.empty() ? 0.0 : c.records.back().elapsed_seconds};
  state.inner.set_state(c.inner);
  state.outer.set_state(c.outer);
  std::istringstream rng(c.rng_state);
  rng >> state.engine;
  require(!rng.fail(), "the checkpoint's RNG state is unreadable");
  for (HyperStepRecord r : state.records) {
    r.restored = true;
    for (const auto& observer : observers_) observer(r);
  }
  if (c.finished) {
    // The run ended on its own terms (target or failure): nothing left to do.
    BilevelResult<S> result;
    result.w = c.w;
    result.lambda = c.lambda;
    result.steps = c.step;
    result.reason = c.finish_message.rfind("target", 0) == 0 ? StopReason::TargetReached
                                                             : StopReason::Failure;
    result.message = c.finish_message;
    result.records = c.records;
    return result;
  }
  return loop(problem, state);
}

template <class S>
BilevelResult<S> BilevelLoop<S>::loop(BilevelProblem<S>& problem, State& st) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const auto elapsed = [&] {
    return st.elapsed_before + std::chrono::duration<double>(Clock::now() - t0).count();
  };
  const Index n_train = problem.num_train_examples();
  if (params_.batch_size > 0) {
    require(n_train > 0, "BilevelParams::batch_size: this problem supports full batches only");
    require(params_.batch_size <= n_train,
            "BilevelParams::batch_size (" + std::to_string(params_.batch_size) +
                ") exceeds the training set (" + std::to_string(n_train) + " rows)");
  }
  HypergradientEngine<S> engine(params_.method);
  Vector<S> gradient(problem.num_params());

  const auto inner_step = [&] {
    if (params_.batch_size > 0) {
      const auto rows = sample_rows(st.engine, n_train, params_.batch_size);
      problem.batch_train_gradient(st.lambda, st.w, rows, gradient);
      st.inner.step(st.w, gradient);
    } else {
      problem.set_point(st.lambda, st.w);
      st.inner.step(st.w, problem.train_gradient());
    }
  };

  BilevelResult<S> result;
  bool finished = false;
  std::string finish_message;

  const auto save = [&] {
    if (params_.checkpoint_path.empty()) return false;
    Checkpoint<S> c;
    c.fingerprint = params_.fingerprint();
    c.step = st.step;
    c.finished = finished;
    c.finish_message = finish_message;
    c.w = st.w;
    c.lambda = st.lambda;
    c.inner = st.inner.state();
    c.outer = st.outer.state();
    std::ostringstream rng;
    rng << st.engine;
    c.rng_state = rng.str();
    c.records = st.records;
    save_checkpoint(params_.checkpoint_path, c);
    return true;
  };

  if (st.step == 0)
    for (Index i = 0; i < params_.warmup_steps; ++i) inner_step();

  result.reason = StopReason::Completed;
  while (st.step < params_.hyper_steps) {
    if (stop_ && stop_()) {
      result.reason = StopReason::StopRequested;
      break;
    }
    for (Index i = 0; i < params_.inner_steps; ++i) inner_step();
    problem.set_point(st.lambda, st.w);
    HypergradientResult<S> h = engine.compute(problem);

    HyperStepRecord rec;
    rec.step = st.step + 1;
    rec.metrics = problem.metrics();
    rec.status = to_string(h.status);
    rec.iterations = h.iterations;
    rec.hvps = h.hvps;
    rec.hypergradient_seconds = h.seconds;
    rec.message = h.message;
    const bool finite = h.hypergradient.allFinite();
    rec.hypergradient_norm =
        finite ? static_cast<double>(h.hypergradient.norm()) : std::numeric_limits<double>::quiet_NaN();
    const Metrics& m = rec.metrics;
    const bool metrics_finite = std::isfinite(m.train_loss) && std::isfinite(m.val_loss) &&
                                (!m.has_test || std::isfinite(m.test_loss));
    bool failure = failed(h.status) || !finite;
    const auto note = [&rec](const std::string& text) {
      rec.message += (rec.message.empty() ? "" : "; ") + text;
    };
    if (!metrics_finite) {
      // Losses are NaN/Inf when the inner optimiser blew up: the CSV cell is empty, so the
      // status must say why.
      failure = true;
      rec.status = to_string(SolverStatus::NumericalIssue);
      note("losses not finite (the inner optimiser diverged; lower the inner learning rate)");
    }
    const bool target_reached = params_.target_accuracy && m.has_accuracy &&
                                m.train_accuracy >= *params_.target_accuracy &&
                                m.val_accuracy >= *params_.target_accuracy;
    const bool stop_on_failure = failure && params_.on_failure == OnFailure::Stop;
    if (target_reached) {
      finished = true;
      finish_message = "target accuracy reached at hyper-step " + std::to_string(rec.step);
      result.reason = StopReason::TargetReached;
    } else if (stop_on_failure) {
      finished = true;
      finish_message = "stopped at hyper-step " + std::to_string(rec.step) + ": hypergradient " +
                       rec.status + (rec.message.empty() ? "" : " (" + rec.message + ")");
      result.reason = StopReason::Failure;
      note("run stopped (--on-failure stop)");
    } else if (!finite) {
      note("outer step skipped: hypergradient not finite");
    } else {
      st.outer.step(st.lambda, h.hypergradient);
      if (failure) note("outer step applied anyway (--on-failure continue)");
    }
    ++st.step;
    rec.elapsed_seconds = elapsed();
    st.records.push_back(rec);
    for (const auto& observer : observers_) observer(rec);
    if (finished) break;
    if (params_.checkpoint_every > 0 && st.step % params_.checkpoint_every == 0 &&
        st.step < params_.hyper_steps)
      save();
  }
  result.checkpoint_written = save();
  result.w = st.w;
  result.lambda = st.lambda;
  result.steps = st.step;
  result.message = finished ? finish_message : to_string(result.reason);
  result.records = std::move(st.records);
  return result;
}

template class BilevelLoop<float>;
template class BilevelLoop<double>;

}  // namespace ift
