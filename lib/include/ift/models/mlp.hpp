// Multilayer perceptron with exact first and second derivatives.
//
// Layer l maps A_{l−1} (n × in) to Z_l = A_{l−1} W_l + 1 b_lᵀ; hidden layers apply σ elementwise.
// Parameter layout: layer l owns the column-major vec of the (in+1) × out matrix [W_l; b_lᵀ]
// (bias row last) starting at offset(l) — the layout KFAC's G ⊗ A blocks assume.
// Output: softmax cross-entropy (mean over rows) or squared error (1/2n) Σ ||z − t||².
// HVPs use Pearlmutter's R-operator on the cached forward and backward passes; Gauss-Newton
// products are Jᵀ H_out J v; the dense Hessian is built column by column from HVPs.
// Speed (issue 15): every product is GEMMs into buffers the Cache keeps (ift::gemm: split over
// the OpenMP pool, allocation-free), plus one fused elementwise pass per layer and step (bias,
// σ, σ', σ'' together; tanh vectorised in double too: ift::TanhOp); the first layer's input
// gradient is never formed.
#pragma once

#include <string>
#include <vector>

#include "ift/core.hpp"
#include "ift/dataset.hpp"
#include "ift/models/kronecker_factors.hpp"
#include "ift/models/model.hpp"

namespace ift {

enum class Activation { Tanh, Sigmoid, Softplus, Relu };
enum class OutputLoss { SoftmaxCrossEntropy, SquaredError };

Activation parse_activation(const std::string& name);
const char* to_string(Activation a);

template <class S>
class Mlp {
 public:
  using Scalar = S;

  struct Cache {
    std::vector<Matrix<S>> A;   ///< A[l]: n × width of layer l's output after σ (hidden layers).
    std::vector<Matrix<S>> D1;  ///< σ'(Z_l) for hidden layers.
    std::vector<Matrix<S>> D2;  ///< σ''(Z_l) for hidden layers.
    std::vector<Matrix<S>> E;   ///< E[l] = δ_{l+1} W_{l+1}ᵀ: backprop before the σ' factor.
    std::vector<Matrix<S>> delta;  ///< δ_l = ∂L/∂Z_l (mean loss).
    Matrix<S> out;              ///< n × k: probabilities (cross-entropy) or outputs (squared error).
    // Scratch for R-operator passes, reused across calls (sized once: no allocation per call).
    std::vector<Matrix<S>> RZ, Rdelta;
    Matrix<S> work;
    Vector<S> row_scale;  ///< fisher_product's per-example s_i.
    // hvp_block scratch, sized for the largest chunk seen (a smaller chunk uses the leading
    // columns, so no call after the first allocates): R{Z_l} and R{δ_l} of the chunk's
    // directions side by side (n × c·width per layer), and flat buffers for the chunk's weight
    // blocks packed side by side / stacked and for the weight products.
    std::vector<Matrix<S>> RZ_block, Rdelta_block;
    Vector<S> V_cols, V_rows, product_cols, product_rows;
    bool has_backward = false;
  };

  /// widths = {inputs, hidden..., outputs}; at least two entries.
  Mlp(std::vector<Index> widths, Activation activation, OutputLoss loss);

  Index num_layers() const { return static_cast<Index>(widths_.size()) - 1; }
  Index num_params() const { return offsets_.back(); }
  Index offset(Index layer) const { return offsets_[static_cast<std::size_t>(layer)]; }
  const std::vector<Index>& widths() const { return widths_; }
  Activation activation() const { return activation_; }
  OutputLoss output_loss() const { return loss_; }

  /// Glorot-uniform weights, zero biases, from a seeded generator (deterministic).
  Vector<S> initial_weights(std::uint64_t seed) const;

  /// Mean loss; fills the forward (and, always, the backward) caches; optional gradient.
  S evaluate(const Dataset<S>& data, const Vector<S>& w, Cache& cache, Vector<S>* gradient) const;
  /// ∇ of the mean loss from a cache filled by evaluate() on `data` (the weight-gradient GEMMs
  /// that evaluate() skips when called without a gradient).
  void gradient_from_cache(const Dataset<S>& data, const Cache& cache, Vector<S>& gradient) const;
  void hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
           Vector<S>& out) const;
  /// out.col(j) = H V.col(j): the R-operator for a block of directions at once (batched
  /// R-forward / R-backward: the products with the layer inputs, the δ_l Vᵀ and R{A}ᵀ δ_l terms
  /// are GEMMs |chunk| times wider), in chunks of at most `chunk` columns (0: block_chunk(n)).
  void hvp_block(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Matrix<S>& V,
                 Matrix<S>& out, Index chunk = 0) const;
  /// Directions per hvp_block pass on n rows: n·chunk·(widest layer) ≤ 2^23 scalars per buffer.
  Index block_chunk(Index n) const;
  void gauss_newton_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                            const Vector<S>& v, Vector<S>& out) const;
  void fisher_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
                      Vector<S>& out) const;
  /// Dense Hessian, one HVP per column, symmetrised.
  void hessian(const Dataset<S>& data, const Vector<S>& w, Cache& cache, Matrix<S>& H) const;
  /// Dense Gauss-Newton matrix, one product per column.
  void gauss_newton_matrix(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                           Matrix<S>& G) const;
  /// KFAC factors per layer with exact output-side curvature (G_l = E[J_lᵀ H_out J_l], KFLR).
  std::vector<KroneckerFactors<S>> kfac_factors(const Dataset<S>& data, const Vector<S>& w,
                                                Cache& cache) const;
  /// EKFAC's eigenvalues of layer `block` (ModelWithKfacEigenvalues) for the Gauss-Newton
  /// block that kfac_factors approximates, G_l = mean_i Σ_c (δ_ic ⊗ ã_i)(δ_ic ⊗ ã_i)ᵀ (δ_ic: column
  /// c of L_i backpropagated to the layer's pre-activations): out(j, o) =
  /// mean_i Σ_c (q_oᵀ δ_ic)² (u_jᵀ ã_i)², from the same backpropagated columns as G_l.
  void kfac_corrected_eigenvalues(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                  std::size_t block, const Matrix<S>& Ua, const Matrix<S>& Ug,
                                  Matrix<S>& out) const;
  double accuracy(const Dataset<S>& data, const Cache& cache) const;

 private:
  void check_data(const Dataset<S>& data, const Vector<S>& w) const;
  const Matrix<S>& input(const Dataset<S>& data, const Cache& cache, Index layer) const;
  /// Ã_l = [layer l's inputs, 1] (n × (in+1)): the rows KFAC's A_l and EKFAC's projections use.
  Matrix<S> augmented_input(const Dataset<S>& data, const Cache& cache, Index layer) const;
  /// Each column c of L_i (H_out,i = L_i L_iᵀ) backpropagated to the pre-activations of layers
  /// `lowest` … L−1: calls use(l, Δ_l) with Δ_l (n × width_{l+1}), for each c from the top layer
  /// down.
  template <class Use>
  void backpropagate_output_factors(const Vector<S>& w, const Cache& cache, Index n, Index lowest,
                                    Use&& use) const;
  /// R{Z_l} for every layer given direction v (R-operator forward pass).
  void r_forward(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v) const;
  /// R{δ_L} = H_out R{Z_L} / n into cache.Rdelta.back().
  void output_curvature(Cache& cache) const;
  /// Backprop of output-side gradients `delta_L` through the linearised network (no σ'' terms),
  /// accumulating Jᵀ-products into out (layout of w).
  void linear_backward(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                       std::vector<Matrix<S>>& deltas, Vector<S>& out) const;

  std::vector<Index> widths_;
  std::vector<Index> offsets_;
  Activation activation_;
  OutputLoss loss_;
};

static_assert(FullModel<Mlp<float>> && FullModel<Mlp<double>>,
              "Mlp must provide every model capability (ift/models/model.hpp)");
static_assert(ModelWithBlockHvp<Mlp<float>> && ModelWithBlockHvp<Mlp<double>>,
              "Mlp provides the block HVP (nystrom's batched R-operator)");
static_assert(ModelWithKfacEigenvalues<Mlp<float>> && ModelWithKfacEigenvalues<Mlp<double>>,
              "Mlp provides EKFAC's eigenvalues");

}  // namespace ift
