// Copy and move of the types that own a factorisation (or a pointer into themselves): each is
// either refused at compile time or leaves an object that solves correctly on its own, after the
// source is modified or destroyed. The static_asserts are the compile-time half: changing a
// type's copy/move semantics breaks this file's build.
#include <gtest/gtest.h>

#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "fixtures.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/hypergradient.hpp"
#include "ift/inner.hpp"
#include "ift/linalg/dense_solver.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace ift {
namespace {

// DenseSolver reads a matrix it does not own: copies share it (the documented contract), moves
// take the factor; binding or rebinding to a temporary does not compile.
static_assert(std::is_copy_constructible_v<DenseSolver<double>>);
static_assert(std::is_copy_assignable_v<DenseSolver<double>>);
static_assert(std::is_move_constructible_v<DenseSolver<double>>);
static_assert(std::is_move_assignable_v<DenseSolver<double>>);
static_assert(!std::is_constructible_v<DenseSolver<double>, Matrix<double>&&>);
template <class T>
concept RebindsToTemporary = requires(T& t) { t.rebind(Matrix<double>()); };
static_assert(!RebindsToTemporary<DenseSolver<double>>);

// DenseWorkspace owns the matrix its solver reads: copy and move rebind (tested below).
static_assert(std::is_copy_constructible_v<generic::DenseWorkspace<double>>);
static_assert(std::is_copy_assignable_v<generic::DenseWorkspace<double>>);
static_assert(std::is_move_constructible_v<generic::DenseWorkspace<double>>);
static_assert(std::is_move_assignable_v<generic::DenseWorkspace<double>>);

// HypergradientEngine: not copyable (a D² curvature and its factor), movable (rebinding).
static_assert(!std::is_copy_constructible_v<HypergradientEngine<double>>);
static_assert(!std::is_copy_assignable_v<HypergradientEngine<double>>);
static_assert(!std::is_copy_constructible_v<HypergradientEngine<float>>);
static_assert(std::is_move_constructible_v<HypergradientEngine<double>>);
static_assert(std::is_move_assignable_v<HypergradientEngine<double>>);

// KfacInverseOperator owns its factors by value: copies are independent, moves invalidate the
// source.
static_assert(std::is_copy_constructible_v<KfacInverseOperator<double>>);
static_assert(std::is_move_constructible_v<KfacInverseOperator<double>>);
static_assert(std::is_move_assignable_v<KfacInverseOperator<double>>);

Matrix<double> spd(Index n, std::uint64_t seed, double shift) {
  const Vector<double> r = testing::random_vector<double>(n * n, seed);
  const Matrix<double> B = Eigen::Map<const Matrix<double>>(r.data(), n, n);
  Matrix<double> H = B * B.transpose();
  H.diagonal().array() += shift;
  return H;
}

/// ||H x − g|| / ||g|| computed here, independently of the solver.
double residual(const Matrix<double>& H, const Vector<double>& x, const Vector<double>& g) {
  return (H * x - g).norm() / g.norm();
}

TEST(Ownership, DenseSolverMoveLeavesSourceEmpty) {
  const Matrix<double> H = spd(12, 1, 1.0);
  const Vector<double> g = testing::random_vector<double>(12, 2);
  DenseSolver<double> source(H);
  DenseSolver<double> moved(std::move(source));
  const auto r = moved.solve(g);
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_LT(residual(H, r.x, g), 1e-12);
  // The moved-from solver is a default one: it refuses to solve instead of reading a moved factor.
  EXPECT_EQ(source.factorization(), DenseFactorization::None);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(source.rows(), 0);
  EXPECT_EQ(source.matrix(), nullptr);
  EXPECT_THROW((void)source.solve(g), std::invalid_argument);
  Vector<double> x;
  EXPECT_THROW(source.apply_inverse(g, x), std::invalid_argument);
  // And it can be used again.
  source.compute(H);
  EXPECT_LT(residual(H, source.solve(g).x, g), 1e-12);
}

TEST(Ownership, DenseSolverRebindChecksTheSize) {
  const Matrix<double> H = spd(6, 3, 1.0);
  const Matrix<double> other = spd(7, 3, 1.0);
  DenseSolver<double> solver;
  EXPECT_THROW(solver.rebind(H), std::invalid_argument);  // nothing factorised yet
  solver.compute(H);
  EXPECT_THROW(solver.rebind(other), std::invalid_argument);
  const Matrix<double> copy = H;
  solver.rebind(copy);
  EXPECT_EQ(solver.matrix(), &copy);
}

TEST(Ownership, DenseWorkspaceCopyReadsItsOwnMatrix) {
  const Index n = 15;
  const Vector<double> g = testing::random_vector<double>(n, 4);
  generic::DenseWorkspace<double> source;
  source.matrix = spd(n, 5, 0.5);
  source.solver.compute(source.matrix);
  const Matrix<double> H = source.matrix;

  generic::DenseWorkspace<double> copy(source);
  generic::DenseWorkspace<double> assigned;
  assigned = source;
  EXPECT_EQ(copy.solver.matrix(), &copy.matrix);
  EXPECT_EQ(assigned.solver.matrix(), &assigned.matrix);

  // The source moves on to another matrix: the copies must neither see it nor use it.
  source.matrix = spd(n, 6, 3.0);
  source.solver.compute(source.matrix);
  for (const auto* ws : {&copy, &assigned}) {
    const auto r = ws->solver.solve(g);
    EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
    EXPECT_LT(residual(H, r.x, g), 1e-12);
    ASSERT_TRUE(r.relative_residual.has_value());
    EXPECT_LT(*r.relative_residual, 1e-12);  // computed against the copy's own H
  }
}

TEST(Ownership, DenseWorkspaceMoveSurvivesTheSource) {
  const Index n = 15;
  const Vector<double> g = testing::random_vector<double>(n, 7);
  auto source = std::make_unique<generic::DenseWorkspace<double>>();
  source->matrix = spd(n, 8, 0.5);
  source->solver.compute(source->matrix);
  const Matrix<double> H = source->matrix;

  generic::DenseWorkspace<double> moved(std::move(*source));
  EXPECT_EQ(moved.solver.matrix(), &moved.matrix);
  EXPECT_EQ(source->solver.factorization(), DenseFactorization::None);
  EXPECT_EQ(source->matrix.size(), 0);
  generic::DenseWorkspace<double> assigned;
  assigned.matrix = spd(3, 9, 1.0);
  assigned.solver.compute(assigned.matrix);
  assigned = std::move(moved);
  EXPECT_EQ(assigned.solver.matrix(), &assigned.matrix);
  source.reset();

  const auto r = assigned.solver.solve(g);
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_LT(residual(H, r.x, g), 1e-12);
  ASSERT_TRUE(r.relative_residual.has_value());
  EXPECT_LT(*r.relative_residual, 1e-12);
}

TEST(Ownership, DenseWorkspaceKeepsAnExternalMatrix) {
  // A solver pointed at a matrix outside the workspace keeps reading that matrix.
  const Matrix<double> external = spd(5, 10, 1.0);
  generic::DenseWorkspace<double> source;
  source.solver.compute(external);
  const generic::DenseWorkspace<double> copy(source);
  EXPECT_EQ(copy.solver.matrix(), &external);
}

TEST(Ownership, MovedHypergradientEngineSolvesAfterTheSourceIsGone) {
  SoftmaxRegression<double> model(5, 3);
  RegularizedProblem<SoftmaxRegression<double>> problem(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()),
      std::make_shared<const Dataset<double>>(testing::random_classification<double>(40, 4, 3, 1)),
      std::make_shared<const Dataset<double>>(testing::random_classification<double>(30, 4, 3, 2)));
  const Vector<double> lambda = Vector<double>::Constant(problem.num_hyper(), -2.0);
  Vector<double> w = Vector<double>::Zero(problem.num_params());
  ASSERT_TRUE(newton_solve(problem, lambda, w).converged);

  MethodSpec spec;
  spec.method = Method::Exact;
  auto source = std::make_unique<HypergradientEngine<double>>(spec);
  const auto h = source->compute(problem);
  ASSERT_EQ(h.status, SolverStatus::Converged) << h.message;
  const Matrix<double> H = source->dense_curvature();

  HypergradientEngine<double> moved(std::move(*source));
  EXPECT_EQ(source->dense_solver().factorization(), DenseFactorization::None);
  HypergradientEngine<double> assigned(spec);
  assigned = std::move(moved);
  source.reset();

  EXPECT_EQ(assigned.dense_solver().matrix(), &assigned.dense_curvature());
  const Vector<double> g = problem.val_gradient();
  const auto r = assigned.dense_solver().solve(g);
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_LT(testing::rel_error(r.x, h.v), 1e-12);
  EXPECT_LT(residual(H, r.x, g), 1e-10);
  // The moved engine computes again with its own workspace.
  const auto again = assigned.compute(problem);
  EXPECT_LT(testing::rel_error(again.hypergradient, h.hypergradient), 1e-12);
}

TEST(Ownership, KfacInverseCopyIsIndependentAndMoveInvalidatesTheSource) {
  // One 3×2 block (in+1 = 3, out = 2) plus two parameters outside it: D = 8.
  KroneckerBlock<double> block;
  block.offset = 1;
  block.A = spd(3, 11, 0.5);
  block.G = spd(2, 12, 0.5);
  const std::vector<KroneckerBlock<double>> blocks{block};
  const Vector<double> g = testing::random_vector<double>(8, 13);
  const KfacCurvatureOperator<double> forward(8, blocks, 0.1);

  auto source = std::make_unique<KfacInverseOperator<double>>(8, blocks, 0.1);
  ASSERT_EQ(source->status(), SolverStatus::Converged) << source->message();
  const KfacInverseOperator<double> copy(*source);
  KfacInverseOperator<double> moved(std::move(*source));
  EXPECT_EQ(source->status(), SolverStatus::NumericalIssue);  // not a silent g / δ
  Vector<double> y;
  source->apply(g, y);
  EXPECT_FALSE(y.allFinite());
  EXPECT_EQ(kfac_solve(*source, g).status, SolverStatus::NumericalIssue);
  source.reset();

  for (const auto* op : {&copy, static_cast<const KfacInverseOperator<double>*>(&moved)}) {
    const auto r = kfac_solve(*op, g);
    ASSERT_EQ(r.status, SolverStatus::Converged) << r.message;
    Vector<double> back(8);
    forward.apply(r.x, back);  // (G ⊗ A + δI) v = g: the inverse is exact for its own model
    EXPECT_LT((back - g).norm() / g.norm(), 1e-12);
  }
}

}  // namespace
}  // namespace ift
