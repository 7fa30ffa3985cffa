#pragma once

#include "ift/core.hpp"
#include "ift/linalg/matrix_space.hpp"

namespace ift {

/// KFAC Kronecker factors of one layer, on the matrices that go with the vector type V
/// (MatrixSpace<V>: Eigen matrices for Eigen vectors, 2-D tensors for flat tensors). The layer's
/// parameters are the column-major vec of an (in+1) × out matrix M starting at `offset`
/// (inputs with the bias row last), and its curvature block is approximated by G ⊗ A, acting as
/// vec(M) ↦ vec(A M G). A backend that keeps the bias apart (LibTorch) gives its first entry in
/// `bias_offset`: then M(j, o) is at offset + j + in·o for j < in and M(in, o) at
/// bias_offset + o.
template <class V>
struct KfacBlock {
  using MatrixType = typename MatrixSpace<V>::MatrixType;

  Index offset = 0;  ///< first parameter of the block
  MatrixType A;  ///< (in+1) × (in+1): E[ã ãᵀ], layer inputs with the bias 1 appended; PSD.
  MatrixType G;  ///< out × out: E[Jᵀ H_out J], output-side curvature of the pre-activations; PSD.
  Index bias_offset = -1;  ///< >= 0: the bias row of M lies apart, from here on

  Index inputs() const { return MatrixSpace<V>::rows(A); }
  Index outputs() const { return MatrixSpace<V>::rows(G); }
  Index size() const { return inputs() * outputs(); }
  BlockLayout layout() const { return {offset, inputs(), outputs(), bias_offset}; }
};

/// The Eigen models' blocks.
template <class S>
using KroneckerBlock = KfacBlock<Vector<S>>;
/// The models' name for the same thing.
template <class S>
using KroneckerFactors = KroneckerBlock<S>;

}  // namespace ift
