#pragma once

#include "ift/core.hpp"

namespace ift {

/// KFAC Kronecker factors of one layer. The layer's parameters are the column-major vec of an
/// (in+1) × out matrix M starting at `offset` (inputs with the bias row last), and its curvature
/// block is approximated by G ⊗ A, acting as vec(M) ↦ vec(A M G).
template <class S>
struct KroneckerFactors {
  Index offset = 0;
  Matrix<S> A;  ///< (in+1) × (in+1): E[ã ãᵀ], layer inputs with the bias 1 appended.
  Matrix<S> G;  ///< out × out: E[Jᵀ H_out J], output-side curvature of the layer's pre-activations.
};

}  // namespace ift
