#include "ift/models/mlp.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "ift/linalg/parallel_gemm.hpp"
#include "ift/models/fast_math.hpp"

namespace ift {

Activation parse_activation(const std::string& name) {
  if (name == "tanh") return Activation::Tanh;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "softplus") return Activation::Softplus;
  if (name == "relu") return Activation::Relu;
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected tanh, sigmoid, softplus or relu)");
}

const char* to_string(Activation a) {
  switch (a) {
    case Activation::Tanh:
      return "tanh";
    case Activation::Sigmoid:
      return "sigmoid";
    case Activation::Softplus:
      return "softplus";
    case Activation::Relu:
      return "relu";
  }
  return "?";
}

namespace {

/// f(j) for every column j of a rows × cols matrix, over the OpenMP pool when large enough (the
/// elementwise passes are column-wise so that each column's operands stay in L1 between the
/// fused steps).
template <class F>
void for_columns(Index rows, Index cols, F&& f) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
#endif
  for (Index j = 0; j < cols; ++j) f(j);
}

/// In place of Z (the pre-bias GEMM output) → A = σ(Z + b), with D1 = σ'(Z + b) and
/// D2 = σ''(Z + b): one fused pass, column by column.
template <class S, class Bias>
void activate(Activation act, Matrix<S>& A, const Bias& b, Matrix<S>& D1, Matrix<S>& D2) {
  const Index n = A.rows(), m = A.cols();
  D1.resize(n, m);
  D2.resize(n, m);
  for_columns(n, m, [&](Index j) {
    auto a = A.col(j).array();
    auto d1 = D1.col(j).array();
    auto d2 = D2.col(j).array();
    const S bj = b(j);
    switch (act) {
      case Activation::Tanh:
        a = (a + bj).unaryExpr(TanhOp<S>{});
        d1 = S(1) - a.square();
        d2 = S(-2) * a * d1;
        break;
      case Activation::Sigmoid:
        a = S(1) / (S(1) + (-(a + bj)).exp());
        d1 = a * (S(1) - a);
        d2 = d1 * (S(1) - S(2) * a);
        break;
      case Activation::Softplus:
        a += bj;
        d1 = S(1) / (S(1) + (-a).exp());
        d2 = d1 * (S(1) - d1);
        a = a.max(S(0)) + (-a.abs()).exp().log1p();
        break;
      case Activation::Relu:
        a += bj;
        d1 = (a > S(0)).template cast<S>();
        d2.setZero();
        a = a.max(S(0));
        break;
    }
  });
}

/// M.rowwise() += b over the pool.
template <class S, class M, class Bias>
void add_bias(M&& Z, const Bias& b) {
  for_columns(Z.rows(), Z.cols(), [&](Index j) { Z.col(j).array() += b(j); });
}

/// Rd = H_out RZ / n for one direction's block: (diag p − p pᵀ) r = p ⊙ (r − pᵀ r) per row
/// (cross-entropy) or r (squared error).
template <class S, class In, class Out>
void output_curvature_block(OutputLoss loss, const Matrix<S>& probs, const In& RZ, Out&& Rd) {
  const Index n = RZ.rows();
  const S inv_n = S(1) / S(n);
  if (loss == OutputLoss::SoftmaxCrossEntropy) {
    for (Index i = 0; i < n; ++i) {
      const S mean = probs.row(i).dot(RZ.row(i));
      Rd.row(i) = probs.row(i).cwiseProduct((RZ.row(i).array() - mean).matrix()) * inv_n;
    }
  } else {
    Rd = RZ * inv_n;
  }
}

}  // namespace

template <class S>
Mlp<S>::Mlp(std::vector<Index> widths, Activation activation, OutputLoss loss)
    : widths_(std::move(widths)), activation_(activation), loss_(loss) {
  require(widths_.size() >= 2, "Mlp: widths needs at least an input and an output width");
  for (Index w : widths_) require(w > 0, "Mlp: every layer width must be positive");
  require(loss_ != OutputLoss::SoftmaxCrossEntropy || widths_.back() >= 2,
          "Mlp: softmax cross-entropy needs at least two outputs");
  offsets_.assign(1, 0);
  for (std::size_t l = 0; l + 1 < widths_.size(); ++l)
    offsets_.push_back(offsets_.back() + (widths_[l] + 1) * widths_[l + 1]);
}

template <class S>
Vector<S> Mlp<S>::initial_weights(std::uint64_t seed) const {
  std::mt19937_64 gen(seed);
  Vector<S> w = Vector<S>::Zero(num_params());
  for (Index l = 0; l < num_layers(); ++l) {
    const Index in = widths_[l], out = widths_[l + 1];
    const double limit = std::sqrt(6.0 / static_cast<double>(in + out));
    Eigen::Map<Matrix<S>> W(w.data() + offset(l), in + 1, out);
    for (Index o = 0; o < out; ++o)
      for (Index j = 0; j < in; ++j) {
        const double u = static_cast<double>(gen() >> 11) * 0x1.0p-53;  // uniform [0, 1)
        W(j, o) = static_cast<S>((2 * u - 1) * limit);
      }
  }
  return w;
}

template <class S>
void Mlp<S>::check_data(const Dataset<S>& data, const Vector<S>& w) const {
  require(data.num_features() == widths_.front(), [&] {
    return std::string("Mlp: data has " + std::to_string(data.num_features()) +
                       " features, the network expects " + std::to_string(widths_.front()));
  });
  require(w.size() == num_params(), [&] {
    return std::string("Mlp: w has " + std::to_string(w.size()) + " entries, expected " +
                       std::to_string(num_params()));
  });
  require(data.size() > 0, "Mlp: empty data set");
  if (loss_ == OutputLoss::SoftmaxCrossEntropy) {
    require(data.labels.size() == data.size(), "Mlp: cross-entropy needs one label per row");
    require(data.labels.minCoeff() >= 0 && data.labels.maxCoeff() < widths_.back(), [&] {
      return "Mlp: " + label_range_error(data.labels, widths_.back());
    });
  } else {
    require(data.targets.rows() == data.size() && data.targets.cols() == widths_.back(), [&] {
      return std::string("Mlp: squared error needs an n × " + std::to_string(widths_.back()) +
                         " target matrix");
    });
  }
}

template <class S>
const Matrix<S>& Mlp<S>::input(const Dataset<S>& data, const Cache& cache, Index layer) const {
  return layer == 0 ? data.X : cache.A[static_cast<std::size_t>(layer - 1)];
}

template <class S>
S Mlp<S>::evaluate(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                   Vector<S>* gradient) const {
  check_data(data, w);
  const Index L = num_layers(), n = data.size();
  const auto hidden = static_cast<std::size_t>(L - 1);
  cache.A.resize(hidden);
  cache.D1.resize(hidden);
  cache.D2.resize(hidden);
  cache.E.resize(hidden);
  cache.delta.resize(static_cast<std::size_t>(L));
  for (Index l = 0; l < L; ++l) {
    const Index in = widths_[l], out = widths_[l + 1];
    Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, out);
    // Z_l = A_{l−1} W_l straight into the buffer that keeps σ(Z_l + b) (or the logits).
    const auto h = static_cast<std::size_t>(l);
    Matrix<S>& Z = l + 1 < L ? cache.A[h] : cache.out;
    Z.resize(n, out);
    gemm(Z, input(data, cache, l), W.topRows(in));
    if (l + 1 < L)
      activate(activation_, Z, W.row(in), cache.D1[h], cache.D2[h]);
    else
      add_bias<S>(Z, W.row(in));
  }
  // Output layer: loss and δ_L = ∂L/∂Z_L of the mean loss.
  double total = 0;
  Matrix<S>& delta_out = cache.delta.back();
  delta_out.resize(n, widths_.back());
  const S inv_n = S(1) / S(n);
  if (loss_ == OutputLoss::SoftmaxCrossEntropy) {
    for (Index i = 0; i < n; ++i) {
      const S zmax = cache.out.row(i).maxCoeff();
      const Index y = data.labels(i);
      const S shifted_true_logit = cache.out(i, y) - zmax;
      cache.out.row(i).array() = (cache.out.row(i).array() - zmax).exp();
      const S sum = cache.out.row(i).sum();
      total += static_cast<double>(std::log(sum) - shifted_true_logit);
      cache.out.row(i) /= sum;
      delta_out.row(i) = cache.out.row(i) * inv_n;
      delta_out(i, y) -= inv_n;
    }
  } else {
    delta_out = cache.out - data.targets;
    total = 0.5 * static_cast<double>(delta_out.squaredNorm());
    delta_out *= inv_n;
  }
  // Backward pass for δ_l and E_l (always: HVPs reuse them); the weight gradients, 40% of a
  // gradient's flops on a deep net, only when asked for (gradient_from_cache() can add them later).
  // No input gradient for the first layer.
  for (Index l = L - 1; l > 0; --l) {
    const Index in = widths_[l], out = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, out);
    Matrix<S>& E = cache.E[h - 1];
    Matrix<S>& delta = cache.delta[h - 1];
    E.resize(n, in);
    delta.resize(n, in);
    gemm(E, cache.delta[h], W.topRows(in).transpose());
    const Matrix<S>& D1 = cache.D1[h - 1];
    for_columns(n, in, [&](Index j) { delta.col(j) = E.col(j).cwiseProduct(D1.col(j)); });
  }
  cache.has_backward = true;
  if (gradient) gradient_from_cache(data, cache, *gradient);
  return static_cast<S>(total / static_cast<double>(n));
}

template <class S>
void Mlp<S>::gradient_from_cache(const Dataset<S>& data, const Cache& cache,
                                 Vector<S>& gradient) const {
  require(cache.has_backward && cache.out.rows() == data.size() &&
              cache.delta.size() == static_cast<std::size_t>(num_layers()),
          "Mlp::gradient_from_cache: call evaluate() on this data first");
  gradient.resize(num_params());
  for (Index l = 0; l < num_layers(); ++l) {
    const Index in = widths_[l], out = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<Matrix<S>> G(gradient.data() + offset(l), in + 1, out);
    gemm(G.topRows(in), input(data, cache, l).transpose(), cache.delta[h]);
    G.row(in) = cache.delta[h].colwise().sum();
  }
}

template <class S>
void Mlp<S>::r_forward(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                       const Vector<S>& v) const {
  require(cache.has_backward && cache.out.rows() == data.size(),
          "Mlp: call evaluate() at this w before second-order products");
  require(v.size() == num_params(), "Mlp: direction v has the wrong size");
  const Index L = num_layers(), n = data.size();
  cache.RZ.resize(static_cast<std::size_t>(L));
  cache.Rdelta.resize(static_cast<std::size_t>(L));
  for (Index l = 0; l < L; ++l) {
    const Index in = widths_[l], out = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, out);
    Eigen::Map<const Matrix<S>> V(v.data() + offset(l), in + 1, out);
    Matrix<S>& RZ = cache.RZ[h];
    RZ.resize(n, out);
    gemm(RZ, input(data, cache, l), V.topRows(in));
    add_bias<S>(RZ, V.row(in));
    if (l > 0) {
      // R{A_{l−1}} = σ'(Z_{l−1}) ⊙ R{Z_{l−1}}, kept in Rdelta[l−1] (free until the backward pass
      // overwrites it) so that hvp() does not recompute it.
      Matrix<S>& RA = cache.Rdelta[h - 1];
      RA.resize(n, in);
      const Matrix<S>& D1 = cache.D1[h - 1];
      const Matrix<S>& RZ_below = cache.RZ[h - 1];
      for_columns(n, in, [&](Index j) { RA.col(j) = D1.col(j).cwiseProduct(RZ_below.col(j)); });
      gemm(RZ, RA, W.topRows(in), /*accumulate=*/true);
    }
  }
}

template <class S>
void Mlp<S>::output_curvature(Cache& cache) const {
  cache.Rdelta.resize(static_cast<std::size_t>(num_layers()));
  cache.Rdelta.back().resize(cache.out.rows(), cache.RZ.back().cols());
  output_curvature_block<S>(loss_, cache.out, cache.RZ.back(), cache.Rdelta.back());
}

template <class S>
void Mlp<S>::hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
                 Vector<S>& out) const {
  check_data(data, w);
  r_forward(data, w, cache, v);
  output_curvature(cache);
  const Index L = num_layers(), n = data.size();
  out.resize(num_params());
  for (Index l = L - 1; l >= 0; --l) {
    const Index in = widths_[l], width = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<Matrix<S>> O(out.data() + offset(l), in + 1, width);
    gemm(O.topRows(in), input(data, cache, l).transpose(), cache.Rdelta[h]);
    O.row(in) = cache.Rdelta[h].colwise().sum();
    if (l > 0) {
      // R{A_{l−1}}ᵀ δ_l: the input of this layer moves with v too (R{A_{l−1}} from r_forward,
      // still in Rdelta[l−1]; overwritten just below).
      gemm(O.topRows(in), cache.Rdelta[h - 1].transpose(), cache.delta[h], true);
      Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, width);
      Eigen::Map<const Matrix<S>> V(v.data() + offset(l), in + 1, width);
      // R{δ_{l−1}} = (R{δ_l} Wᵀ + δ_l Vᵀ) ⊙ σ' + (δ_l Wᵀ) ⊙ σ'' ⊙ R{Z_{l−1}}.
      Matrix<S>& Rd = cache.Rdelta[h - 1];
      Rd.resize(n, in);
      gemm(Rd, cache.Rdelta[h], W.topRows(in).transpose());
      gemm(Rd, cache.delta[h], V.topRows(in).transpose(), true);
      const Matrix<S>&D1 = cache.D1[h - 1], &D2 = cache.D2[h - 1], &E = cache.E[h - 1],
      &RZ = cache.RZ[h - 1];
      for_columns(n, in, [&](Index j) {
        Rd.col(j).array() = Rd.col(j).array() * D1.col(j).array() +
                            E.col(j).array() * D2.col(j).array() * RZ.col(j).array();
      });
    }
  }
}

template <class S>
Index Mlp<S>::block_chunk(Index n) const {
  const Index widest = *std::max_element(widths_.begin() + 1, widths_.end());
  return std::max<Index>(1, (Index(1) << 23) / std::max<Index>(1, n * widest));
}

namespace {

/// At least rows × cols (same rows, at least cols columns): keeps a larger buffer.
template <class S>
void ensure_columns(Matrix<S>& M, Index rows, Index cols) {
  if (M.rows() != rows || M.cols() < cols) M.resize(rows, cols);
}

/// A rows × cols matrix view of a flat buffer grown when needed.
template <class S>
Eigen::Map<Matrix<S>> scratch(Vector<S>& buffer, Index rows, Index cols) {
  if (buffer.size() < rows * cols) buffer.resize(rows * cols);
  return Eigen::Map<Matrix<S>>(buffer.data(), rows, cols);
}

}  // namespace

template <class S>
void Mlp<S>::hvp_block(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                       const Matrix<S>& V, Matrix<S>& out, Index chunk) const {
  check_data(data, w);
  require(cache.has_backward && cache.out.rows() == data.size(),
          "Mlp::hvp_block: call evaluate() at this w before second-order products");
  require(V.rows() == num_params(), "Mlp::hvp_block: V has the wrong height");
  const Index L = num_layers(), n = data.size(), D = num_params();
  out.resize(D, V.cols());
  if (V.cols() == 0) return;
  if (chunk <= 0) chunk = block_chunk(n);
  chunk = std::min(chunk, V.cols());
  auto& RZb = cache.RZ_block;
  auto& Rdb = cache.Rdelta_block;
  RZb.resize(static_cast<std::size_t>(L));
  Rdb.resize(static_cast<std::size_t>(L));
  for (Index l = 0; l < L; ++l) {
    ensure_columns(RZb[static_cast<std::size_t>(l)], n, chunk * widths_[l + 1]);
    ensure_columns(Rdb[static_cast<std::size_t>(l)], n, chunk * widths_[l + 1]);
  }
  for (Index first = 0; first < V.cols(); first += chunk) {
    const Index c = std::min(chunk, V.cols() - first);
    // Layer l's (in+1) × width block of direction j (column first + j of V / out).
    const auto v_block = [&](Index j, Index l) {
      return Eigen::Map<const Matrix<S>>(V.col(first + j).data() + offset(l), widths_[l] + 1,
                                         widths_[l + 1]);
    };
    const auto o_block = [&](Index j, Index l) {
      return Eigen::Map<Matrix<S>>(out.col(first + j).data() + offset(l), widths_[l] + 1,
                                   widths_[l + 1]);
    };
    // R{Z_l} / R{δ_l} of the chunk: the leading c·width columns of the layer's buffers.
    const auto RZ_of = [&](Index l) {
      return RZb[static_cast<std::size_t>(l)].leftCols(c * widths_[l + 1]);
    };
    const auto Rd_of = [&](Index l) {
      return Rdb[static_cast<std::size_t>(l)].leftCols(c * widths_[l + 1]);
    };
    // R-forward: R{Z_l} for the c directions side by side (n × c·width).
    for (Index l = 0; l < L; ++l) {
      const Index in = widths_[l], width = widths_[l + 1];
      Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, width);
      auto V_cols = scratch(cache.V_cols, in, c * width);
      for (Index j = 0; j < c; ++j) V_cols.middleCols(j * width, width) = v_block(j, l).topRows(in);
      auto RZ = RZ_of(l);
      gemm(RZ, input(data, cache, l), V_cols);  // A_{l−1} [V_1 … V_c]: one GEMM
      for (Index j = 0; j < c; ++j)
        add_bias<S>(RZ.middleCols(j * width, width), v_block(j, l).row(in));
      if (l > 0) {
        auto RA = Rd_of(l - 1);  // R{A_{l−1}} per direction, until the backward pass
        const Matrix<S>& D1 = cache.D1[static_cast<std::size_t>(l - 1)];
        const auto RZ_below = RZ_of(l - 1);
        for_columns(n, c * in, [&](Index col) {
          RA.col(col) = D1.col(col % in).cwiseProduct(RZ_below.col(col));
        });
        for (Index j = 0; j < c; ++j)
          gemm(RZ.middleCols(j * width, width), RA.middleCols(j * in, in), W.topRows(in), true);
      }
    }
    const Index k_out = widths_.back();
    for (Index j = 0; j < c; ++j)
      output_curvature_block<S>(loss_, cache.out, RZ_of(L - 1).middleCols(j * k_out, k_out),
                                Rd_of(L - 1).middleCols(j * k_out, k_out));
    // R-backward.
    for (Index l = L - 1; l >= 0; --l) {
      const Index in = widths_[l], width = widths_[l + 1];
      const auto h = static_cast<std::size_t>(l);
      const auto Rd = Rd_of(l);
      auto product_cols = scratch(cache.product_cols, in, c * width);
      gemm(product_cols, input(data, cache, l).transpose(), Rd);  // A_{l−1}ᵀ [R{δ_l}_j]
      auto product_rows = scratch(cache.product_rows, l > 0 ? c * in : 0, width);
      if (l > 0) gemm(product_rows, Rd_of(l - 1).transpose(), cache.delta[h]);  // [R{A}_j]ᵀ δ_l
      for (Index j = 0; j < c; ++j) {
        auto O = o_block(j, l);
        O.topRows(in) = product_cols.middleCols(j * width, width);
        if (l > 0) O.topRows(in) += product_rows.middleRows(j * in, in);
        O.row(in) = Rd.middleCols(j * width, width).colwise().sum();
      }
      if (l > 0) {
        Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, width);
        auto Rd_below = Rd_of(l - 1);
        for (Index j = 0; j < c; ++j)
          gemm(Rd_below.middleCols(j * in, in), Rd.middleCols(j * width, width),
               W.topRows(in).transpose());
        auto V_rows = scratch(cache.V_rows, c * in, width);
        for (Index j = 0; j < c; ++j) V_rows.middleRows(j * in, in) = v_block(j, l).topRows(in);
        gemm(Rd_below, cache.delta[h], V_rows.transpose(), true);  // δ_l [V_1 … V_c]ᵀ
        const Matrix<S>&D1 = cache.D1[h - 1], &D2 = cache.D2[h - 1], &E = cache.E[h - 1];
        const auto RZ = RZ_of(l - 1);
        for_columns(n, c * in, [&](Index col) {
          const Index j = col % in;
          Rd_below.col(col).array() = Rd_below.col(col).array() * D1.col(j).array() +
                                      E.col(j).array() * D2.col(j).array() * RZ.col(col).array();
        });
      }
    }
  }
}

template <class S>
void Mlp<S>::linear_backward(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                             std::vector<Matrix<S>>& deltas, Vector<S>& out) const {
  const Index L = num_layers(), n = data.size();
  out.resize(num_params());
  for (Index l = L - 1; l >= 0; --l) {
    const Index in = widths_[l], width = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<Matrix<S>> O(out.data() + offset(l), in + 1, width);
    gemm(O.topRows(in), input(data, cache, l).transpose(), deltas[h]);
    O.row(in) = deltas[h].colwise().sum();
    if (l > 0) {
      Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, width);
      Matrix<S>& below = deltas[h - 1];
      below.resize(n, in);
      gemm(below, deltas[h], W.topRows(in).transpose());
      const Matrix<S>& D1 = cache.D1[h - 1];
      for_columns(n, in, [&](Index j) { below.col(j).array() *= D1.col(j).array(); });
    }
  }
}

template <class S>
void Mlp<S>::gauss_newton_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                  const Vector<S>& v, Vector<S>& out) const {
  check_data(data, w);
  r_forward(data, w, cache, v);  // J v = R{Z_L}
  output_curvature(cache);       // H_out J v / n
  linear_backward(data, w, cache, cache.Rdelta, out);
}

template <class S>
void Mlp<S>::fisher_product(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                            const Vector<S>& v, Vector<S>& out) const {
  check_data(data, w);
  require(cache.has_backward, "Mlp::fisher_product: call evaluate() at this w first");
  const Index L = num_layers(), n = data.size();
  // Per-example gradients g_i = n Σ_l vec(ã_{l,i} δ_{l,i}ᵀ); s_i = g_iᵀ v.
  Vector<S>& s = cache.row_scale;
  s.setZero(n);
  for (Index l = 0; l < L; ++l) {
    const Index in = widths_[l], width = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<const Matrix<S>> V(v.data() + offset(l), in + 1, width);
    cache.work.resize(n, width);
    gemm(cache.work, input(data, cache, l), V.topRows(in));
    cache.work.rowwise() += V.row(in);
    s += S(n) * cache.work.cwiseProduct(cache.delta[h]).rowwise().sum();
  }
  // (1/n) Σ_i g_i s_i = Σ_l vec(Ã_lᵀ diag(s) δ_l).
  out.resize(num_params());
  for (Index l = 0; l < L; ++l) {
    const Index in = widths_[l], width = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    cache.work = s.asDiagonal() * cache.delta[h];
    Eigen::Map<Matrix<S>> O(out.data() + offset(l), in + 1, width);
    gemm(O.topRows(in), input(data, cache, l).transpose(), cache.work);
    O.row(in) = cache.work.colwise().sum();
  }
}

namespace {

/// The dense symmetric matrix of a product x ↦ M x, one product per column; exact in real
/// arithmetic, so only the rounding is symmetrised.
template <class S, class Product>
void dense_from_products(Index D, Product&& product, Matrix<S>& M) {
  M.resize(D, D);
  Vector<S> e = Vector<S>::Zero(D), column(D);
  for (Index j = 0; j < D; ++j) {
    e(j) = S(1);
    product(e, column);
    M.col(j) = column;
    e(j) = S(0);
  }
  M = (S(0.5) * (M + M.transpose())).eval();
}

}  // namespace

template <class S>
void Mlp<S>::hessian(const Dataset<S>& data, const Vector<S>& w, Cache& cache, Matrix<S>& H) const {
  dense_from_products<S>(
      num_params(), [&](const Vector<S>& x, Vector<S>& y) { hvp(data, w, cache, x, y); }, H);
}

template <class S>
void Mlp<S>::gauss_newton_matrix(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                 Matrix<S>& G) const {
  dense_from_products<S>(
      num_params(),
      [&](const Vector<S>& x, Vector<S>& y) { gauss_newton_product(data, w, cache, x, y); }, G);
}

template <class S>
Matrix<S> Mlp<S>::augmented_input(const Dataset<S>& data, const Cache& cache, Index layer) const {
  const Index in = widths_[layer];
  Matrix<S> Atilde(data.size(), in + 1);
  Atilde.leftCols(in) = input(data, cache, layer);
  Atilde.col(in).setOnes();
  return Atilde;
}

template <class S>
template <class Use>
void Mlp<S>::backpropagate_output_factors(const Vector<S>& w, const Cache& cache, Index n,
                                          Index lowest, Use&& use) const {
  const Index L = num_layers(), k = widths_.back();
  // H_out,i = L_i L_iᵀ with L_i = diag(√p) − p √pᵀ (cross-entropy) or I (squared error). Each
  // column of L_i is backpropagated like an output gradient.
  std::vector<Matrix<S>> Delta(static_cast<std::size_t>(L));
  for (Index c = 0; c < k; ++c) {
    Matrix<S>& top = Delta.back();
    top.setZero(n, k);
    if (loss_ == OutputLoss::SoftmaxCrossEntropy) {
      for (Index i = 0; i < n; ++i) {
        const S sqrt_pc = std::sqrt(cache.out(i, c));
        top.row(i) = -sqrt_pc * cache.out.row(i);
        top(i, c) += sqrt_pc;
      }
    } else {
      top.col(c).setOnes();
    }
    for (Index l = L - 1; l >= lowest; --l) {
      const auto h = static_cast<std::size_t>(l);
      use(l, static_cast<const Matrix<S>&>(Delta[h]));
      if (l > lowest) {
        const Index in = widths_[l];
        Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, widths_[l + 1]);
        Delta[h - 1].noalias() = Delta[h] * W.topRows(in).transpose();
        Delta[h - 1].array() *= cache.D1[h - 1].array();
      }
    }
  }
}

template <class S>
std::vector<KroneckerFactors<S>> Mlp<S>::kfac_factors(const Dataset<S>& data, const Vector<S>& w,
                                                      Cache& cache) const {
  check_data(data, w);
  require(cache.has_backward, "Mlp::kfac_factors: call evaluate() at this w first");
  const Index L = num_layers(), n = data.size();
  std::vector<KroneckerFactors<S>> factors(static_cast<std::size_t>(L));
  for (Index l = 0; l < L; ++l) {
    auto& f = factors[static_cast<std::size_t>(l)];
    f.offset = offset(l);
    const Matrix<S> Atilde = augmented_input(data, cache, l);
    f.A.noalias() = Atilde.transpose() * Atilde / S(n);
    f.G.setZero(widths_[l + 1], widths_[l + 1]);
  }
  // G_l = (1/n) Σ_c Δ_lᵀ Δ_l over the backpropagated columns of L_i.
  backpropagate_output_factors(w, cache, n, 0, [&](Index l, const Matrix<S>& Delta) {
    factors[static_cast<std::size_t>(l)].G.noalias() += Delta.transpose() * Delta / S(n);
  });
  return factors;
}

template <class S>
void Mlp<S>::kfac_corrected_eigenvalues(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                                        std::size_t block, const Matrix<S>& Ua,
                                        const Matrix<S>& Ug, Matrix<S>& out) const {
  check_data(data, w);
  require(cache.has_backward, "Mlp::kfac_corrected_eigenvalues: call evaluate() at this w first");
  const Index L = num_layers(), n = data.size(), l = static_cast<Index>(block);
  require(l < L, "Mlp::kfac_corrected_eigenvalues: no such layer");
  const Index in = widths_[l], width = widths_[l + 1];
  require(Ua.rows() == in + 1 && Ua.cols() == in + 1 && Ug.rows() == width && Ug.cols() == width,
          "Mlp::kfac_corrected_eigenvalues: the bases must be (in+1) × (in+1) and out × out");
  // (u_jᵀ ã_i)²: the layer's inputs (with the bias 1) projected on the input basis, squared.
  Matrix<S> Y(n, in + 1);
  gemm(Y, augmented_input(data, cache, l), Ua);
  Y = Y.array().square().matrix();
  // Σ_c (q_oᵀ δ_ic)²: the backpropagated columns at this layer projected on the output basis.
  Matrix<S> Z = Matrix<S>::Zero(n, width), projected(n, width);
  backpropagate_output_factors(w, cache, n, l, [&](Index layer, const Matrix<S>& Delta) {
    if (layer != l) return;
    projected.noalias() = Delta * Ug;
    Z.array() += projected.array().square();
  });
  out.resize(in + 1, width);
  out.noalias() = Y.transpose() * Z;
  out /= S(n);
}

template <class S>
double Mlp<S>::accuracy(const Dataset<S>& data, const Cache& cache) const {
  require(data.labels.size() == data.size() && cache.out.rows() == data.size(),
          "Mlp::accuracy: needs labels and a cache from evaluate() on the same data");
  Index correct = 0;
  for (Index i = 0; i < data.size(); ++i) {
    Index best;
    cache.out.row(i).maxCoeff(&best);
    correct += (best == data.labels(i));
  }
  return static_cast<double>(correct) / static_cast<double>(data.size());
}

template class Mlp<float>;
template class Mlp<double>;

}  // namespace ift
