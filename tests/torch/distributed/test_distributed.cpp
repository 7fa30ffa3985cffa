// Data-parallel TorchProblem over torch.distributed (Gloo on CPU; issue 12), run as N processes
// joined through a TCPStore on 127.0.0.1 (tests/torch/distributed/run.sh sets RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT). Every process builds the whole problem and its own shard of it and
// checks that the sharded problem gives the single-process numbers — losses, gradients, HVPs,
// mixed products, the direct term, metrics, minibatch gradients, KFAC factors, every method's
// hypergradient and three hyper-steps of Algorithm 2 — for softmax regression, the MLP and the
// CNN with per-weight decay, and for the CNN with a learned augmentation network (its noise ε
// is drawn for the full set and cut), and that every rank holds the same bits.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "ift/generic/bilevel.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/torch/distributed.hpp"
#include "ift/torch/models.hpp"
#include "ift/torch/problem.hpp"

namespace ift::deep {
namespace {

std::shared_ptr<ProcessGroupCommunicator> g_comm;
constexpr double kTol = 1e-12;
const auto kOptions = ::torch::TensorOptions().dtype(::torch::kDouble);

double rel(const Tensor& a, const Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-300);
  return (a - b).abs().max().item<double>() / scale;
}

void expect_same_on_every_rank(const Tensor& x, const char* what) {
  Tensor root = x.detach().contiguous().clone();
  g_comm->broadcast(root.data_ptr(), static_cast<std::size_t>(root.numel() * root.element_size()), 0);
  EXPECT_TRUE(::torch::equal(root, x)) << what << " differs between ranks";
}

TensorData images(std::int64_t n, std::int64_t classes, std::uint64_t seed, bool flat) {
  auto gen = at::detail::createCPUGenerator(seed);
  TensorData d;
  d.inputs = flat ? ::torch::randn({n, 12}, gen, kOptions) : ::torch::randn({n, 1, 8, 8}, gen, kOptions);
  d.labels = ::torch::randint(classes, {n}, gen, ::torch::TensorOptions().dtype(::torch::kLong));
  return d;
}

enum class Net { Softmax, Mlp, Cnn };
enum class Hyper { Decay, Augmentation };

struct Built {
  std::unique_ptr<TorchProblem> problem;
  Tensor lambda, w;
};

/// The same problem (same seeds) over `train`, `val`, `test`.
Built build(Net net, Hyper hyper, const TensorData& train, const TensorData& val,
            const TensorData& test) {
  ::torch::manual_seed(5);
  Model model;
  if (net == Net::Softmax) {
    SoftmaxRegressionNet m(12, 3);
    m->to(::torch::kDouble);
    model = Model::of(m);
  } else if (net == Net::Mlp) {
    AffineMlp m(std::vector<std::int64_t>{12, 7, 3}, Activation::Tanh);
    m->to(::torch::kDouble);
    model = Model::of(m);
  } else {
    SmallCnn m(1, 8, 8, 3, 2, /*smooth=*/true);
    m->to(::torch::kDouble);
    model = Model::of(m);
  }
  std::shared_ptr<HyperFamily> family;
  if (hyper == Hyper::Decay) {
    family = std::make_shared<WeightDecayFamily>(model.module->parameters(), DecayKind::PerWeight, -3.0);
  } else {
    UNet unet(1, 2, /*smooth=*/true);
    unet->to(::torch::kDouble);
    auto u = unet.ptr();
    family = std::make_shared<AugmentationFamily>(
        u, [u](const Tensor& x, const Tensor& e) { return u->forward(x, e); });
  }
  Built b;
  b.problem = std::make_unique<TorchProblem>(model, family, train, val, test, cross_entropy_loss(), 17);
  b.w = b.problem->current_weights();
  b.lambda = b.problem->current_lambda();
  return b;
}

void check(Net net, Hyper hyper) {
  const bool flat = net != Net::Cnn;
  const std::int64_t nt = 37, nv = 23, ns = 11;
  const TensorData train = images(nt, 3, 1, flat), val = images(nv, 3, 2, flat),
                   test = images(ns, 3, 3, flat);
  const int r = g_comm->rank(), N = g_comm->size();
  const auto st = parallel::contiguous_shard(nt, r, N), sv = parallel::contiguous_shard(nv, r, N),
             ss = parallel::contiguous_shard(ns, r, N);
  Built full = build(net, hyper, train, val, test);
  Built part = build(net, hyper, train.slice(st.begin, st.count), val.slice(sv.begin, sv.count),
                     test.slice(ss.begin, ss.count));
  part.problem->distribute(g_comm, st, sv, ss);
  auto& F = *full.problem;
  auto& P = *part.problem;
  F.set_point(full.lambda, full.w);
  P.set_point(full.lambda, full.w);

  EXPECT_NEAR(P.train_loss(), F.train_loss(), kTol * std::abs(F.train_loss()));
  EXPECT_LE(rel(P.train_gradient(), F.train_gradient()), kTol) << "train gradient";
  EXPECT_NEAR(P.val_loss(), F.val_loss(), kTol * std::abs(F.val_loss()));
  EXPECT_LE(rel(P.val_gradient(), F.val_gradient()), kTol) << "val gradient";
  expect_same_on_every_rank(P.train_gradient(), "train gradient");
  Tensor a, b;
  if (hyper == Hyper::Augmentation) {
    F.val_direct_gradient(a);
    P.val_direct_gradient(b);
    EXPECT_EQ(a.abs().max().item<double>(), 0.0);  // L_V does not see the augmentation
  }
  const Tensor v = ::torch::randn({F.num_params()}, at::detail::createCPUGenerator(9), kOptions);
  F.hvp(v, a);
  P.hvp(v, b);
  EXPECT_LE(rel(b, a), kTol) << "hvp";
  expect_same_on_every_rank(b, "hvp");
  F.mixed_product(v, a);
  P.mixed_product(v, b);
  EXPECT_LE(rel(b, a), kTol) << "mixed product";

  const Metrics mf = F.metrics(), mp = P.metrics();
  EXPECT_NEAR(mp.train_loss, mf.train_loss, kTol * mf.train_loss);
  EXPECT_NEAR(mp.val_loss, mf.val_loss, kTol * mf.val_loss);
  EXPECT_NEAR(mp.test_loss, mf.test_loss, kTol * mf.test_loss);
  EXPECT_NEAR(mp.train_accuracy, mf.train_accuracy, 1e-15);
  EXPECT_NEAR(mp.test_accuracy, mf.test_accuracy, 1e-15);

  for (const std::vector<Index>& rows : {std::vector<Index>{0, nt - 1, nt / 2, 3, 1},
                                         std::vector<Index>{0, 1}, std::vector<Index>{nt - 1, nt - 1}}) {
    Tensor gf, gp;
    const double lf = F.batch_train_gradient(full.lambda, full.w, rows, gf, 77);
    const double lp = P.batch_train_gradient(full.lambda, full.w, rows, gp, 77);
    EXPECT_NEAR(lp, lf, kTol * std::abs(lf));
    EXPECT_LE(rel(gp, gf), kTol) << "minibatch gradient";
  }
  F.set_point(full.lambda, full.w);
  P.set_point(full.lambda, full.w);

  std::vector<double> shift_f, shift_p;
  const auto kf = F.kfac_factors(shift_f);
  const auto kp = P.kfac_factors(shift_p);
  ASSERT_EQ(kf.size(), kp.size());
  for (std::size_t i = 0; i < kf.size(); ++i) {
    EXPECT_LE(rel(kp[i].A, kf[i].A), kTol) << "KFAC A " << i;
    EXPECT_LE(rel(kp[i].G, kf[i].G), kTol) << "KFAC G " << i;
  }

  struct Case {
    Method method;
    Index steps;
  };
  for (const Case c : {Case{Method::Cg, 6}, Case{Method::Neumann, 8}, Case{Method::Identity, 0},
                       Case{Method::Zero, 0}, Case{Method::Kfac, 0}, Case{Method::Unrolled, 4}}) {
    if (c.method == Method::Kfac && hyper == Hyper::Augmentation) continue;  // KFAC: decay only
    MethodSpec spec;
    spec.method = c.method;
    spec.steps = c.steps;
    if (c.method == Method::Kfac) spec.damping = 1e-2;
    const auto hf = generic::hypergradient(F, spec);
    const auto hp = generic::hypergradient(P, spec);
    EXPECT_EQ(hp.status, hf.status) << spec.name();
    EXPECT_LE(rel(hp.hypergradient, hf.hypergradient), kTol) << spec.name();
    expect_same_on_every_rank(hp.hypergradient, "hypergradient");
  }

  BilevelParams params;
  params.method.method = Method::Cg;
  params.method.steps = 5;
  params.hyper_steps = 3;
  params.inner_steps = 3;
  params.batch_size = 9;
  params.inner = {OptimizerKind::Sgd, 0.1};
  params.outer = {OptimizerKind::Sgd, 0.5};
  const auto rf = generic::BilevelLoop<TorchProblem>(params).run(F, full.w, full.lambda);
  const auto rp = generic::BilevelLoop<TorchProblem>(params).run(P, full.w, full.lambda);
  EXPECT_LE(rel(rp.w, rf.w), 1e-11) << "w after 3 hyper-steps";
  EXPECT_LE(rel(rp.lambda - full.lambda, rf.lambda - full.lambda), 1e-10) << "λ change";
  EXPECT_GT((rf.lambda - full.lambda).abs().max().item<double>(), 0.0);  // λ moved
  expect_same_on_every_rank(rp.lambda, "λ after the loop");
}

TEST(TorchDistributed, SoftmaxRegressionWithDecay) { check(Net::Softmax, Hyper::Decay); }
TEST(TorchDistributed, MlpWithDecay) { check(Net::Mlp, Hyper::Decay); }
TEST(TorchDistributed, CnnWithDecay) { check(Net::Cnn, Hyper::Decay); }
TEST(TorchDistributed, CnnWithAugmentation) { check(Net::Cnn, Hyper::Augmentation); }

}  // namespace
}  // namespace ift::deep

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::torch::set_num_threads(1);
  const auto config = ift::deep::distributed_config_from_env("gloo");
  if (!config) {
    std::cerr << "test_distributed: set WORLD_SIZE > 1, RANK, MASTER_ADDR, MASTER_PORT (run.sh does)\n";
    return 2;
  }
  ift::deep::g_comm = std::make_shared<ift::deep::ProcessGroupCommunicator>(*config);
  const int failed = RUN_ALL_TESTS();
  ift::deep::g_comm->barrier();
  ift::deep::g_comm.reset();
  return failed;
}
