// Weight-decay hyperparameter families, log-parametrised so that λ is unconstrained:
//   global:      R(λ, w) = ½ exp(λ) Σ_i w_i²          (one hyperparameter)
//   per-weight:  R(λ, w) = ½ Σ_i exp(λ_i) w_i²       (one hyperparameter per weight)
//   per-class:   R(λ, w) = ½ Σ_g exp(λ_g) ||w_g||²    (one per group: w split into `groups`
//                equal contiguous blocks; for softmax regression's class-major layout, one
//                block per class, so groups = classes = 10 on P1)
// A family knows how λ enters L_T: the penalty, its w-gradient, its w-Hessian (diagonal) and the
// mixed partial v ↦ vᵀ ∂²R/∂w∂λᵀ = ∂/∂λ (vᵀ ∇_w R).
#pragma once

#include <cmath>
#include <string>

#include "ift/core.hpp"

namespace ift {

enum class DecayKind { Global, PerWeight, PerClass };

inline DecayKind parse_decay_kind(const std::string& s) {
  if (s == "global") return DecayKind::Global;
  if (s == "per-weight") return DecayKind::PerWeight;
  if (s == "per-class") return DecayKind::PerClass;
  throw std::invalid_argument("unknown weight-decay family '" + s +
                              "' (expected global, per-weight or per-class)");
}

template <class S>
class WeightDecay {
 public:
  /// `groups`: the number of blocks of DecayKind::PerClass (it must divide num_params); ignored
  /// by the other kinds.
  WeightDecay(DecayKind kind, Index num_params, Index groups = 1)
      : kind_(kind), num_params_(num_params), groups_(kind == DecayKind::PerClass ? groups : 1) {
    require(kind != DecayKind::PerClass ||
                (groups >= 1 && num_params % groups == 0),
            [&] {
              return "WeightDecay: per-class decay needs a number of groups dividing the " +
                     std::to_string(num_params) + " parameters (got " + std::to_string(groups) +
                     ")";
            });
  }

  DecayKind kind() const { return kind_; }
  Index num_params() const { return num_params_; }
  Index num_hyper() const {
    return kind_ == DecayKind::Global ? 1 : kind_ == DecayKind::PerClass ? groups_ : num_params_;
  }
  /// Parameters per group (per-class decay; num_params for the others).
  Index group_size() const { return kind_ == DecayKind::PerClass ? num_params_ / groups_ : num_params_; }

  S penalty(const Vector<S>& lambda, const Vector<S>& w) const {
    check(lambda, w.size());
    if (kind_ == DecayKind::Global) return S(0.5) * std::exp(lambda(0)) * w.squaredNorm();
    if (kind_ == DecayKind::PerClass) {
      S sum = 0;
      for (Index g = 0; g < groups_; ++g) sum += std::exp(lambda(g)) * block(w, g).squaredNorm();
      return S(0.5) * sum;
    }
    return S(0.5) * (lambda.array().exp() * w.array().square()).sum();
  }
  /// g += ∇_w R = exp(λ) ⊙ w.
  void add_gradient(const Vector<S>& lambda, const Vector<S>& w, Vector<S>& g) const {
    check(lambda, w.size());
    if (kind_ == DecayKind::Global)
      g.noalias() += std::exp(lambda(0)) * w;
    else if (kind_ == DecayKind::PerClass)
      for (Index k = 0; k < groups_; ++k)
        g.segment(k * group_size(), group_size()).noalias() += std::exp(lambda(k)) * block(w, k);
    else
      g.array() += lambda.array().exp() * w.array();
  }
  /// out += ∇²_w R v = exp(λ) ⊙ v.
  void add_hvp(const Vector<S>& lambda, const Vector<S>& v, Vector<S>& out) const {
    add_gradient(lambda, v, out);
  }
  /// H += diag(exp(λ)).
  void add_hessian(const Vector<S>& lambda, Matrix<S>& H) const {
    check(lambda, H.rows());
    if (kind_ == DecayKind::Global)
      H.diagonal().array() += std::exp(lambda(0));
    else if (kind_ == DecayKind::PerClass)
      for (Index k = 0; k < groups_; ++k)
        H.diagonal().segment(k * group_size(), group_size()).array() += std::exp(lambda(k));
    else
      H.diagonal().array() += lambda.array().exp();
  }
  /// The diagonal of ∇²_w R (length num_params).
  Vector<S> hessian_diagonal(const Vector<S>& lambda) const {
    Vector<S> out;
    hessian_diagonal(lambda, out);
    return out;
  }
  /// Same into `out` (no allocation when it already has num_params entries).
  void hessian_diagonal(const Vector<S>& lambda, Vector<S>& out) const {
    require(lambda.size() == num_hyper(), "WeightDecay::hessian_diagonal: λ has the wrong size");
    out.resize(num_params_);
    if (kind_ == DecayKind::Global)
      out.setConstant(std::exp(lambda(0)));
    else if (kind_ == DecayKind::PerClass)
      for (Index k = 0; k < groups_; ++k)
        out.segment(k * group_size(), group_size()).setConstant(std::exp(lambda(k)));
    else
      out.array() = lambda.array().exp();
  }
  /// out = ∂R/∂λ.
  void gradient_lambda(const Vector<S>& lambda, const Vector<S>& w, Vector<S>& out) const {
    check(lambda, w.size());
    if (kind_ == DecayKind::Global) {
      out.resize(1);
      out(0) = S(0.5) * std::exp(lambda(0)) * w.squaredNorm();
    } else if (kind_ == DecayKind::PerClass) {
      out.resize(groups_);
      for (Index k = 0; k < groups_; ++k)
        out(k) = S(0.5) * std::exp(lambda(k)) * block(w, k).squaredNorm();
    } else {
      out = S(0.5) * (lambda.array().exp() * w.array().square()).matrix();
    }
  }
  /// out = vᵀ ∂²R/∂w∂λᵀ: per-weight out_i = v_i exp(λ_i) w_i; global out = exp(λ) vᵀ w;
  /// per-class out_g = exp(λ_g) v_gᵀ w_g.
  void mixed_product(const Vector<S>& lambda, const Vector<S>& w, const Vector<S>& v,
                     Vector<S>& out) const {
    check(lambda, w.size());
    if (kind_ == DecayKind::Global) {
      out.resize(1);
      out(0) = std::exp(lambda(0)) * v.dot(w);
    } else if (kind_ == DecayKind::PerClass) {
      out.resize(groups_);
      for (Index k = 0; k < groups_; ++k) out(k) = std::exp(lambda(k)) * block(v, k).dot(block(w, k));
    } else {
      out = (v.array() * lambda.array().exp() * w.array()).matrix();
    }
  }

 private:
  auto block(const Vector<S>& x, Index g) const { return x.segment(g * group_size(), group_size()); }
  void check(const Vector<S>& lambda, Index n) const {
    require(n == num_params_, [&] {
      return std::string("WeightDecay: vector of size " + std::to_string(n) + ", expected " +
                         std::to_string(num_params_));
    });
    require(lambda.size() == num_hyper(), [&] {
      return std::string("WeightDecay: λ has " + std::to_string(lambda.size()) +
                         " entries, expected " + std::to_string(num_hyper()));
    });
  }
  DecayKind kind_;
  Index num_params_;
  Index groups_;
};

}  // namespace ift
