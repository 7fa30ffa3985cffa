// The one KFAC inverse (ift/linalg/kfac.hpp) on its two backends: Eigen vectors and flat
// LibTorch tensors (on every device this LibTorch has) apply the same mathematics to the same
// random factors, the inverse undoes the forward curvature (G ⊗ A + δI) on tensors, the
// tensor layout (weights row-major out × in, the bias apart) is the one the forward curvature
// defines, and an undefined inverse is reported (NumericalIssue, x = 0) on tensors too.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../fixtures.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/torch/tensor_space.hpp"

namespace ift::deep {
namespace {

using Tensor = ::torch::Tensor;

using ift::testing::input_factor;
using ift::testing::random_matrix;

/// Symmetric positive definite with eigenvalues spread over `spread`.
Matrix<double> spd(Index n, double spread, std::uint64_t seed) {
  const Eigen::HouseholderQR<Matrix<double>> qr(random_matrix(n, n, seed));
  const Matrix<double> Q = qr.householderQ();
  Vector<double> d(n);
  for (Index i = 0; i < n; ++i) d[i] = std::pow(spread, n > 1 ? double(i) / double(n - 1) : 0.0);
  return Q * d.asDiagonal() * Q.transpose();
}

/// Two blocks in a 40-parameter vector: block 0 keeps its bias apart (3 outputs, 3 inputs +
/// bias: weights [2, 11), bias [30, 33)), block 1 is contiguous ([12, 24)); the rest is
/// outside every block.
std::vector<KroneckerBlock<double>> eigen_blocks() {
  std::vector<KroneckerBlock<double>> blocks(2);
  blocks[0].offset = 2;
  blocks[0].bias_offset = 30;
  blocks[0].A = input_factor(3, 50, 11);
  blocks[0].G = spd(3, 20.0, 12);
  blocks[1].offset = 12;
  blocks[1].A = input_factor(2, 40, 13);
  blocks[1].G = spd(4, 100.0, 14) * 0.1;
  return blocks;
}
constexpr Index kDimension = 40;

std::vector<KfacBlock<Tensor>> tensor_blocks(const std::vector<KroneckerBlock<double>>& blocks,
                                             const ::torch::TensorOptions& options) {
  std::vector<KfacBlock<Tensor>> out;
  for (const auto& b : blocks) {
    KfacBlock<Tensor> t;
    t.offset = b.offset;
    t.bias_offset = b.bias_offset;
    t.A = to_tensor(b.A, options);
    t.G = to_tensor(b.G, options);
    out.push_back(t);
  }
  return out;
}

std::vector<::torch::TensorOptions> devices() {
  std::vector<::torch::TensorOptions> out{::torch::TensorOptions().dtype(::torch::kDouble)};
  if (::torch::cuda::is_available())
    out.push_back(::torch::TensorOptions().dtype(::torch::kDouble).device(::torch::kCUDA));
  return out;
}

double relative_error(const Tensor& a, const Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

TEST(TorchKfacInverse, EigenAndTensorBackendsAgreeOnRandomFactors) {
  const auto blocks = eigen_blocks();
  Vector<double> x(kDimension);
  VectorSpace<Vector<double>>::fill_random(x, 21);
  for (const auto& options : devices()) {
    const auto tblocks = tensor_blocks(blocks, options);
    const Tensor tx = to_tensor(x, options);
    for (const auto mode : {KfacDampingMode::Exact, KfacDampingMode::Factored}) {
      for (const double delta : {1e-3, 0.5}) {
        SCOPED_TRACE(std::string(to_string(mode)) + " δ = " + std::to_string(delta) + " on " +
                     options.device().str());
        const KfacInverseOperator<double> eigen(kDimension, blocks, delta, mode);
        const KfacInverse<Tensor> tensor(kDimension, tblocks, delta, mode);
        ASSERT_EQ(eigen.status(), SolverStatus::Converged) << eigen.message();
        ASSERT_EQ(tensor.status(), SolverStatus::Converged) << tensor.message();
        EXPECT_EQ(tensor.message(), eigen.message());
        Vector<double> y(kDimension);
        eigen.apply(x, y);
        Tensor ty = ::torch::zeros_like(tx);
        tensor.apply(tx, ty);
        EXPECT_EQ(ty.device(), tx.device());
        // Two eigensolvers (Eigen's and LAPACK's / cuSOLVER's) on factors with κ ≤ 1e4:
        // agreement to a few thousand ulps of the result.
        EXPECT_LT(relative_error(ty.cpu(), to_tensor(y, ::torch::kDouble)), 1e-11);
        // kfac_solve: the same status and numbers through the seam's vector operations.
        const auto a = kfac_solve(eigen, x);
        const auto b = kfac_solve(tensor, tx);
        EXPECT_EQ(a.status, SolverStatus::Converged);
        EXPECT_EQ(b.status, SolverStatus::Converged);
        EXPECT_LT(relative_error(b.x.cpu(), to_tensor(a.x, ::torch::kDouble)), 1e-11);
      }
    }
  }
}

// The penalty in the eigenbases (KfacPenalty::Eigenbasis): the same per-weight diagonal, laid
// out in each backend's flat vector, gives the same operator on both backends (its three powers).
TEST(TorchKfacInverse, EigenbasisPenaltyAgreesAcrossBackends) {
  const auto blocks = eigen_blocks();
  Vector<double> x(kDimension), p(kDimension);
  VectorSpace<Vector<double>>::fill_random(x, 41);
  VectorSpace<Vector<double>>::fill_random(p, 42);
  p = (p.array() * 2.3 - 4.6).exp().matrix();  // decays over two orders of magnitude
  const double delta = 1e-3, outside = p.mean();
  const KfacPenaltyDiagonal<Vector<double>> eigen_penalty{p, outside};
  const KfacInverseOperator<double> eigen(kDimension, blocks, delta, KfacDampingMode::Exact,
                                          &eigen_penalty);
  ASSERT_EQ(eigen.status(), SolverStatus::Converged) << eigen.message();
  for (const auto& options : devices()) {
    SCOPED_TRACE(options.device().str());
    const KfacPenaltyDiagonal<Tensor> tensor_penalty{to_tensor(p, options), outside};
    const KfacInverse<Tensor> tensor(kDimension, tensor_blocks(blocks, options), delta,
                                     KfacDampingMode::Exact, &tensor_penalty);
    ASSERT_EQ(tensor.status(), SolverStatus::Converged) << tensor.message();
    EXPECT_EQ(tensor.message(), eigen.message());
    const Tensor tx = to_tensor(x, options);
    for (const KfacPower power : {KfacPower::Inverse, KfacPower::InverseRoot, KfacPower::Root}) {
      Vector<double> y(kDimension);
      eigen.apply_power(x, y, power);
      Tensor ty = ::torch::zeros_like(tx);
      tensor.apply_power(tx, ty, power);
      EXPECT_LT(relative_error(ty.cpu(), to_tensor(y, ::torch::kDouble)), 1e-11);
    }
    // And it is not the mean's operator: the decays' spread changes the result.
    const KfacInverse<Tensor> mean(kDimension, tensor_blocks(blocks, options), delta + outside);
    Tensor a = ::torch::zeros_like(tx), b = ::torch::zeros_like(tx);
    tensor.apply(tx, a);
    mean.apply(tx, b);
    EXPECT_GT(relative_error(a, b), 1e-4);  // far above round-off (1e-14)
  }
}

TEST(TorchKfacInverse, InverseUndoesTheForwardCurvatureOnTensors) {
  const auto blocks = eigen_blocks();
  for (const auto& options : devices()) {
    const auto tblocks = tensor_blocks(blocks, options);
    Vector<double> host(kDimension);
    VectorSpace<Vector<double>>::fill_random(host, 31);
    const Tensor x = to_tensor(host, options);
    for (const double delta : {1e-2, 1.0}) {
      SCOPED_TRACE("δ = " + std::to_string(delta) + " on " + options.device().str());
      const KfacCurvature<Tensor> forward(kDimension, tblocks, delta);
      const KfacInverse<Tensor> inverse(kDimension, tblocks, delta, KfacDampingMode::Exact);
      ASSERT_EQ(inverse.status(), SolverStatus::Converged) << inverse.message();
      Tensor y = ::torch::zeros_like(x), z = ::torch::zeros_like(x);
      forward.apply(x, y);
      inverse.apply(y, z);
      // κ(G ⊗ A + δI) ≤ 1e4 / δ: the round trip loses that many ulps at most.
      EXPECT_LT(relative_error(z, x), 1e-11 / delta);
      inverse.apply(x, y);
      forward.apply(y, z);
      EXPECT_LT(relative_error(z, x), 1e-11 / delta);
    }
  }
}

TEST(TorchKfacInverse, TensorLayoutIsWeightsOutByInWithTheBiasApart) {
  // The forward curvature on tensors against its definition written out with LibTorch's
  // layout: block 0's weights are row-major out × in at offset, its bias at bias_offset, and
  // the block acts as M ↦ A M G on the (in+1) × out matrix M = [Wᵀ; bᵀ].
  const auto blocks = eigen_blocks();
  const auto options = ::torch::TensorOptions().dtype(::torch::kDouble);
  const auto tblocks = tensor_blocks(blocks, options);
  const double delta = 0.25;
  const Tensor x = ::torch::randn({kDimension}, options);
  Tensor y = ::torch::zeros_like(x);
  KfacCurvature<Tensor>(kDimension, tblocks, delta).apply(x, y);

  Tensor expected = delta * x;
  const auto& b0 = tblocks[0];
  const Tensor W = x.narrow(0, 2, 9).view({3, 3});                              // out × in
  const Tensor M = ::torch::cat({W, x.narrow(0, 30, 3).view({3, 1})}, 1).t();  // (in+1) × out
  const Tensor AMG = ::torch::mm(::torch::mm(b0.A, M), b0.G);
  expected.narrow(0, 2, 9).add_(AMG.narrow(0, 0, 3).t().reshape({-1}));
  expected.narrow(0, 30, 3).add_(AMG.select(0, 3));
  const auto& b1 = tblocks[1];
  const Tensor M1 = x.narrow(0, 12, 12).view({4, 3}).t();  // 3 × 4, out = 4
  expected.narrow(0, 12, 12).add_(::torch::mm(::torch::mm(b1.A, M1), b1.G).t().reshape({-1}));
  EXPECT_LT(relative_error(y, expected), 1e-14);

  // And the Eigen backend reads the same layout: its forward operator gives the same y.
  const Vector<double> host = to_vector<double>(x);
  Vector<double> eigen_y(kDimension);
  KfacCurvatureOperator<double>(kDimension, blocks, delta).apply(host, eigen_y);
  EXPECT_LT(relative_error(to_tensor(eigen_y, options), expected), 1e-14);
}

TEST(TorchKfacInverse, UndefinedInverseIsReportedOnTensors) {
  for (const auto& options : devices()) {
    SCOPED_TRACE(options.device().str());
    KfacBlock<Tensor> block;
    block.A = ::torch::zeros({3, 3}, options);
    block.A[0][0] = 1;  // singular factor
    block.G = ::torch::eye(2, options);
    const Tensor g = ::torch::randn({6}, options);
    const KfacInverse<Tensor> singular(6, {block}, 0.0);
    EXPECT_EQ(singular.status(), SolverStatus::NumericalIssue);
    const auto r = kfac_solve(singular, g);
    EXPECT_EQ(r.status, SolverStatus::NumericalIssue);
    EXPECT_TRUE(::torch::equal(r.x, ::torch::zeros_like(g)));
    EXPECT_NE(r.message.find("singular or indefinite"), std::string::npos) << r.message;
    // The same factor with damping is defined; uncovered parameters need δ > 0.
    EXPECT_EQ(kfac_solve(KfacInverse<Tensor>(6, {block}, 0.1), g).status, SolverStatus::Converged);
    block.A = ::torch::eye(3, options);
    EXPECT_EQ(KfacInverse<Tensor>(8, {block}, 0.0).status(), SolverStatus::NumericalIssue);
    // Non-finite factors.
    block.G[0][1] = std::nan("");
    EXPECT_EQ(KfacInverse<Tensor>(6, {block}, 1.0).status(), SolverStatus::NumericalIssue);
    // Misuse throws, naming the block: a bias range past the end.
    block.G = ::torch::eye(2, options);
    block.bias_offset = 5;
    EXPECT_THROW(KfacInverse<Tensor>(6, {block}, 1.0), std::invalid_argument);
  }
}

}  // namespace
}  // namespace ift::deep
