// The exact method of DESIGN.md §1: v = H⁻¹ g by a dense factorisation, computed once and
// reused for any number of right-hand sides.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include <Eigen/Cholesky>

#include "ift/core.hpp"
#include "ift/linalg/cholesky.hpp"
#include "ift/linalg/status.hpp"

namespace ift {

/// Which factorisation DenseSolver ended up using. MixedCholesky: a float Cholesky factor of H
/// with iterative refinement in double (DensePrecision::Mixed, below).
enum class DenseFactorization { None, Cholesky, LDLT, MixedCholesky };

inline const char* to_string(DenseFactorization f) {
  switch (f) {
    case DenseFactorization::None: return "none";
    case DenseFactorization::Cholesky: return "cholesky";
    case DenseFactorization::LDLT: return "ldlt";
    case DenseFactorization::MixedCholesky: return "mixed-cholesky";
  }
  return "?";
}

/// The precision of the exact method's factorisation (MethodSpec::exact, --exact-precision).
///  - Double: the working precision S throughout (for S = float that is float).
///  - Mixed (S = double): LAPACK's DSPOSV scheme. The lower triangle of H is rounded to float and
///    factorised there (cholesky_in_place, whose GEMM kernel runs float at twice double's rate),
///    about twice the speed of
///    the double factorisation; each solve then refines x_{k+1} = x_k + L⁻ᵀL⁻¹(g − H x_k) with
///    the residual in double from the double H, while a step still halves ‖g − H x‖∞, down to
///    ‖g − H x‖∞ <= eps·‖H‖∞·‖x‖∞ (eps of double: what a double Cholesky solve attains), and
///    accepts no x that fails DSPOSV's test ‖g − H x‖∞ <= √n·eps·‖H‖∞·‖x‖∞; so x is the double
///    solution to double accuracy. It falls back to the double path (Cholesky, then LDLT's
///    classification) when H does not fit float's range, the float factorisation fails (H not
///    positive definite in float, or κ(H) beyond 1/eps_float), or the refinement stops short of
///    DSPOSV's test (it stagnates, or max_refinements steps: κ(H)·eps_float too large); the
///    message says which. For S = float, Mixed is the plain float path.
///  - Auto: Mixed for S = double from mixed_min_size rows on, Double otherwise.
enum class DensePrecision { Auto, Double, Mixed };

inline const char* to_string(DensePrecision p) {
  switch (p) {
    case DensePrecision::Auto: return "auto";
    case DensePrecision::Double: return "double";
    case DensePrecision::Mixed: return "mixed";
  }
  return "?";
}

inline DensePrecision parse_dense_precision(const std::string& name) {
  if (name == "auto") return DensePrecision::Auto;
  if (name == "double") return DensePrecision::Double;
  if (name == "mixed") return DensePrecision::Mixed;
  throw std::invalid_argument("unknown exact precision '" + name +
                              "' (expected auto, double or mixed)");
}

/// The exact method's parameters (MethodSpec::exact).
struct DenseParams {
  /// Default Auto.
  DensePrecision precision = DensePrecision::Auto;
  /// Auto: Mixed from this many rows on (S = double). Below it the double Cholesky takes
  /// milliseconds and the refinement's O(n²) products and the float copy eat the float
  /// factorisation's saving: measured (bench_logreg BM_DenseSize, compute + one solve, mixed ÷
  /// double in one run) 1.16 at n = 250, 0.94 at 500, 0.55–0.68 at 1,000, 0.53 at 3,000 on 1–2
  /// threads (bench/README.md). Default 1000, valid >= 0.
  Index mixed_min_size = 1000;
  /// Mixed: most refinement steps per solve before the fallback (DSPOSV's ITERMAX). Default 30,
  /// valid >= 1.
  int max_refinements = 30;

  void check() const {
    require(mixed_min_size >= 0, "DenseParams::mixed_min_size must be >= 0");
    require(max_refinements >= 1, "DenseParams::max_refinements must be >= 1");
  }
  /// Whether a solver of scalar S factorises an n × n matrix in mixed precision.
  template <class S>
  bool mixed_for(Index n) const {
    if constexpr (!std::is_same_v<S, double>) {
      (void)n;
      return false;
    } else {
      return precision == DensePrecision::Mixed ||
             (precision == DensePrecision::Auto && n >= mixed_min_size);
    }
  }
};

/// Dense symmetric solve. Cholesky (cholesky_in_place: a blocked algorithm whose tiles are shared
/// among the OpenMP threads, its trailing update on ift's GEMM kernel) first;
/// if H is not numerically positive
/// definite, Eigen::LDLT (symmetric diagonal pivoting) classifies it:
///  - a pivot |d_i| <= n·eps·max|d| (or a non-finite factor/solution): H is singular →
///    status NumericalIssue. Decision: singular is a numerical failure of the exact method,
///    not a question of definiteness; x is LDLT's solution with zero pivots dropped when finite,
///    else 0, and the message says so.
///  - otherwise some d_i < 0: H is indefinite → status NotPositiveDefinite, x = LDLT's solution
///    (a stationary point's Newton direction, not a descent one), message says H is indefinite.
///  - Cholesky succeeded but its reciprocal condition estimate is <= eps: H is numerically
///    singular → NumericalIssue (x returned when finite): the paper notes exact inversion
///    eventually fails numerically, and this reports it instead of hiding it.
/// Only the lower triangle of H is read (Eigen's convention), also for the residual.
///
/// Mixed precision (DenseParams, DensePrecision::Mixed): a float Cholesky factor and refinement
/// in double; factorization() is MixedCholesky while it holds, and a result's `iterations` are
/// its refinement steps (corrections after the first float solve), its relative residual the
/// last refinement residual's (no extra product). The classification above is unchanged: a
/// singular, indefinite or too ill-conditioned H fails in float and falls back to the double
/// path, which classifies it as above; the message starts with the fallback's reason. A
/// fallback found by a solve (refinement stagnated) replaces the float factor by the double
/// factorisation for that and every later solve, so solve() and apply_inverse() change the
/// solver's (mutable) factorisation then: do not call them concurrently on one solver. rcond()
/// is 0 on the mixed path (not estimated: a refinement that converges to double accuracy
/// implies κ(H) below about 1/eps_float, far from the rcond <= eps verdict).
///
/// H built in float (compute_mixed, S = double): the owner writes H directly into the float
/// factor's storage (no double H, no rounding pass over it), gives the matrix-free product
/// x ↦ H x in double (the same H to rounding: the refinement's residual, one product per step,
/// counted in `hvps`) and a builder of the double H. The solver then reads no dense H until a
/// fallback (H not finite in float, a non-positive float pivot, a refinement that stagnates or
/// reaches max_refinements), which builds the double H by the builder, says so in the message
/// ("the double H was built") and classifies it as above. The product and the builder are kept
/// (by value) until the next compute: what they capture must outlive the solves.
///
/// Memory: the solver keeps a *reference* to H (no copy: at D = 7850 a copy is 490 MB; after
/// compute_mixed only from a fallback on) for the relative residual ||H x − g|| / ||g||, plus one
/// n×n factor (float on the mixed path: half).
/// H must outlive the solver and not change between compute() and solve(); binding to a
/// temporary is refused at compile time.
///
/// Copy and move: a copy owns a copy of the factor and reads the same H (the reference is the
/// contract above). A move takes the factor and leaves the source as if default-constructed, so
/// the source can never solve from a moved-out factor. An owner that keeps H next to its solver
/// (generic::DenseWorkspace) rebinds the solver to its own H when it is copied or moved.
template <class S>
class DenseSolver {
 public:
  /// y = H x in S, matrix-free (compute_mixed's residual).
  using Product = std::function<void(const Vector<S>&, Vector<S>&)>;
  /// Forms the double H and returns it (compute_mixed's fallback).
  using Builder = std::function<const Matrix<S>&()>;

  DenseSolver() = default;
  explicit DenseSolver(const Matrix<S>& H, const DenseParams& params = {}) { compute(H, params); }
  explicit DenseSolver(Matrix<S>&&, const DenseParams& = {}) = delete;

  DenseSolver(const DenseSolver&) = default;
  DenseSolver& operator=(const DenseSolver&) = default;
  DenseSolver(DenseSolver&& other)
      : H_(other.H_),
        n_(other.n_),
        params_(other.params_),
        h_norm_(other.h_norm_),
        product_(std::move(other.product_)),
        build_(std::move(other.build_)),
        factor_(std::move(other.factor_)),
        low_factor_(std::move(other.low_factor_)),
        ldlt_(std::move(other.ldlt_)),
        factorization_(other.factorization_),
        status_(other.status_),
        rcond_(other.rcond_),
        message_(std::move(other.message_)) {
    other.reset();
  }
  DenseSolver& operator=(DenseSolver&& other) {
    if (this != &other) {
      H_ = other.H_;
      n_ = other.n_;
      params_ = other.params_;
      h_norm_ = other.h_norm_;
      product_ = std::move(other.product_);
      build_ = std::move(other.build_);
      factor_ = std::move(other.factor_);
      low_factor_ = std::move(other.low_factor_);
      ldlt_ = std::move(other.ldlt_);
      factorization_ = other.factorization_;
      status_ = other.status_;
      rcond_ = other.rcond_;
      message_ = std::move(other.message_);
      other.reset();
    }
    return *this;
  }

  /// Factorises H (O(n³/3)) in the precision `params` selects. Throws std::invalid_argument if
  /// H is not square or params are invalid.
  DenseSolver& compute(const Matrix<S>& H, const DenseParams& params = {}) {
    require(H.rows() == H.cols(), [&] {
      return "DenseSolver::compute: H must be square (" + std::to_string(H.rows()) + "x" +
             std::to_string(H.cols()) + ")";
    });
    start(params, H.rows());
    H_ = &H;
    const bool mixed = params.mixed_for<S>(n_);
    // Each path keeps its own factor's storage from the last compute() (no D² allocation and
    // first-touch page faults per call, as the exact method's workspace intends) and frees the
    // other's.
    if (!mixed) low_factor_ = Matrix<float>();
    if constexpr (std::is_same_v<S, double>) {
      if (mixed) {
        // The float copy's pass over the lower triangle also checks that it is finite (the part
        // the solver reads; the double path checks all of H): no separate pass over H.
        factor_ = Matrix<S>();  // the float factor replaces it
        std::string reason;
        if (!lower_to_float_factor(H, reason)) fall_back(reason);
        return *this;
      }
    }
    factorise_checked(H, "");
    return *this;
  }

  /// The mixed path with H formed in float by the caller (S = double; the class comment):
  /// `fill(L)` writes the symmetric H (at least its lower triangle) into L, the float factor's
  /// storage, kept from the last call; `product(x, y)` sets y = H x in double, matrix-free;
  /// `build()` forms the double H and returns it, called only on a fallback (the returned matrix
  /// must then outlive the solver's use, as compute()'s H). DenseParams::precision is not
  /// consulted: the caller chose this path. Throws std::invalid_argument when L is not square,
  /// a callback is empty or params are invalid.
  DenseSolver& compute_mixed(const std::function<void(Matrix<float>&)>& fill, Product product,
                             Builder build, const DenseParams& params = {})
    requires std::is_same_v<S, double>
  {
    require(fill && product && build, "DenseSolver::compute_mixed: a callback is empty");
    start(params, 0);  // no factorisation while H is being formed (fill may throw)
    factor_ = Matrix<S>();  // the float factor replaces it
    fill(low_factor_);
    require(low_factor_.rows() == low_factor_.cols(), [&] {
      return "DenseSolver::compute_mixed: the float H is " + std::to_string(low_factor_.rows()) +
             "x" + std::to_string(low_factor_.cols()) + ", not square";
    });
    n_ = low_factor_.rows();
    product_ = std::move(product);
    build_ = std::move(build);
    // One pass over the lower triangle: ‖H‖∞ for the refinement's stopping rule (of the float H:
    // within float rounding of the double H's, which moves the threshold by ~1e-7 of itself)
    // and whether H is finite (a float overflow shows as inf).
    h_norm_ = symmetric_l1_norm(low_factor_);
    std::string reason = "the float H is not finite (beyond float's range, or not finite)";
    if (!std::isfinite(h_norm_)) {
      low_factor_ = Matrix<float>();
      fall_back(reason);
    } else if (!factorise_float(reason, "mixed-precision Cholesky (H built in float, "
                                        "refinement in double by the matrix-free product)")) {
      fall_back(reason);
    }
    return *this;
  }

  /// x = H⁻¹ g from the stored factorisation, nothing else (no residual, no checks beyond sizes):
  /// the operator x ↦ H⁻¹ x for inverse iteration or Lanczos on H⁻¹. Requires a factorisation.
  /// On the mixed path x is refined to double accuracy as in solve() (and a stagnating
  /// refinement switches the solver to the double factorisation, see the class comment).
  void apply_inverse(const Vector<S>& g, Vector<S>& x) const {
    require(factorization_ != DenseFactorization::None && g.size() == n_,
            "DenseSolver::apply_inverse: no factorisation, or g has the wrong size");
    if (factorization_ == DenseFactorization::MixedCholesky) {
      SolveResult<Vector<S>> r;
      if (refine(g, r)) {
        x = std::move(r.x);
        return;
      }
    }
    if (factorization_ == DenseFactorization::Cholesky) {
      x = g;
      cholesky_solve_in_place(factor_, x);
    } else {
      x = ldlt_->solve(g);
    }
  }

  /// x = H⁻¹ g from the stored factorisation (O(n²)), with the relative residual (one more
  /// O(n²) product with H). iterations = 0, or the refinement steps on the mixed path; hvps = the
  /// matrix-free products of compute_mixed's refinement (one per step), else 0.
  SolveResult<Vector<S>> solve(const Vector<S>& g) const {
    require(H_ != nullptr || product_, "DenseSolver::solve: compute(H) was not called");
    require(g.size() == n_, [&] {
      return "DenseSolver::solve: g has size " + std::to_string(g.size()) + ", expected " +
             std::to_string(n_);
    });
    SolveResult<Vector<S>> result;
    result.status = status_;
    result.message = message_;
    result.x = Vector<S>::Zero(g.size());
    if (factorization_ == DenseFactorization::None) return result;
    if (!g.allFinite()) {
      result.status = SolverStatus::NumericalIssue;
      result.message = "g is not finite; x = 0";
      return result;
    }
    if (factorization_ == DenseFactorization::MixedCholesky) {
      if (refine(g, result)) return result;
      result = SolveResult<Vector<S>>();  // fell back: the double path below, from scratch
      result.status = status_;
      result.message = message_;
    }
    if (factorization_ == DenseFactorization::Cholesky) {
      result.x = g;
      cholesky_solve_in_place(factor_, result.x);
    } else {
      result.x = ldlt_->solve(g);
    }
    if (!result.x.allFinite()) {
      result.x.setZero();
      result.status = SolverStatus::NumericalIssue;
      result.message += "; the solution is not finite, x = 0";
      return result;
    }
    Vector<S> r;
    result.relative_residual = residual(g, result.x, r);
    return result;
  }

  DenseFactorization factorization() const { return factorization_; }
  /// Status of the factorisation (what solve() reports for finite right-hand sides).
  SolverStatus status() const { return status_; }
  const std::string& message() const { return message_; }
  /// Cholesky's reciprocal condition estimate in the 1-norm (0 when LDLT or the mixed path ran).
  double rcond() const { return rcond_; }
  /// The parameters of the last compute().
  const DenseParams& params() const { return params_; }
  Index rows() const { return n_; }
  Index cols() const { return rows(); }

  /// The matrix the residual reads (the one given to compute(), or compute_mixed's built on a
  /// fallback); null before compute() and on compute_mixed's float path.
  const Matrix<S>* matrix() const { return H_; }
  /// Reads H from now on, keeping the factorisation: for an owner whose copy of the factorised
  /// matrix moved (a copy of it, or the same values at a new address; the old one need not exist
  /// any more). H must equal the matrix that was factorised; only its size is checked (O(1)).
  /// Throws before compute().
  void rebind(const Matrix<S>& H) {
    require(H_ != nullptr, "DenseSolver::rebind: compute(H) was not called");
    require(H.rows() == n_ && H.cols() == n_, [&] {
      return "DenseSolver::rebind: H has size " + std::to_string(H.rows()) + "x" +
             std::to_string(H.cols()) + ", the factorised matrix " + std::to_string(n_) + "x" +
             std::to_string(n_);
    });
    H_ = &H;
  }
  void rebind(Matrix<S>&&) = delete;

 private:
  /// The default-constructed state (what a moved-from solver is left in).
  void reset() {
    H_ = nullptr;
    n_ = 0;
    params_ = DenseParams();
    h_norm_ = 0;
    product_ = nullptr;
    build_ = nullptr;
    factor_ = Matrix<S>();
    low_factor_ = Matrix<float>();
    ldlt_.reset();
    factorization_ = DenseFactorization::None;
    status_ = SolverStatus::NumericalIssue;
    rcond_ = 0;
    message_ = "compute(H) was not called";
  }

  /// What every compute starts from: no factorisation, no product, the size and parameters.
  void start(const DenseParams& params, Index n) {
    params.check();
    H_ = nullptr;
    n_ = n;
    params_ = params;
    h_norm_ = 0;
    product_ = nullptr;
    build_ = nullptr;
    ldlt_.reset();
    factorization_ = DenseFactorization::None;
    status_ = SolverStatus::NumericalIssue;
    message_.clear();
    rcond_ = 0;
  }

  /// The float factor of H (S = double) from H rounded to float. False, with the reason and
  /// nothing kept, when H does not fit float's range or the float Cholesky fails.
  bool lower_to_float_factor(const Matrix<S>& H, std::string& reason) {
    bool representable = true;
    h_norm_ = lower_to_float(H, low_factor_, representable);
    if (!representable) {
      low_factor_ = Matrix<float>();
      reason = "H has entries beyond float's range";  // or non-finite ones: the fallback checks
      return false;
    }
    return factorise_float(reason, "mixed-precision Cholesky (float factor, refinement in double)");
  }

  /// Factorises the float H in low_factor_ in place: the mixed path with `message`, or false with
  /// the reason and nothing kept when the float Cholesky fails.
  bool factorise_float(std::string& reason, const char* message) {
    const Index failed = cholesky_in_place(low_factor_);
    if (failed >= 0) {
      low_factor_ = Matrix<float>();
      reason = "the float Cholesky found a non-positive pivot at column " + std::to_string(failed);
      return false;
    }
    factorization_ = DenseFactorization::MixedCholesky;
    status_ = SolverStatus::Converged;
    message_ = message;
    return true;
  }

  /// Leaves the mixed path for the double one (the float factor is dropped): builds the double
  /// H first when the solver has none (compute_mixed), then factorises it (factorise_checked),
  /// the message saying why.
  void fall_back(const std::string& reason) const {
    low_factor_ = Matrix<float>();
    std::string prefix = "mixed precision fell back to double: " + reason + "; ";
    if (H_ == nullptr) {
      const Matrix<S>& H = build_();
      require(H.rows() == n_ && H.cols() == n_,
              "DenseSolver::compute_mixed: the built double H has the wrong size");
      H_ = &H;
      prefix += "the double H was built; ";
    }
    factorise_checked(*H_, prefix);
  }

  /// The double path on a finite H (factorise_double); a non-finite H leaves no factorisation
  /// and status NumericalIssue.
  void factorise_checked(const Matrix<S>& H, const std::string& prefix) const {
    if (!H.allFinite()) {
      factor_ = Matrix<S>();
      low_factor_ = Matrix<float>();
      factorization_ = DenseFactorization::None;
      status_ = SolverStatus::NumericalIssue;
      message_ = "H is not finite";
      return;
    }
    factorise_double(H, prefix);
  }

  /// r = g − H x, from the dense H when the solver reads one, else by compute_mixed's matrix-free
  /// product (the one place either is formed); returns ‖r‖₂ / ‖g‖₂ (0 for g = 0).
  double residual(const Vector<S>& g, const Vector<S>& x, Vector<S>& r) const {
    if (H_ != nullptr) {
      r = g;
      r.noalias() -= H_->template selfadjointView<Eigen::Lower>() * x;
    } else {
      product_(x, r);
      r = g - r;
    }
    const double g_norm = static_cast<double>(g.norm());
    return g_norm > 0 ? static_cast<double>(r.norm()) / g_norm : 0.0;
  }

  /// Solves H x = g on the mixed path (the class comment). True with x, iterations, relative
  /// residual and message in `result` when it reached double accuracy; false after switching
  /// the solver to the double factorisation (the fallback) otherwise.
  ///
  /// Stopping rule: DSPOSV's acceptance test ‖r‖∞ <= √n·eps·‖H‖∞·‖x‖∞ (eps of double), with
  /// LAPACK's xPORFS continuation: while a step still halves ‖r‖∞ the refinement goes on to
  /// ‖r‖∞ <= eps·‖H‖∞·‖x‖∞, the residual a double Cholesky solve attains, so x is as accurate as
  /// the double path's and not only within DSPOSV's bound (at most one step more). A step that
  /// does not halve ‖r‖∞ ends it: the best x so far is accepted if it meets DSPOSV's test, else
  /// the solver falls back (κ(H)·eps_float too large); so does max_refinements steps without it.
  bool refine(const Vector<S>& g, SolveResult<Vector<S>>& result) const {
    if constexpr (std::is_same_v<S, double>) {
      const Index n = n_;
      const double eps = std::numeric_limits<double>::epsilon();
      const double tight = eps * h_norm_, loose = std::sqrt(static_cast<double>(n)) * tight;
      Vector<float> d(n);
      Vector<double> x = Vector<double>::Zero(n), r = g, best_x, best_r;
      double best_r_norm = std::numeric_limits<double>::infinity(), best_x_norm = 0;
      double relative = 0, best_relative = 0;
      Index best_step = 0, products = 0;
      std::string reason;
      auto accept = [&](const Vector<double>& x_ok, const Vector<double>& r_ok, double rel,
                        Index step) {
        result.x = x_ok;
        result.relative_residual = rel;
        result.iterations = step;
        result.hvps = products;
        result.status = SolverStatus::Converged;
        const double scale = h_norm_ * x_ok.template lpNorm<Eigen::Infinity>() * eps;
        result.message = message_ + ": " + std::to_string(step) +
                         " refinement step(s), ||g - H x||_inf = " +
                         std::to_string(scale > 0 ? r_ok.template lpNorm<Eigen::Infinity>() / scale
                                                  : 0.0) +
                         " eps ||H||_inf ||x||_inf";
        return true;
      };
      for (Index step = 0;; ++step) {
        d = r.cast<float>();
        cholesky_solve_in_place(low_factor_, d);
        x += d.cast<double>();
        if (H_ == nullptr) ++products;
        relative = residual(g, x, r);
        const double r_norm = r.template lpNorm<Eigen::Infinity>();
        const double x_norm = x.template lpNorm<Eigen::Infinity>();
        if (!std::isfinite(r_norm) || !std::isfinite(x_norm)) {
          reason = "the float solve gave a non-finite x";
          break;
        }
        if (r_norm <= tight * x_norm) return accept(x, r, relative, step);
        const bool contracting = step == 0 || r_norm <= 0.5 * best_r_norm;
        if (r_norm < best_r_norm) {
          best_x = x;
          best_r = r;
          best_r_norm = r_norm;
          best_x_norm = x_norm;
          best_relative = relative;
          best_step = step;
        }
        if (!contracting || step >= params_.max_refinements) {
          if (best_r_norm <= loose * best_x_norm)
            return accept(best_x, best_r, best_relative, best_step);
          reason = contracting ? "the refinement did not reach double accuracy in " +
                                     std::to_string(params_.max_refinements) + " steps"
                               : "the refinement stagnated at step " + std::to_string(step) +
                                     " (||r||_inf " + std::to_string(r_norm) + ", best " +
                                     std::to_string(best_r_norm) +
                                     ": kappa(H) eps_float too large)";
          break;
        }
      }
      fall_back(reason);
      return false;
    } else {
      (void)g, (void)result;
      return false;
    }
  }

  /// The double path (Cholesky, else LDLT's classification; the class comment), its message
  /// prefixed by `prefix`.
  void factorise_double(const Matrix<S>& H, const std::string& prefix) const {
    const S eps = std::numeric_limits<S>::epsilon();
    factor_.resize(H.rows(), H.cols());
    factor_.template triangularView<Eigen::Lower>() = H;
    if (cholesky_in_place(factor_) < 0) {
      factorization_ = DenseFactorization::Cholesky;
      rcond_ = cholesky_rcond(factor_, symmetric_l1_norm(H));
      if (!(rcond_ > eps)) {
        status_ = SolverStatus::NumericalIssue;
        message_ = prefix + "Cholesky succeeded but H is numerically singular (rcond ≈ " +
                   std::to_string(rcond_) + " <= eps): the solution is not trustworthy";
      } else {
        status_ = SolverStatus::Converged;
        message_ = prefix + "Cholesky (rcond ≈ " + std::to_string(rcond_) + ")";
      }
      return;
    }
    factor_ = Matrix<S>();  // release the failed factor before allocating LDLT's
    ldlt_.emplace(H);
    factorization_ = DenseFactorization::LDLT;
    const Vector<S> d = ldlt_->vectorD();
    const S scale = d.size() > 0 ? d.cwiseAbs().maxCoeff() : S(0);
    const S tiny = static_cast<S>(H.rows()) * eps * scale;
    Index zero_pivots = 0, negative_pivots = 0;
    for (Index i = 0; i < d.size(); ++i) {
      if (!(std::abs(d[i]) > tiny)) {
        ++zero_pivots;
      } else if (d[i] < 0) {
        ++negative_pivots;
      }
    }
    if (!d.allFinite()) {
      status_ = SolverStatus::NumericalIssue;
      message_ = prefix + "LDLT produced non-finite pivots";
    } else if (zero_pivots > 0) {
      status_ = SolverStatus::NumericalIssue;
      message_ = prefix + "H is singular: LDLT found " + std::to_string(zero_pivots) +
                 " zero pivot(s) (and " + std::to_string(negative_pivots) +
                 " negative); x drops the zero pivots, it is not H⁻¹g";
    } else {
      status_ = SolverStatus::NotPositiveDefinite;
      message_ = prefix + "H is indefinite: LDLT found " + std::to_string(negative_pivots) +
                 " negative pivot(s); x = H⁻¹g from LDLT";
    }
  }

  // The matrix the residual reads; compute_mixed sets it on a fallback (hence mutable).
  mutable const Matrix<S>* H_ = nullptr;
  Index n_ = 0;  ///< size of the factorised matrix
  DenseParams params_;
  double h_norm_ = 0;  ///< ‖H‖∞ (mixed path: the refinement's stopping rule)
  Product product_;  ///< compute_mixed: y = H x, matrix-free (the residual while H_ is null)
  Builder build_;    ///< compute_mixed: forms the double H (the fallback)
  // The factorisation is mutable: a solve on the mixed path that finds the refinement stagnating
  // replaces the float factor by the double one (the class comment).
  mutable Matrix<S> factor_;  ///< L in the lower triangle (Cholesky)
  mutable Matrix<float> low_factor_;  ///< float L in the lower triangle (MixedCholesky)
  // Empty until a factorisation needs it: Eigen's default-constructed LDLT leaves its status
  // (m_info) uninitialised, so copying or moving one reads an indeterminate enum (UBSan, the
  // sanitizer suite); an empty optional copies nothing.
  mutable std::optional<Eigen::LDLT<Matrix<S>>> ldlt_;
  mutable DenseFactorization factorization_ = DenseFactorization::None;
  mutable SolverStatus status_ = SolverStatus::NumericalIssue;
  mutable double rcond_ = 0;
  mutable std::string message_ = "compute(H) was not called";
};

}  // namespace ift
