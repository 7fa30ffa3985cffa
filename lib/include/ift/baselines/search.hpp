// Random search and Bayesian optimisation over a low-dimensional box of hyperparameters (issue
// 13), each trial computing w*(λ) with the bilevel loop's own inner phase (BilevelLoop with no
// hyper-step and a final evaluation: the same optimiser steps or inner solver, Newton / Newton-CG
// / L-BFGS, as Algorithm 2) and scoring L_V there.
//
// A trial starts either from the initial weights (re-initialised, what BO and random search
// usually do) or from the weights of the best (or the last) trial so far (warm-started). Both
// reach the same w*(λ) on a strictly convex L_T when the inner solver converges
// (tests/test_baselines.cpp); the warm start only changes what it costs.
//
// Random search draws λ uniformly in the box. Bayesian optimisation: `initial_trials` uniform
// draws, then each λ maximises expected improvement under a Matérn 5/2 GP (gp.hpp) fitted to
// the trials so far (inputs scaled to [0, 1]^d, L_V standardised).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "ift/baselines/gp.hpp"
#include "ift/bilevel_params.hpp"
#include "ift/core.hpp"
#include "ift/problem.hpp"

namespace ift::baselines {

/// Random search and BO refuse boxes of more dimensions than this (per-weight decay is for the
/// gradient-based methods: a GP over 7,850 inputs from a few dozen trials is meaningless, and
/// the GP's fits cost O(n³ + n² d) per trial).
inline constexpr Index kMaxSearchDimension = 32;

enum class SearchKind { Random, BayesOpt };
enum class TrialStart { Reinitialize, WarmBest, WarmLast };
const char* to_string(SearchKind k);   ///< "random-search", "bayes-opt"
const char* to_string(TrialStart s);   ///< "reinit", "warm-best", "warm-last"

struct SearchParams {
  SearchKind kind = SearchKind::Random;
  TrialStart start = TrialStart::Reinitialize;
  Vector<double> lower, upper;  ///< the box of λ (log weight decays), lower < upper
  Index initial_trials = 3;     ///< BO: uniform trials before the GP proposes (≥ 1)
  bool ard = true;              ///< BO: one GP length scale per hyperparameter
  GpFitParams gp_fit;
  EiMaxParams ei;
  std::uint64_t seed = 0;
  /// The inner phase of every trial: inner_solver, inner_steps, inner_tolerance, inner
  /// (optimiser), batch_size, seed. Its other fields are ignored.
  BilevelParams inner;
  /// Throws std::invalid_argument naming the field (dimension above kMaxSearchDimension too).
  void check() const;
};

struct Trial {
  Index index = 0;  ///< 1-based
  Vector<double> lambda;
  Metrics metrics;  ///< at (λ, w) after the inner phase (val_loss is the objective)
  Index inner_iterations = 0;
  std::string inner_status;  ///< "converged", "not-converged" (solvers); "" (optimiser steps)
  double inner_gradient_norm = 0;
  double gp_jitter = 0;       ///< BO: the jitter the GP's Cholesky needed (0: none)
  double expected_improvement = 0;  ///< BO: EI at the proposal (standardised units; 0 otherwise)
  bool proposed_by_gp = false;
};

/// One search run. next() proposes λ, runs the trial on `problem` and returns it; best() is the
/// trial with the lowest L_V so far. The problem may be a CountingProblem, so the caller can
/// charge each trial's work.
class Search {
 public:
  Search(BilevelProblem<double>& problem, SearchParams params, Vector<double> w_init);
  ~Search();

  Trial next();
  const Trial& best() const;
  const Vector<double>& best_w() const { return best_w_; }
  Index trials() const { return static_cast<Index>(trials_.size()); }

  /// Runs the trial's inner phase at λ from w (updated in place to the end point): the loop's
  /// inner phase, shared with Algorithm 2. Public for tests.
  Trial run_trial(const Vector<double>& lambda, Vector<double>& w);

 private:
  Vector<double> propose(Trial& info);

  BilevelProblem<double>& problem_;
  SearchParams params_;
  Vector<double> w_init_, best_w_, last_w_;
  std::vector<Trial> trials_;
  std::mt19937_64 rng_;
  std::unique_ptr<GaussianProcess> gp_;
  Index best_ = -1;
};

}  // namespace ift::baselines
