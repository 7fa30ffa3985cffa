// KFAC's eigenbasis, put to more use (linalg/kfac.hpp). (1) The penalty's curvature in the
// Kronecker eigenbases (KfacPenalty::Eigenbasis): the operator against its definition assembled
// densely, U (diag(da dgᵀ) + δ + diag(Uᵀ P U)) Uᵀ per block with the mean outside; the theorem
// behind it (the nearest matrix with KFAC's eigenvectors to G ⊗ A + δI + P, in Frobenius norm,
// so never farther than the mean's); equality with the mean for a global decay. (2) EKFAC's
// corrected eigenvalues (KfacEigenvalues::Corrected): the models' diag(Uᵀ H U) against the dense
// Hessian (softmax regression) and Gauss-Newton blocks (MLP), equal to KFAC's when KFAC is exact
// (one training row), nearer to H than KFAC. Both:
// cg+kfac run to convergence equals the exact solve; float agrees with double; errors.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include <Eigen/Eigenvalues>

#include "fixtures.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/models/logistic_regression.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace {

using namespace ift;
using ift::testing::random_classification;
using ift::testing::input_factor;
using ift::testing::random_matrix;
using ift::testing::random_vector;

Matrix<double> spd(Index n, double scale, std::uint64_t seed) {
  const Matrix<double> r = random_matrix(n, n, seed);
  return scale * (r * r.transpose() / double(n) + 0.05 * Matrix<double>::Identity(n, n));
}

/// Two blocks in a 40-parameter vector: block 0 keeps its bias apart (3 inputs + bias, 3
/// outputs: weights [2, 11), bias [30, 33)), block 1 is contiguous ([12, 24)); the rest is
/// outside every block.
std::vector<KroneckerBlock<double>> two_blocks() {
  std::vector<KroneckerBlock<double>> blocks(2);
  blocks[0].offset = 2;
  blocks[0].bias_offset = 30;
  blocks[0].A = input_factor(3, 50, 11);
  blocks[0].G = spd(3, 2.0, 12);
  blocks[1].offset = 12;
  blocks[1].A = input_factor(2, 40, 13);
  blocks[1].G = spd(4, 0.1, 14);
  return blocks;
}
constexpr Index kDimension = 40;

/// Decays per weight spread over two orders of magnitude, as Adam leaves per-weight λ.
Vector<double> spread_penalty(Index n, std::uint64_t seed) {
  return (random_vector<double>(n, seed).array() * 2.3 - 4.6).exp().matrix();
}

/// E_b: D × (in·out), column j + in·o is the unit vector at the position of M(j, o).
Matrix<double> selection(const KroneckerBlock<double>& b, Index D) {
  const Index n = b.size();
  Matrix<double> E = Matrix<double>::Zero(D, n);
  Matrix<double> unit = Matrix<double>::Zero(b.inputs(), b.outputs());
  for (Index c = 0; c < n; ++c) {
    unit.setZero();
    unit(c % b.inputs(), c / b.inputs()) = 1;
    Vector<double> column = Vector<double>::Zero(D);
    MatrixSpace<Vector<double>>::write_block(unit, b.layout(), column, false);
    E.col(c) = column;
  }
  return E;
}

/// G ⊗ A acting on the column-major vec of the in × out matrix M: vec(A M G).
Matrix<double> kron(const Matrix<double>& G, const Matrix<double>& A) {
  Matrix<double> K(A.rows() * G.rows(), A.cols() * G.cols());
  for (Index o = 0; o < G.rows(); ++o)
    for (Index p = 0; p < G.cols(); ++p) K.block(o * A.rows(), p * A.cols(), A.rows(), A.cols()) = G(o, p) * A;
  return K;
}

struct DenseBlock {
  Matrix<double> U;  // Ug ⊗ Ua
  Vector<double> s;  // da_j dg_o at j + in·o
};

DenseBlock eigenbasis(const KroneckerBlock<double>& b) {
  const Eigen::SelfAdjointEigenSolver<Matrix<double>> ea(b.A), eg(b.G);
  DenseBlock d;
  d.U = kron(eg.eigenvectors(), ea.eigenvectors());
  d.s.resize(b.size());
  for (Index o = 0; o < b.outputs(); ++o)
    for (Index j = 0; j < b.inputs(); ++j)
      d.s[j + b.inputs() * o] = ea.eigenvalues()[j] * eg.eigenvalues()[o];
  return d;
}

/// The eigenbasis KFAC curvature of one block, from its definition.
Matrix<double> eigenbasis_block(const KroneckerBlock<double>& b, double delta, const Vector<double>& p) {
  const DenseBlock d = eigenbasis(b);
  const Vector<double> shift = (d.U.transpose() * p.asDiagonal() * d.U).diagonal();
  return d.U * (d.s.array() + delta + shift.array()).matrix().asDiagonal() * d.U.transpose();
}

TEST(KfacEigenbasisPenalty, InverseAndRootsMatchTheDenseDefinition) {
  const auto blocks = two_blocks();
  const Index D = kDimension;
  const double delta = 1e-3;
  const Vector<double> p = spread_penalty(D, 3);
  Vector<double> covered = Vector<double>::Zero(D);
  Matrix<double> K = Matrix<double>::Zero(D, D);
  double sum = 0;
  Index n = 0;
  for (const auto& b : blocks) {
    const Matrix<double> E = selection(b, D);
    K += E * eigenbasis_block(b, delta, E.transpose() * p) * E.transpose();
    covered += E.rowwise().sum();
    sum += (E.transpose() * p).sum();
    n += b.size();
  }
  const double outside = sum / double(n);  // what generic::kfac_inverse passes: the mean
  for (Index i = 0; i < D; ++i)
    if (covered[i] == 0) K(i, i) = delta + outside;
  ASSERT_EQ(covered.maxCoeff(), 1.0);
  ASSERT_LT(covered.sum(), double(D));  // some parameters lie outside every block

  const KfacPenaltyDiagonal<Vector<double>> penalty{p, outside};
  const KfacInverseOperator<double> inverse(D, blocks, delta, KfacDampingMode::Exact, &penalty);
  ASSERT_EQ(inverse.status(), SolverStatus::Converged) << inverse.message();
  EXPECT_NE(inverse.message().find("penalty in the eigenbases"), std::string::npos);
  const Vector<double> x = random_vector<double>(D, 5);
  Vector<double> y(D), z(D);
  inverse.apply(x, y);
  const Vector<double> expected = K.ldlt().solve(x);
  EXPECT_LT((y - expected).norm(), 1e-11 * expected.norm());
  inverse.apply_power(x, y, KfacPower::Root);  // K^(1/2) K^(1/2) x = K x
  inverse.apply_power(y, z, KfacPower::Root);
  EXPECT_LT((z - K * x).norm(), 1e-12 * (K * x).norm());
  inverse.apply_power(x, y, KfacPower::InverseRoot);  // K^(1/2) K^(−1/2) x = x
  inverse.apply_power(y, z, KfacPower::Root);
  EXPECT_LT((z - x).norm(), 1e-12 * x.norm());
}

// The theorem that makes it the right diagonal: among all matrices U diag(e) Uᵀ with KFAC's
// eigenvectors, the one nearest to T = G ⊗ A + δI + P in Frobenius norm has e = diag(Uᵀ T U)
// (‖U diag(e) Uᵀ − T‖² = ‖e − diag(Uᵀ T U)‖² + the off-diagonal part, which e cannot change).
// The mean's operator, G ⊗ A + (δ + mean P) I, is one of them, so it is never nearer.
TEST(KfacEigenbasisPenalty, IsTheNearestMatrixWithKfacEigenvectorsToKfacPlusPenalty) {
  const auto blocks = two_blocks();
  const double delta = 1e-3;
  for (const auto& b : blocks) {
    const Vector<double> p = spread_penalty(b.size(), 7 + b.offset);
    const Matrix<double> T =
        kron(b.G, b.A) + (delta * Vector<double>::Ones(b.size()) + p).asDiagonal().toDenseMatrix();
    const Matrix<double> Ke = eigenbasis_block(b, delta, p);
    const double mean = p.mean();
    const Matrix<double> Km = kron(b.G, b.A) + (delta + mean) * Matrix<double>::Identity(b.size(), b.size());
    const double e_dist = (Ke - T).norm(), m_dist = (Km - T).norm();
    EXPECT_LT(e_dist, m_dist);  // strictly: P is not constant
    // Any other eigenvalues in the same eigenbasis are farther.
    const DenseBlock d = eigenbasis(b);
    const Vector<double> e = (d.U.transpose() * Ke * d.U).diagonal();
    for (std::uint64_t seed = 0; seed < 5; ++seed) {
      const Vector<double> other = e + 1e-3 * random_vector<double>(b.size(), 100 + seed);
      EXPECT_GT((d.U * other.asDiagonal() * d.U.transpose() - T).norm(), e_dist);
    }
    // And diag(Uᵀ K U) = diag(Uᵀ T U): the eigenbasis diagonal of G ⊗ A + δI + P exactly.
    EXPECT_LT((e - (d.U.transpose() * T * d.U).diagonal()).norm(), 1e-13 * e.norm());
  }
}

TEST(KfacEigenbasisPenalty, EqualsTheMeanForAConstantPenalty) {
  const auto blocks = two_blocks();
  const double c = 0.02, delta = 1e-4;
  const KfacPenaltyDiagonal<Vector<double>> penalty{Vector<double>::Constant(kDimension, c), c};
  const KfacInverseOperator<double> eigen(kDimension, blocks, delta, KfacDampingMode::Exact, &penalty);
  const KfacInverseOperator<double> mean(kDimension, blocks, delta + c);
  const Vector<double> x = random_vector<double>(kDimension, 9);
  for (const KfacPower power : {KfacPower::Inverse, KfacPower::InverseRoot, KfacPower::Root}) {
    Vector<double> a(kDimension), b(kDimension);
    eigen.apply_power(x, a, power);
    mean.apply_power(x, b, power);
    EXPECT_LT((a - b).norm(), 1e-13 * b.norm());
  }
}

TEST(KfacEigenbasisPenalty, BadPenaltiesAreRefusedOrReported) {
  const auto blocks = two_blocks();
  const KfacPenaltyDiagonal<Vector<double>> short_p{Vector<double>::Ones(kDimension - 1), 0};
  EXPECT_THROW(KfacInverseOperator<double>(kDimension, blocks, 0.1, KfacDampingMode::Exact, &short_p),
               std::invalid_argument);
  const KfacPenaltyDiagonal<Vector<double>> negative{Vector<double>::Ones(kDimension), -1};
  EXPECT_THROW(KfacInverseOperator<double>(kDimension, blocks, 0.1, KfacDampingMode::Exact, &negative),
               std::invalid_argument);
  KfacPenaltyDiagonal<Vector<double>> nan{Vector<double>::Ones(kDimension), 0};
  nan.diagonal[5] = std::nan("");
  const KfacInverseOperator<double> bad(kDimension, blocks, 0.1, KfacDampingMode::Exact, &nan);
  EXPECT_EQ(bad.status(), SolverStatus::NumericalIssue);
  EXPECT_NE(bad.message().find("non-finite penalty"), std::string::npos) << bad.message();
  // No damping and no penalty outside the blocks: the parameters there have no curvature.
  const KfacPenaltyDiagonal<Vector<double>> zero_outside{Vector<double>::Ones(kDimension), 0};
  const KfacInverseOperator<double> none(kDimension, blocks, 0, KfacDampingMode::Exact, &zero_outside);
  EXPECT_EQ(none.status(), SolverStatus::NumericalIssue);
}

template <class S>
std::unique_ptr<RegularizedProblem<SoftmaxRegression<S>>> problem(DecayKind decay, Index n,
                                                                  std::uint64_t seed) {
  const Index d = 6;
  auto train = std::make_shared<const Dataset<S>>(random_classification<S>(n, d, 3, seed));
  auto val = std::make_shared<const Dataset<S>>(random_classification<S>(30, d, 3, seed + 1));
  SoftmaxRegression<S> model(d + 1, 3);
  const WeightDecay<S> wd(decay, model.num_params());
  auto p = std::make_unique<RegularizedProblem<SoftmaxRegression<S>>>(model, wd, train, val);
  const Vector<S> w = random_vector<S>(model.num_params(), seed + 2, S(0.3));
  const Vector<S> lambda =
      (random_vector<S>(wd.num_hyper(), seed + 3, S(1.5)).array() + S(-4)).matrix();
  p->set_point(lambda, w);
  return p;
}

MethodSpec eigenbasis_spec(const char* name, Index steps) {
  MethodSpec s = parse_method_spec(name);
  s.steps = steps;
  s.kfac.penalty = KfacPenalty::Eigenbasis;
  return s;
}

TEST(KfacEigenbasisPenalty, OnAProblemEqualsTheMeanForAGlobalDecayAndDiffersPerWeight) {
  for (const DecayKind decay : {DecayKind::Global, DecayKind::PerWeight}) {
    auto p = problem<double>(decay, 40, 21);
    MethodSpec mean = parse_method_spec("kfac");
    mean.damping = 1e-4;
    MethodSpec eigen = mean;
    eigen.kfac.penalty = KfacPenalty::Eigenbasis;
    const auto a = generic::hypergradient(*p, mean);
    const auto b = generic::hypergradient(*p, eigen);
    ASSERT_EQ(b.status, SolverStatus::Converged) << b.message;
    const double gap = (a.v - b.v).norm() / a.v.norm();
    if (decay == DecayKind::Global) {
      EXPECT_LT(gap, 1e-12);
    } else {
      EXPECT_GT(gap, 1e-3);  // λ spread over ±1.5: the mean loses that spread
    }
  }
}

/// cg+kfac with `kfac` run to convergence on a per-weight problem equals the exact solve, and
/// its message says which operator preconditioned it.
void expect_converges_to_exact(const KfacParams& kfac, std::uint64_t seed, const char* marker) {
  auto p = problem<double>(DecayKind::PerWeight, 40, seed);
  MethodSpec exact;
  exact.method = Method::Exact;
  const auto e = generic::hypergradient(*p, exact);
  MethodSpec spec = parse_method_spec("cg+kfac");
  spec.steps = p->num_params();
  spec.kfac = kfac;
  spec.cg.tolerance = 1e-13;
  const auto r = generic::hypergradient(*p, spec);
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_LT((r.v - e.v).norm(), 1e-9 * e.v.norm());
  EXPECT_NE(r.message.find(marker), std::string::npos) << r.message;
}

TEST(KfacEigenbasisPenalty, PreconditionedCgRunToConvergenceEqualsTheExactSolve) {
  KfacParams kfac;
  kfac.penalty = KfacPenalty::Eigenbasis;
  expect_converges_to_exact(kfac, 31, "penalty in the eigenbases");
}

TEST(KfacEigenbasisPenalty, FloatAgreesWithDouble) {
  auto pd = problem<double>(DecayKind::PerWeight, 40, 41);
  auto pf = problem<float>(DecayKind::PerWeight, 40, 41);
  const MethodSpec spec = eigenbasis_spec("cg+kfac", 4);
  const auto d = generic::hypergradient(*pd, spec);
  const auto f = generic::hypergradient(*pf, spec);
  ASSERT_EQ(f.status, d.status) << f.message;
  EXPECT_LT((f.v.cast<double>() - d.v).norm(), 1e-3 * d.v.norm());
}

// --- EKFAC: corrected eigenvalues -------------------------------------------------------------

/// The data term's dense Hessian at the problem's point (the problem's Hessian minus the
/// penalty's diagonal).
template <class S>
Matrix<double> data_hessian(RegularizedProblem<SoftmaxRegression<S>>& p) {
  Matrix<S> H;
  p.hessian(H);
  Vector<S> penalty(p.num_params());
  p.penalty_hvp(Vector<S>::Ones(p.num_params()), penalty);
  H.diagonal() -= penalty;
  return H.template cast<double>();
}

/// diag(Uᵀ H U) for U = Ug ⊗ Ua, as an in × out matrix, from the dense H.
Matrix<double> dense_eigenvalues(const Matrix<double>& H, const Matrix<double>& Ua,
                                 const Matrix<double>& Ug) {
  const Matrix<double> U = kron(Ug, Ua);
  const Vector<double> d = (U.transpose() * H * U).diagonal();
  return Eigen::Map<const Matrix<double>>(d.data(), Ua.rows(), Ug.rows());
}

Matrix<double> random_orthonormal(Index n, std::uint64_t seed) {
  const Eigen::HouseholderQR<Matrix<double>> qr(random_matrix(n, n, seed));
  return qr.householderQ();
}

TEST(KfacCorrectedEigenvalues, EqualTheDenseHessiansDiagonalInTheBasis) {
  auto p = problem<double>(DecayKind::PerWeight, 40, 51);
  const Matrix<double> H = data_hessian(*p);
  std::vector<double> shift;
  const auto blocks = p->kfac_factors(shift);
  ASSERT_EQ(blocks.size(), 1u);
  const Eigen::SelfAdjointEigenSolver<Matrix<double>> ea(blocks[0].A), eg(blocks[0].G);
  // KFAC's own eigenbases and arbitrary orthonormal ones: the formula holds for any.
  const std::vector<std::pair<Matrix<double>, Matrix<double>>> bases = {
      {ea.eigenvectors(), eg.eigenvectors()},
      {random_orthonormal(blocks[0].inputs(), 61), random_orthonormal(blocks[0].outputs(), 62)}};
  for (const auto& [Ua, Ug] : bases) {
    Matrix<double> out;
    ASSERT_TRUE(p->kfac_corrected_eigenvalues(0, Ua, Ug, out));
    const Matrix<double> expected = dense_eigenvalues(H, Ua, Ug);
    EXPECT_LT((out - expected).norm(), 1e-13 * expected.norm());
    EXPECT_GE(out.minCoeff(), -1e-15);  // the data Hessian is PSD
  }
  // Float: the same to float rounding.
  auto pf = problem<float>(DecayKind::PerWeight, 40, 51);
  Matrix<float> out_f;
  ASSERT_TRUE(pf->kfac_corrected_eigenvalues(0, ea.eigenvectors().cast<float>(),
                                             eg.eigenvectors().cast<float>(), out_f));
  const Matrix<double> expected = dense_eigenvalues(H, ea.eigenvectors(), eg.eigenvectors());
  EXPECT_LT((out_f.cast<double>() - expected).norm(), 1e-5 * expected.norm());
}

// One training row: H_data = S ⊗ x xᵀ = G ⊗ A exactly, so KFAC's eigenbasis diagonalises it and
// the corrected eigenvalues are KFAC's own, da dgᵀ; the EKFAC inverse is the KFAC inverse.
TEST(KfacCorrectedEigenvalues, AreKfacsOwnWhenKfacIsExact) {
  auto p = problem<double>(DecayKind::Global, 1, 71);
  std::vector<double> shift;
  const auto blocks = p->kfac_factors(shift);
  const Eigen::SelfAdjointEigenSolver<Matrix<double>> ea(blocks[0].A), eg(blocks[0].G);
  Matrix<double> out;
  ASSERT_TRUE(p->kfac_corrected_eigenvalues(0, ea.eigenvectors(), eg.eigenvectors(), out));
  const Matrix<double> kfac = ea.eigenvalues() * eg.eigenvalues().transpose();
  EXPECT_LT((out - kfac).cwiseAbs().maxCoeff(), 1e-14 * kfac.cwiseAbs().maxCoeff());
  MethodSpec plain = parse_method_spec("kfac");
  MethodSpec ekfac = plain;
  ekfac.kfac.eigenvalues = KfacEigenvalues::Corrected;
  const auto a = generic::hypergradient(*p, plain);
  const auto b = generic::hypergradient(*p, ekfac);
  ASSERT_EQ(b.status, SolverStatus::Converged) << b.message;
  EXPECT_NE(b.message.find("EKFAC"), std::string::npos) << b.message;
  EXPECT_LT((a.v - b.v).norm(), 1e-9 * a.v.norm());
}

// The theorem: with the penalty in the eigenbasis too, EKFAC's block is U diag(Uᵀ H U) Uᵀ, the
// nearest matrix to the true H among those with KFAC's eigenvectors, so nearer than KFAC's.
TEST(KfacCorrectedEigenvalues, EkfacIsNearerToTheHessianThanKfac) {
  auto p = problem<double>(DecayKind::PerWeight, 40, 81);
  Matrix<double> H;
  p->hessian(H);
  const Index D = p->num_params();
  const auto dense = [&](const MethodSpec& spec) {  // the operator K from its inverse, densely
    const KfacInverse<Vector<double>> K = generic::detail::kfac_inverse(*p, spec);
    EXPECT_EQ(K.status(), SolverStatus::Converged) << K.message();
    Matrix<double> M(D, D);
    Vector<double> e(D), y(D);
    for (Index i = 0; i < D; ++i) {
      e.setZero();
      e[i] = 1;
      K.apply_power(e, y, KfacPower::Root);
      M.col(i) = y;
    }
    return Matrix<double>(M * M);  // K^(1/2) K^(1/2)
  };
  MethodSpec kfac = parse_method_spec("kfac");
  MethodSpec penalty = kfac;
  penalty.kfac.penalty = KfacPenalty::Eigenbasis;
  MethodSpec ekfac = penalty;
  ekfac.kfac.eigenvalues = KfacEigenvalues::Corrected;
  const double d_kfac = (dense(kfac) - H).norm(), d_penalty = (dense(penalty) - H).norm(),
               d_ekfac = (dense(ekfac) - H).norm();
  // Both others have KFAC's eigenvectors too (their distances to H are not ordered: each is
  // nearest to G ⊗ A plus its own penalty term, not to H).
  EXPECT_LT(d_ekfac, d_penalty);
  EXPECT_LT(d_ekfac, d_kfac);
  // And the eigenbasis diagonal of EKFAC's K is H's exactly.
  std::vector<double> shift;
  const auto blocks = p->kfac_factors(shift);
  const Eigen::SelfAdjointEigenSolver<Matrix<double>> ea(blocks[0].A), eg(blocks[0].G);
  const Matrix<double> U = kron(eg.eigenvectors(), ea.eigenvectors());
  const Vector<double> dk = (U.transpose() * dense(ekfac) * U).diagonal();
  const Vector<double> dh = (U.transpose() * H * U).diagonal();
  EXPECT_LT((dk - dh).norm(), 1e-10 * dh.norm());
}

TEST(KfacCorrectedEigenvalues, PreconditionedCgRunToConvergenceEqualsTheExactSolve) {
  KfacParams kfac;
  kfac.penalty = KfacPenalty::Eigenbasis;
  kfac.eigenvalues = KfacEigenvalues::Corrected;
  expect_converges_to_exact(kfac, 91, "EKFAC");
}

// The MLP's blocks are KFAC's approximation of the Gauss-Newton matrix's diagonal blocks
// (KFLR: exact output-side curvature): its corrected eigenvalues are diag(Uᵀ G_l U) of the dense
// Gauss-Newton block of each layer, in KFAC's bases and in arbitrary orthonormal ones.
TEST(KfacCorrectedEigenvalues, MlpEqualsTheDenseGaussNewtonBlocksDiagonal) {
  Mlp<double> model({3, 4, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy);
  const Dataset<double> data = random_classification<double>(25, 3, 3, 7, false);
  const Vector<double> w = random_vector<double>(model.num_params(), 9, 0.5);
  Mlp<double>::Cache cache;
  Vector<double> gradient;
  model.evaluate(data, w, cache, &gradient);
  Matrix<double> G;
  model.gauss_newton_matrix(data, w, cache, G);
  const auto blocks = model.kfac_factors(data, w, cache);
  ASSERT_EQ(blocks.size(), 2u);
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    SCOPED_TRACE("layer " + std::to_string(b));
    const Index size = blocks[b].size(), offset = blocks[b].offset;
    const Matrix<double> Gb = G.block(offset, offset, size, size);
    const Eigen::SelfAdjointEigenSolver<Matrix<double>> ea(blocks[b].A), eg(blocks[b].G);
    const std::vector<std::pair<Matrix<double>, Matrix<double>>> bases = {
        {ea.eigenvectors(), eg.eigenvectors()},
        {random_orthonormal(blocks[b].inputs(), 63 + b),
         random_orthonormal(blocks[b].outputs(), 64 + b)}};
    for (const auto& [Ua, Ug] : bases) {
      Matrix<double> out;
      model.kfac_corrected_eigenvalues(data, w, cache, b, Ua, Ug, out);
      const Matrix<double> expected = dense_eigenvalues(Gb, Ua, Ug);
      EXPECT_LT((out - expected).norm(), 1e-12 * expected.norm());
    }
  }
  // And on the problem, cg+kfac with them run to convergence is the exact solve.
  RegularizedProblem<Mlp<double>> problem(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      std::make_shared<const Dataset<double>>(data),
      std::make_shared<const Dataset<double>>(random_classification<double>(10, 3, 3, 8, false)));
  // Decays of e⁻¹ keep H positive definite at these weights (the tanh MLP's H is not PSD).
  problem.set_point(Vector<double>::Constant(model.num_params(), -1.0), w);
  MethodSpec exact;
  exact.method = Method::Exact;
  const auto e = generic::hypergradient(problem, exact);
  ASSERT_EQ(e.status, SolverStatus::Converged) << e.message;
  MethodSpec spec = parse_method_spec("cg+kfac");
  spec.steps = problem.num_params();
  spec.kfac.eigenvalues = KfacEigenvalues::Corrected;
  spec.cg.tolerance = 1e-13;
  const auto r = generic::hypergradient(problem, spec);
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_NE(r.message.find("EKFAC"), std::string::npos) << r.message;
  EXPECT_LT((r.v - e.v).norm(), 1e-9 * e.v.norm());
}

TEST(KfacCorrectedEigenvalues, RefusedWhereNotDefined) {
  // A model without them (binary logistic regression) says so, naming the option.
  LogisticRegression<double> model(6);
  RegularizedProblem<LogisticRegression<double>> logistic(
      model, WeightDecay<double>(DecayKind::Global, 6),
      std::make_shared<const Dataset<double>>(random_classification<double>(50, 5, 2, 5)),
      std::make_shared<const Dataset<double>>(random_classification<double>(30, 5, 2, 6)));
  logistic.set_point(Vector<double>::Constant(1, -2.0), random_vector<double>(6, 8, 0.3));
  MethodSpec spec = parse_method_spec("kfac");
  spec.damping = 1e-3;
  spec.kfac.eigenvalues = KfacEigenvalues::Corrected;
  try {
    generic::hypergradient(logistic, spec);
    ADD_FAILURE() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--kfac-eigenvalues corrected"), std::string::npos)
        << e.what();
  }
  // With the factored damping mode it is refused up front.
  spec.kfac.damping_mode = KfacDampingMode::Factored;
  EXPECT_THROW(spec.check(), std::invalid_argument);
}

}  // namespace
