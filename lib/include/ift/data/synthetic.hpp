// Seeded synthetic data sets of any size, for tests and scaling runs. The same seed gives the
// same numbers on every platform: std::mt19937_64 is fully specified by the standard, and the
// uniform and normal transforms are our own (std::normal_distribution differs between
// standard libraries).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>

#include "ift/core.hpp"
#include "ift/dataset.hpp"

namespace ift {

/// Portable random numbers: uniform in [0, 1) from the top 53 bits, normals by Box–Muller.
class SyntheticRng {
 public:
  explicit SyntheticRng(std::uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log(u1) is finite.
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * 3.14159265358979323846 * u2;
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

/// Gaussian blobs: `num_classes` centres, each a random direction scaled to norm `separation`,
/// and n points x = centre[label] + N(0, I_d). Labels are assigned round-robin (i mod classes),
/// so every prefix of the set is balanced and slices make sensible train/val splits.
/// Larger separation makes the classes easier to tell apart (pairwise centre distance ≈
/// separation·√2).
template <class S>
Dataset<S> make_blobs(Index n, Index d, Index num_classes, double separation, std::uint64_t seed);

template <class S>
struct LinearRegressionData {
  Dataset<S> data;      ///< X (n × d) ~ N(0, 1), targets (n × k), no labels.
  Matrix<S> weights;    ///< The true d × k weights W.
};

/// Linear regression: X ~ N(0, 1), W ~ N(0, 1), targets = X W + noise · N(0, 1).
template <class S>
LinearRegressionData<S> make_linear_regression(Index n, Index d, Index k, double noise, std::uint64_t seed);

}  // namespace ift
