// The matrix side of the vector-space seam: the few dense-matrix operations that an algorithm
// on small per-layer matrices needs (KFAC's inverse, linalg/kfac.hpp), for the matrices that go
// with a vector type V. Written once against MatrixSpace<V>, such an algorithm runs on Eigen
// matrices here and on 2-D LibTorch tensors on the tensors' device (lib/torch's
// tensor_space.hpp), so the eigendecompositions and products run where the vectors live.
#pragma once

#include <cmath>
#include <concepts>
#include <limits>

#include <Eigen/Eigenvalues>

#include "ift/core.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

/// Where the entries of a rows × cols matrix M lie in a flat vector. M(j, o) for
/// j < rows − 1 is at offset + j + stride·o (stride = rows, or rows − 1 when the last row lies
/// apart); the last row is at offset + (rows − 1) + rows·o as well, or, when
/// last_row_offset >= 0, at last_row_offset + o. (A dense layer's (in+1) × out parameter matrix
/// with its bias row last: LibTorch keeps the bias as a tensor of its own.)
struct BlockLayout {
  Index offset = 0;
  Index rows = 0;
  Index cols = 0;
  Index last_row_offset = -1;

  bool last_row_apart() const { return last_row_offset >= 0; }
  /// Entries of M stored from `offset` on (all of them unless the last row lies apart).
  Index leading_size() const { return (last_row_apart() ? rows - 1 : rows) * cols; }
};

/// Dense matrices that go with the vectors V. Specialise next to VectorSpace<V>.
///
/// Contract for a specialisation (all static; "Matrix" is MatrixType):
///   using VectorType = V; using MatrixType = ...; using Scalar = VectorSpace<V>::Scalar;
///   Index  rows(const Matrix& m); Index cols(const Matrix& m)
///   Matrix zeros(const Matrix& like, Index rows, Index cols)   same scalar type and device
///   bool   all_finite(const Matrix& m)
///   double epsilon(const Matrix& m)            machine epsilon of m's scalar type
///   bool   symmetric_eigen(const Matrix& A, V& values, Matrix& vectors)
///          A = vectors · diag(values) · vectorsᵀ for symmetric A (its lower triangle is read);
///          false when the decomposition failed
///   Matrix outer(const V& a, const V& b)       a bᵀ
///   void   add_constant(V& x, double c)        x_i += c
///   void   add_constant(Matrix& m, double c)   m_ij += c
///   double min(const Matrix& m); double max_abs(const Matrix& m)
///   void   reciprocal(Matrix& m)               m_ij = 1 / m_ij
///   void   power(Matrix& m, double p)          m_ij = m_ij^p (m_ij > 0)
///   void   multiply_elements(Matrix& m, const Matrix& by)     m_ij *= by_ij
///   void   add(Matrix& m, const Matrix& other)                 m_ij += other_ij
///   Matrix copy(const Matrix& m)               a new matrix with m's entries (no shared storage)
///   void   product(const Matrix& a, bool transpose_a, const Matrix& b, bool transpose_b,
///                  Matrix& out)                out = op(a) op(b); out must not alias a or b;
///                                              no allocation when out has the result's size
///   void   read_block(const V& x, const BlockLayout& l, Matrix& m)   m = the block (a copy)
///   void   write_block(const Matrix& m, const BlockLayout& l, V& y, bool accumulate)
///                                              the block of y = m (or += m)
template <class V>
struct MatrixSpace;

/// Compile-time check that MatrixSpace<V> is complete.
template <class V>
concept HasMatrixSpace =
    HasVectorSpace<V> &&
    requires(const V& cx, V& x, const typename MatrixSpace<V>::MatrixType& cm,
             typename MatrixSpace<V>::MatrixType& m, const BlockLayout& layout) {
      typename MatrixSpace<V>::MatrixType;
      { MatrixSpace<V>::rows(cm) } -> std::convertible_to<Index>;
      { MatrixSpace<V>::cols(cm) } -> std::convertible_to<Index>;
      { MatrixSpace<V>::zeros(cm, Index(1), Index(1)) } -> std::same_as<typename MatrixSpace<V>::MatrixType>;
      { MatrixSpace<V>::all_finite(cm) } -> std::convertible_to<bool>;
      { MatrixSpace<V>::epsilon(cm) } -> std::convertible_to<double>;
      { MatrixSpace<V>::symmetric_eigen(cm, x, m) } -> std::convertible_to<bool>;
      { MatrixSpace<V>::outer(cx, cx) } -> std::same_as<typename MatrixSpace<V>::MatrixType>;
      MatrixSpace<V>::add_constant(x, 1.0);
      MatrixSpace<V>::add_constant(m, 1.0);
      { MatrixSpace<V>::min(cm) } -> std::convertible_to<double>;
      { MatrixSpace<V>::max_abs(cm) } -> std::convertible_to<double>;
      MatrixSpace<V>::reciprocal(m);
      MatrixSpace<V>::power(m, 0.5);
      MatrixSpace<V>::multiply_elements(m, cm);
      MatrixSpace<V>::add(m, cm);
      { MatrixSpace<V>::copy(cm) } -> std::same_as<typename MatrixSpace<V>::MatrixType>;
      MatrixSpace<V>::product(cm, true, cm, false, m);
      MatrixSpace<V>::read_block(cx, layout, m);
      MatrixSpace<V>::write_block(cm, layout, x, true);
    };

/// Eigen matrices with Eigen column vectors.
template <class S>
struct MatrixSpace<Vector<S>> {
  using VectorType = Vector<S>;
  using MatrixType = Matrix<S>;
  using Scalar = S;

  static Index rows(const MatrixType& m) { return m.rows(); }
  static Index cols(const MatrixType& m) { return m.cols(); }
  static MatrixType zeros(const MatrixType& /*like*/, Index rows, Index cols) {
    return MatrixType::Zero(rows, cols);
  }
  static bool all_finite(const MatrixType& m) { return m.allFinite(); }
  static double epsilon(const MatrixType& /*m*/) {
    return static_cast<double>(std::numeric_limits<S>::epsilon());
  }
  static bool symmetric_eigen(const MatrixType& A, VectorType& values, MatrixType& vectors) {
    Eigen::SelfAdjointEigenSolver<MatrixType> eigen(A);
    if (eigen.info() != Eigen::Success) return false;
    values = eigen.eigenvalues();
    vectors = eigen.eigenvectors();
    return true;
  }
  static MatrixType outer(const VectorType& a, const VectorType& b) { return a * b.transpose(); }
  static void add_constant(VectorType& x, double c) { x.array() += static_cast<S>(c); }
  static void add_constant(MatrixType& m, double c) { m.array() += static_cast<S>(c); }
  static double min(const MatrixType& m) { return static_cast<double>(m.minCoeff()); }
  static double max_abs(const MatrixType& m) { return static_cast<double>(m.cwiseAbs().maxCoeff()); }
  static void reciprocal(MatrixType& m) { m = m.cwiseInverse(); }
  static void power(MatrixType& m, double p) { m = m.array().pow(static_cast<S>(p)).matrix(); }
  static void multiply_elements(MatrixType& m, const MatrixType& by) { m.array() *= by.array(); }
  static void add(MatrixType& m, const MatrixType& other) { m += other; }
  static MatrixType copy(const MatrixType& m) { return m; }
  static void product(const MatrixType& a, bool transpose_a, const MatrixType& b,
                      bool transpose_b, MatrixType& out) {
    if (transpose_a && transpose_b) {
      out.noalias() = a.transpose() * b.transpose();
    } else if (transpose_a) {
      out.noalias() = a.transpose() * b;
    } else if (transpose_b) {
      out.noalias() = a * b.transpose();
    } else {
      out.noalias() = a * b;
    }
  }
  static void read_block(const VectorType& x, const BlockLayout& l, MatrixType& m) {
    m.resize(l.rows, l.cols);
    if (!l.last_row_apart()) {
      m = Eigen::Map<const MatrixType>(x.data() + l.offset, l.rows, l.cols);
    } else {
      m.topRows(l.rows - 1) = Eigen::Map<const MatrixType>(x.data() + l.offset, l.rows - 1, l.cols);
      m.row(l.rows - 1) = x.segment(l.last_row_offset, l.cols).transpose();
    }
  }
  static void write_block(const MatrixType& m, const BlockLayout& l, VectorType& y, bool accumulate) {
    const Index leading = l.last_row_apart() ? l.rows - 1 : l.rows;
    Eigen::Map<MatrixType> Y(y.data() + l.offset, leading, l.cols);
    if (accumulate) {
      Y += m.topRows(leading);
    } else {
      Y = m.topRows(leading);
    }
    if (l.last_row_apart()) {
      auto last = y.segment(l.last_row_offset, l.cols);
      if (accumulate) {
        last += m.row(l.rows - 1).transpose();
      } else {
        last = m.row(l.rows - 1).transpose();
      }
    }
  }
};

static_assert(HasMatrixSpace<Vector<double>> && HasMatrixSpace<Vector<float>>);

}  // namespace ift
