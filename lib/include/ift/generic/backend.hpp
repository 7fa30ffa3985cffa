// What the bilevel loop needs of a vector type beyond the solvers' VectorSpace<V>: the fused
// element-wise updates of its optimisers, and exact host copies for checkpoints.
//
// Contract of a specialisation VectorBackend<V> (all static):
//   using HostScalar = ...;          the scalar of the host copy: exact for V's values (a float
//                                    tensor is stored in double, which round-trips bit for bit)
//   Vector<HostScalar> to_host(const V& x)
//   V      from_host(const Vector<HostScalar>& h, const V& like)   values h, like's shape/dtype/device
//   void   momentum_step(V& x, V& m, const V& g, double mu, double lr)
//          m ← μ m + g;  x ← x − η m
//   void   adam_step(V& x, V& m, V& v, const V& g, double b1, double b2, double c1, double c2,
//                    double eps, double lr)
//          m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²;  x ← x − η (m / c₁) / (√(v / c₂) + ε)
// The Eigen specialisation is below; LibTorch's is in ift/torch/tensor_space.hpp.
#pragma once

#include <concepts>

#include "ift/core.hpp"
#include "ift/linalg/vector_space.hpp"

namespace ift {

template <class V>
struct VectorBackend;

template <class V>
concept HasVectorBackend =
    HasVectorSpace<V> && requires(const V& cx, V& x, const Vector<typename VectorBackend<V>::HostScalar>& h,
                                  double d) {
      { VectorBackend<V>::to_host(cx) } -> std::same_as<Vector<typename VectorBackend<V>::HostScalar>>;
      { VectorBackend<V>::from_host(h, cx) } -> std::same_as<V>;
      VectorBackend<V>::momentum_step(x, x, cx, d, d);
      VectorBackend<V>::adam_step(x, x, x, cx, d, d, d, d, d, d);
    };

template <class S>
struct VectorBackend<Vector<S>> {
  using HostScalar = S;
  static Vector<S> to_host(const Vector<S>& x) { return x; }
  static Vector<S> from_host(const Vector<S>& h, const Vector<S>& /*like*/) { return h; }
  static void momentum_step(Vector<S>& x, Vector<S>& m, const Vector<S>& g, double mu, double lr) {
    m = static_cast<S>(mu) * m + g;
    x.noalias() -= static_cast<S>(lr) * m;
  }
  static void adam_step(Vector<S>& x, Vector<S>& m, Vector<S>& v, const Vector<S>& g, double b1,
                        double b2, double c1, double c2, double eps, double lr) {
    const S sb1 = static_cast<S>(b1), sb2 = static_cast<S>(b2);
    m = sb1 * m + (S(1) - sb1) * g;
    v = sb2 * v + (S(1) - sb2) * g.cwiseAbs2();
    x.array() -= static_cast<S>(lr) * (m.array() / static_cast<S>(c1)) /
                 ((v.array() / static_cast<S>(c2)).sqrt() + static_cast<S>(eps));
  }
};

}  // namespace ift
