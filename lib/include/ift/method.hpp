// The inverse approximations of DESIGN.md §1 and their parameters: one definition shared by
// both backends (Eigen and LibTorch), the apps and the CSV files. Each solver's parameters are
// its own struct (CgParams, NeumannParams, KfacParams) with their one set of defaults; a
// MethodSpec composes them with the method-level choices.
#pragma once

#include <cstdint>
#include <string>

#include "ift/core.hpp"
#include "ift/linalg/cg.hpp"
#include "ift/linalg/dense_solver.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/linalg/neumann.hpp"
#include "ift/linalg/nystrom.hpp"
#include "ift/linalg/power_iteration.hpp"
#include "ift/linalg/ritz.hpp"

namespace ift {

/// The inverse approximations of DESIGN.md §1, named as in the CSV files.
/// shine: v from the inner L-BFGS's own inverse-Hessian estimate (its (s, y) pairs in the
/// solver state, linalg/lbfgs_inverse.hpp; Ramzi et al. 2022), refined by `steps` CG steps
/// started from it (steps = 0: the estimate alone, 0 HVPs). nystrom: the Nyström low-rank
/// inverse of rank `steps` (linalg/nystrom.hpp; Hataya & Yamada 2023). docs/methods.md.
enum class Method { Exact, Cg, Neumann, Identity, Zero, Kfac, Unrolled, Shine, Nystrom };
/// What stands in for the Hessian of L_T. Gauss-Newton replaces the data term's Hessian by
/// JᵀH_out J; outer-product by g gᵀ (g = ∇_w L_T at the current point, rank one); fisher by the
/// empirical Fisher (1/n) Σ g_i g_iᵀ. The penalty's exact Hessian (diagonal) is kept in every
/// variant: it keeps the rank-one and Fisher curvatures invertible, and for weight decay it is
/// known exactly, so approximating it would only add error.
enum class Curvature { Hessian, GaussNewton, OuterProduct, Fisher };
/// Which training rows a curvature-vector product averages over (stochastic curvature, Ghadimi &
/// Wang 2018; Ji et al. 2021, stocBiO): full = every row (deterministic); fresh = a new minibatch
/// of MethodSpec::curvature_batch rows for every product (every Neumann term, CG iteration and
/// power iteration); fixed = one minibatch drawn per solve and used by all its products.
enum class CurvatureSampling { Full, Fresh, Fixed };
/// cg's preconditioner (the "+kfac" name suffix): none, or KFAC's damped Kronecker curvature K
/// (the kfac method's, same damping) as a split preconditioner: CG runs on K^(−1/2) H K^(−1/2)
/// with right-hand side K^(−1/2) g and v = K^(−1/2) y (docs/methods.md). The HVP count is cg's.
/// ritz ("+ritz"): the spectral preconditioner of the Ritz pairs recycled from the previous
/// hyper-steps' Lanczos solves (linalg/ritz.hpp, SolverState::ritz_*), split the same way, zero
/// extra HVPs; without recycled pairs (the first hyper-step, a single hypergradient) plain cg.
/// kfac+ritz ("+kfac+ritz"): both, the Ritz pairs those of K^(−1/2) H K^(−1/2).
enum class Preconditioner { None, Kfac, Ritz, KfacRitz };
/// The preconditioners that contain KFAC's K / recycle Ritz pairs.
inline bool uses_kfac(Preconditioner p) {
  return p == Preconditioner::Kfac || p == Preconditioner::KfacRitz;
}
inline bool uses_ritz(Preconditioner p) {
  return p == Preconditioner::Ritz || p == Preconditioner::KfacRitz;
}

Method parse_method(const std::string& name);
Curvature parse_curvature(const std::string& name);
const char* to_string(Method m);
const char* to_string(Curvature c);
CurvatureSampling parse_curvature_sampling(const std::string& name);
const char* to_string(CurvatureSampling s);
/// Methods that can start from the previous hyper-step's v (cg, neumann).
bool supports_warm_start(Method m);
/// Methods whose products can use minibatches of the training rows (cg, neumann).
bool supports_curvature_sampling(Method m);
/// Methods that take a preconditioner (cg).
bool supports_preconditioner(Method m);
const char* to_string(Preconditioner p);

/// One inverse approximation, fully specified. Fields apply where the method uses them.
struct MethodSpec {
  Method method = Method::Exact;
  Curvature curvature = Curvature::Hessian;
  /// The one user-level k: CG iterations, Neumann terms k (v = α Σ_{j=0..k} (I − αH)^j g),
  /// unrolled steps i, shine's CG refinement steps, or the Nyström rank (sampled columns, at
  /// most D). ≥ 0. Becomes cg.max_iterations / neumann.steps at solve time.
  Index steps = 20;
  /// Added to the curvature as δI for exact, cg and neumann; KFAC's explicit damping;
  /// nystrom's ρ when > 0 (else nystrom.rho; the penalty's curvature is kept exact). ≥ 0.
  double damping = 0;
  /// Compute ||H v − g|| / ||g|| for methods where it costs an extra HVP (cg, neumann, kfac).
  /// Becomes cg.true_residual / neumann.compute_residual at solve time.
  bool compute_residual = false;
  /// cg, neumann: start from the previous hyper-step's v (generic/solver_state.hpp) instead of
  /// 0 (the "+warm" name suffix). neumann then runs Richardson's iteration
  /// v ← v + α(g − H v) for `steps` HVPs (steps = 1: the SOBA update, Dagréou et al. 2022) and
  /// reuses the previous step's α; from v = 0 it is the cold series exactly. Other methods:
  /// check() refuses it.
  bool warm_start = false;
  /// cg, neumann with the Hessian: minibatch curvature products ("+fresh" / "+fixed" suffix).
  CurvatureSampling sampling = CurvatureSampling::Full;
  /// cg: the preconditioner ("+kfac" suffix; its damping is kfac's: `damping` plus the
  /// penalty's mean curvature). Other methods: check() refuses it.
  Preconditioner preconditioner = Preconditioner::None;
  /// Rows per curvature minibatch (sampling fresh / fixed), >= 1 then; 0 with sampling full.
  Index curvature_batch = 0;
  /// Seed of the curvature minibatches: hypergradient number u (SolverState::uses, 0 without a
  /// state) draws from std::mt19937_64(seed_seq{sampling_seed, u}), so a run is reproducible and
  /// a resumed run continues bitwise.
  std::uint64_t sampling_seed = 0;

  /// cg: tolerance, reorthogonalize, record_history (linalg/cg.hpp). max_iterations and
  /// true_residual come from steps and compute_residual.
  CgParams cg;
  /// neumann: alpha (0: safety / λ_max by power iteration), safety, power_iterations, divergence
  /// detection, tolerance (linalg/neumann.hpp); steps and compute_residual come from the fields
  /// above. unrolled takes its step size from the same alpha / safety / power iteration, so that
  /// unrolled(i, α) = neumann(i − 1, α) holds for one spec (Lorraine et al. 2020).
  NeumannParams neumann;
  /// kfac: the damping mode (linalg/kfac.hpp); the damping itself is `damping` above.
  KfacParams kfac;
  /// nystrom: sampling, ρ (used when damping is 0), cut-off of M⁺, probes / sketch size, seed
  /// (linalg/nystrom.hpp); the rank is `steps`.
  NystromParams nystrom;
  /// cg+ritz: the memory m of recycled Ritz pairs and their acceptance test (linalg/ritz.hpp).
  RitzParams ritz;
  /// exact: the factorisation's precision (auto / double / mixed: a float Cholesky with
  /// refinement in double, linalg/dense_solver.hpp), the auto threshold, the refinement cap.
  DenseParams exact;

  /// "neumann", "gauss-newton/cg", "outer-product/neumann", "cg+warm", "neumann+fresh+warm",
  /// "cg+kfac+warm", …: the name used in CSV files (suffixes: preconditioner, sampling, then
  /// "+warm").
  std::string name() const;
  /// Throws std::invalid_argument naming the field (the solver structs' own checks, prefixed
  /// with MethodSpec::cg / ::neumann / ::kfac), and for curvatures a method cannot use.
  void check() const;

  /// The parameters each solver runs with: its struct with steps and compute_residual mapped in.
  CgParams cg_params() const;
  NeumannParams neumann_params() const;
  /// The power iteration that chooses unrolled's automatic α (neumann's budget, tolerance, seed).
  PowerIterationParams power_params() const;
  /// nystrom's ρ: damping when > 0, else nystrom.rho.
  double nystrom_rho() const { return damping > 0 ? damping : nystrom.rho; }
};

/// A method name with optional suffixes, as in --methods: "cg", "cg+warm", "neumann+fresh",
/// "neumann+fixed+warm", "cg+kfac+warm", "cg+ritz+warm". Sets method, preconditioner, warm_start and sampling (the batch size and seed are the
/// caller's). Throws std::invalid_argument naming the suffix a method does not support.
MethodSpec parse_method_spec(const std::string& name);

}  // namespace ift
