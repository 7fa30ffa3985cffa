// The inverse approximations of DESIGN.md §1 and their parameters: one definition shared by
// both backends (Eigen and LibTorch), the apps and the CSV files.
#pragma once

#include <string>

#include "ift/core.hpp"
#include "ift/linalg/kfac.hpp"

namespace ift {

/// The inverse approximations of DESIGN.md §1, named as in the CSV files.
enum class Method { Exact, Cg, Neumann, Identity, Zero, Kfac, Unrolled };
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
  /// CG iterations, Neumann terms k (v = α Σ_{j=0..k} (I − αH)^j g), or unrolled steps i. ≥ 0.
  Index steps = 20;
  /// Neumann / unrolled step size; 0 chooses safety / λ_max (power iteration, HVPs counted).
  double alpha = 0;
  /// Factor in α = safety / λ_max, in (0, 2).
  double safety = 1.0;
  /// Added to the curvature as δI for exact, cg and neumann; KFAC's explicit damping. ≥ 0.
  double damping = 0;
  KfacDampingMode kfac_damping_mode = KfacDampingMode::Exact;
  /// CG: stop early when ||Hv − g|| / ||g|| falls below this. ≥ 0.
  double tolerance = 1e-12;
  /// CG: Lanczos form with full reorthogonalisation (reproducible for κ in the thousands).
  bool reorthogonalize = true;
  /// Power iterations for the automatic α.
  Index power_iterations = 200;
  /// Compute ||H v − g|| / ||g|| for methods where it costs an extra HVP.
  bool compute_residual = false;
  /// CG: start from the previous hyper-step's v (generic/solver_state.hpp) instead of 0.
  bool warm_start = false;

  /// "neumann", "gauss-newton/cg", "outer-product/neumann", …: the name used in CSV files.
  std::string name() const;
  /// Throws std::invalid_argument naming the field, and for curvatures a method cannot use.
  void check() const;
};

}  // namespace ift
