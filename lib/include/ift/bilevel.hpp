// The bilevel loop (DESIGN.md §1, Algorithm 2 of Lorraine et al. 2020):
//   repeat { N inner optimiser steps on w (warm-started, never re-initialised);
//            one hypergradient at the current w with any MethodSpec;
//            one outer optimiser step on λ }.
// The loop prints nothing: observers receive one HyperStepRecord per hyper-step, a stop callback
// is polled between hyper-steps, and checkpoints make runs resumable to bitwise the same result.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ift/checkpoint.hpp"
#include "ift/core.hpp"
#include "ift/hypergradient.hpp"
#include "ift/optimizers.hpp"
#include "ift/problem.hpp"

namespace ift {

/// What to do when a hypergradient fails (a status other than converged or max-iterations, or
/// non-finite values). A non-finite hypergradient is never applied to λ either way.
enum class OnFailure { Continue, Stop };
OnFailure parse_on_failure(const std::string& name);
const char* to_string(OnFailure f);

struct BilevelParams {
  Index hyper_steps = 100;   ///< outer iterations T, ≥ 0
  Index inner_steps = 10;    ///< N inner optimiser steps per hyper-step, ≥ 0
  Index warmup_steps = 0;    ///< inner steps before the first hyper-step (fresh runs only), ≥ 0
  Index batch_size = 0;      ///< 0: full-batch inner gradients; else rows per minibatch, ≥ 1
  OptimizerParams inner{OptimizerKind::Adam, 1e-2};  ///< the optimiser on w
  OptimizerParams outer{OptimizerKind::Adam, 1e-2};  ///< the optimiser on λ
  MethodSpec method;         ///< the hypergradient's inverse approximation
  std::uint64_t seed = 0;    ///< minibatch sampling (std::mt19937_64)
  OnFailure on_failure = OnFailure::Continue;
  /// Stop once train and validation accuracy both reach this (P4); unset: never.
  std::optional<double> target_accuracy;
  Index checkpoint_every = 0;   ///< write a checkpoint every K hyper-steps (0: only at the end/stop)
  std::string checkpoint_path;  ///< empty: no checkpoints at all
  /// The caller's description of everything else that determines the run (data, sizes, model,
  /// initial point, thread count): part of the fingerprint a resume must match.
  std::string configuration;

  /// Throws std::invalid_argument naming the field.
  void check() const;
  /// Every field that determines the trajectory, one "key=value" per line. hyper_steps and the
  /// checkpoint settings are left out, so a finished run can be extended by resuming it with
  /// more hyper-steps.
  std::string fingerprint() const;
};

enum class StopReason { Completed, TargetReached, Failure, StopRequested };
const char* to_string(StopReason r);

template <class S>
struct BilevelResult {
  Vector<S> w, lambda;
  Index steps = 0;  ///< hyper-steps completed
  StopReason reason = StopReason::Completed;
  std::string message;
  std::vector<HyperStepRecord> records;  ///< every hyper-step, restored ones included
  bool checkpoint_written = false;       ///< a final checkpoint was written on the way out
};

using HyperStepObserver = std::function<void(const HyperStepRecord&)>;

template <class S>
class BilevelLoop {
 public:
  explicit BilevelLoop(BilevelParams params);
  const BilevelParams& params() const { return params_; }

  /// Called after every hyper-step, in order of registration. On resume the restored records
  /// are replayed first (with record.restored = true), so an observer writing a CSV rebuilds it.
  void add_observer(HyperStepObserver observer) { observers_.push_back(std::move(observer)); }
  /// Polled between hyper-steps; when it returns true the loop writes a checkpoint (if a path
  /// is set) and returns with StopReason::StopRequested. Safe to back with a signal flag.
  void set_stop_request(std::function<bool()> stop) { stop_ = std::move(stop); }

  /// A fresh run from (w0, λ0).
  BilevelResult<S> run(BilevelProblem<S>& problem, const Vector<S>& w0, const Vector<S>& lambda0);
  /// Continues a checkpointed run. Throws std::invalid_argument when the checkpoint was written
  /// under another configuration (the message names the first differing setting), for another
  /// problem size, or holds more hyper-steps than params().hyper_steps.
  BilevelResult<S> resume(BilevelProblem<S>& problem, const Checkpoint<S>& checkpoint);

 private:
  struct State;
  BilevelResult<S> loop(BilevelProblem<S>& problem, State& state);
  BilevelParams params_;
  std::vector<HyperStepObserver> observers_;
  std::function<bool()> stop_;
};

}  // namespace ift
