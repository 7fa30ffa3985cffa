// Kronecker-factored approximate curvature (KFAC; Martens & Grosse 2015) as an approximate
// inverse for the IFT solve (DESIGN.md §1: H⁻¹ ≈ per-layer (Kronecker factors + damping)⁻¹).
//
// Written once over the vector-space seam: the vectors through VectorSpace<V>, the per-layer
// factors and their eigendecompositions through MatrixSpace<V> (linalg/matrix_space.hpp). The
// same code applies the inverse to Eigen vectors (KfacInverseOperator<S>) and to flat LibTorch
// tensors on their device (KfacInverse<torch::Tensor>, with torch's eigh and matmuls there);
// problems only export their Kronecker factors.
//
// Layout convention (models/kronecker_factors.hpp): a block holds the parameters of one dense
// layer as the (in+1)×out column-major matrix M (inputs with the bias row last), parameter
// offset + j + (in+1)·o ↔ M(j, o) (or the bias row apart, at bias_offset + o). With
// A = E[a aᵀ] ((in+1)×(in+1), layer inputs with a constant 1 appended) and G = E[g gᵀ]
// (out×out, output-side curvature), the block curvature is (G ⊗ A) vec(M) = vec(A M G).
// (DESIGN.md writes A ⊗ G for the same approximation with the other vec ordering.)
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ift/core.hpp"
#include "ift/format.hpp"
#include "ift/linalg/matrix_space.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/linalg/status.hpp"
#include "ift/linalg/vector_space.hpp"
#include "ift/models/kronecker_factors.hpp"

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

/// How the penalty's curvature P (diagonal: a decay per weight) enters the KFAC inverse.
///  Mean:       as part of the damping δ, its mean over the blocks' parameters (exact for a
///              global decay; P's spread across weights is lost).
///  Eigenbasis: per block, the diagonal of P in the block's Kronecker eigenbasis U = Ug ⊗ Ua,
///              diag(Uᵀ P U) = (Ua ∘ Ua)ᵀ P_b (Ug ∘ Ug) (P_b: the block's decays as an in × out
///              matrix), added to the eigenvalues da dgᵀ + δ. The block's curvature is then
///              U (diag(da dgᵀ) + δ + diag(Uᵀ P U)) Uᵀ, the matrix nearest (Frobenius) to
///              G ⊗ A + δI + P_b among those with KFAC's eigenvectors (the eigenvalue correction
///              of George et al. 2018, EKFAC, applied to the penalty, whose diagonal is exact);
///              inverse, square root and inverse root cost what Mean's do. Equal to Mean for a
///              global decay (up to round-off). Parameters outside every block keep the mean.
enum class KfacPenalty { Mean, Eigenbasis };

constexpr const char* to_string(KfacPenalty penalty) {
  return penalty == KfacPenalty::Mean ? "mean" : "eigenbasis";
}

/// The eigenvalues of each block's data curvature in its Kronecker eigenbasis U = Ug ⊗ Ua.
///  Kronecker: da dgᵀ, those of G ⊗ A (KFAC).
///  Corrected: diag(Uᵀ H_b U), the data term's exact curvature along the basis vectors (the
///             eigenvalue correction of EKFAC, George et al. 2018: the matrix nearest to H_b in
///             Frobenius norm among those with KFAC's eigenvectors; one pass over the data per
///             inverse, from the problem). H_b is the block KFAC approximates: the Hessian's for
///             softmax regression, the Gauss-Newton matrix's for MLPs. With KfacPenalty::Eigenbasis the block is then
///             U diag(Uᵀ (H_b + P_b) U) Uᵀ + δI. Needs KfacDampingMode::Exact.
enum class KfacEigenvalues { Kronecker, Corrected };

constexpr const char* to_string(KfacEigenvalues e) {
  return e == KfacEigenvalues::Kronecker ? "kronecker" : "corrected";
}

/// Parameters of the KFAC inverse beyond its damping δ (which the caller gives: MethodSpec's
/// damping plus, with KfacPenalty::Mean, the penalty's mean curvature).
struct KfacParams {
  /// How δ enters (see KfacDampingMode). Default Exact.
  KfacDampingMode damping_mode = KfacDampingMode::Exact;
  /// How the penalty's curvature enters (see KfacPenalty). Default Mean.
  KfacPenalty penalty = KfacPenalty::Mean;
  /// The blocks' eigenvalues (see KfacEigenvalues). Default Kronecker.
  KfacEigenvalues eigenvalues = KfacEigenvalues::Kronecker;

  void check() const {
    require(damping_mode == KfacDampingMode::Exact || damping_mode == KfacDampingMode::Factored,
            "KfacParams::damping_mode must be exact or factored");
    require(penalty == KfacPenalty::Mean || penalty == KfacPenalty::Eigenbasis,
            "KfacParams::penalty must be mean or eigenbasis");
    require(eigenvalues == KfacEigenvalues::Kronecker || eigenvalues == KfacEigenvalues::Corrected,
            "KfacParams::eigenvalues must be kronecker or corrected");
    require(eigenvalues == KfacEigenvalues::Kronecker || damping_mode == KfacDampingMode::Exact,
            "KfacParams: corrected eigenvalues need the exact damping mode (the factored mode "
            "damps the factors, which the correction replaces)");
  }
};

/// EKFAC's eigenvalue correction (KfacEigenvalues::Corrected): for block `block` with the
/// eigenvectors Ua, Ug of its factors, writes diag(Uᵀ H_b U) as an in × out matrix to `out`
/// (replacing da dgᵀ). Throws when the problem cannot.
template <class V>
using KfacEigenvalueSource = std::function<void(
    std::size_t block, const typename MatrixSpace<V>::MatrixType& Ua,
    const typename MatrixSpace<V>::MatrixType& Ug, typename MatrixSpace<V>::MatrixType& out)>;

/// The penalty's curvature for KfacPenalty::Eigenbasis: `diagonal`, the penalty's Hessian
/// diagonal per parameter (enters each block in its eigenbasis), and `outside`, added to δ for
/// the parameters outside every block (the caller's choice: the mean of the diagonal).
template <class V>
struct KfacPenaltyDiagonal {
  V diagonal;
  double outside = 0;
};

namespace detail {

template <class V>
void check_kronecker_blocks(Index dimension, const std::vector<KfacBlock<V>>& blocks,
                            const char* who) {
  using MS = MatrixSpace<V>;
  require(dimension >= 0, [who] { return std::string(who) + ": dimension must be >= 0"; });
  std::vector<std::pair<Index, Index>> ranges;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const KfacBlock<V>& k = blocks[b];
    // Messages built only on failure (this runs for every KFAC inverse, once per hypergradient).
    const auto name = [who, b] { return std::string(who) + ": block " + std::to_string(b); };
    require(MS::rows(k.A) == MS::cols(k.A) && MS::rows(k.A) > 0,
            [&] { return name() + ": A must be square and non-empty"; });
    require(MS::rows(k.G) == MS::cols(k.G) && MS::rows(k.G) > 0,
            [&] { return name() + ": G must be square and non-empty"; });
    const BlockLayout layout = k.layout();
    const Index leading = layout.leading_size();
    require(k.offset >= 0 && k.offset + leading <= dimension, [&] {
      return name() +
             (layout.last_row_apart() ? ": parameters [offset, offset + in·out)"
                                      : ": parameters [offset, offset + (in+1)·out)") +
             " exceed the dimension " + std::to_string(dimension);
    });
    if (leading > 0) ranges.emplace_back(k.offset, k.offset + leading);
    if (layout.last_row_apart()) {
      require(k.bias_offset + k.outputs() <= dimension, [&] {
        return name() + ": bias parameters [bias_offset, bias_offset + out) exceed the dimension " +
               std::to_string(dimension);
      });
      ranges.emplace_back(k.bias_offset, k.bias_offset + k.outputs());
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i)
    require(ranges[i].first >= ranges[i - 1].second,
            [who] { return std::string(who) + ": blocks overlap"; });
}

template <class V>
Index covered_parameters(const std::vector<KfacBlock<V>>& blocks) {
  Index covered = 0;
  for (const KfacBlock<V>& k : blocks) covered += k.size();
  return covered;
}

}  // namespace detail

/// Forward KFAC curvature y = (G ⊗ A + δ I) x per block, y = δ x outside every block. Used to
/// check the inverse and as a cheap PSD curvature model. apply() uses three mutable work
/// matrices per block (no allocation; not thread-safe on one object).
template <class V>
  requires HasMatrixSpace<V>
class KfacCurvature {
 public:
  using VectorType = V;
  using Scalar = typename VectorSpace<V>::Scalar;

  KfacCurvature(Index dimension, std::vector<KfacBlock<V>> blocks, double damping)
      : dimension_(dimension), blocks_(std::move(blocks)), damping_(damping) {
    detail::check_kronecker_blocks(dimension_, blocks_, "KfacCurvature");
    require(std::isfinite(damping), "KfacCurvature: damping must be finite");
    for (const KfacBlock<V>& k : blocks_) {
      Work w;
      w.m = MS::zeros(k.A, k.inputs(), k.outputs());
      w.am = MS::zeros(k.A, k.inputs(), k.outputs());
      w.amg = MS::zeros(k.A, k.inputs(), k.outputs());
      work_.push_back(std::move(w));
    }
  }

  Index rows() const { return dimension_; }
  Index cols() const { return dimension_; }
  void apply(const V& x, V& y) const {
    VS::assign(y, x);
    VS::scale(static_cast<Scalar>(damping_), y);
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
      const KfacBlock<V>& k = blocks_[b];
      Work& w = work_[b];
      MS::read_block(x, k.layout(), w.m);
      MS::product(k.A, false, w.m, false, w.am);
      MS::product(w.am, false, k.G, false, w.amg);
      MS::write_block(w.amg, k.layout(), y, /*accumulate=*/true);  // Y = δ M + A M G
    }
  }
  const std::vector<KfacBlock<V>>& blocks() const { return blocks_; }
  double damping() const { return damping_; }

 private:
  using VS = VectorSpace<V>;
  using MS = MatrixSpace<V>;
  struct Work {
    typename MS::MatrixType m, am, amg;
  };

  Index dimension_;
  std::vector<KfacBlock<V>> blocks_;
  double damping_;
  mutable std::vector<Work> work_;
};

/// The power of the damped Kronecker curvature K (G ⊗ A + δI, or the factored form) that
/// KfacInverse::apply_power applies: K⁻¹ (apply), K^(−1/2) and K^(1/2), the symmetric square
/// roots in the same eigenbases (split preconditioning: CG on K^(−1/2) H K^(−1/2), the
/// "+kfac" preconditioner of cg, docs/methods.md).
enum class KfacPower { Inverse, InverseRoot, Root };

/// Applies the KFAC approximate inverse (see KfacDampingMode) per block; parameters outside
/// every block (e.g. a layer without factors) get the damping-only inverse x / δ, the inverse
/// of the forward operator's δ I there. Construction factorises once (two symmetric
/// eigendecompositions per block, O(in³ + out³), on the factors' backend and device); apply()
/// then costs four small matrix products per block and allocates nothing (three mutable work
/// matrices per block: not thread-safe on one object).
///
/// status() is Converged when the approximation is well defined and NumericalIssue when it is
/// not: a denominator (da_i dg_j + δ, or (da_i + √δ)(dg_j + √δ)) <= eps·max (damping 0 with a
/// singular or indefinite factor), uncovered parameters with δ = 0, non-finite factors or a
/// failed eigendecomposition. apply() then writes NaN (so misuse cannot pass unnoticed).
template <class V>
  requires HasMatrixSpace<V>
class KfacInverse {
 public:
  using VectorType = V;
  using Scalar = typename VectorSpace<V>::Scalar;

  /// `penalty` (optional): the penalty's diagonal curvature in each block's eigenbasis
  /// (KfacPenalty::Eigenbasis; δ then is the damping without the penalty), its `outside` added
  /// to δ for the parameters outside every block.
  /// `corrected` (optional): EKFAC's eigenvalues per block (KfacEigenvalues::Corrected, exact
  /// damping mode only), in place of da dgᵀ.
  KfacInverse(Index dimension, const std::vector<KfacBlock<V>>& blocks, double damping,
              KfacDampingMode mode = KfacDampingMode::Exact,
              const KfacPenaltyDiagonal<V>* penalty = nullptr,
              const KfacEigenvalueSource<V>& corrected = {})
      : dimension_(dimension),
        damping_(damping),
        outside_damping_(damping + (penalty ? penalty->outside : 0.0)),
        mode_(mode) {
    detail::check_kronecker_blocks(dimension, blocks, "KfacInverse");
    require(damping >= 0 && std::isfinite(damping), "KfacInverse: damping must be finite and >= 0");
    if (penalty) {
      require(VS::size(penalty->diagonal) == dimension, [&] {
        return "KfacInverse: the penalty's diagonal has size " +
               std::to_string(VS::size(penalty->diagonal)) + ", expected " +
               std::to_string(dimension);
      });
      require(penalty->outside >= 0 && std::isfinite(penalty->outside),
              "KfacInverse: the penalty's outside shift must be finite and >= 0");
    }
    require(!corrected || mode == KfacDampingMode::Exact,
            "KfacInverse: corrected eigenvalues need the exact damping mode");
    const double root = std::sqrt(damping);
    if (detail::covered_parameters(blocks) < dimension && outside_damping_ <= 0) {
      fail("parameters outside every block need damping > 0 (they are multiplied by 1/δ)");
    }
    for (std::size_t b = 0; b < blocks.size() && valid_; ++b) {
      const KfacBlock<V>& k = blocks[b];
      const std::string name = "block " + std::to_string(b) + ": ";
      if (!MS::all_finite(k.A) || !MS::all_finite(k.G)) {
        fail(name + "non-finite Kronecker factor");
        break;
      }
      Factors f;
      f.layout = k.layout();
      V da, dg;
      if (!MS::symmetric_eigen(k.A, da, f.Ua) || !MS::symmetric_eigen(k.G, dg, f.Ug)) {
        fail(name + "eigendecomposition of a Kronecker factor failed");
        break;
      }
      if (mode == KfacDampingMode::Factored) {
        MS::add_constant(da, root);
        MS::add_constant(dg, root);
      }
      // The eigenvalues of the damped block, da_i dg_j + δ (or the factored product): a fresh
      // matrix per call (tensors share storage on assignment).
      // With the penalty in the eigenbasis: diag(Uᵀ P U) = (Ua ∘ Ua)ᵀ P_b (Ug ∘ Ug).
      std::optional<typename MS::MatrixType> shift;
      if (penalty) {
        if (!VS::all_finite(penalty->diagonal)) {
          fail(name + "non-finite penalty curvature");
          break;
        }
        auto p = MS::zeros(k.A, k.inputs(), k.outputs());
        MS::read_block(penalty->diagonal, f.layout, p);
        auto ua2 = MS::copy(f.Ua);
        MS::multiply_elements(ua2, f.Ua);
        auto ug2 = MS::copy(f.Ug);
        MS::multiply_elements(ug2, f.Ug);
        auto left = MS::zeros(k.A, k.inputs(), k.outputs());
        MS::product(ua2, true, p, false, left);
        shift.emplace(MS::zeros(k.A, k.inputs(), k.outputs()));
        MS::product(left, false, ug2, false, *shift);
      }
      std::optional<typename MS::MatrixType> eigenvalues;  // EKFAC's, in place of da dgᵀ
      if (corrected) {
        eigenvalues.emplace(MS::zeros(k.A, k.inputs(), k.outputs()));
        corrected(b, f.Ua, f.Ug, *eigenvalues);
        if (MS::rows(*eigenvalues) != k.inputs() || MS::cols(*eigenvalues) != k.outputs() ||
            !MS::all_finite(*eigenvalues)) {
          fail(name + "the corrected eigenvalues are not a finite in × out matrix");
          break;
        }
      }
      const auto denominator = [&] {
        auto d = eigenvalues ? MS::copy(*eigenvalues) : MS::outer(da, dg);
        if (mode == KfacDampingMode::Exact) MS::add_constant(d, damping);
        if (shift) MS::add(d, *shift);
        return d;
      };
      f.inverse_denominator = denominator();
      const double largest = MS::max_abs(f.inverse_denominator);
      const double smallest = MS::min(f.inverse_denominator);
      if (!(smallest > MS::epsilon(f.inverse_denominator) * largest) || !std::isfinite(largest)) {
        fail(name + "a denominator of the damped Kronecker inverse is " + std::to_string(smallest) +
             " (largest " + std::to_string(largest) +
             "): a factor is singular or indefinite and the damping does not cover it");
        break;
      }
      MS::reciprocal(f.inverse_denominator);
      f.inverse_root = denominator();
      MS::power(f.inverse_root, -0.5);
      f.root = denominator();
      MS::power(f.root, 0.5);
      f.m = MS::zeros(k.A, k.inputs(), k.outputs());
      f.work1 = MS::zeros(k.A, k.inputs(), k.outputs());
      f.work2 = MS::zeros(k.A, k.inputs(), k.outputs());
      factors_.push_back(std::move(f));
    }
    if (valid_) {
      message_ = std::string(corrected ? "EKFAC inverse (corrected eigenvalues)" : "KFAC inverse") +
                 ", damping δ = " + format_number(damping) + " (" + to_string(mode) + ")" +
                 (penalty ? ", penalty in the eigenbases (outside blocks δ + " +
                                format_number(penalty->outside) + ")"
                          : std::string()) +
                 ", " + std::to_string(blocks.size()) + " block(s), " +
                 std::to_string(dimension - detail::covered_parameters(blocks)) +
                 " parameter(s) outside blocks scaled by 1/δ";
    }
  }

  /// Copies own their factors (nothing points into the object; on tensors the copies share the
  /// read-only factors and the scratch matrices, so use one copy at a time). A move leaves the source not
  /// defined (NumericalIssue; apply() writes NaN) rather than an operator without blocks that
  /// would silently return g / δ.
  KfacInverse(const KfacInverse&) = default;
  KfacInverse& operator=(const KfacInverse&) = default;
  KfacInverse(KfacInverse&& other)
      : dimension_(other.dimension_),
        damping_(other.damping_),
        outside_damping_(other.outside_damping_),
        mode_(other.mode_),
        valid_(other.valid_),
        message_(std::move(other.message_)),
        factors_(std::move(other.factors_)) {
    other.moved_from();
  }
  KfacInverse& operator=(KfacInverse&& other) {
    if (this != &other) {
      dimension_ = other.dimension_;
      damping_ = other.damping_;
      outside_damping_ = other.outside_damping_;
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

  void apply(const V& x, V& y) const { apply_power(x, y, KfacPower::Inverse); }

  /// y = K^p x for p = −1 (apply), −1/2 or 1/2 (KfacPower): the same rotations into the
  /// eigenbases, the eigenvalues raised to p; parameters outside every block get δ^p.
  void apply_power(const V& x, V& y, KfacPower power) const {
    VS::assign(y, x);
    if (!valid_) {
      VS::scale(std::numeric_limits<Scalar>::quiet_NaN(), y);  // NaN · x is NaN everywhere
      return;
    }
    if (outside_damping_ > 0) {
      const double d = outside_damping_;
      const double outside = power == KfacPower::Inverse       ? 1.0 / d
                             : power == KfacPower::InverseRoot ? 1.0 / std::sqrt(d)
                                                               : std::sqrt(d);
      VS::scale(static_cast<Scalar>(outside), y);
    } else {
      VS::set_zero(y);  // every parameter is in a block (checked at construction)
    }
    for (const Factors& f : factors_) {
      MS::read_block(x, f.layout, f.m);
      MS::product(f.Ua, true, f.m, false, f.work1);  // rotate into the eigenbases
      MS::product(f.work1, false, f.Ug, false, f.work2);
      MS::multiply_elements(f.work2, power == KfacPower::Inverse       ? f.inverse_denominator
                                     : power == KfacPower::InverseRoot ? f.inverse_root
                                                                       : f.root);
      MS::product(f.Ua, false, f.work2, false, f.work1);  // rotate back
      MS::product(f.work1, false, f.Ug, true, f.m);
      MS::write_block(f.m, f.layout, y, /*accumulate=*/false);
    }
  }

  SolverStatus status() const { return valid_ ? SolverStatus::Converged : SolverStatus::NumericalIssue; }
  const std::string& message() const { return message_; }
  double damping() const { return damping_; }
  KfacDampingMode mode() const { return mode_; }

 private:
  using VS = VectorSpace<V>;
  using MS = MatrixSpace<V>;
  struct Factors {
    BlockLayout layout;
    typename MS::MatrixType Ua, Ug, inverse_denominator, inverse_root, root;
    mutable typename MS::MatrixType m, work1, work2;
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
  double outside_damping_;  // δ + the penalty's outside shift (= δ without a penalty)
  KfacDampingMode mode_;
  bool valid_ = true;
  std::string message_;
  std::vector<Factors> factors_;
};

/// The Eigen backend's names.
template <class S>
using KfacCurvatureOperator = KfacCurvature<Vector<S>>;
template <class S>
using KfacInverseOperator = KfacInverse<Vector<S>>;

/// v = KFAC⁻¹ g (0 HVPs, 0 iterations). Status Converged means the approximation was applied as
/// defined (it is not a solve of H v = g); NumericalIssue with x = 0 when the inverse is not
/// defined or the result is not finite. The message reports the damping.
template <class V>
SolveResult<V> kfac_solve(const KfacInverse<V>& inverse, const V& g) {
  using VS = VectorSpace<V>;
  require(VS::size(g) == inverse.rows(), [&] {
    return "kfac_solve: g has size " + std::to_string(VS::size(g)) + ", expected " +
           std::to_string(inverse.rows());
  });
  SolveResult<V> result;
  result.x = VS::zeros_like(g);
  result.message = inverse.message();
  if (inverse.status() != SolverStatus::Converged) {
    result.status = inverse.status();
    result.message += "; x = 0";
    return result;
  }
  inverse.apply(g, result.x);
  if (!VS::all_finite(result.x)) {
    VS::set_zero(result.x);
    result.status = SolverStatus::NumericalIssue;
    result.message += "; the result is not finite, x = 0";
    return result;
  }
  result.status = SolverStatus::Converged;
  return result;
}

/// As above, plus the relative residual ||H v − g|| / ||g|| against the true curvature H (one
/// HVP, counted).
template <class V, LinearOperator Op>
  requires std::same_as<typename Op::VectorType, V>
SolveResult<V> kfac_solve(const KfacInverse<V>& inverse, const V& g, const Op& H) {
  using VS = VectorSpace<V>;
  require(H.rows() == VS::size(g) && H.cols() == VS::size(g), "kfac_solve: H has the wrong size");
  SolveResult<V> result = kfac_solve(inverse, g);
  if (result.status != SolverStatus::Converged) return result;
  add_relative_residual(H, g, result);
  return result;
}

}  // namespace ift
