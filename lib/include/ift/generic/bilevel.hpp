// The bilevel loop (DESIGN.md §1, Algorithm 2 of Lorraine et al. 2020), written once for every
// problem and backend:
//   repeat { inner phase on w (warm-started, never re-initialised): N optimiser steps, or an
//              inner solver (Newton, Newton-CG, L-BFGS) towards w*(λ);
//            one hypergradient at the current w with any MethodSpec, handed the solver state of
//              the previous hyper-step (solver_state.hpp);
//            one outer optimiser step on λ }.
// It runs on any problem satisfying LoopProblem: ift::BilevelProblem<S> on Eigen vectors
// (instantiated in lib/src/bilevel.cpp, aliased as ift::BilevelLoop<S>) and
// ift::deep::TorchProblem on LibTorch tensors, CPU or CUDA. The loop prints nothing: observers
// receive one HyperStepRecord per hyper-step, a stop callback is polled between hyper-steps,
// and checkpoints (w, λ, both optimisers, the minibatch RNG, the solver state, the records)
// make runs resumable to bitwise the same result.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ift/bilevel_params.hpp"
#include "ift/checkpoint.hpp"
#include "ift/core.hpp"
#include "ift/generic/backend.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/generic/sampling.hpp"
#include "ift/generic/solver_state.hpp"
#include "ift/inner.hpp"
#include "ift/optimizers.hpp"
#include "ift/problem.hpp"

namespace ift::generic {

/// What the loop needs beyond a hypergradient: the number of hyperparameters, L_T at the
/// current point (inner solvers' line searches) and metrics for the records.
template <class P>
concept LoopProblem = HypergradientProblem<P> && HasVectorBackend<ProblemVector<P>> &&
                      requires(P& p) {
                        { p.num_hyper() } -> std::convertible_to<Index>;
                        { p.train_loss() } -> std::convertible_to<double>;
                        { p.metrics() } -> std::same_as<Metrics>;
                      };

/// Minibatch inner gradients: ∇_w L_T at (λ, w) on the listed training rows (drawn from
/// [0, num_train_examples()); 0 rows means full batches only).
template <class P>
concept HasMinibatch = requires(P& p, const ProblemVector<P>& cv, ProblemVector<P>& v,
                                const std::vector<Index>& rows) {
  { p.num_train_examples() } -> std::convertible_to<Index>;
  p.batch_train_gradient(cv, cv, rows, v);
};

/// Problems whose L_T draws noise (a learned augmentation): each minibatch gradient takes a
/// seed, and resample_noise(seed) redraws the fixed noise of the full training set once per
/// hyper-step. The seeds come from the loop's RNG, so checkpoints reproduce them.
template <class P>
concept HasNoise = requires(P& p, const ProblemVector<P>& cv, ProblemVector<P>& v,
                            const std::vector<Index>& rows, std::uint64_t seed) {
  p.batch_train_gradient(cv, cv, rows, v, seed);
  p.resample_noise(seed);
};

/// Problems deriving from ift::BilevelProblem<S> (dense Hessians: the Newton inner solver).
template <class P>
concept IsEigenProblem = requires { typename P::Scalar; } &&
                         std::derived_from<P, BilevelProblem<typename P::Scalar>>;

template <class V>
struct BilevelResult {
  V w, lambda;
  Index steps = 0;  ///< hyper-steps completed (the final evaluation not counted)
  StopReason reason = StopReason::Completed;
  std::string message;
  std::vector<HyperStepRecord> records;  ///< every hyper-step, restored ones included
  bool checkpoint_written = false;       ///< a final checkpoint was written on the way out
};

using HyperStepObserver = std::function<void(const HyperStepRecord&)>;

namespace detail {

inline bool failed(SolverStatus s) {
  return s != SolverStatus::Converged && s != SolverStatus::MaxIterations;
}

/// The first line in which two fingerprints differ, as "'a', this run has 'b'".
std::string first_difference(const std::string& stored, const std::string& expected);

/// Moves to (λ, w) where ∇_w L_T is wanted next: the problem's set_point_with_gradient where it
/// has one (BilevelProblem: one pass over the data for both), else set_point (TorchProblem forms
/// the gradient with the loss already).
template <class P, class V>
void set_point_with_gradient(P& problem, const V& lambda, const V& w) {
  if constexpr (requires { problem.set_point_with_gradient(lambda, w); })
    problem.set_point_with_gradient(lambda, w);
  else
    problem.set_point(lambda, w);
}

}  // namespace detail

template <LoopProblem P>
class BilevelLoop {
 public:
  using V = ProblemVector<P>;
  using HostScalar = typename VectorBackend<V>::HostScalar;
  using Scalar = typename VectorSpace<V>::Scalar;

  explicit BilevelLoop(BilevelParams params) : params_(std::move(params)) { params_.check(); }
  // Holds the exact method's factorisation between hyper-steps.
  BilevelLoop(const BilevelLoop&) = delete;
  BilevelLoop& operator=(const BilevelLoop&) = delete;

  const BilevelParams& params() const { return params_; }

  /// Called after every hyper-step, in order of registration. On resume the restored records
  /// are replayed first (with record.restored = true), so an observer writing a CSV rebuilds it.
  void add_observer(HyperStepObserver observer) { observers_.push_back(std::move(observer)); }
  /// Polled between hyper-steps; when it returns true the loop writes a checkpoint (if a path
  /// is set) and returns with StopReason::StopRequested. Safe to back with a signal flag.
  void set_stop_request(std::function<bool()> stop) { stop_ = std::move(stop); }

  /// A fresh run from (w0, λ0).
  BilevelResult<V> run(P& problem, const V& w0, const V& lambda0) {
    check_sizes(problem, w0, lambda0, "BilevelLoop::run");
    check_capabilities(problem);
    State st{clone(w0), clone(lambda0), Optimizer<V>(params_.inner, w0),
             Optimizer<V>(params_.outer, lambda0), std::mt19937_64(params_.seed)};
    return loop(problem, st);
  }

  /// Continues a checkpointed run. `w_like` and `lambda_like` give the vectors' shape (and a
  /// tensor's dtype and device); their values are not used. Throws std::invalid_argument when
  /// the checkpoint was written under another configuration (the message names the first
  /// differing setting), for another problem size, or holds more hyper-steps than asked for.
  BilevelResult<V> resume(P& problem, const Checkpoint<HostScalar>& c, const V& w_like,
                          const V& lambda_like) {
    const std::string expected = params_.fingerprint();
    if (c.fingerprint != expected)
      throw std::invalid_argument(
          "the checkpoint was written by a run with another configuration: it has " +
          detail::first_difference(c.fingerprint, expected) +
          "; start afresh (without --resume) or use the same options");
    require(c.w.size() == problem.num_params() && c.lambda.size() == problem.num_hyper(),
            "the checkpoint's w/λ sizes (" + std::to_string(c.w.size()) + "/" +
                std::to_string(c.lambda.size()) + ") do not match the problem (" +
                std::to_string(problem.num_params()) + "/" +
                std::to_string(problem.num_hyper()) + ")");
    require(c.step <= params_.hyper_steps,
            "the checkpoint already holds " + std::to_string(c.step) +
                " hyper-steps, more than the " + std::to_string(params_.hyper_steps) +
                " asked for");
    require(static_cast<Index>(c.records.size()) == c.step,
            "the checkpoint is inconsistent: " + std::to_string(c.records.size()) +
                " records for " + std::to_string(c.step) + " hyper-steps");
    check_capabilities(problem);
    using B = VectorBackend<V>;
    State st{B::from_host(c.w, w_like), B::from_host(c.lambda, lambda_like),
             Optimizer<V>(params_.inner, w_like), Optimizer<V>(params_.outer, lambda_like),
             std::mt19937_64()};
    st.step = c.step;
    st.records = c.records;
    st.elapsed_before = c.records.empty() ? 0.0 : c.records.back().elapsed_seconds;
    st.inner.set_state(c.inner);
    st.outer.set_state(c.outer);
    std::istringstream rng(c.rng_state);
    rng >> st.engine;
    require(!rng.fail(), "the checkpoint's RNG state is unreadable");
    if (c.solver_v.size() > 0) {
      require(c.solver_v.size() == problem.num_params(),
              "the checkpoint's solver state does not match the problem's size");
      st.solver.v = B::from_host(c.solver_v, w_like);
      st.solver.has_v = true;
    }
    st.solver.alpha = c.solver_alpha;
    if (c.solver_lambda_max != 0) st.solver.lambda_max = c.solver_lambda_max;
    st.solver.uses = c.solver_uses;
    require(c.solver_lbfgs_s.size() == c.solver_lbfgs_y.size() &&
                (c.solver_lbfgs_s.empty() || c.solver_lbfgs_point.size() == problem.num_params()),
            "the checkpoint's L-BFGS pairs are inconsistent");
    for (std::size_t i = 0; i < c.solver_lbfgs_s.size(); ++i) {
      require(c.solver_lbfgs_s[i].size() == problem.num_params() &&
                  c.solver_lbfgs_y[i].size() == problem.num_params(),
              "the checkpoint's L-BFGS pairs do not match the problem's size");
      st.solver.lbfgs.s.push_back(B::from_host(c.solver_lbfgs_s[i], w_like));
      st.solver.lbfgs.y.push_back(B::from_host(c.solver_lbfgs_y[i], w_like));
    }
    if (!c.solver_lbfgs_s.empty())
      st.solver.lbfgs.point = B::from_host(c.solver_lbfgs_point, w_like);
    st.solver.lbfgs.memory = static_cast<Index>(c.solver_lbfgs_memory);
    require(c.solver_ritz_vectors.size() == c.solver_ritz_values.size(),
            "the checkpoint's Ritz pairs are inconsistent");
    for (const auto& u : c.solver_ritz_vectors) {
      require(u.size() == problem.num_params(),
              "the checkpoint's Ritz vectors do not match the problem's size");
      st.solver.ritz_vectors.push_back(B::from_host(u, w_like));
    }
    st.solver.ritz_values = c.solver_ritz_values;
    st.solver.ritz_scale = c.solver_ritz_scale;
    for (HyperStepRecord r : st.records) {
      r.restored = true;
      for (const auto& observer : observers_) observer(r);
    }
    if (c.finished) {
      // The run ended on its own terms (target or failure): nothing left to do.
      BilevelResult<V> result;
      result.w = std::move(st.w);
      result.lambda = std::move(st.lambda);
      result.steps = c.step;
      result.reason = c.finish_message.rfind("target", 0) == 0 ? StopReason::TargetReached
                                                               : StopReason::Failure;
      result.message = c.finish_message;
      result.records = c.records;
      return result;
    }
    return loop(problem, st);
  }

  /// Eigen problems: the shapes follow from the checkpoint.
  BilevelResult<V> resume(P& problem, const Checkpoint<HostScalar>& c)
    requires std::same_as<V, Vector<HostScalar>>
  {
    return resume(problem, c, Vector<HostScalar>::Zero(problem.num_params()),
                  Vector<HostScalar>::Zero(problem.num_hyper()));
  }

 private:
  struct State {
    V w, lambda;
    Optimizer<V> inner, outer;
    std::mt19937_64 engine;
    Index step = 0;
    std::vector<HyperStepRecord> records{};
    double elapsed_before = 0;  // wall time of the run's earlier sessions
    SolverState<V> solver{};
  };

  /// The inner phase's outcome, for the record.
  struct InnerPhase {
    Index iterations = 0;
    double gradient_norm = std::numeric_limits<double>::quiet_NaN();
    std::string status;
  };

  static V clone(const V& x) { return ::ift::generic::detail::clone(x); }

  void check_sizes(P& problem, const V& w0, const V& lambda0, const char* who) const {
    require(VectorSpace<V>::size(w0) == problem.num_params(),
            std::string(who) + ": w0 has " + std::to_string(VectorSpace<V>::size(w0)) +
                " entries, the problem " + std::to_string(problem.num_params()));
    require(VectorSpace<V>::size(lambda0) == problem.num_hyper(),
            std::string(who) + ": λ0 has " + std::to_string(VectorSpace<V>::size(lambda0)) +
                " entries, the problem " + std::to_string(problem.num_hyper()));
  }

  /// Everything the parameters ask of the problem, checked before any work is done.
  void check_capabilities(P& problem) const {
    if (params_.batch_size > 0) {
      if constexpr (HasMinibatch<P>) {
        const Index n_train = problem.num_train_examples();
        require(n_train > 0, "BilevelParams::batch_size: this problem supports full batches only");
        require(params_.batch_size <= n_train,
                "BilevelParams::batch_size (" + std::to_string(params_.batch_size) +
                    ") exceeds the training set (" + std::to_string(n_train) + " rows)");
      } else {
        throw std::invalid_argument(
            "BilevelParams::batch_size: this problem supports full batches only");
      }
    }
    if (params_.inner_solver == InnerSolver::Newton || params_.inner_solver == InnerSolver::Lbfgs) {
      if constexpr (!IsEigenProblem<P>)
        throw std::invalid_argument(std::string("inner solver ") +
                                    to_string(params_.inner_solver) +
                                    " needs an Eigen problem (use newton-cg or an optimiser)");
    }
  }

  /// One inner optimiser step (full batch or minibatch).
  void optimizer_step(P& problem, State& st, V& gradient) {
    if (params_.batch_size > 0) {
      if constexpr (HasMinibatch<P>) {
        const auto rows =
            detail::sample_rows(st.engine, problem.num_train_examples(), params_.batch_size);
        if constexpr (HasNoise<P>)
          problem.batch_train_gradient(st.lambda, st.w, rows, gradient, st.engine());
        else
          problem.batch_train_gradient(st.lambda, st.w, rows, gradient);
        st.inner.step(st.w, gradient);
        return;
      }
    }
    detail::set_point_with_gradient(problem, st.lambda, st.w);
    st.inner.step(st.w, problem.train_gradient());
  }

  /// The hypergradient's point (λ, w), where the next inner step starts: its gradient formed in
  /// the same pass (needed there anyway), and when the warm start's first product H v_prev is
  /// known in advance (generic::detail::warm_product_known_in_advance) that product too, into
  /// st.solver.product: for logistic regression one pass over the training rows for all three.
  void set_hypergradient_point(P& problem, State& st) {
    st.solver.has_product = false;
    if constexpr (requires {
                    problem.set_point_with_gradient_and_hvp(st.lambda, st.w, st.solver.v,
                                                            st.solver.product);
                  }) {
      if (generic::detail::warm_product_known_in_advance(params_.method, st.solver,
                                                 VectorSpace<V>::size(st.w))) {
        problem.set_point_with_gradient_and_hvp(st.lambda, st.w, st.solver.v, st.solver.product);
        st.solver.has_product = true;
        return;
      }
    }
    detail::set_point_with_gradient(problem, st.lambda, st.w);
  }

  /// The inner phase of hyper-step st.step + 1; `tolerance` is its inner solvers' tolerance.
  InnerPhase inner_phase(P& problem, State& st, V& gradient, double tolerance) {
    InnerPhase phase;
    st.solver.lbfgs.clear();  // the pairs describe this inner phase's L_T(λ) only (shine)
    const auto solved = [&phase](const InnerResult& r) {
      phase.iterations = r.iterations;
      phase.gradient_norm = r.gradient_norm;
      phase.status = r.converged ? "converged" : "not-converged";
    };
    switch (params_.inner_solver) {
      case InnerSolver::Optimizer:
        for (Index i = 0; i < params_.inner_steps; ++i) optimizer_step(problem, st, gradient);
        phase.iterations = params_.inner_steps;
        set_hypergradient_point(problem, st);
        if (params_.record_inner_gradient_norm)
          phase.gradient_norm = static_cast<double>(VectorSpace<V>::norm(problem.train_gradient()));
        return phase;
      case InnerSolver::Newton:
        if constexpr (IsEigenProblem<P>) {
          NewtonParams p;
          p.gradient_tolerance = tolerance;
          p.max_iterations = params_.inner_steps;
          solved(newton_solve<typename P::Scalar>(problem, st.lambda, st.w, p));
        }
        return phase;
      case InnerSolver::NewtonCg: {
        NewtonCgParams p;
        p.gradient_tolerance = tolerance;
        p.max_iterations = params_.inner_steps;
        solved(newton_cg_solve(problem, st.lambda, st.w, p));
        return phase;
      }
      case InnerSolver::Lbfgs:
        if constexpr (IsEigenProblem<P>) {
          LbfgsParams p;
          p.gradient_tolerance = tolerance;
          p.max_iterations = params_.inner_steps;
          solved(lbfgs_solve<typename P::Scalar>(problem, st.lambda, st.w, p, {},
                                                 &st.solver.lbfgs));
        }
        return phase;
    }
    return phase;
  }

  BilevelResult<V> loop(P& problem, State& st) {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const auto elapsed = [&] {
      return st.elapsed_before + std::chrono::duration<double>(Clock::now() - t0).count();
    };
    V gradient = VectorSpace<V>::zeros_like(st.w);

    BilevelResult<V> result;
    bool finished = false;
    std::string finish_message;

    const auto save = [&] {
      if (params_.checkpoint_path.empty()) return false;
      using B = VectorBackend<V>;
      Checkpoint<HostScalar> c;
      c.fingerprint = params_.fingerprint();
      c.step = st.step;
      c.finished = finished;
      c.finish_message = finish_message;
      c.w = B::to_host(st.w);
      c.lambda = B::to_host(st.lambda);
      c.inner = st.inner.state();
      c.outer = st.outer.state();
      std::ostringstream rng;
      rng << st.engine;
      c.rng_state = rng.str();
      c.records = st.records;
      if (st.solver.has_v) c.solver_v = B::to_host(st.solver.v);
      c.solver_alpha = st.solver.alpha;
      c.solver_lambda_max = st.solver.lambda_max.value_or(0.0);
      c.solver_uses = st.solver.uses;
      for (std::size_t i = 0; i < st.solver.lbfgs.s.size(); ++i) {
        c.solver_lbfgs_s.push_back(B::to_host(st.solver.lbfgs.s[i]));
        c.solver_lbfgs_y.push_back(B::to_host(st.solver.lbfgs.y[i]));
      }
      if (!st.solver.lbfgs.empty()) c.solver_lbfgs_point = B::to_host(st.solver.lbfgs.point);
      c.solver_lbfgs_memory = st.solver.lbfgs.memory;
      for (const V& u : st.solver.ritz_vectors) c.solver_ritz_vectors.push_back(B::to_host(u));
      c.solver_ritz_values = st.solver.ritz_values;
      c.solver_ritz_scale = st.solver.ritz_scale;
      save_checkpoint(params_.checkpoint_path, c);
      return true;
    };

    // Inner phase + hypergradient at (λ, w): one record (the outer step is the caller's).
    // HOAG's schedule (BilevelParams::tolerance_at) sets both tolerances of hyper-step t.
    MethodSpec method = params_.method;
    const auto hyper_step = [&](Result<V>& h) {
      const std::optional<double> eps = params_.tolerance_at(st.step + 1);
      if (eps) {
        method.cg.tolerance = *eps;
        method.neumann.tolerance = *eps;
      }
      const InnerPhase phase =
          inner_phase(problem, st, gradient, eps ? *eps : params_.inner_tolerance);
      if constexpr (HasNoise<P>) {
        problem.resample_noise(st.engine());
        problem.set_point(st.lambda, st.w);
        st.solver.has_product = false;  // formed on the old noise
      }
      h = generic::hypergradient(problem, method, nullptr, &dense_, &st.solver);
      st.solver.has_product = false;
      HyperStepRecord rec;
      rec.step = st.step + 1;
      if (params_.record_metrics) rec.metrics = problem.metrics();
      rec.status = to_string(h.status);
      rec.iterations = h.iterations;
      rec.hvps = h.hvps;
      rec.hypergradient_seconds = h.seconds;
      rec.message = h.message;
      rec.alpha = h.alpha;
      rec.relative_residual =
          h.relative_residual.value_or(std::numeric_limits<double>::quiet_NaN());
      rec.inner_iterations = phase.iterations;
      rec.inner_gradient_norm = phase.gradient_norm;
      rec.inner_status = phase.status;
      const bool finite = VectorSpace<V>::all_finite(h.hypergradient);
      // The norm in double: a float hypergradient's norm overflows long before its entries.
      rec.hypergradient_norm = finite ? static_cast<double>(VectorSpace<V>::norm(h.hypergradient))
                                      : std::numeric_limits<double>::quiet_NaN();
      return rec;
    };

    if (st.step == 0)
      for (Index i = 0; i < params_.warmup_steps; ++i) optimizer_step(problem, st, gradient);

    result.reason = StopReason::Completed;
    Result<V> h;
    while (st.step < params_.hyper_steps) {
      if (stop_ && stop_()) {
        result.reason = StopReason::StopRequested;
        break;
      }
      HyperStepRecord rec = hyper_step(h);
      const bool finite = std::isfinite(rec.hypergradient_norm);
      const Metrics& m = rec.metrics;
      const bool metrics_finite = std::isfinite(m.train_loss) && std::isfinite(m.val_loss) &&
                                  (!m.has_test || std::isfinite(m.test_loss));
      bool failure = detail::failed(h.status) || !finite;
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
        finish_message = "stopped at hyper-step " + std::to_string(rec.step) +
                         ": hypergradient " + rec.status +
                         (rec.message.empty() ? "" : " (" + rec.message + ")");
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
    result.steps = st.step;
    result.message = finished ? finish_message : to_string(result.reason);
    if (params_.evaluate_final && result.reason == StopReason::Completed) {
      // After the checkpoint: a resumed (or extended) run recomputes it from the saved state.
      HyperStepRecord rec = hyper_step(h);
      rec.final_evaluation = true;
      rec.elapsed_seconds = elapsed();
      for (const auto& observer : observers_) observer(rec);
      st.records.push_back(rec);
    }
    result.w = std::move(st.w);
    result.lambda = std::move(st.lambda);
    result.records = std::move(st.records);
    return result;
  }

  BilevelParams params_;
  std::vector<HyperStepObserver> observers_;
  std::function<bool()> stop_;
  DenseWorkspace<Scalar> dense_;  // the exact method's matrix and factorisation, reused
};

}  // namespace ift::generic
