// The inverse approximations of DESIGN.md §1 and their parameters: one definition shared by
// both backends (Eigen and LibTorch), the apps and the CSV files. Each solver's parameters are
// its own struct (CgParams, NeumannParams, KfacParams) with their one set of defaults; a
// MethodSpec composes them with the method-level choices.
#pragma once

#include <string>

#include "ift/core.hpp"
#include "ift/linalg/cg.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/linalg/neumann.hpp"
#include "ift/linalg/nystrom.hpp"
#include "ift/linalg/power_iteration.hpp"

namespace ift {

/// The inverse approximations of DESIGN.md §1, named as in the CSV files.
enum class Method { Exact, Cg, Neumann, Identity, Zero, Kfac, Unrolled, Nystrom };
/// What stands in for the Hessian of L_T. Gauss-Newton replaces the data term's Hessian by
/// JᵀH_out J; outer-product by g gᵀ (g = ∇_w L_T at the current point, rank one); fisher by the
/// empirical Fisher (1/n) Σ g_i g_iᵀ. The penalty's exact Hessian (diagonal) is kept in every
/// variant: it keeps the rank-one and Fisher curvatures invertible, and for weight decay it is
/// known exactly, so approximating it would only add error.
enum class Curvature { Hessian, GaussNewton, OuterProduct, Fisher };

Method parse_method(const std::string& name);
Curvature parse_curvature(const std::string& name);
const char* to_string(Method m);
const char* to_string(Curvature c);

/// One inverse approximation, fully specified. Fields apply where the method uses them.
struct MethodSpec {
  Method method = Method::Exact;
  Curvature curvature = Curvature::Hessian;
  /// The one user-level k: CG iterations, Neumann terms k (v = α Σ_{j=0..k} (I − αH)^j g), or
  /// unrolled steps i, Nyström rank (sampled columns, at most D). ≥ 0. Becomes cg.max_iterations / neumann.steps at solve time.
  Index steps = 20;
  /// Added to the curvature as δI for exact, cg and neumann; KFAC's explicit damping;
  /// nystrom's ρ when > 0 (else nystrom.rho; the penalty's curvature is kept exact). ≥ 0.
  double damping = 0;
  /// Compute ||H v − g|| / ||g|| for methods where it costs an extra HVP (cg, neumann, kfac).
  /// Becomes cg.true_residual / neumann.compute_residual at solve time.
  bool compute_residual = false;
  /// CG: start from the previous hyper-step's v (generic/solver_state.hpp) instead of 0.
  bool warm_start = false;

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

  /// "neumann", "gauss-newton/cg", "outer-product/neumann", …: the name used in CSV files.
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

}  // namespace ift
