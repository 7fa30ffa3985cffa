// The exact method of DESIGN.md §1: v = H⁻¹ g by a dense factorisation, computed once and
// reused for any number of right-hand sides.
#pragma once

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include <Eigen/Cholesky>

#include "ift/core.hpp"
#include "ift/linalg/cholesky.hpp"
#include "ift/linalg/status.hpp"

namespace ift {

/// Which factorisation DenseSolver ended up using.
enum class DenseFactorization { None, Cholesky, LDLT };

/// Dense symmetric solve. Cholesky (cholesky_in_place: LAPACK's potrf from OpenBLAS under
/// IFT_USE_BLAS, else a blocked algorithm whose tiles are shared among the OpenMP threads) first;
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
/// Memory: the solver keeps a *reference* to H (no copy: at D = 7850 a copy is 490 MB) for the
/// relative residual ||H x − g|| / ||g||, plus one n×n factor. H must outlive the solver and not
/// change between compute() and solve(); binding to a temporary is refused at compile time.
///
/// Copy and move: a copy owns a copy of the factor and reads the same H (the reference is the
/// contract above). A move takes the factor and leaves the source as if default-constructed, so
/// the source can never solve from a moved-out factor. An owner that keeps H next to its solver
/// (generic::DenseWorkspace) rebinds the solver to its own H when it is copied or moved.
template <class S>
class DenseSolver {
 public:
  DenseSolver() = default;
  explicit DenseSolver(const Matrix<S>& H) { compute(H); }
  explicit DenseSolver(Matrix<S>&&) = delete;

  DenseSolver(const DenseSolver&) = default;
  DenseSolver& operator=(const DenseSolver&) = default;
  DenseSolver(DenseSolver&& other)
      : H_(other.H_),
        n_(other.n_),
        factor_(std::move(other.factor_)),
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
      factor_ = std::move(other.factor_);
      ldlt_ = std::move(other.ldlt_);
      factorization_ = other.factorization_;
      status_ = other.status_;
      rcond_ = other.rcond_;
      message_ = std::move(other.message_);
      other.reset();
    }
    return *this;
  }

  /// Factorises H (O(n³/3)). Throws std::invalid_argument if H is not square.
  DenseSolver& compute(const Matrix<S>& H) {
    require(H.rows() == H.cols(), "DenseSolver::compute: H must be square (" +
                                      std::to_string(H.rows()) + "x" + std::to_string(H.cols()) + ")");
    H_ = &H;
    n_ = H.rows();
    ldlt_.reset();
    message_.clear();
    rcond_ = 0;
    if (!H.allFinite()) {
      factorization_ = DenseFactorization::None;
      status_ = SolverStatus::NumericalIssue;
      message_ = "H is not finite";
      return *this;
    }
    const S eps = std::numeric_limits<S>::epsilon();
    factor_.resize(H.rows(), H.cols());
    factor_.template triangularView<Eigen::Lower>() = H;
    if (cholesky_in_place(factor_) < 0) {
      factorization_ = DenseFactorization::Cholesky;
      rcond_ = cholesky_rcond(factor_, symmetric_l1_norm(H));
      if (!(rcond_ > eps)) {
        status_ = SolverStatus::NumericalIssue;
        message_ = "Cholesky succeeded but H is numerically singular (rcond ≈ " +
                   std::to_string(rcond_) + " <= eps): the solution is not trustworthy";
      } else {
        status_ = SolverStatus::Converged;
        message_ = "Cholesky (rcond ≈ " + std::to_string(rcond_) + ")";
      }
      return *this;
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
      message_ = "LDLT produced non-finite pivots";
    } else if (zero_pivots > 0) {
      status_ = SolverStatus::NumericalIssue;
      message_ = "H is singular: LDLT found " + std::to_string(zero_pivots) +
                 " zero pivot(s) (and " + std::to_string(negative_pivots) +
                 " negative); x drops the zero pivots, it is not H⁻¹g";
    } else {
      status_ = SolverStatus::NotPositiveDefinite;
      message_ = "H is indefinite: LDLT found " + std::to_string(negative_pivots) +
                 " negative pivot(s); x = H⁻¹g from LDLT";
    }
    return *this;
  }

  /// x = H⁻¹ g from the stored factorisation, nothing else (no residual, no checks beyond sizes):
  /// the operator x ↦ H⁻¹ x for inverse iteration or Lanczos on H⁻¹. Requires a factorisation.
  void apply_inverse(const Vector<S>& g, Vector<S>& x) const {
    require(factorization_ != DenseFactorization::None && g.size() == n_,
            "DenseSolver::apply_inverse: no factorisation, or g has the wrong size");
    if (factorization_ == DenseFactorization::Cholesky) {
      x = g;
      cholesky_solve_in_place(factor_, x);
    } else {
      x = ldlt_->solve(g);
    }
  }

  /// x = H⁻¹ g from the stored factorisation (O(n²)), with the relative residual (one more
  /// O(n²) product with H). hvps = 0, iterations = 0.
  SolveResult<Vector<S>> solve(const Vector<S>& g) const {
    require(H_ != nullptr, "DenseSolver::solve: compute(H) was not called");
    require(g.size() == n_, "DenseSolver::solve: g has size " + std::to_string(g.size()) +
                                ", expected " + std::to_string(n_));
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
    const double g_norm = static_cast<double>(g.norm());
    Vector<S> r = g;
    r.noalias() -= H_->template selfadjointView<Eigen::Lower>() * result.x;
    result.relative_residual = g_norm > 0 ? static_cast<double>(r.norm()) / g_norm : 0.0;
    return result;
  }

  DenseFactorization factorization() const { return factorization_; }
  /// Status of the factorisation (what solve() reports for finite right-hand sides).
  SolverStatus status() const { return status_; }
  const std::string& message() const { return message_; }
  /// Cholesky's reciprocal condition estimate in the 1-norm (0 when LDLT was used).
  double rcond() const { return rcond_; }
  Index rows() const { return n_; }
  Index cols() const { return rows(); }

  /// The matrix the residual reads (the one given to compute()); null before compute().
  const Matrix<S>* matrix() const { return H_; }
  /// Reads H from now on, keeping the factorisation: for an owner whose copy of the factorised
  /// matrix moved (a copy of it, or the same values at a new address; the old one need not exist
  /// any more). H must equal the matrix that was factorised; only its size is checked (O(1)).
  /// Throws before compute().
  void rebind(const Matrix<S>& H) {
    require(H_ != nullptr, "DenseSolver::rebind: compute(H) was not called");
    require(H.rows() == n_ && H.cols() == n_,
            "DenseSolver::rebind: H has size " + std::to_string(H.rows()) + "x" +
                std::to_string(H.cols()) + ", the factorised matrix " + std::to_string(n_) +
                "x" + std::to_string(n_));
    H_ = &H;
  }
  void rebind(Matrix<S>&&) = delete;

 private:
  /// The default-constructed state (what a moved-from solver is left in).
  void reset() {
    H_ = nullptr;
    n_ = 0;
    factor_ = Matrix<S>();
    ldlt_.reset();
    factorization_ = DenseFactorization::None;
    status_ = SolverStatus::NumericalIssue;
    rcond_ = 0;
    message_ = "compute(H) was not called";
  }

  const Matrix<S>* H_ = nullptr;
  Index n_ = 0;  ///< size of the factorised matrix
  Matrix<S> factor_;  ///< L in the lower triangle (Cholesky)
  // Empty until a factorisation needs it: Eigen's default-constructed LDLT leaves its status
  // (m_info) uninitialised, so copying or moving one reads an indeterminate enum (UBSan, the
  // sanitizer suite); an empty optional copies nothing.
  std::optional<Eigen::LDLT<Matrix<S>>> ldlt_;
  DenseFactorization factorization_ = DenseFactorization::None;
  SolverStatus status_ = SolverStatus::NumericalIssue;
  double rcond_ = 0;
  std::string message_ = "compute(H) was not called";
};

}  // namespace ift
