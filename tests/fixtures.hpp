// Small seeded fixtures shared by the test suites.
#pragma once

#include <memory>
#include <random>

#include "ift/dataset.hpp"

namespace ift::testing {

/// Tolerances per precision: finite differences lose about half the digits.
template <class S>
struct Tol;
template <>
struct Tol<double> {
  static constexpr double fd = 1e-6;      // relative, central differences
  static constexpr double exact = 1e-10;  // relative, two exact computations
  static constexpr double fd_step = 1e-5;
};
template <>
struct Tol<float> {
  static constexpr double fd = 3e-2;
  static constexpr double exact = 2e-4;
  static constexpr double fd_step = 1e-2;
};

template <class S>
Vector<S> random_vector(Index n, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, scale);
  Vector<S> v(n);
  for (Index i = 0; i < n; ++i) v(i) = static_cast<S>(normal(gen));
  return v;
}

/// rows × cols standard-normal entries (column-major from random_vector's stream).
inline Matrix<double> random_matrix(Index rows, Index cols, std::uint64_t seed) {
  const Vector<double> v = random_vector<double>(rows * cols, seed);
  return Eigen::Map<const Matrix<double>>(v.data(), rows, cols);
}

/// A KFAC input factor as the models form it: A = Ãᵀ Ã / n for n random inputs with a
/// constant 1 appended ((inputs + 1) × (inputs + 1)).
inline Matrix<double> input_factor(Index inputs, Index n, std::uint64_t seed) {
  Matrix<double> a(n, inputs + 1);
  a.leftCols(inputs) = random_matrix(n, inputs, seed);
  a.col(inputs).setOnes();
  return a.transpose() * a / double(n);
}

/// n rows of d standard-normal features (plus a bias column when asked) with labels in
/// [0, classes) drawn so the classes overlap (a non-separable problem has a finite optimum).
template <class S>
Dataset<S> random_classification(Index n, Index d, Index classes, std::uint64_t seed,
                                 bool bias = true) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Dataset<S> data;
  data.X.resize(n, d);
  data.labels.resize(n);
  data.num_classes = classes;
  for (Index i = 0; i < n; ++i) {
    data.labels(i) = static_cast<std::int32_t>(i % classes);
    for (Index j = 0; j < d; ++j)
      data.X(i, j) = static_cast<S>(normal(gen) + (j % classes == data.labels(i) ? 0.7 : 0.0));
  }
  if (bias) data.append_bias_column();
  return data;
}

template <class S>
Dataset<S> random_regression(Index n, Index d, Index k, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Dataset<S> data;
  data.X.resize(n, d);
  data.targets.resize(n, k);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d; ++j) data.X(i, j) = static_cast<S>(normal(gen));
    for (Index j = 0; j < k; ++j) data.targets(i, j) = static_cast<S>(normal(gen));
  }
  return data;
}

/// A data set as the shared pointer problems take.
template <class S>
std::shared_ptr<const Dataset<S>> shared(Dataset<S> d) {
  return std::make_shared<const Dataset<S>>(std::move(d));
}

/// max_i |a_i − b_i| / max_i |b_i|: relative to the largest entry of the reference.
template <class A, class B>
double rel_error(const A& a, const B& b) {
  const double scale = std::max(1e-300, static_cast<double>(b.cwiseAbs().maxCoeff()));
  return static_cast<double>((a - b).cwiseAbs().maxCoeff()) / scale;
}

}  // namespace ift::testing
