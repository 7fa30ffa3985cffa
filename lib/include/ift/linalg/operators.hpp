// Linear operators (Spectra's operator idea): any class with VectorType, Scalar, rows(), cols()
// and a const apply(x, y) that writes y = A x into the caller's buffer. Solvers are templates on
// the operator, so there is no virtual call on the hot path; FunctionOperator is the small
// type-erased handle for apps that pick an operator at run time.
#pragma once

#include <concepts>
#include <functional>
#include <utility>

#include <Eigen/Core>

#include "ift/core.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

/// y = A x for a square or rectangular linear map. apply() must not allocate when y already
/// has the right size, and must accept y as a buffer holding arbitrary values.
template <class Op>
concept LinearOperator =
    HasVectorSpace<typename Op::VectorType> &&
    requires(const Op& op, const typename Op::VectorType& x, typename Op::VectorType& y) {
      typename Op::Scalar;
      { op.rows() } -> std::convertible_to<Index>;
      { op.cols() } -> std::convertible_to<Index>;
      op.apply(x, y);
    };

/// A dense matrix as an operator (GEMV). Holds a non-owning pointer: the matrix must outlive
/// the operator, which is why binding to a temporary is refused at compile time.
template <class S>
class DenseOperator {
 public:
  using VectorType = Vector<S>;
  using Scalar = S;

  explicit DenseOperator(const Matrix<S>& matrix) : matrix_(&matrix) {}
  explicit DenseOperator(Matrix<S>&&) = delete;

  Index rows() const { return matrix_->rows(); }
  Index cols() const { return matrix_->cols(); }
  void apply(const VectorType& x, VectorType& y) const { y.noalias() = (*matrix_) * x; }
  const Matrix<S>& matrix() const { return *matrix_; }

 private:
  const Matrix<S>* matrix_;
};

/// Non-owning view of another operator, for composing (damping, shifting) a heavy operator
/// without copying it. The viewed operator must outlive the view.
template <LinearOperator Op>
class OperatorRef {
 public:
  using VectorType = typename Op::VectorType;
  using Scalar = typename Op::Scalar;

  explicit OperatorRef(const Op& op) : op_(&op) {}
  explicit OperatorRef(Op&&) = delete;

  Index rows() const { return op_->rows(); }
  Index cols() const { return op_->cols(); }
  void apply(const VectorType& x, VectorType& y) const { op_->apply(x, y); }

 private:
  const Op* op_;
};

/// Type-erased square operator: a std::function plus its size. One indirect call per apply,
/// negligible next to an HVP; use it where the operator is chosen at run time.
template <class V>
class FunctionOperator {
 public:
  using VectorType = V;
  using Scalar = typename VectorSpace<V>::Scalar;
  using Function = std::function<void(const V&, V&)>;

  FunctionOperator(Index size, Function function) : size_(size), function_(std::move(function)) {
    require(size >= 0, "FunctionOperator: size must be >= 0");
    require(static_cast<bool>(function_), "FunctionOperator: function must not be empty");
  }
  /// Wraps any LinearOperator (copied into the closure) behind the type-erased handle.
  template <LinearOperator Op>
    requires std::same_as<typename Op::VectorType, V>
  static FunctionOperator from(Op op) {
    const Index n = op.rows();
    return FunctionOperator(n, [op = std::move(op)](const V& x, V& y) { op.apply(x, y); });
  }

  Index rows() const { return size_; }
  Index cols() const { return size_; }
  void apply(const V& x, V& y) const { function_(x, y); }

 private:
  Index size_;
  Function function_;
};

/// y = a·(A x) + b·x. With a = −1 and b = λ_max it maps the smallest eigenvalue of a symmetric A
/// to the largest of the shifted operator, which Lanczos and power iteration find far faster.
/// Holds the operator by value (operators here are light handles; pass an OperatorRef to
/// compose a heavy one without copying it).
template <LinearOperator Op>
class ScaledShiftedOperator {
 public:
  using VectorType = typename Op::VectorType;
  using Scalar = typename Op::Scalar;

  ScaledShiftedOperator(Op op, Scalar scale, Scalar shift)
      : op_(std::move(op)), scale_(scale), shift_(shift) {}

  Index rows() const { return op_.rows(); }
  Index cols() const { return op_.cols(); }
  void apply(const VectorType& x, VectorType& y) const {
    op_.apply(x, y);
    VectorSpace<VectorType>::axpby(shift_, x, scale_, y);
  }
  const Op& base() const { return op_; }

 private:
  Op op_;
  Scalar scale_;
  Scalar shift_;
};

/// y = (A + δ I) x: Tikhonov damping of a curvature operator. Holds the operator by value
/// (use OperatorRef to avoid copying a heavy one).
template <LinearOperator Op>
class DampedOperator {
 public:
  using VectorType = typename Op::VectorType;
  using Scalar = typename Op::Scalar;

  DampedOperator(Op op, Scalar damping) : op_(std::move(op)), damping_(damping) {}

  Index rows() const { return op_.rows(); }
  Index cols() const { return op_.cols(); }
  void apply(const VectorType& x, VectorType& y) const {
    op_.apply(x, y);
    VectorSpace<VectorType>::axpy(damping_, x, y);
  }
  Scalar damping() const { return damping_; }
  const Op& base() const { return op_; }

 private:
  Op op_;
  Scalar damping_;
};

/// Hands an operator on Eigen vectors to Spectra (perform_op on raw pointers). Spectra's
/// perform_op is const, so the two work vectors and the application counter are mutable:
/// one adapter must not be shared between threads. Holds a reference: `op` must outlive it.
template <LinearOperator Op>
  requires std::same_as<typename Op::VectorType, Vector<typename Op::Scalar>>
class SpectraAdapter {
 public:
  using Scalar = typename Op::Scalar;

  explicit SpectraAdapter(const Op& op)
      : op_(op), x_(Vector<Scalar>::Zero(op.cols())), y_(Vector<Scalar>::Zero(op.rows())) {}
  explicit SpectraAdapter(Op&&) = delete;

  Index rows() const { return op_.rows(); }
  Index cols() const { return op_.cols(); }
  void perform_op(const Scalar* x, Scalar* y) const {
    x_ = Eigen::Map<const Vector<Scalar>>(x, x_.size());
    op_.apply(x_, y_);
    Eigen::Map<Vector<Scalar>>(y, y_.size()) = y_;
    ++applications_;
  }
  /// Number of operator applications (HVPs) since construction or reset_count().
  Index applications() const { return applications_; }
  void reset_count() { applications_ = 0; }

 private:
  const Op& op_;
  mutable Vector<Scalar> x_;
  mutable Vector<Scalar> y_;
  mutable Index applications_ = 0;
};

/// Adds the relative residual ||H x − g|| / ||g|| of a closed-form solve (kfac, shine) to
/// `result`: one application of H, counted in result.hvps.
template <LinearOperator Op, class Result>
void add_relative_residual(const Op& H, const typename Op::VectorType& g, Result& result) {
  using V = typename Op::VectorType;
  using VS = VectorSpace<V>;
  V r = VS::zeros_like(g);
  H.apply(result.x, r);
  ++result.hvps;
  VS::axpy(typename VS::Scalar(-1), g, r);
  const double g_norm = static_cast<double>(VS::norm(g));
  result.relative_residual = g_norm > 0 ? static_cast<double>(VS::norm(r)) / g_norm : 0.0;
}

}  // namespace ift
