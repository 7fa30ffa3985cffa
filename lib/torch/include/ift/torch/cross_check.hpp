// Cross-checks of the LibTorch path against the Eigen path (DESIGN.md §1, issue "LibTorch
// adapter"): with identical weights, λ and data, gradients, HVPs, mixed partials and
// hypergradients (cg, neumann with automatic α, identity, zero, unrolled, kfac) from
// ift::deep::TorchProblem + ift::generic::hypergradient must equal ift::RegularizedProblem +
// ift::hypergradient to rounding; and the unification theorem (Lorraine et al. 2020): from w*,
// unrolled(i, α) = neumann(i − 1, α) on the LibTorch path. Used by the tests (CPU, double) and
// by ift-torch-check on a GPU machine (any device), which is why they live in the library.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace ift::deep {

struct CheckResult {
  std::string name;      ///< "logreg/gradient", "mlp/hypergradient/cg", …
  double error = 0;      ///< relative error ||torch − eigen|| / ||eigen|| (or as named)
  double tolerance = 0;
  std::string detail;    ///< statuses, HVP counts, α
  bool ok() const { return error <= tolerance; }  // false for NaN
};

struct CrossCheckOptions {
  ::torch::Device device = ::torch::kCPU;
  ::torch::Dtype dtype = ::torch::kDouble;
  std::int64_t n_train = 80, n_val = 40, features = 12, classes = 4, hidden = 6;
  std::uint64_t seed = 11;
  /// Relative tolerance; 0 chooses 1e-10 for double and 1e-4 for float.
  double tolerance = 0;
};

/// Softmax regression (bias as a feature, class-major w[c·F + j]) at w* from Newton.
std::vector<CheckResult> cross_check_logistic(const CrossCheckOptions& options);
/// A tanh MLP features-hidden-classes in ift::Mlp's layout, at a point found by Newton.
std::vector<CheckResult> cross_check_mlp(const CrossCheckOptions& options);
/// unrolled(i, α) from w* against neumann(i − 1, α) on the LibTorch path, i = 1, 3, 8.
std::vector<CheckResult> check_unification(const CrossCheckOptions& options);

}  // namespace ift::deep
