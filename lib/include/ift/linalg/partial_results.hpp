// Partial results of an iterative inverse approximation: one run of k = K steps that also hands
// out the result of every shorter run k < K, so a sweep over k costs one series instead of K.
//
// The contract (neumann and conjugate_gradient): for every k in `at`, `report(k, r)` receives
// the SolveResult that the same solver, called with the same arguments but with its step budget
// (NeumannParams::steps, CgParams::max_iterations) set to k, would return: the same x to the
// bit, status, iterations, hvps (the cost of reaching k on its own: power iterations and the
// optional residual HVP included), relative residual, α, message and history. It is the same
// arithmetic, not a re-derivation: the reported x_k is formed from the run's state after step k
// exactly as the shorter run forms its final x.
//
// Every requested k must lie in [0, budget]. Reports arrive in ascending k, once per distinct
// k. An empty PartialResults (no callback) costs nothing and leaves the solver's arithmetic
// unchanged.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ift/core.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

template <class V>
struct PartialResults {
  /// Step counts k at which to report (any order, duplicates allowed), each in [0, budget].
  std::vector<Index> at;
  /// Called once per distinct k of `at`, in ascending k, with the k-step solver's result.
  std::function<void(Index k, SolveResult<V>&& result)> report;

  bool active() const { return static_cast<bool>(report); }
};

namespace detail {

/// The solvers' side of PartialResults: which k is due next and how to hand results out.
template <class V>
class PartialReporter {
 public:
  PartialReporter(const PartialResults<V>& partial, Index budget, const char* who)
      : partial_(partial) {
    if (!partial_.active()) return;
    ks_ = partial_.at;
    std::sort(ks_.begin(), ks_.end());
    ks_.erase(std::unique(ks_.begin(), ks_.end()), ks_.end());
    for (Index k : ks_)
      require(k >= 0 && k <= budget, [&] {
        return std::string(who) + ": partial result requested at k = " + std::to_string(k) +
               ", outside [0, " + std::to_string(budget) + "] (the step budget)";
      });
  }

  /// True when k is the next step count to report.
  bool wants(Index k) const {
    return partial_.active() && next_ < ks_.size() && ks_[next_] == k;
  }

  /// Hands r out as the result for k (which wants(k) must have accepted).
  void report(Index k, SolveResult<V>&& r) {
    ++next_;
    partial_.report(k, std::move(r));
  }

  /// Hands a deep copy of `final` out for every k not reported yet: the solver stopped (or used
  /// its whole budget) before reaching them, so a run asked for any of them returns `final`.
  void finish(const SolveResult<V>& final) {
    if (!partial_.active()) return;
    while (next_ < ks_.size()) report(ks_[next_], copy(final));
  }

  /// A deep copy through the seam (a torch::Tensor copy would share storage).
  static SolveResult<V> copy(const SolveResult<V>& r) {
    using VS = VectorSpace<V>;
    SolveResult<V> c;
    c.x = VS::zeros_like(r.x);
    VS::assign(c.x, r.x);
    c.status = r.status;
    c.iterations = r.iterations;
    c.hvps = r.hvps;
    c.relative_residual = r.relative_residual;
    c.residual_history = r.residual_history;
    c.alpha = r.alpha;
    c.suggested_alpha = r.suggested_alpha;
    c.message = r.message;
    return c;
  }

 private:
  const PartialResults<V>& partial_;
  std::vector<Index> ks_;
  std::size_t next_ = 0;
};

}  // namespace detail
}  // namespace ift
