// Data-parallel problems over MPI (issue 12), run by CTest as `mpirun -np N test_mpi_problems`
// (N = 2 and 3: even and uneven shards). Every rank builds the whole problem AND its own shard
// of it (distribute(): contiguous rows), sets both to the same point and checks that the
// sharded problem gives the single-process numbers: losses, gradients, every curvature product
// and matrix, Kronecker factors, metrics, minibatch gradients, every method's hypergradient and
// a short run of Algorithm 2, for softmax regression and a tanh MLP. It also checks that every
// rank holds the same bits (the reductions add the ranks in a fixed order).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "../fixtures.hpp"
#include "ift/bilevel.hpp"
#include "ift/hypergradient.hpp"
#include "ift/models/mlp.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/mpi/communicator.hpp"
#include "ift/problems/distillation.hpp"
#include "ift/problems/regularized.hpp"

using namespace ift;
using ift::testing::rel_error;

namespace {

std::shared_ptr<parallel::Communicator> g_comm;

/// ≤ 1e-12 relative to the largest entry: the sharded sums differ from one process's only by
/// the order of additions (a handful of roundings of the partial sums).
constexpr double kTol = 1e-12;

template <class Model>
struct Pair {
  std::unique_ptr<RegularizedProblem<Model>> full, part;
  Vector<double> lambda, w;
  Index D = 0;
};

template <class Model>
Pair<Model> make_pair(Model model, Index n_train, Index n_val, Index n_test, Index d, Index classes,
                      std::uint64_t seed) {
  const auto train = ift::testing::random_classification<double>(n_train, d, classes, seed);
  const auto val = ift::testing::random_classification<double>(n_val, d, classes, seed + 1);
  const auto test = ift::testing::random_classification<double>(n_test, d, classes, seed + 2);
  Pair<Model> p;
  p.D = model.num_params();
  const WeightDecay<double> decay(DecayKind::PerWeight, p.D);
  p.full = std::make_unique<RegularizedProblem<Model>>(
      model, decay, std::make_shared<const Dataset<double>>(train),
      std::make_shared<const Dataset<double>>(val), std::make_shared<const Dataset<double>>(test));
  const int r = g_comm->rank(), N = g_comm->size();
  const auto st = parallel::contiguous_shard(n_train, r, N);
  const auto sv = parallel::contiguous_shard(n_val, r, N);
  const auto ss = parallel::contiguous_shard(n_test, r, N);
  p.part = std::make_unique<RegularizedProblem<Model>>(
      model, decay, std::make_shared<const Dataset<double>>(train.slice(st.begin, st.count)),
      std::make_shared<const Dataset<double>>(val.slice(sv.begin, sv.count)),
      std::make_shared<const Dataset<double>>(test.slice(ss.begin, ss.count)));
  p.part->distribute(g_comm, st, sv, ss);
  p.lambda = ift::testing::random_vector<double>(p.D, seed + 3, 0.5).array() - 4.0;
  p.w = ift::testing::random_vector<double>(p.D, seed + 4, 0.3);
  p.full->set_point(p.lambda, p.w);
  p.part->set_point(p.lambda, p.w);
  return p;
}

/// Rank 0's copy of x on every rank must equal the local x bit for bit.
void expect_same_on_every_rank(const Vector<double>& x, const char* what) {
  Vector<double> root = x;
  g_comm->broadcast(root.data(), sizeof(double) * static_cast<std::size_t>(root.size()), 0);
  EXPECT_EQ((root.array() != x.array()).count(), 0) << what << " differs between ranks";
}

template <class Model>
void check_products(Pair<Model>& p) {
  auto& F = *p.full;
  auto& P = *p.part;
  EXPECT_NEAR(P.train_loss(), F.train_loss(), kTol * std::abs(F.train_loss()));
  EXPECT_LE(rel_error(P.train_gradient(), F.train_gradient()), kTol);
  EXPECT_NEAR(P.val_loss(), F.val_loss(), kTol * std::abs(F.val_loss()));
  EXPECT_LE(rel_error(P.val_gradient(), F.val_gradient()), kTol);
  expect_same_on_every_rank(P.train_gradient(), "train gradient");

  const Vector<double> v = ift::testing::random_vector<double>(p.D, 99);
  Vector<double> a, b;
  F.hvp(v, a);
  P.hvp(v, b);
  EXPECT_LE(rel_error(b, a), kTol) << "hvp";
  expect_same_on_every_rank(b, "hvp");
  F.gauss_newton_product(v, a);
  P.gauss_newton_product(v, b);
  EXPECT_LE(rel_error(b, a), kTol) << "gauss-newton";
  F.fisher_product(v, a);
  P.fisher_product(v, b);
  EXPECT_LE(rel_error(b, a), kTol) << "fisher";
  F.mixed_product(v, a);
  P.mixed_product(v, b);
  EXPECT_LE(rel_error(b, a), kTol) << "mixed";

  // nystrom's block product and stochastic curvature's minibatch HVP.
  const Matrix<double> block = Matrix<double>::NullaryExpr(p.D, 5, [](Index i, Index j) {
    return std::sin(0.7 * double(i) + 1.3 * double(j));
  });
  Matrix<double> BF, BP;
  F.hvp_block(block, BF);
  P.hvp_block(block, BP);
  EXPECT_LE(rel_error(BP, BF), kTol) << "block HVP";
  const Index n_rows = F.num_train_examples();
  for (const std::vector<Index>& rows :
       {std::vector<Index>{0, n_rows - 1, n_rows / 2, 2}, std::vector<Index>{1, 2},
        std::vector<Index>{n_rows - 1}}) {
    F.batch_hvp(rows, v, a);
    P.batch_hvp(rows, v, b);
    EXPECT_LE(rel_error(b, a), kTol) << "minibatch HVP";
  }

  Matrix<double> HF, HP;
  F.hessian(HF);
  P.hessian(HP);
  EXPECT_LE(rel_error(HP, HF), kTol) << "dense Hessian";
  F.gauss_newton_matrix(HF);
  P.gauss_newton_matrix(HP);
  EXPECT_LE(rel_error(HP, HF), kTol) << "dense Gauss-Newton";

  std::vector<double> shift_f, shift_p;
  const auto kf = F.kfac_factors(shift_f);
  const auto kp = P.kfac_factors(shift_p);
  ASSERT_EQ(kf.size(), kp.size());
  for (std::size_t i = 0; i < kf.size(); ++i) {
    EXPECT_LE(rel_error(kp[i].A, kf[i].A), kTol) << "KFAC A, block " << i;
    EXPECT_LE(rel_error(kp[i].G, kf[i].G), kTol) << "KFAC G, block " << i;
    EXPECT_EQ(shift_p[i], shift_f[i]);
  }

  const Metrics mf = F.metrics(), mp = P.metrics();
  EXPECT_NEAR(mp.train_loss, mf.train_loss, kTol * mf.train_loss);
  EXPECT_NEAR(mp.val_loss, mf.val_loss, kTol * mf.val_loss);
  EXPECT_NEAR(mp.test_loss, mf.test_loss, kTol * mf.test_loss);
  EXPECT_NEAR(mp.train_accuracy, mf.train_accuracy, 1e-15);
  EXPECT_NEAR(mp.val_accuracy, mf.val_accuracy, 1e-15);
  EXPECT_NEAR(mp.test_accuracy, mf.test_accuracy, 1e-15);

  // A minibatch with rows on every shard, one shard's rows only, and repeats.
  const Index n = F.num_train_examples();
  ASSERT_EQ(P.num_train_examples(), n);
  for (const std::vector<Index>& rows :
       {std::vector<Index>{0, n - 1, n / 2, 3, n - 2, 1}, std::vector<Index>{0, 1, 2},
        std::vector<Index>{n - 1, n - 1, 0}}) {
    Vector<double> gf, gp;
    const double lf = F.batch_train_gradient(p.lambda, p.w, rows, gf);
    const double lp = P.batch_train_gradient(p.lambda, p.w, rows, gp);
    EXPECT_NEAR(lp, lf, kTol * std::abs(lf));
    EXPECT_LE(rel_error(gp, gf), kTol) << "minibatch gradient";
  }
}

template <class Model>
void check_hypergradients(Pair<Model>& p) {
  struct Case {
    Method method;
    Curvature curvature;
    Index steps;
  };
  for (const Case c : {Case{Method::Exact, Curvature::Hessian, 0}, Case{Method::Exact, Curvature::GaussNewton, 0},
                       Case{Method::Cg, Curvature::Hessian, 8}, Case{Method::Cg, Curvature::GaussNewton, 8},
                       Case{Method::Neumann, Curvature::Hessian, 10}, Case{Method::Neumann, Curvature::Fisher, 6},
                       Case{Method::Neumann, Curvature::OuterProduct, 6}, Case{Method::Identity, Curvature::Hessian, 0},
                       Case{Method::Zero, Curvature::Hessian, 0}, Case{Method::Kfac, Curvature::Hessian, 0},
                       Case{Method::Unrolled, Curvature::Hessian, 5}, Case{Method::Nystrom, Curvature::Hessian, 7},
                       Case{Method::Nystrom, Curvature::GaussNewton, 7}, Case{Method::Cg, Curvature::Hessian, -1},
                       Case{Method::Neumann, Curvature::Hessian, -1}}) {
    MethodSpec spec;
    spec.method = c.method;
    spec.curvature = c.curvature;
    spec.steps = c.steps;
    if (c.steps < 0) {  // stochastic curvature: fresh minibatches of 9 rows per product
      spec.steps = 6;
      spec.sampling = CurvatureSampling::Fresh;
      spec.curvature_batch = 9;
      spec.sampling_seed = 4;
    }
    if (c.method == Method::Kfac) spec.damping = 1e-3;
    const auto hf = hypergradient(*p.full, spec);
    const auto hp = hypergradient(*p.part, spec);
    EXPECT_EQ(hp.status, hf.status) << spec.name();
    EXPECT_EQ(hp.hvps, hf.hvps) << spec.name();
    EXPECT_LE(rel_error(hp.hypergradient, hf.hypergradient), kTol) << spec.name();
    expect_same_on_every_rank(hp.hypergradient, "hypergradient");
  }
}

template <class Model>
void check_loop(Pair<Model>& p, InnerSolver inner) {
  BilevelParams params;
  params.method.method = Method::Cg;
  params.method.steps = 6;
  params.hyper_steps = 3;
  params.inner_steps = 4;
  params.warmup_steps = 5;
  params.inner = {OptimizerKind::Adam, 0.05};
  params.outer = {OptimizerKind::Adam, 0.1};
  params.inner_solver = inner;
  params.inner_tolerance = 1e-6;
  if (inner == InnerSolver::Lbfgs) {  // shine: the inner L-BFGS's pairs, on every rank
    params.method.method = Method::Shine;
    params.method.steps = 2;
  } else if (inner == InnerSolver::Optimizer) {  // SOBA: neumann+warm, one HVP per hyper-step
    params.method.method = Method::Neumann;
    params.method.steps = 1;
    params.method.warm_start = true;
  }
  const auto rf = BilevelLoop<double>(params).run(*p.full, p.w, p.lambda);
  const auto rp = BilevelLoop<double>(params).run(*p.part, p.w, p.lambda);
  for (std::size_t i = 0; i < rf.records.size() && i < rp.records.size(); ++i)
    EXPECT_EQ(rp.records[i].status, rf.records[i].status) << params.method.name() << " step " << i;
  // A few hyper-steps amplify the order-of-addition differences only mildly.
  EXPECT_LE(rel_error(rp.w, rf.w), 1e-10);
  EXPECT_LE(rel_error(rp.lambda, rf.lambda), 1e-10);
  expect_same_on_every_rank(rp.lambda, "λ after the loop");
}

TEST(MpiProblems, ShardsCoverEveryRowOnce) {
  Index covered = 0;
  for (int r = 0; r < g_comm->size(); ++r) {
    const auto s = parallel::contiguous_shard(53, r, g_comm->size());
    EXPECT_EQ(s.begin, covered);
    covered += s.count;
  }
  EXPECT_EQ(covered, 53);
  EXPECT_THROW(parallel::contiguous_shard(1, 0, 2), std::invalid_argument);
}

TEST(MpiProblems, SoftmaxRegressionEqualsOneProcess) {
  auto p = make_pair(SoftmaxRegression<double>(7, 3), 53, 31, 17, 6, 3, 11);
  check_products(p);
  check_hypergradients(p);
}

TEST(MpiProblems, MlpEqualsOneProcess) {
  auto p = make_pair(Mlp<double>({7, 5, 3}, Activation::Tanh, OutputLoss::SoftmaxCrossEntropy), 41, 29,
                     13, 6, 3, 21);
  check_products(p);
  check_hypergradients(p);
}

TEST(MpiProblems, AlgorithmTwoEqualsOneProcess) {
  auto p = make_pair(SoftmaxRegression<double>(7, 3), 53, 31, 17, 6, 3, 31);
  check_loop(p, InnerSolver::Optimizer);
  check_loop(p, InnerSolver::NewtonCg);
  check_loop(p, InnerSolver::Lbfgs);
}

// Dataset distillation (P5): the training examples are the λ images, the same on every rank;
// only the real validation and test rows are sharded (DistillationProblem::distribute). L_V,
// ∇_w L_V, the metrics and so every hypergradient equal one process's.
TEST(MpiProblems, DistillationShardsItsRealData) {
  const Index C = 3, P = 6, n_val = 37, n_test = 19;
  // P + 1 features: random_classification appends the bias column.
  const auto val = ift::testing::random_classification<double>(n_val, P, C, 41);
  const auto test = ift::testing::random_classification<double>(n_test, P, C, 42);
  const int r = g_comm->rank(), N = g_comm->size();
  const auto sv = parallel::contiguous_shard(n_val, r, N);
  const auto ss = parallel::contiguous_shard(n_test, r, N);
  DistillationProblem<double> full(C, P, std::make_shared<const Dataset<double>>(val),
                                   std::make_shared<const Dataset<double>>(test), 0.01);
  DistillationProblem<double> part(
      C, P, std::make_shared<const Dataset<double>>(val.slice(sv.begin, sv.count)),
      std::make_shared<const Dataset<double>>(test.slice(ss.begin, ss.count)), 0.01);
  part.distribute(g_comm, sv, ss);
  const Vector<double> lambda = ift::testing::random_vector<double>(C * P, 43, 0.5);
  const Vector<double> w = ift::testing::random_vector<double>(full.num_params(), 44, 0.3);
  full.set_point(lambda, w);
  part.set_point(lambda, w);
  EXPECT_NEAR(part.val_loss(), full.val_loss(), kTol * std::abs(full.val_loss()));
  EXPECT_LE(rel_error(part.val_gradient(), full.val_gradient()), kTol);
  expect_same_on_every_rank(part.val_gradient(), "∇_w L_V");
  const Metrics mf = full.metrics(), mp = part.metrics();
  EXPECT_NEAR(mp.val_accuracy, mf.val_accuracy, 1e-15);
  EXPECT_NEAR(mp.test_accuracy, mf.test_accuracy, 1e-15);
  EXPECT_NEAR(mp.test_loss, mf.test_loss, kTol * std::abs(mf.test_loss));
  for (Method m : {Method::Exact, Method::Cg, Method::Identity}) {
    MethodSpec spec;
    spec.method = m;
    spec.steps = 20;
    const auto hf = HypergradientEngine<double>(spec).compute(full);
    const auto hp = HypergradientEngine<double>(spec).compute(part);
    EXPECT_LE(rel_error(hp.hypergradient, hf.hypergradient), kTol) << spec.name();
    expect_same_on_every_rank(hp.hypergradient, "the distillation hypergradient");
  }
}

}  // namespace

int main(int argc, char** argv) {
  ift::mpi::Environment mpi(argc, argv);
  g_comm = mpi.world();
  ::testing::InitGoogleTest(&argc, argv);
  const int failed = RUN_ALL_TESTS();
  g_comm.reset();
  return failed;
}
