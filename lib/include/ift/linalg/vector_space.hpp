// The vector-space seam: every matrix-free solver touches its vectors only through
// VectorSpace<V>, so the same solver code runs on Eigen vectors here and on LibTorch tensors
// once someone adds VectorSpace<torch::Tensor> (see the operation list below).
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>

#include "ift/core.hpp"

namespace ift {

/// Operations a solver may perform on a vector type V. Specialise for each backend.
///
/// Contract for a specialisation (all static):
///   using VectorType = V; using Scalar = ...;
///   V      zeros_like(const V& x)               new vector, same shape, all zeros (allocates)
///   Scalar dot(const V& x, const V& y)
///   Scalar norm(const V& x)                     Euclidean norm
///   void   axpy(Scalar a, const V& x, V& y)     y += a x
///   void   axpby(Scalar a, const V& x, Scalar b, V& y)   y = a x + b y (CG's p = r + β p)
///   void   scale(Scalar a, V& x)                x *= a
///   void   assign(V& dst, const V& src)         deep copy of the values; no reallocation when
///                                               sizes match
///   void   set_zero(V& x)
///   bool   all_finite(const V& x)
///   Index  size(const V& x)                     number of scalars
///   void   fill_random(V& x, std::uint64_t seed)  deterministic entries in [-1, 1)
///
/// Why assign and not `V y = x`: copying a torch::Tensor is shallow (it shares storage), so a
/// solver written against this seam never relies on the copy constructor for a value copy.
template <class V>
struct VectorSpace;

/// Compile-time check that VectorSpace<V> is complete, with a readable error where it is not.
template <class V>
concept HasVectorSpace = requires(const V& cx, V& x, typename VectorSpace<V>::Scalar a,
                                  std::uint64_t seed) {
  typename VectorSpace<V>::Scalar;
  { VectorSpace<V>::zeros_like(cx) } -> std::same_as<V>;
  { VectorSpace<V>::dot(cx, cx) } -> std::convertible_to<typename VectorSpace<V>::Scalar>;
  { VectorSpace<V>::norm(cx) } -> std::convertible_to<typename VectorSpace<V>::Scalar>;
  VectorSpace<V>::axpy(a, cx, x);
  VectorSpace<V>::axpby(a, cx, a, x);
  VectorSpace<V>::scale(a, x);
  VectorSpace<V>::assign(x, cx);
  VectorSpace<V>::set_zero(x);
  { VectorSpace<V>::all_finite(cx) } -> std::convertible_to<bool>;
  { VectorSpace<V>::size(cx) } -> std::convertible_to<Index>;
  VectorSpace<V>::fill_random(x, seed);
};

namespace detail {

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator whose output is identical on every
/// platform and standard library, unlike std::uniform_real_distribution.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [-1, 1) from the top 53 bits.
  double uniform_symmetric() { return 2.0 * (static_cast<double>(next() >> 11) * 0x1.0p-53) - 1.0; }

 private:
  std::uint64_t state_;
};

}  // namespace detail

/// Eigen column vectors (the CPU backend).
template <class S>
struct VectorSpace<Vector<S>> {
  using VectorType = Vector<S>;
  using Scalar = S;

  static VectorType zeros_like(const VectorType& x) { return VectorType::Zero(x.size()); }
  static Scalar dot(const VectorType& x, const VectorType& y) { return x.dot(y); }
  static Scalar norm(const VectorType& x) { return x.norm(); }
  static void axpy(Scalar a, const VectorType& x, VectorType& y) { y.noalias() += a * x; }
  static void axpby(Scalar a, const VectorType& x, Scalar b, VectorType& y) {
    y = a * x + b * y;  // element-wise, no temporary: Eigen fuses the expression
  }
  static void scale(Scalar a, VectorType& x) { x *= a; }
  static void assign(VectorType& dst, const VectorType& src) {
    dst = src;  // Eigen resizes only when the sizes differ
  }
  static void set_zero(VectorType& x) { x.setZero(); }
  static bool all_finite(const VectorType& x) { return x.allFinite(); }
  static Index size(const VectorType& x) { return x.size(); }
  static void fill_random(VectorType& x, std::uint64_t seed) {
    detail::SplitMix64 rng(seed);
    for (Index i = 0; i < x.size(); ++i) x[i] = static_cast<S>(rng.uniform_symmetric());
  }
};

}  // namespace ift
