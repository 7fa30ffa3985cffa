#include "ift/data/synthetic.hpp"

#include <string>

namespace ift {

template <class S>
Dataset<S> make_blobs(Index n, Index d, Index num_classes, double separation, std::uint64_t seed) {
  require(n >= 0, "make_blobs: n must be >= 0, got " + std::to_string(n));
  require(d >= 1, "make_blobs: d must be >= 1, got " + std::to_string(d));
  require(num_classes >= 1, "make_blobs: num_classes must be >= 1, got " + std::to_string(num_classes));
  require(separation >= 0 && std::isfinite(separation), "make_blobs: separation must be finite and >= 0");
  SyntheticRng rng(seed);
  // Draw in double, then cast: float and double sets from one seed hold the same values.
  Matrix<double> centres(num_classes, d);
  for (Index c = 0; c < num_classes; ++c) {
    for (Index j = 0; j < d; ++j) centres(c, j) = rng.normal();
    const double norm = centres.row(c).norm();
    if (norm > 0) centres.row(c) *= separation / norm;
  }
  Dataset<S> out;
  out.X.resize(n, d);
  out.labels.resize(n);
  out.num_classes = num_classes;
  for (Index i = 0; i < n; ++i) {
    const Index c = i % num_classes;
    out.labels(i) = static_cast<std::int32_t>(c);
    for (Index j = 0; j < d; ++j) out.X(i, j) = static_cast<S>(centres(c, j) + rng.normal());
  }
  return out;
}

template <class S>
LinearRegressionData<S> make_linear_regression(Index n, Index d, Index k, double noise, std::uint64_t seed) {
  require(n >= 0, "make_linear_regression: n must be >= 0, got " + std::to_string(n));
  require(d >= 1, "make_linear_regression: d must be >= 1, got " + std::to_string(d));
  require(k >= 1, "make_linear_regression: k must be >= 1, got " + std::to_string(k));
  require(noise >= 0 && std::isfinite(noise), "make_linear_regression: noise must be finite and >= 0");
  SyntheticRng rng(seed);
  Matrix<double> W(d, k), X(n, d), E(n, k);
  for (Index j = 0; j < W.size(); ++j) W(j) = rng.normal();
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < d; ++j) X(i, j) = rng.normal();
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < k; ++j) E(i, j) = rng.normal();
  // Plain loops in a fixed order, not Eigen's GEMM, whose blocking and vectorisation vary
  // with the CPU: the same seed must give the same bits everywhere.
  Matrix<double> Y(n, k);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < k; ++j) {
      double sum = 0.0;
      for (Index l = 0; l < d; ++l) sum += X(i, l) * W(l, j);
      Y(i, j) = sum + noise * E(i, j);
    }
  LinearRegressionData<S> out;
  out.data.X = X.cast<S>();
  out.data.targets = Y.cast<S>();
  out.data.num_classes = 0;
  out.weights = W.cast<S>();
  return out;
}

template Dataset<float> make_blobs<float>(Index, Index, Index, double, std::uint64_t);
template Dataset<double> make_blobs<double>(Index, Index, Index, double, std::uint64_t);
template LinearRegressionData<float> make_linear_regression<float>(Index, Index, Index, double, std::uint64_t);
template LinearRegressionData<double> make_linear_regression<double>(Index, Index, Index, double, std::uint64_t);

}  // namespace ift
