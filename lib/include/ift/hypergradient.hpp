// The hypergradient (DESIGN.md §1):
//   dL_V*/dλ = ∂L_V/∂λ − vᵀ ∂²L_T/∂w∂λᵀ,   v ≈ H⁻¹ ∂L_V/∂w,
// with v from any inverse approximation over any curvature, or — for `unrolled` — by reverse-mode
// differentiation of L_V(w_i(λ)) through i gradient steps on L_T. The arithmetic lives once, in
// generic/hypergradient.hpp, for Eigen vectors and LibTorch tensors alike; this is its Eigen face.
#pragma once

#include <vector>

#include "ift/core.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/method.hpp"
#include "ift/problem.hpp"

namespace ift {

/// The hypergradient and the solver's diagnostics (fields documented in generic::Result).
template <class S>
using HypergradientResult = generic::Result<Vector<S>>;

/// Computes the hypergradient at the problem's current point (set_point). Holds the dense
/// Hessian buffer between calls so repeated exact hypergradients do not reallocate D² entries.
template <class S>
class HypergradientEngine {
 public:
  explicit HypergradientEngine(MethodSpec spec);
  /// Not copyable: a copy would duplicate the D² curvature and its factor (about 1 GB at
  /// D = 7850). Movable: the moved engine's dense_solver() reads its own dense_curvature()
  /// (DenseWorkspace rebinds); the moved-from engine keeps its spec and has no factorisation.
  HypergradientEngine(const HypergradientEngine&) = delete;
  HypergradientEngine& operator=(const HypergradientEngine&) = delete;
  HypergradientEngine(HypergradientEngine&&) = default;
  HypergradientEngine& operator=(HypergradientEngine&&) = default;
  ~HypergradientEngine() = default;

  const MethodSpec& spec() const { return spec_; }

  /// For `unrolled`, `start` is w_0 of the unrolled trajectory (default: the current w); the
  /// problem is returned to its original point afterwards. `state`: the solver state carried
  /// across hyper-steps (generic/solver_state.hpp), read and updated; null: none.
  HypergradientResult<S> compute(BilevelProblem<S>& problem, const Vector<S>* start = nullptr,
                                 generic::SolverState<Vector<S>>* state = nullptr);

  /// compute() with spec().steps = k for every k in ks, from one run
  /// (generic::hypergradient_sweep: one series for neumann and cg, one trajectory for unrolled);
  /// result j is the one for ks[j], with its own status, iterations and hvps. `state` is read
  /// only by shine (its L-BFGS pairs) and never written.
  std::vector<HypergradientResult<S>> sweep(BilevelProblem<S>& problem,
                                            const std::vector<Index>& ks,
                                            const Vector<S>* start = nullptr,
                                            const generic::SolverState<Vector<S>>* state = nullptr);

  /// The exact method's factorised curvature from the last compute() (for reuse, e.g. solves
  /// with other right-hand sides or inverse iteration); empty before an exact compute().
  const DenseSolver<S>& dense_solver() const { return dense_.solver; }
  const Matrix<S>& dense_curvature() const { return dense_.matrix; }

 private:
  MethodSpec spec_;
  generic::DenseWorkspace<S> dense_;
};

/// Convenience: one hypergradient with a fresh engine.
template <class S>
HypergradientResult<S> hypergradient(BilevelProblem<S>& problem, const MethodSpec& spec) {
  return HypergradientEngine<S>(spec).compute(problem);
}

}  // namespace ift
