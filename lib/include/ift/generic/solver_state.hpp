// Solver state that lives across hyper-steps (DESIGN.md §4: the bilevel loop "carries solver
// state from one hyper-step to the next").
//
// The seam. The bilevel loop owns one SolverState per run, hands it to every hypergradient
// (generic::hypergradient's `state` argument) and stores it in its checkpoints, so a resumed run
// continues with the state an uninterrupted one would have had. A hypergradient method
//   - reads what it chooses from the previous hyper-step (state.v as a warm start, state.alpha
//     or state.lambda_max instead of a fresh power iteration, …) and
//   - writes back what the next hyper-step may use.
// Methods that keep nothing ignore the input; every method records v and α on the way out, so
// a method added later (recycled Krylov spaces, a low-rank inverse updated across steps) finds
// the data of the step before it. What a method adds here must be vectors of the problem's
// vector type or plain numbers, so that the loop can checkpoint it for every backend.
//
// Who reads it today: MethodSpec::warm_start starts CG from the previous step's v (HOAG,
// Pedregosa 2016; exact in exact arithmetic for any start, fewer iterations near a fixed point)
// and neumann's Richardson iteration from it (SOBA at one step, reusing the previous α);
// Method::Shine applies the inverse-Hessian estimate of the inner L-BFGS's pairs (`lbfgs`);
// sampled curvature (+fresh / +fixed) seeds its row draws with (seed, uses); cg+ritz builds its
// preconditioner from the recycled Ritz pairs (`ritz_vectors`, `ritz_values`) and merges the
// pairs of its own Lanczos solve into them (linalg/ritz.hpp).
#pragma once

#include <optional>

#include <vector>

#include "ift/core.hpp"
#include "ift/linalg/lbfgs_inverse.hpp"

namespace ift::generic {

template <class V>
struct SolverState {
  /// v ≈ H⁻¹ ∂L_V/∂w from the previous hyper-step; meaningful only when has_v.
  V v{};
  bool has_v = false;
  /// Step size α of the previous neumann / unrolled solve (0: none yet).
  double alpha = 0;
  /// Largest curvature eigenvalue estimated by the previous step's power iteration, if any.
  std::optional<double> lambda_max;
  /// Hypergradients computed with this state so far.
  Index uses = 0;
  /// The (s, y) pairs of the inner L-BFGS run of the current hyper-step (at most its memory m,
  /// oldest first, ending at w): read by Method::Shine. The loop clears them at the start of
  /// every inner phase and lbfgs_solve fills them, so they never describe another λ.
  LbfgsPairs<V> lbfgs{};
  /// cg+ritz's memory: orthonormal approximate eigenvectors of the curvature from the previous
  /// hyper-steps' Lanczos solves (at most MethodSpec::ritz.memory) and their Ritz values (> 0,
  /// descending). Written by cg+ritz only; read by the next cg+ritz solve.
  std::vector<V> ritz_vectors{};
  std::vector<double> ritz_values{};
  /// cg+ritz's scale c (> 0 once a cg+ritz solve has run; 0: none).
  double ritz_scale = 0;
  /// H v (the problem's exact Hessian-vector product of v, undamped) formed by the loop in the
  /// pass that set this hyper-step's point (BilevelProblem::set_point_with_gradient_and_hvp),
  /// where the warm start's first product is known in advance (generic::detail::warm_product_known_in_advance);
  /// meaningful only when has_product, read by that hyper-step's neumann solve, cleared by the
  /// loop after it. Not checkpointed (it never outlives a hyper-step).
  V product{};
  bool has_product = false;

  void reset() { *this = SolverState{}; }
};

}  // namespace ift::generic
