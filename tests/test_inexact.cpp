// Warm starts, inexact solves and stochastic curvature (issue 11 points 1 and 4; docs/methods.md):
// the Richardson form of neumann started from a previous v (SOBA at one step), the "+warm",
// "+fresh", "+fixed" method names, minibatch Hessian-vector products (batch_hvp) against the
// dense Hessian of the batch loss, the sampled solvers against the deterministic ones with the
// full batch (bitwise), HOAG's tolerance schedules in the loop, and resumes with all of it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <numeric>

#include <unistd.h>

#include "fixtures.hpp"
#include "ift/bilevel.hpp"
#include "ift/checkpoint.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/linalg/operators.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace {

using namespace ift;
using ift::testing::random_classification;
using ift::testing::random_vector;
using Problem = RegularizedProblem<SoftmaxRegression<double>>;

/// A symmetric positive definite matrix with eigenvalues in [1, 10].
Matrix<double> spd(Index n, std::uint64_t seed) {
  Matrix<double> A(n, n);
  for (Index j = 0; j < n; ++j) A.col(j) = random_vector<double>(n, seed + static_cast<std::uint64_t>(j));
  Eigen::HouseholderQR<Matrix<double>> qr(A);
  const Matrix<double> Q = qr.householderQ();
  Vector<double> eig = Vector<double>::LinSpaced(n, 1.0, 10.0);
  return Q * eig.asDiagonal() * Q.transpose();
}

bool same_bits(const Vector<double>& a, const Vector<double>& b) {
  return a.size() == b.size() && (a.array() == b.array()).all();
}

// ---- neumann's warm (Richardson) form ------------------------------------------------------------

TEST(WarmNeumann, FromZeroIsTheColdSeriesBitwise) {
  const Matrix<double> H = spd(12, 1);
  const DenseOperator<double> op(H);
  const Vector<double> g = random_vector<double>(12, 2);
  NeumannParams p;
  p.steps = 7;
  p.alpha = 0.09;
  const Vector<double> zero = Vector<double>::Zero(12);
  const auto cold = neumann(op, g, p);
  const auto warm = neumann(op, g, p, {}, &zero);
  EXPECT_TRUE(same_bits(cold.x, warm.x));
  EXPECT_EQ(cold.hvps, warm.hvps);
  EXPECT_EQ(cold.iterations, warm.iterations);
  // Automatic α too (power iteration from g in both).
  p.alpha = 0;
  EXPECT_TRUE(same_bits(neumann(op, g, p).x, neumann(op, g, p, {}, &zero).x));
}

TEST(WarmNeumann, IsRichardsonsIterationWithOneHvpPerStep) {
  const Matrix<double> H = spd(12, 3);
  const DenseOperator<double> op(H);
  const Vector<double> g = random_vector<double>(12, 4);
  const Vector<double> x0 = random_vector<double>(12, 5);
  const double alpha = 0.1;
  for (Index k : {1, 2, 5}) {
    NeumannParams p;
    p.steps = k;
    p.alpha = alpha;
    const auto r = neumann(op, g, p, {}, &x0);
    Vector<double> v = x0;
    for (Index j = 0; j < k; ++j) v += alpha * (g - H * v);  // v ← v + α(g − H v)
    EXPECT_LT((r.x - v).norm(), 1e-13 * v.norm()) << "k = " << k;
    EXPECT_EQ(r.hvps, k);
    EXPECT_EQ(r.iterations, k);
    EXPECT_EQ(r.status, SolverStatus::MaxIterations);
  }
}

TEST(WarmNeumann, AProductFormedByTheCallerGivesTheSameBits) {
  // H x0 handed in (formed before g, as generic::detail::neumann_solve does) replaces the first
  // product: the same v bitwise, the same count of HVPs and iterations.
  const Matrix<double> H = spd(12, 9);
  const DenseOperator<double> op(H);
  const Vector<double> g = random_vector<double>(12, 10);
  const Vector<double> x0 = random_vector<double>(12, 11);
  Vector<double> hx0;
  op.apply(x0, hx0);
  for (Index k : {1, 3}) {
    NeumannParams p;
    p.steps = k;
    p.alpha = 0.08;
    const auto own = neumann(op, g, p, {}, &x0);
    const auto given = neumann(op, g, p, {}, &x0, &hx0);
    EXPECT_TRUE(same_bits(own.x, given.x)) << "k = " << k;
    EXPECT_EQ(own.hvps, given.hvps);
    EXPECT_EQ(own.iterations, given.iterations);
    EXPECT_EQ(own.status, given.status);
  }
  // Without a (nonzero) warm start there is no H x0 to hand in.
  const Vector<double> zero = Vector<double>::Zero(12);
  EXPECT_THROW(neumann(op, g, NeumannParams{}, {}, nullptr, &hx0), std::invalid_argument);
  EXPECT_THROW(neumann(op, g, NeumannParams{}, {}, &zero, &hx0), std::invalid_argument);
}

TEST(WarmNeumann, ReachesEveryStatus) {
  const Matrix<double> H = spd(10, 6);
  const DenseOperator<double> op(H);
  const Vector<double> g = random_vector<double>(10, 7);
  const Vector<double> exact = H.ldlt().solve(g);
  NeumannParams p;
  p.alpha = 0.1;
  // 0 steps: v is the start, nothing is spent.
  p.steps = 0;
  const Vector<double> x0 = random_vector<double>(10, 8);
  const auto none = neumann(op, g, p, {}, &x0);
  EXPECT_TRUE(same_bits(none.x, x0));
  EXPECT_EQ(none.hvps, 0);
  EXPECT_EQ(none.status, SolverStatus::MaxIterations);
  // Started at the solution, the residual is at rounding level: converged.
  p.steps = 3;
  p.tolerance = 1e-10;
  const auto done = neumann(op, g, p, {}, &exact);
  EXPECT_EQ(done.status, SolverStatus::Converged);
  EXPECT_LT((done.x - exact).norm(), 1e-12 * exact.norm());
  // α = 0.5 > 2/λ_max = 0.2: the terms grow, reported, never returned as converged.
  p.alpha = 0.5;
  p.steps = 40;
  const auto bad = neumann(op, g, p, {}, &x0);
  EXPECT_EQ(bad.status, SolverStatus::Diverged);
  EXPECT_TRUE(bad.x.allFinite());
  ASSERT_TRUE(bad.suggested_alpha.has_value());
  EXPECT_NEAR(*bad.suggested_alpha, 0.1, 1e-3);
}

// ---- names ---------------------------------------------------------------------------------------

TEST(MethodNames, SuffixesParseAndNameDistinctly) {
  EXPECT_EQ(parse_method_spec("cg").name(), "cg");
  EXPECT_EQ(parse_method_spec("cg+warm").name(), "cg+warm");
  EXPECT_TRUE(parse_method_spec("neumann+warm").warm_start);
  const MethodSpec s = parse_method_spec("neumann+warm+fresh");
  EXPECT_EQ(s.sampling, CurvatureSampling::Fresh);
  EXPECT_EQ(s.name(), "neumann+fresh+warm");  // one canonical order
  EXPECT_EQ(parse_method_spec("cg+fixed").name(), "cg+fixed");
  for (const char* bad : {"exact+warm", "kfac+warm", "identity+fresh", "cg+hot", "cg+"}) {
    EXPECT_THROW(parse_method_spec(bad), std::invalid_argument) << bad;
  }
  try {
    parse_method_spec("exact+warm");
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cannot warm start"), std::string::npos) << e.what();
  }
  MethodSpec kfac;
  kfac.method = Method::Kfac;
  kfac.warm_start = true;
  EXPECT_THROW(kfac.check(), std::invalid_argument);
  MethodSpec fresh = parse_method_spec("neumann+fresh");
  EXPECT_THROW(fresh.check(), std::invalid_argument);  // no batch size
  fresh.curvature_batch = 5;
  EXPECT_NO_THROW(fresh.check());
  fresh.curvature = Curvature::GaussNewton;
  EXPECT_THROW(fresh.check(), std::invalid_argument);
}

// ---- stochastic curvature ------------------------------------------------------------------------

struct Fixture {
  std::shared_ptr<const Dataset<double>> train, val;
  std::unique_ptr<Problem> problem;
  Vector<double> w, lambda;
};

Fixture make_fixture(Index n_train = 40, Index d = 6, std::uint64_t seed = 11) {
  Fixture f;
  f.train = std::make_shared<const Dataset<double>>(random_classification<double>(n_train, d, 3, seed));
  f.val = std::make_shared<const Dataset<double>>(random_classification<double>(30, d, 3, seed + 1));
  SoftmaxRegression<double> model(d + 1, 3);
  f.problem = std::make_unique<Problem>(
      model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()), f.train, f.val);
  f.w = random_vector<double>(model.num_params(), seed + 2, 0.3);
  f.lambda = random_vector<double>(model.num_params(), seed + 3, 0.5).array() - 3.0;
  f.problem->set_point(f.lambda, f.w);
  return f;
}

std::vector<Index> all_rows(Index n) {
  std::vector<Index> rows(static_cast<std::size_t>(n));
  std::iota(rows.begin(), rows.end(), Index{0});
  return rows;
}

TEST(BatchHvp, FullBatchIsTheHvpBitwise) {
  Fixture f = make_fixture();
  const Vector<double> v = random_vector<double>(f.problem->num_params(), 21);
  Vector<double> full, batch;
  f.problem->hvp(v, full);
  f.problem->batch_hvp(all_rows(f.train->size()), v, batch);
  EXPECT_TRUE(same_bits(full, batch));
}

// batch_hvp at the current point takes the batch's probabilities from the point's forward pass
// (SoftmaxRegression::cache_rows) instead of a forward pass over the batch: the cache equals the
// batch's own evaluate() to rounding, bitwise for every row in order, and so do the products.
TEST(BatchHvp, TheBatchCacheComesFromThePointsForwardPass) {
  const auto data = random_classification<double>(301, 9, 4, 31);  // several row tiles, a tail
  const SoftmaxRegression<double> model(10, 4);
  const Vector<double> w = random_vector<double>(model.num_params(), 32, 0.4);
  SoftmaxRegression<double>::Cache full, direct, gathered;
  model.evaluate(data, w, full, nullptr);
  const std::vector<Index> rows = {300, 7, 0, 133, 64, 65, 66, 17, 250, 9, 8, 299};
  const Dataset<double> batch = data.gather(rows);
  model.evaluate(batch, w, direct, nullptr);
  model.cache_rows(batch, full, rows, gathered);
  const auto close = [](const Matrix<double>& a, const Matrix<double>& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() &&
           (a - b).cwiseAbs().maxCoeff() <= 8 * std::numeric_limits<double>::epsilon();
  };
  EXPECT_TRUE(close(gathered.probs, direct.probs));
  EXPECT_TRUE(close(gathered.residual, direct.residual));
  const Vector<double> v = random_vector<double>(model.num_params(), 33);
  Vector<double> from_direct, from_gathered;
  model.hvp(batch, w, direct, v, from_direct);
  model.hvp(batch, w, gathered, v, from_gathered);
  EXPECT_LT(ift::testing::rel_error(from_gathered, from_direct), 1e-14);
  // Every row in order: evaluate()'s cache bitwise.
  SoftmaxRegression<double>::Cache again;
  model.cache_rows(data, full, all_rows(data.size()), again);
  EXPECT_TRUE((again.probs.array() == full.probs.array()).all());
  EXPECT_TRUE((again.residual.array() == full.residual.array()).all());
  // A row outside the cached data, or a batch that does not hold the rows, is an error.
  EXPECT_THROW(model.cache_rows(data.gather({0, 1}), full, {0, 301}, again), std::invalid_argument);
  EXPECT_THROW(model.cache_rows(batch, full, {0, 1}, again), std::invalid_argument);
}

TEST(BatchHvp, EqualsTheDenseHessianOfTheBatchLoss) {
  Fixture f = make_fixture();
  const std::vector<Index> rows = {1, 4, 5, 9, 17, 30, 38};
  // The dense twin: the same model and decay on the batch alone.
  auto batch = std::make_shared<const Dataset<double>>(f.train->gather(rows));
  SoftmaxRegression<double> model(7, 3);
  Problem twin(model, WeightDecay<double>(DecayKind::PerWeight, model.num_params()), batch, f.val);
  twin.set_point(f.lambda, f.w);
  Matrix<double> H;
  twin.hessian(H);
  for (std::uint64_t seed : {22u, 23u}) {
    const Vector<double> v = random_vector<double>(f.problem->num_params(), seed);
    Vector<double> out;
    f.problem->batch_hvp(rows, v, out);
    EXPECT_LT(ift::testing::rel_error(out, H * v), 1e-12);
  }
  // And it differs from the full-batch product (the test can fail).
  const Vector<double> v = random_vector<double>(f.problem->num_params(), 24);
  Vector<double> out, full;
  f.problem->batch_hvp(rows, v, out);
  f.problem->hvp(v, full);
  EXPECT_GT(ift::testing::rel_error(out, full), 1e-3);
  const std::vector<Index> outside = {0, 40};
  EXPECT_THROW(f.problem->batch_hvp(outside, v, out), std::invalid_argument);
}

MethodSpec sampled(const char* name, Index batch, std::uint64_t seed = 5) {
  MethodSpec s = parse_method_spec(name);
  s.steps = 6;
  s.curvature_batch = batch;
  s.sampling_seed = seed;
  return s;
}

TEST(StochasticCurvature, FullBatchEqualsDeterministicBitwise) {
  Fixture f = make_fixture();
  const Index n = f.train->size();
  for (const char* base : {"neumann", "cg"}) {
    MethodSpec det = parse_method_spec(base);
    det.steps = 6;
    const auto reference = generic::hypergradient(*f.problem, det);
    for (const char* suffix : {"+fresh", "+fixed"}) {
      const MethodSpec s = sampled((std::string(base) + suffix).c_str(), n);
      const auto r = generic::hypergradient(*f.problem, s);
      EXPECT_TRUE(same_bits(r.v, reference.v)) << s.name();
      EXPECT_TRUE(same_bits(r.hypergradient, reference.hypergradient)) << s.name();
      EXPECT_EQ(r.hvps, reference.hvps) << s.name();
    }
  }
}

TEST(StochasticCurvature, FreshAndFixedDifferAndAreReproducibleBySeed) {
  Fixture f = make_fixture();
  for (const char* base : {"neumann", "cg"}) {
    const std::string b = base;
    MethodSpec fresh = sampled((b + "+fresh").c_str(), 10);
    MethodSpec fixed = sampled((b + "+fixed").c_str(), 10);
    const auto a1 = generic::hypergradient(*f.problem, fresh);
    const auto a2 = generic::hypergradient(*f.problem, fresh);
    const auto b1 = generic::hypergradient(*f.problem, fixed);
    const auto b2 = generic::hypergradient(*f.problem, fixed);
    EXPECT_TRUE(same_bits(a1.v, a2.v)) << b;
    EXPECT_TRUE(same_bits(b1.v, b2.v)) << b;
    EXPECT_FALSE(same_bits(a1.v, b1.v)) << b;
    fresh.sampling_seed = 6;
    EXPECT_FALSE(same_bits(generic::hypergradient(*f.problem, fresh).v, a1.v)) << b;
    // Each product averages 10 of 40 rows: an estimate of H⁻¹g, not the solution.
    MethodSpec exact;
    const auto e = generic::hypergradient(*f.problem, exact);
    EXPECT_GT((a1.v - e.v).norm(), 1e-6 * e.v.norm()) << b;
  }
  // The same through a sweep: every k equals its single call (stream 0, same draws).
  MethodSpec fresh = sampled("neumann+fresh", 10);
  const auto sweep = generic::hypergradient_sweep(*f.problem, fresh, {2, 6});
  fresh.steps = 2;
  EXPECT_TRUE(same_bits(sweep[0].v, generic::hypergradient(*f.problem, fresh).v));
}

// ---- warm starts on a hypergradient and in the loop ---------------------------------------------

TEST(WarmCg, RunToConvergenceEqualsColdCg) {
  Fixture f = make_fixture(40, 30, 12);  // D = 93: more CG iterations than a warm start needs
  // v of a slightly perturbed λ as the previous hyper-step's.
  const Vector<double> lambda1 = f.lambda.array() + 1e-3;
  f.problem->set_point(lambda1, f.w);
  MethodSpec cg = parse_method_spec("cg+warm");
  cg.steps = 200;
  cg.cg.tolerance = 1e-12;
  generic::SolverState<Vector<double>> state;
  generic::hypergradient(*f.problem, cg, nullptr, nullptr, &state);
  ASSERT_TRUE(state.has_v);
  f.problem->set_point(f.lambda, f.w);
  const auto warm = generic::hypergradient(*f.problem, cg, nullptr, nullptr, &state);
  MethodSpec cold = cg;
  cold.warm_start = false;
  const auto c = generic::hypergradient(*f.problem, cold);
  EXPECT_EQ(warm.status, SolverStatus::Converged);
  EXPECT_EQ(c.status, SolverStatus::Converged);
  EXPECT_LT((warm.v - c.v).norm(), 1e-10 * c.v.norm());
  EXPECT_LT(warm.iterations, c.iterations);
}

/// A problem that logs the order of its curvature products and validation gradients.
struct OrderLog {
  Problem& p;
  std::string log;
  void set_point(const Vector<double>& l, const Vector<double>& w) { p.set_point(l, w); }
  const Vector<double>& lambda() const { return p.lambda(); }
  const Vector<double>& w() const { return p.w(); }
  const Vector<double>& train_gradient() const { return p.train_gradient(); }
  const Vector<double>& val_gradient() {
    log += "g";
    return p.val_gradient();
  }
  void val_direct_gradient(Vector<double>& out) { p.val_direct_gradient(out); }
  void hvp(const Vector<double>& v, Vector<double>& out) {
    log += "H";
    p.hvp(v, out);
  }
  void mixed_product(const Vector<double>& v, Vector<double>& out) { p.mixed_product(v, out); }
  Index num_params() const { return p.num_params(); }
};

TEST(WarmNeumann, SobaFormsHvPrevBeforeTheValidationGradientWithTheSameBits) {
  // SOBA's v ← v + α(g − H v_prev): H v_prev does not need g, so the hypergradient forms it
  // first (the training rows still in cache from the inner phase); the result is the one of the
  // order g, then H v_prev (a hand-written Richardson step from the same state), bitwise.
  Fixture f = make_fixture(40, 30, 12);
  OrderLog logged{*f.problem, {}};
  MethodSpec soba = parse_method_spec("neumann+warm");
  soba.steps = 1;
  soba.neumann.alpha = 0.05;
  generic::SolverState<Vector<double>> state;
  f.problem->set_point(f.lambda, f.w);
  const auto first = generic::hypergradient(logged, soba, nullptr, nullptr, &state);
  ASSERT_FALSE(logged.log.empty());
  EXPECT_EQ(logged.log.front(), 'g');  // no previous v: the cold series starts from g
  ASSERT_TRUE(state.has_v);
  const Vector<double> v_prev = state.v;
  logged.log.clear();
  const Vector<double> lambda2 = f.lambda.array() + 1e-2;
  f.problem->set_point(lambda2, f.w);
  const auto second = generic::hypergradient(logged, soba, nullptr, nullptr, &state);
  EXPECT_EQ(logged.log, "Hg");
  EXPECT_EQ(second.hvps, 1);
  // The same step by hand, g first: term = g − H v_prev, v = v_prev + α term.
  const Vector<double> g = f.problem->val_gradient();
  Vector<double> hv;
  f.problem->hvp(v_prev, hv);
  Vector<double> term = g;
  term -= hv;
  Vector<double> v = term * 0.05;
  v += v_prev;
  EXPECT_TRUE(same_bits(second.v, v));
  (void)first;
}

struct LoopFixture {
  std::unique_ptr<Problem> problem;
  Vector<double> w0, lambda0;
};

LoopFixture loop_fixture() {
  Fixture f = make_fixture(60, 8, 31);
  LoopFixture l;
  l.problem = std::move(f.problem);
  l.w0 = Vector<double>::Zero(l.problem->num_params());
  l.lambda0 = Vector<double>::Constant(l.problem->num_params(), std::log(1e-2));
  return l;
}

BilevelParams loop_params(const char* method, Index steps) {
  BilevelParams p;
  p.method = parse_method_spec(method);
  p.method.steps = steps;
  p.hyper_steps = 6;
  p.inner_steps = 5;
  p.warmup_steps = 100;
  p.inner = {OptimizerKind::Adam, 0.05};
  p.outer = {OptimizerKind::Sgd, 1.0};
  return p;
}

TEST(WarmNeumannLoop, SobaSpendsOneHvpPerHyperStepAfterTheFirst) {
  LoopFixture l = loop_fixture();
  BilevelParams cold = loop_params("neumann", 1);
  BilevelParams warm = loop_params("neumann+warm", 1);
  const auto c = BilevelLoop<double>(cold).run(*l.problem, l.w0, l.lambda0);
  const auto w = BilevelLoop<double>(warm).run(*l.problem, l.w0, l.lambda0);
  // Step 1 has no previous v: the cold series, bitwise (power iteration included).
  EXPECT_EQ(w.records[0].hypergradient_norm, c.records[0].hypergradient_norm);
  EXPECT_EQ(w.records[0].hvps, c.records[0].hvps);
  EXPECT_GT(c.records[0].hvps, 1);
  for (std::size_t i = 1; i < w.records.size(); ++i) {
    EXPECT_EQ(w.records[i].hvps, 1) << i;  // α reused, one residual product
    EXPECT_EQ(w.records[i].iterations, 1) << i;
    EXPECT_GT(c.records[i].hvps, 1) << i;  // cold: a power iteration every step
  }
  EXPECT_FALSE(w.lambda == c.lambda);
}

/// A RegularizedProblem seen through BilevelProblem's own set_point_with_gradient and
/// set_point_with_gradient_and_hvp (set_point, train_gradient(), hvp(): separate passes);
/// counts the loop's requests for the point's product.
class SeparatePasses final : public BilevelProblem<double> {
 public:
  explicit SeparatePasses(Problem& problem) : p(problem) {}
  Problem& p;
  int product_requests = 0;
  Index num_params() const override { return p.num_params(); }
  Index num_hyper() const override { return p.num_hyper(); }
  void set_point(const Vector<double>& lambda, const Vector<double>& w) override {
    p.set_point(lambda, w);
  }
  void set_point_with_gradient_and_hvp(const Vector<double>& lambda, const Vector<double>& w,
                                       const Vector<double>& v, Vector<double>& hv) override {
    ++product_requests;
    BilevelProblem<double>::set_point_with_gradient_and_hvp(lambda, w, v, hv);
  }
  const Vector<double>& lambda() const override { return p.lambda(); }
  const Vector<double>& w() const override { return p.w(); }
  double train_loss() const override { return p.train_loss(); }
  const Vector<double>& train_gradient() const override { return p.train_gradient(); }
  double val_loss() override { return p.val_loss(); }
  const Vector<double>& val_gradient() override { return p.val_gradient(); }
  void val_direct_gradient(Vector<double>& out) override { p.val_direct_gradient(out); }
  void hvp(const Vector<double>& v, Vector<double>& out) override { p.hvp(v, out); }
  void mixed_product(const Vector<double>& v, Vector<double>& out) override {
    p.mixed_product(v, out);
  }
  Metrics metrics() override { return p.metrics(); }
  Index num_train_examples() const override { return p.num_train_examples(); }
  void batch_hvp(const std::vector<Index>& rows, const Vector<double>& v,
                 Vector<double>& out) override {
    p.batch_hvp(rows, v, out);
  }
};

TEST(WarmNeumannLoop, TheProductFormedWithThePointGivesTheSameBits) {
  // A warm neumann's first product H v_prev is known before the hypergradient's point is set:
  // the loop forms it in that point's pass (one pass over the training rows for the point, its
  // gradient and the product); the run equals one with every product formed separately,
  // bitwise, with and without damping and for several Richardson steps.
  struct Case {
    const char* method;
    Index steps;
    double damping;
    int requests;  // hyper-steps after the first (which has no previous v)
  };
  for (const Case c : {Case{"neumann+warm", 1, 0.0, 5}, Case{"neumann+warm", 3, 1e-3, 5},
                       Case{"neumann", 1, 0.0, 0}, Case{"neumann+warm+fresh", 1, 0.0, 0}}) {
    LoopFixture a = loop_fixture(), b = loop_fixture();
    BilevelParams params = loop_params(c.method, c.steps);
    params.method.damping = c.damping;
    if (params.method.sampling != CurvatureSampling::Full) params.method.curvature_batch = 20;
    SeparatePasses separate(*b.problem);
    const auto fused = BilevelLoop<double>(params).run(*a.problem, a.w0, a.lambda0);
    const auto plain = BilevelLoop<double>(params).run(separate, b.w0, b.lambda0);
    EXPECT_EQ(separate.product_requests, c.requests) << c.method;
    EXPECT_TRUE(same_bits(fused.w, plain.w)) << c.method;
    EXPECT_TRUE(same_bits(fused.lambda, plain.lambda)) << c.method;
    ASSERT_EQ(fused.records.size(), plain.records.size());
    for (std::size_t i = 0; i < fused.records.size(); ++i) {
      EXPECT_EQ(fused.records[i].hypergradient_norm, plain.records[i].hypergradient_norm)
          << c.method << " step " << i;
      EXPECT_EQ(fused.records[i].hvps, plain.records[i].hvps) << c.method << " step " << i;
    }
  }
}

TEST(WarmNeumannLoop, ConvergesToTheColdSolutionWithEnoughSteps) {
  // Richardson from any start converges to H⁻¹ g: run to the tolerance, warm and cold agree.
  LoopFixture l = loop_fixture();
  BilevelParams cold = loop_params("neumann", 20000);
  cold.method.neumann.tolerance = 1e-12;
  BilevelParams warm = cold;
  warm.method.warm_start = true;
  const auto c = BilevelLoop<double>(cold).run(*l.problem, l.w0, l.lambda0);
  const auto w = BilevelLoop<double>(warm).run(*l.problem, l.w0, l.lambda0);
  Index cold_hvps = 0, warm_hvps = 0;
  for (std::size_t i = 0; i < c.records.size(); ++i) {
    EXPECT_EQ(c.records[i].status, "converged") << i;
    EXPECT_EQ(w.records[i].status, "converged") << i;
    EXPECT_NEAR(w.records[i].hypergradient_norm, c.records[i].hypergradient_norm,
                1e-8 * c.records[i].hypergradient_norm);
    cold_hvps += c.records[i].hvps;
    warm_hvps += w.records[i].hvps;
  }
  EXPECT_LT(warm_hvps, cold_hvps);
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("ift_test_inexact_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

/// The checkpoint of a run of `p` (its checkpoint_path set) stopped after 3 hyper-steps.
Checkpoint<double> checkpoint_after_three_steps(const BilevelParams& p, LoopFixture& l) {
  BilevelLoop<double> first(p);
  Index seen = 0;
  first.add_observer([&](const HyperStepRecord&) { ++seen; });
  first.set_stop_request([&] { return seen >= 3; });
  EXPECT_EQ(first.run(*l.problem, l.w0, l.lambda0).steps, 3);
  return load_checkpoint<double>(p.checkpoint_path);
}

TEST(InexactLoop, ResumeWithWarmStochasticNeumannIsBitwise) {
  LoopFixture l = loop_fixture();
  BilevelParams p = loop_params("neumann+fresh+warm", 2);
  p.method.curvature_batch = 15;
  p.method.sampling_seed = 3;
  p.method.neumann.alpha = 0.2;
  const auto full = BilevelLoop<double>(p).run(*l.problem, l.w0, l.lambda0);
  p.checkpoint_path = temp_path("soba");
  const auto checkpoint = checkpoint_after_three_steps(p, l);
  const auto resumed = BilevelLoop<double>(p).resume(*l.problem, checkpoint);
  EXPECT_TRUE(resumed.lambda == full.lambda);
  EXPECT_TRUE(resumed.w == full.w);
  // Another sampling seed is another configuration: refused.
  BilevelParams other = p;
  other.method.sampling_seed = 4;
  EXPECT_THROW(BilevelLoop<double>(other).resume(*l.problem, checkpoint), std::invalid_argument);
  // Runs with another seed differ (the draws matter).
  other.checkpoint_path.clear();
  EXPECT_FALSE(BilevelLoop<double>(other).run(*l.problem, l.w0, l.lambda0).lambda == full.lambda);
  std::filesystem::remove(p.checkpoint_path);
}

TEST(InexactLoop, ResumeWithRecycledRitzPairsIsBitwise) {
  // cg+ritz+warm carries v and the Ritz pairs across hyper-steps; the checkpoint keeps both.
  LoopFixture l = loop_fixture();
  BilevelParams p = loop_params("cg+ritz+warm", 3);
  p.method.ritz.memory = 4;
  const auto full = BilevelLoop<double>(p).run(*l.problem, l.w0, l.lambda0);
  p.checkpoint_path = temp_path("ritz");
  const auto checkpoint = checkpoint_after_three_steps(p, l);
  ASSERT_FALSE(checkpoint.solver_ritz_values.empty());
  EXPECT_LE(checkpoint.solver_ritz_values.size(), 4u);
  EXPECT_EQ(checkpoint.solver_ritz_vectors.size(), checkpoint.solver_ritz_values.size());
  const auto resumed = BilevelLoop<double>(p).resume(*l.problem, checkpoint);
  EXPECT_TRUE(resumed.lambda == full.lambda);
  EXPECT_TRUE(resumed.w == full.w);
  // From the second hyper-step on the solves are preconditioned by the recycled pairs.
  EXPECT_NE(full.records[0].message.find("m = 0: plain cg"), std::string::npos);
  EXPECT_NE(full.records[2].message.find("Ritz-preconditioned (m = "), std::string::npos);
  EXPECT_EQ(full.records[2].message.find("m = 0"), std::string::npos) << full.records[2].message;
  // Another memory is another configuration: refused.
  BilevelParams other = p;
  other.method.ritz.memory = 5;
  EXPECT_THROW(BilevelLoop<double>(other).resume(*l.problem, checkpoint), std::invalid_argument);
  std::filesystem::remove(p.checkpoint_path);
}

// ---- HOAG's tolerance schedules ------------------------------------------------------------------

TEST(ToleranceSchedule, Values) {
  BilevelParams p;
  p.tolerance0 = 0.5;
  EXPECT_FALSE(p.tolerance_at(1).has_value());
  p.tolerance_schedule = ToleranceSchedule::Quadratic;
  EXPECT_EQ(*p.tolerance_at(1), 0.5);
  EXPECT_EQ(*p.tolerance_at(3), 0.5 / 9);
  p.tolerance_schedule = ToleranceSchedule::Cubic;
  EXPECT_EQ(*p.tolerance_at(2), 0.5 / 8);
  p.tolerance_schedule = ToleranceSchedule::Geometric;
  EXPECT_DOUBLE_EQ(*p.tolerance_at(1), 0.45);
  EXPECT_DOUBLE_EQ(*p.tolerance_at(3), 0.5 * 0.729);
  EXPECT_THROW(p.tolerance_at(0), std::invalid_argument);
  EXPECT_EQ(parse_tolerance_schedule("cubic"), ToleranceSchedule::Cubic);
  EXPECT_THROW(parse_tolerance_schedule("linear"), std::invalid_argument);
  p.tolerance0 = 0;
  EXPECT_THROW(p.check(), std::invalid_argument);
  // Part of the fingerprint (a resume with another schedule is refused); absent when unused.
  BilevelParams q;
  EXPECT_EQ(q.fingerprint().find("tolerance_schedule"), std::string::npos);
  q.tolerance_schedule = ToleranceSchedule::Quadratic;
  EXPECT_NE(q.fingerprint().find("tolerance_schedule=quadratic"), std::string::npos);
}

TEST(ToleranceSchedule, TheLoopSolvesEachStepToItsTolerance) {
  LoopFixture l = loop_fixture();
  BilevelParams p = loop_params("cg", 200);
  p.inner_solver = InnerSolver::Newton;
  p.inner_steps = 50;
  p.warmup_steps = 0;
  p.method.compute_residual = true;
  p.method.cg.reorthogonalize = false;
  p.hyper_steps = 4;
  p.tolerance_schedule = ToleranceSchedule::Cubic;
  p.tolerance0 = 1e-2;
  const auto scheduled = BilevelLoop<double>(p).run(*l.problem, l.w0, l.lambda0);
  BilevelParams fixed = p;
  fixed.tolerance_schedule = ToleranceSchedule::None;  // 1e-12 for CG, 1e-10 inner
  const auto tight = BilevelLoop<double>(fixed).run(*l.problem, l.w0, l.lambda0);
  for (std::size_t i = 0; i < scheduled.records.size(); ++i) {
    const HyperStepRecord& r = scheduled.records[i];
    const double eps = *p.tolerance_at(static_cast<Index>(i) + 1);
    EXPECT_EQ(r.status, "converged") << i;
    EXPECT_EQ(r.inner_status, "converged") << i;
    EXPECT_LT(r.inner_gradient_norm, eps) << i;
    // CG stopped on its recurrence residual at ε_t; the true one agrees to rounding here.
    EXPECT_LE(r.relative_residual, eps * (1 + 1e-6)) << i;
    EXPECT_LT(r.iterations, tight.records[i].iterations) << i;
    EXPECT_LT(r.inner_iterations, tight.records[i].inner_iterations + 1) << i;
  }
  // Looser early solves took fewer CG iterations in total.
  EXPECT_LT(scheduled.records[0].iterations, tight.records[0].iterations);
}

}  // namespace
