#include "ift/models/mlp.hpp"

#include <cmath>
#include <random>

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

/// σ(Z), σ'(Z) and σ''(Z) elementwise, in place of Z → A.
template <class S>
void apply_activation(Activation act, const Matrix<S>& Z, Matrix<S>& A, Matrix<S>& D1,
                      Matrix<S>& D2) {
  A.resize(Z.rows(), Z.cols());
  D1.resize(Z.rows(), Z.cols());
  D2.resize(Z.rows(), Z.cols());
  const auto z = Z.array();
  switch (act) {
    case Activation::Tanh:
      A.array() = z.tanh();
      D1.array() = S(1) - A.array().square();
      D2.array() = S(-2) * A.array() * D1.array();
      break;
    case Activation::Sigmoid:
      A.array() = S(1) / (S(1) + (-z).exp());
      D1.array() = A.array() * (S(1) - A.array());
      D2.array() = D1.array() * (S(1) - S(2) * A.array());
      break;
    case Activation::Softplus:
      A.array() = z.max(S(0)) + (-z.abs()).exp().log1p();
      D1.array() = S(1) / (S(1) + (-z).exp());
      D2.array() = D1.array() * (S(1) - D1.array());
      break;
    case Activation::Relu:
      A.array() = z.max(S(0));
      D1.array() = (z > S(0)).template cast<S>();
      D2.setZero();
      break;
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
  Matrix<S> Z;
  for (Index l = 0; l < L; ++l) {
    const Index in = widths_[l], out = widths_[l + 1];
    Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, out);
    Z.resize(n, out);
    Z.noalias() = input(data, cache, l) * W.topRows(in);
    Z.rowwise() += W.row(in);
    if (l + 1 < L) {
      const auto h = static_cast<std::size_t>(l);
      apply_activation(activation_, Z, cache.A[h], cache.D1[h], cache.D2[h]);
    } else {
      cache.out.swap(Z);
    }
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
    delta_out = (cache.out - data.targets) * inv_n;
    total = 0.5 * static_cast<double>((cache.out - data.targets).squaredNorm());
  }
  // Backward pass for δ_l and E_l (always: HVPs reuse them); the weight gradients, 40% of a
  // gradient's flops on a deep net, only when asked for (gradient_from_cache() can add them later).
  for (Index l = L - 1; l > 0; --l) {
    const Index in = widths_[l], out = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, out);
    cache.E[h - 1].resize(n, in);
    cache.E[h - 1].noalias() = cache.delta[h] * W.topRows(in).transpose();
    cache.delta[h - 1] = cache.E[h - 1].cwiseProduct(cache.D1[h - 1]);
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
    G.topRows(in).noalias() = input(data, cache, l).transpose() * cache.delta[h];
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
    RZ.noalias() = input(data, cache, l) * V.topRows(in);
    RZ.rowwise() += V.row(in);
    if (l > 0) {
      // R{A_{l−1}} = σ'(Z_{l−1}) ⊙ R{Z_{l−1}}, kept in Rdelta[l−1] (free until the backward pass
      // overwrites it) so that hvp() does not recompute it.
      Matrix<S>& RA = cache.Rdelta[h - 1];
      RA.resize(n, in);
      RA.array() = cache.D1[h - 1].array() * cache.RZ[h - 1].array();
      RZ.noalias() += RA * W.topRows(in);
    }
  }
}

template <class S>
void Mlp<S>::output_curvature(Cache& cache) const {
  const Index n = cache.out.rows();
  cache.Rdelta.resize(static_cast<std::size_t>(num_layers()));
  const Matrix<S>& RZ = cache.RZ.back();
  Matrix<S>& Rd = cache.Rdelta.back();
  const S inv_n = S(1) / S(n);
  if (loss_ == OutputLoss::SoftmaxCrossEntropy) {
    // (diag p − p pᵀ) r = p ⊙ (r − pᵀ r).
    Rd.resize(n, RZ.cols());
    for (Index i = 0; i < n; ++i) {
      const S mean = cache.out.row(i).dot(RZ.row(i));
      Rd.row(i) = cache.out.row(i).cwiseProduct((RZ.row(i).array() - mean).matrix()) * inv_n;
    }
  } else {
    Rd = RZ * inv_n;
  }
}

template <class S>
void Mlp<S>::hvp(const Dataset<S>& data, const Vector<S>& w, Cache& cache, const Vector<S>& v,
                 Vector<S>& out) const {
  check_data(data, w);
  r_forward(data, w, cache, v);
  output_curvature(cache);
  const Index L = num_layers();
  out.resize(num_params());
  for (Index l = L - 1; l >= 0; --l) {
    const Index in = widths_[l], width = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<Matrix<S>> O(out.data() + offset(l), in + 1, width);
    O.topRows(in).noalias() = input(data, cache, l).transpose() * cache.Rdelta[h];
    O.row(in) = cache.Rdelta[h].colwise().sum();
    if (l > 0) {
      // R{A_{l−1}}ᵀ δ_l: the input of this layer moves with v too (R{A_{l−1}} from r_forward,
      // still in Rdelta[l−1]; overwritten just below).
      O.topRows(in).noalias() += cache.Rdelta[h - 1].transpose() * cache.delta[h];
      Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, width);
      Eigen::Map<const Matrix<S>> V(v.data() + offset(l), in + 1, width);
      // R{δ_{l−1}} = (R{δ_l} Wᵀ + δ_l Vᵀ) ⊙ σ' + (δ_l Wᵀ) ⊙ σ'' ⊙ R{Z_{l−1}}.
      Matrix<S>& Rd = cache.Rdelta[h - 1];
      Rd.resize(data.size(), in);
      Rd.noalias() = cache.Rdelta[h] * W.topRows(in).transpose();
      Rd.noalias() += cache.delta[h] * V.topRows(in).transpose();
      Rd.array() = Rd.array() * cache.D1[h - 1].array() +
                   cache.E[h - 1].array() * cache.D2[h - 1].array() * cache.RZ[h - 1].array();
    }
  }
}

template <class S>
void Mlp<S>::linear_backward(const Dataset<S>& data, const Vector<S>& w, Cache& cache,
                             std::vector<Matrix<S>>& deltas, Vector<S>& out) const {
  const Index L = num_layers();
  out.resize(num_params());
  for (Index l = L - 1; l >= 0; --l) {
    const Index in = widths_[l], width = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<Matrix<S>> O(out.data() + offset(l), in + 1, width);
    O.topRows(in).noalias() = input(data, cache, l).transpose() * deltas[h];
    O.row(in) = deltas[h].colwise().sum();
    if (l > 0) {
      Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, width);
      deltas[h - 1].resize(data.size(), in);
      deltas[h - 1].noalias() = deltas[h] * W.topRows(in).transpose();
      deltas[h - 1].array() *= cache.D1[h - 1].array();
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
  Vector<S> s = Vector<S>::Zero(n);
  for (Index l = 0; l < L; ++l) {
    const Index in = widths_[l], width = widths_[l + 1];
    const auto h = static_cast<std::size_t>(l);
    Eigen::Map<const Matrix<S>> V(v.data() + offset(l), in + 1, width);
    cache.work.resize(n, width);
    cache.work.noalias() = input(data, cache, l) * V.topRows(in);
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
    O.topRows(in).noalias() = input(data, cache, l).transpose() * cache.work;
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
std::vector<KroneckerFactors<S>> Mlp<S>::kfac_factors(const Dataset<S>& data, const Vector<S>& w,
                                                      Cache& cache) const {
  check_data(data, w);
  require(cache.has_backward, "Mlp::kfac_factors: call evaluate() at this w first");
  const Index L = num_layers(), n = data.size(), k = widths_.back();
  std::vector<KroneckerFactors<S>> factors(static_cast<std::size_t>(L));
  for (Index l = 0; l < L; ++l) {
    const Index in = widths_[l];
    auto& f = factors[static_cast<std::size_t>(l)];
    f.offset = offset(l);
    Matrix<S> Atilde(n, in + 1);
    Atilde.leftCols(in) = input(data, cache, l);
    Atilde.col(in).setOnes();
    f.A.noalias() = Atilde.transpose() * Atilde / S(n);
    f.G.setZero(widths_[l + 1], widths_[l + 1]);
  }
  // H_out,i = L_i L_iᵀ with L_i = diag(√p) − p √pᵀ (cross-entropy) or I (squared error). Each
  // column of L_i is backpropagated like an output gradient; G_l = (1/n) Σ_c Δ_lᵀ Δ_l.
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
    for (Index l = L - 1; l >= 0; --l) {
      const auto h = static_cast<std::size_t>(l);
      factors[h].G.noalias() += Delta[h].transpose() * Delta[h] / S(n);
      if (l > 0) {
        const Index in = widths_[l];
        Eigen::Map<const Matrix<S>> W(w.data() + offset(l), in + 1, widths_[l + 1]);
        Delta[h - 1].noalias() = Delta[h] * W.topRows(in).transpose();
        Delta[h - 1].array() *= cache.D1[h - 1].array();
      }
    }
  }
  return factors;
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
