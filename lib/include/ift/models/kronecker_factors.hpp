#pragma once

#include "ift/core.hpp"

namespace ift {

/// KFAC Kronecker factors of one layer. The layer's parameters are the column-major vec of an
/// (in+1) × out matrix M starting at `offset` (inputs with the bias row last), and its curvature
/// block is approximated by G ⊗ A, acting as vec(M) ↦ vec(A M G).
template <class S>
struct KroneckerBlock {
  Index offset = 0;  ///< first parameter of the block
  Matrix<S> A;  ///< (in+1) × (in+1): E[ã ãᵀ], layer inputs with the bias 1 appended; PSD.
  Matrix<S> G;  ///< out × out: E[Jᵀ H_out J], output-side curvature of the pre-activations; PSD.

  Index inputs() const { return A.rows(); }
  Index outputs() const { return G.rows(); }
  Index size() const { return A.rows() * G.rows(); }
};

/// The models' name for the same thing.
template <class S>
using KroneckerFactors = KroneckerBlock<S>;

}  // namespace ift
