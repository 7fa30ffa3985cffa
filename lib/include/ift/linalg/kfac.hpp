// Kronecker-factored approximate curvature (KFAC; Martens & Grosse 2015) as an approximate
// inverse for the IFT solve (DESIGN.md §1: H⁻¹ ≈ per-layer (Kronecker factors + damping)⁻¹).
//
// Layout convention (the models use it): a block holds the parameters of one dense layer as
// the (in+1)×out column-major matrix M (inputs with the bias row last), parameter
// offset + j + (in+1)·o ↔ M(j, o). With A = E[a aᵀ] ((in+1)×(in+1), layer inputs with a
// constant 1 appended) and G = E[g gᵀ] (out×out, output-side curvature), the block curvature
// is (G ⊗ A) vec(M) = vec(A M G). (DESIGN.md writes A ⊗ G for the same approximation with the
// other vec ordering.)
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Eigenvalues>

#include "ift/core.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/models/kronecker_factors.hpp"
#include "ift/linalg/status.hpp"

namespace ift {

/// How damping δ enters.
///  Exact:    (G ⊗ A + δ I)⁻¹, through A = Ua Da Uaᵀ, G = Ug Dg Ugᵀ:
///            M ↦ Ua [(Uaᵀ M Ug) ./ (da dgᵀ + δ)] Ugᵀ.
///  Factored: (G + √δ I)⁻¹ ⊗ (A + √δ I)⁻¹, i.e. M ↦ (A + √δ I)⁻¹ M (G + √δ I)⁻¹: Martens &
///            Grosse's factored Tikhonov damping with π = 1; equals the inverse of
///            G ⊗ A + √δ (I ⊗ A + G ⊗ I) + δ I, so it damps more than Exact.
enum class KfacDampingMode { Exact, Factored };

constexpr const char* to_string(KfacDampingMode mode) {
  return mode == KfacDampingMode::Exact ? "exact" : "factored";
}

namespace detail {

template <class S>
void check_kronecker_blocks(Index dimension, const std::vector<KroneckerBlock<S>>& blocks,
                            const char* who) {
  require(dimension >= 0, std::string(who) + ": dimension must be >= 0");
  std::vector<std::pair<Index, Index>> ranges;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const KroneckerBlock<S>& k = blocks[b];
    const std::string name = std::string(who) + ": block " + std::to_string(b);
    require(k.A.rows() == k.A.cols() && k.A.rows() > 0, name + ": A must be square and non-empty");
    require(k.G.rows() == k.G.cols() && k.G.rows() > 0, name + ": G must be square and non-empty");
    require(k.offset >= 0 && k.offset + k.size() <= dimension,
            name + ": parameters [offset, offset + (in+1)·out) exceed the dimension " +
                std::to_string(dimension));
    ranges.emplace_back(k.offset, k.offset + k.size());
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i)
    require(ranges[i].first >= ranges[i - 1].second, std::string(who) + ": blocks overlap");
}

template <class S>
Index covered_parameters(const std::vector<KroneckerBlock<S>>& blocks) {
  Index covered = 0;
  for (const KroneckerBlock<S>& k : blocks) covered += k.size();
  return covered;
}

}  // namespace detail

/// Forward KFAC curvature y = (G ⊗ A + δ I) x per block, y = δ x outside every block. Used to
/// check the inverse and as a cheap PSD curvature model. apply() uses one mutable work matrix
/// per block (no allocation; not thread-safe on one object).
template <class S>
class KfacCurvatureOperator {
 public:
  using VectorType = Vector<S>;
  using Scalar = S;

  KfacCurvatureOperator(Index dimension, std::vector<KroneckerBlock<S>> blocks, double damping)
      : dimension_(dimension), blocks_(std::move(blocks)), damping_(static_cast<S>(damping)) {
    detail::check_kronecker_blocks(dimension_, blocks_, "KfacCurvatureOperator");
    require(std::isfinite(damping), "KfacCurvatureOperator: damping must be finite");
    for (const KroneckerBlock<S>& k : blocks_) work_.push_back(Matrix<S>::Zero(k.inputs(), k.outputs()));
  }

  Index rows() const { return dimension_; }
  Index cols() const { return dimension_; }
  void apply(const VectorType& x, VectorType& y) const {
    y.noalias() = damping_ * x;
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
      const KroneckerBlock<S>& k = blocks_[b];
      const Eigen::Map<const Matrix<S>> M(x.data() + k.offset, k.inputs(), k.outputs());
      Eigen::Map<Matrix<S>> Y(y.data() + k.offset, k.inputs(), k.outputs());
      work_[b].noalias() = k.A * M;
      Y.noalias() += work_[b] * k.G;  // Y = δ M + A M G
    }
  }
  const std::vector<KroneckerBlock<S>>& blocks() const { return blocks_; }
  double damping() const { return static_cast<double>(damping_); }

 private:
  Index dimension_;
  std::vector<KroneckerBlock<S>> blocks_;
  S damping_;
  mutable std::vector<Matrix<S>> work_;
};

/// Applies the KFAC approximate inverse (see KfacDampingMode) per block; parameters outside
/// every block (e.g. a layer without factors) get the damping-only inverse x / δ, the inverse
/// of the forward operator's δ I there. Construction factorises once (two symmetric
/// eigendecompositions per block, O(in³ + out³)); apply() then costs four small GEMMs per block
/// and allocates nothing (two mutable work matrices per block: not thread-safe on one object).
///
/// status() is Converged when the approximation is well defined and NumericalIssue when it is
/// not: a denominator (da_i dg_j + δ, or (da_i + √δ)(dg_j + √δ)) <= eps·max (damping 0 with a
/// singular or indefinite factor), uncovered parameters with δ = 0, non-finite factors or a
/// failed eigendecomposition. apply() then writes NaN (so misuse cannot pass unnoticed).
template <class S>
class KfacInverseOperator {
 public:
  using VectorType = Vector<S>;
  using Scalar = S;

  KfacInverseOperator(Index dimension, const std::vector<KroneckerBlock<S>>& blocks, double damping,
                      KfacDampingMode mode = KfacDampingMode::Exact)
      : dimension_(dimension), damping_(damping), mode_(mode) {
    detail::check_kronecker_blocks(dimension, blocks, "KfacInverseOperator");
    require(damping >= 0 && std::isfinite(damping),
            "KfacInverseOperator: damping must be finite and >= 0");
    const S delta = static_cast<S>(damping);
    const S root = std::sqrt(delta);
    const S eps = std::numeric_limits<S>::epsilon();
    if (detail::covered_parameters(blocks) < dimension && damping <= 0) {
      fail("parameters outside every block need damping > 0 (they are multiplied by 1/δ)");
    }
    for (std::size_t b = 0; b < blocks.size() && valid_; ++b) {
      const KroneckerBlock<S>& k = blocks[b];
      const std::string name = "block " + std::to_string(b) + ": ";
      if (!k.A.allFinite() || !k.G.allFinite()) {
        fail(name + "non-finite Kronecker factor");
        break;
      }
      Eigen::SelfAdjointEigenSolver<Matrix<S>> ea(k.A), eg(k.G);
      if (ea.info() != Eigen::Success || eg.info() != Eigen::Success) {
        fail(name + "eigendecomposition of a Kronecker factor failed");
        break;
      }
      Factors f;
      f.offset = k.offset;
      f.Ua = ea.eigenvectors();
      f.Ug = eg.eigenvectors();
      const Vector<S>& da = ea.eigenvalues();
      const Vector<S>& dg = eg.eigenvalues();
      Matrix<S> denominator(k.inputs(), k.outputs());
      if (mode == KfacDampingMode::Exact) {
        denominator.noalias() = da * dg.transpose();
        denominator.array() += delta;
      } else {
        denominator.noalias() = (da.array() + root).matrix() * (dg.array() + root).matrix().transpose();
      }
      const S largest = denominator.cwiseAbs().maxCoeff();
      const S smallest = denominator.minCoeff();
      if (!(smallest > eps * largest) || !std::isfinite(static_cast<double>(largest))) {
        fail(name + "a denominator of the damped Kronecker inverse is " +
             std::to_string(static_cast<double>(smallest)) + " (largest " +
             std::to_string(static_cast<double>(largest)) +
             "): a factor is singular or indefinite and the damping does not cover it");
        break;
      }
      f.inverse_denominator = denominator.cwiseInverse();
      f.work1 = Matrix<S>::Zero(k.inputs(), k.outputs());
      f.work2 = Matrix<S>::Zero(k.inputs(), k.outputs());
      factors_.push_back(std::move(f));
    }
    if (valid_) {
      message_ = "KFAC inverse, damping δ = " + std::to_string(damping) + " (" +
                 to_string(mode) + "), " + std::to_string(blocks.size()) + " block(s), " +
                 std::to_string(dimension - detail::covered_parameters(blocks)) +
                 " parameter(s) outside blocks scaled by 1/δ";
    }
  }

  /// Copies own their factors (nothing points into the object). A move leaves the source not
  /// defined (NumericalIssue; apply() writes NaN) rather than an operator without blocks that
  /// would silently return g / δ.
  KfacInverseOperator(const KfacInverseOperator&) = default;
  KfacInverseOperator& operator=(const KfacInverseOperator&) = default;
  KfacInverseOperator(KfacInverseOperator&& other)
      : dimension_(other.dimension_),
        damping_(other.damping_),
        mode_(other.mode_),
        valid_(other.valid_),
        message_(std::move(other.message_)),
        factors_(std::move(other.factors_)) {
    other.moved_from();
  }
  KfacInverseOperator& operator=(KfacInverseOperator&& other) {
    if (this != &other) {
      dimension_ = other.dimension_;
      damping_ = other.damping_;
      mode_ = other.mode_;
      valid_ = other.valid_;
      message_ = std::move(other.message_);
      factors_ = std::move(other.factors_);
      other.moved_from();
    }
    return *this;
  }

  Index rows() const { return dimension_; }
  Index cols() const { return dimension_; }

  void apply(const VectorType& x, VectorType& y) const {
    if (!valid_) {
      y.setConstant(x.size(), std::numeric_limits<S>::quiet_NaN());
      return;
    }
    if (damping_ > 0) {
      y.noalias() = static_cast<S>(1.0 / damping_) * x;
    } else {
      y.setZero(x.size());  // every parameter is in a block (checked at construction)
    }
    for (const Factors& f : factors_) {
      const Eigen::Map<const Matrix<S>> M(x.data() + f.offset, f.Ua.rows(), f.Ug.rows());
      Eigen::Map<Matrix<S>> Y(y.data() + f.offset, f.Ua.rows(), f.Ug.rows());
      f.work1.noalias() = f.Ua.transpose() * M;  // rotate into the eigenbases
      f.work2.noalias() = f.work1 * f.Ug;
      f.work2.array() *= f.inverse_denominator.array();
      f.work1.noalias() = f.Ua * f.work2;  // rotate back
      Y.noalias() = f.work1 * f.Ug.transpose();
    }
  }

  SolverStatus status() const { return valid_ ? SolverStatus::Converged : SolverStatus::NumericalIssue; }
  const std::string& message() const { return message_; }
  double damping() const { return damping_; }
  KfacDampingMode mode() const { return mode_; }

 private:
  struct Factors {
    Index offset = 0;
    Matrix<S> Ua, Ug, inverse_denominator;
    mutable Matrix<S> work1, work2;
  };

  void fail(const std::string& why) {
    valid_ = false;
    message_ = "KFAC inverse not defined: " + why;
  }
  void moved_from() {
    factors_.clear();
    fail("the operator was moved from");
  }

  Index dimension_;
  double damping_;
  KfacDampingMode mode_;
  bool valid_ = true;
  std::string message_;
  std::vector<Factors> factors_;
};

/// v = KFAC⁻¹ g (0 HVPs, 0 iterations). Status Converged means the approximation was applied as
/// defined (it is not a solve of H v = g); NumericalIssue with x = 0 when the inverse is not
/// defined or the result is not finite. The message reports the damping.
template <class S>
SolveResult<Vector<S>> kfac_solve(const KfacInverseOperator<S>& inverse, const Vector<S>& g) {
  require(g.size() == inverse.rows(), "kfac_solve: g has size " + std::to_string(g.size()) +
                                          ", expected " + std::to_string(inverse.rows()));
  SolveResult<Vector<S>> result;
  result.x = Vector<S>::Zero(g.size());
  result.message = inverse.message();
  if (inverse.status() != SolverStatus::Converged) {
    result.status = inverse.status();
    return result;
  }
  inverse.apply(g, result.x);
  if (!result.x.allFinite()) {
    result.x.setZero();
    result.status = SolverStatus::NumericalIssue;
    result.message += "; the result is not finite, x = 0";
    return result;
  }
  result.status = SolverStatus::Converged;
  return result;
}

/// As above, plus the relative residual ||H v − g|| / ||g|| against the true curvature H (one
/// HVP, counted).
template <class S, LinearOperator Op>
  requires std::same_as<typename Op::VectorType, Vector<S>>
SolveResult<Vector<S>> kfac_solve(const KfacInverseOperator<S>& inverse, const Vector<S>& g,
                                  const Op& H) {
  require(H.rows() == g.size() && H.cols() == g.size(), "kfac_solve: H has the wrong size");
  SolveResult<Vector<S>> result = kfac_solve(inverse, g);
  if (result.status != SolverStatus::Converged) return result;
  Vector<S> r(g.size());
  H.apply(result.x, r);
  ++result.hvps;
  r -= g;
  const double g_norm = static_cast<double>(g.norm());
  result.relative_residual = g_norm > 0 ? static_cast<double>(r.norm()) / g_norm : 0.0;
  return result;
}

}  // namespace ift
