// The hypergradient (DESIGN.md §1):
//   dL_V*/dλ = ∂L_V/∂λ − vᵀ ∂²L_T/∂w∂λᵀ,   v ≈ H⁻¹ ∂L_V/∂w,
// with v from any inverse approximation over any curvature, or — for `unrolled` — by reverse-mode
// differentiation of L_V(w_i(λ)) through i gradient steps on L_T.
#pragma once

#include <string>

#include "ift/core.hpp"
#include "ift/linalg/dense_solver.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/linalg/status.hpp"
#include "ift/problem.hpp"

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

  /// "neumann", "gauss-newton/cg", "outer-product/neumann", …: the name used in CSV files.
  std::string name() const;
  /// Throws std::invalid_argument naming the field, and for curvatures a method cannot use.
  void check() const;
};

template <class S>
struct HypergradientResult {
  Vector<S> hypergradient;  ///< dL_V*/dλ
  Vector<S> direct;         ///< ∂L_V/∂λ
  Vector<S> v;              ///< the inverse-Hessian-vector product (empty for unrolled)
  SolverStatus status = SolverStatus::Converged;
  Index iterations = 0;
  Index hvps = 0;  ///< Hessian- (or curvature-) vector products, power iterations included
  std::optional<double> relative_residual;
  double alpha = 0;  ///< step size used by neumann / unrolled
  std::optional<double> suggested_alpha;
  std::string message;
  double seconds = 0;
};

/// Computes the hypergradient at the problem's current point (set_point). Holds the dense
/// Hessian buffer between calls so repeated exact hypergradients do not reallocate D² entries.
template <class S>
class HypergradientEngine {
 public:
  explicit HypergradientEngine(MethodSpec spec);
  const MethodSpec& spec() const { return spec_; }

  /// For `unrolled`, `start` is w_0 of the unrolled trajectory (default: the current w); the
  /// problem is returned to its original point afterwards.
  HypergradientResult<S> compute(BilevelProblem<S>& problem, const Vector<S>* start = nullptr);

  /// The exact method's factorised curvature from the last compute() (for reuse, e.g. solves
  /// with other right-hand sides or inverse iteration); empty before an exact compute().
  const DenseSolver<S>& dense_solver() const { return dense_solver_; }
  const Matrix<S>& dense_curvature() const { return dense_; }

 private:
  void solve(BilevelProblem<S>& problem, const Vector<S>& g, HypergradientResult<S>& out);
  void unrolled(BilevelProblem<S>& problem, const Vector<S>& start, HypergradientResult<S>& out);
  MethodSpec spec_;
  Matrix<S> dense_;
  DenseSolver<S> dense_solver_;
};

/// Convenience: one hypergradient with a fresh engine.
template <class S>
HypergradientResult<S> hypergradient(BilevelProblem<S>& problem, const MethodSpec& spec) {
  return HypergradientEngine<S>(spec).compute(problem);
}

}  // namespace ift
