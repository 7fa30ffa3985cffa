// Checkpoints of the bilevel loop (Algorithm 2): everything a resumed run needs to continue to
// bitwise the same result as an uninterrupted one — w, λ, both optimisers' states, the minibatch
// RNG, the step count, the solver state carried across hyper-steps and the per-hyper-step
// records (so an app can rebuild its CSV). Vectors are host copies in S: the LibTorch backend
// stores its tensors in double, which round-trips float and double values bit for bit.
//
// File format (binary, native byte order; version kCheckpointFormatVersion):
//   "IFTCKPT\n" | u32 version | u32 sizeof(scalar) | ift::version() | fields in the order of
//   Checkpoint below, strings and vectors length-prefixed (u64) | "END\n" | u64 FNV-1a checksum
//   of every byte before it. A file whose checksum does not match, or written by another ift
//   version, is refused on load.
// Files are written atomically (io::write_file_atomically), so a kill never leaves half of one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ift/core.hpp"
#include "ift/optimizers.hpp"
#include "ift/problem.hpp"

namespace ift {

inline constexpr std::uint32_t kCheckpointFormatVersion = 5;  // 4: + the L-BFGS pairs; 5: + cg+ritz's Ritz pairs

/// What the loop reports after each hyper-step (one CSV row in the apps).
struct HyperStepRecord {
  Index step = 0;                 ///< hyper-steps completed, 1-based
  Metrics metrics;                ///< at (λ, w) where the hypergradient was taken (before the outer step)
  double hypergradient_norm = 0;  ///< ||dL_V*/dλ||₂ (NaN when not finite; status says why)
  std::string status;             ///< SolverStatus name ("converged", "numerical-issue", …)
  Index iterations = 0;           ///< solver iterations (CG steps, Neumann terms)
  Index hvps = 0;                 ///< curvature-vector products, power iterations included
  double hypergradient_seconds = 0;  ///< time spent in the hypergradient alone
  double elapsed_seconds = 0;     ///< wall time since the run started (carried over on resume)
  std::string message;            ///< the solver's explanation, plus what the loop did about it
  double alpha = 0;               ///< step size used by neumann / unrolled (0 otherwise)
  double relative_residual = 0;   ///< ||H v − g|| / ||g|| where the solver computed it, else NaN
  Index inner_iterations = 0;     ///< inner steps or solver iterations of this hyper-step
  /// ||∇_w L_T|| at the end of the inner phase; NaN where the inner optimiser does not measure it.
  double inner_gradient_norm = 0;
  /// "" for a fixed number of optimiser steps; "converged" or "not-converged" for inner solvers.
  std::string inner_status;
  bool final_evaluation = false;  ///< the evaluation after the last outer step (no step taken)
  bool restored = false;          ///< replayed from a checkpoint on resume (not stored)
};

template <class S>
struct Checkpoint {
  std::string fingerprint;  ///< the run's configuration (BilevelParams::fingerprint())
  Index step = 0;           ///< hyper-steps completed
  bool finished = false;    ///< the run ended early (target reached or stopped by a failure)
  std::string finish_message;
  Vector<S> w, lambda;
  OptimizerState<S> inner, outer;
  std::string rng_state;  ///< std::mt19937_64's textual state
  std::vector<HyperStepRecord> records;
  /// The solver state carried across hyper-steps (generic/solver_state.hpp).
  Vector<S> solver_v;  ///< empty: none
  double solver_alpha = 0;
  double solver_lambda_max = 0;  ///< 0: none
  std::int64_t solver_uses = 0;
  /// The inner L-BFGS's pairs (SolverState::lbfgs, for shine): s and y oldest first, the point
  /// they end at (empty: none) and the memory they were kept with.
  std::vector<Vector<S>> solver_lbfgs_s, solver_lbfgs_y;
  Vector<S> solver_lbfgs_point;
  std::int64_t solver_lbfgs_memory = 0;
  /// cg+ritz's recycled Ritz pairs (SolverState::ritz_vectors / ritz_values; empty: none).
  std::vector<Vector<S>> solver_ritz_vectors;
  std::vector<double> solver_ritz_values;
  double solver_ritz_scale = 0;
};

/// The file's checksum: FNV-1a, 64 bits, over `n` bytes (one flipped bit anywhere changes it).
/// Public so tools that build checkpoints byte by byte (fuzz/fuzz_checkpoint.cpp) can seal them.
std::uint64_t checkpoint_checksum(const void* data, std::size_t n);

/// Writes atomically; throws std::runtime_error naming the path on failure.
template <class S>
void save_checkpoint(const std::string& path, const Checkpoint<S>& checkpoint);

/// Throws std::runtime_error naming the path for a missing, truncated or foreign file, another
/// format version, or another scalar type.
template <class S>
Checkpoint<S> load_checkpoint(const std::string& path);

}  // namespace ift
