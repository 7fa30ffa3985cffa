// Algorithm 2 (the bilevel loop): it lowers the validation loss with every inverse
// approximation, leaves λ alone with the zero approximation (whose hypergradient vanishes for
// weight decay), resumes from a checkpoint to bitwise the same result, refuses a checkpoint from
// another configuration, and overfits a small validation set (DESIGN.md P4).
#include <gtest/gtest.h>

#include <cstring>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>

#include "blobs_problem.hpp"
#include "ift/bilevel.hpp"
#include "ift/checkpoint.hpp"
#include "ift/data/synthetic.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/optimizers.hpp"
#include "ift/problems/regularized.hpp"

namespace {

using namespace ift;
using Problem = RegularizedProblem<SoftmaxRegression<double>>;

/// Few training rows, many features: the unregularised fit overfits, so tuning λ helps.
struct Fixture {
  std::unique_ptr<Problem> problem;
  Vector<double> w0, lambda0;
};

Fixture make_fixture(Index n_train, Index n_val, Index d, double log_decay, std::uint64_t seed) {
  Fixture f;
  f.problem = ift::testing::blobs_decay_problem(n_train, n_val, d, seed);
  f.w0 = Vector<double>::Zero(f.problem->num_params());
  f.lambda0 = Vector<double>::Constant(f.problem->num_params(), log_decay);
  return f;
}

BilevelParams base_params(Method method) {
  BilevelParams p;
  p.method.method = method;
  p.method.steps = 20;
  p.hyper_steps = 25;
  p.inner_steps = 30;
  p.warmup_steps = 300;
  p.inner = {OptimizerKind::Adam, 0.05};
  p.outer = {OptimizerKind::Adam, 0.1};
  return p;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("ift_test_bilevel_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

class BilevelLowersValidationLoss : public ::testing::TestWithParam<Method> {};

TEST_P(BilevelLowersValidationLoss, OnSyntheticBlobs) {
  Fixture f = make_fixture(30, 60, 20, std::log(1e-3), 7);
  BilevelLoop<double> loop(base_params(GetParam()));
  Index observed = 0;
  loop.add_observer([&](const HyperStepRecord& r) {
    ++observed;
    EXPECT_EQ(r.step, observed);
    EXPECT_TRUE(std::isfinite(r.hypergradient_norm)) << r.message;
    EXPECT_TRUE(r.status == "converged" || r.status == "max-iterations") << r.status;
  });
  const auto result = loop.run(*f.problem, f.w0, f.lambda0);
  ASSERT_EQ(result.reason, StopReason::Completed);
  ASSERT_EQ(result.steps, 25);
  ASSERT_EQ(observed, 25);
  const double first = result.records.front().metrics.val_loss;
  const double last = result.records.back().metrics.val_loss;
  EXPECT_LT(last, first - 1e-3) << to_string(GetParam()) << ": " << first << " -> " << last;
  EXPECT_GT((result.lambda - f.lambda0).norm(), 0);
}

INSTANTIATE_TEST_SUITE_P(Methods, BilevelLowersValidationLoss,
                         ::testing::Values(Method::Exact, Method::Cg, Method::Neumann,
                                           Method::Identity, Method::Kfac),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(Bilevel, ZeroMethodLeavesWeightDecayUnchanged) {
  // For weight decay ∂L_V/∂λ = 0, so dropping the indirect term gives a zero hypergradient and
  // the outer optimiser (Adam: m = v = 0) must not move λ at all.
  Fixture f = make_fixture(30, 60, 20, std::log(1e-3), 7);
  for (const OptimizerKind outer : {OptimizerKind::Adam, OptimizerKind::Sgd}) {
    BilevelParams p = base_params(Method::Zero);
    p.hyper_steps = 5;
    p.outer.kind = outer;
    const auto result = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
    for (const auto& r : result.records) EXPECT_EQ(r.hypergradient_norm, 0.0);
    EXPECT_TRUE(result.lambda == f.lambda0);
  }
}

void expect_same_records(const std::vector<HyperStepRecord>& a,
                         const std::vector<HyperStepRecord>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    // Everything but the wall-clock columns must agree bit for bit.
    EXPECT_EQ(a[i].step, b[i].step);
    EXPECT_EQ(a[i].metrics.train_loss, b[i].metrics.train_loss) << "step " << a[i].step;
    EXPECT_EQ(a[i].metrics.val_loss, b[i].metrics.val_loss) << "step " << a[i].step;
    EXPECT_EQ(a[i].metrics.test_loss, b[i].metrics.test_loss);
    EXPECT_EQ(a[i].metrics.train_accuracy, b[i].metrics.train_accuracy);
    EXPECT_EQ(a[i].metrics.val_accuracy, b[i].metrics.val_accuracy);
    EXPECT_EQ(a[i].hypergradient_norm, b[i].hypergradient_norm) << "step " << a[i].step;
    EXPECT_EQ(a[i].status, b[i].status);
    EXPECT_EQ(a[i].iterations, b[i].iterations);
    EXPECT_EQ(a[i].hvps, b[i].hvps);
    EXPECT_EQ(a[i].message, b[i].message);
  }
}

class BilevelResume : public ::testing::TestWithParam<Index> {};

TEST_P(BilevelResume, KillAndResumeIsBitwiseIdentical) {
  const Index batch_size = GetParam();  // 0: full batch; else minibatches from the seeded RNG
  Fixture f = make_fixture(30, 40, 10, std::log(1e-3), 11);
  BilevelParams p = base_params(Method::Neumann);  // α from λ_max: power iteration every step
  p.hyper_steps = 12;
  p.inner_steps = 7;
  p.warmup_steps = 20;
  p.batch_size = batch_size;
  p.seed = 1234;
  p.inner = {OptimizerKind::Momentum, 0.05};
  p.checkpoint_every = 2;
  p.configuration = "test=resume\n";

  p.checkpoint_path = temp_path("full_" + std::to_string(batch_size));
  const auto full = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
  ASSERT_EQ(full.steps, 12);

  // Interrupted after hyper-step 5 (as a signal flag would): a checkpoint is written on the way
  // out, at step 5, although the periodic ones fall on even steps.
  p.checkpoint_path = temp_path("cut_" + std::to_string(batch_size));
  BilevelLoop<double> first(p);
  Index seen = 0;
  first.add_observer([&](const HyperStepRecord&) { ++seen; });
  first.set_stop_request([&] { return seen >= 5; });
  const auto cut = first.run(*f.problem, f.w0, f.lambda0);
  ASSERT_EQ(cut.reason, StopReason::StopRequested);
  ASSERT_EQ(cut.steps, 5);
  ASSERT_TRUE(cut.checkpoint_written);

  const Checkpoint<double> checkpoint = load_checkpoint<double>(p.checkpoint_path);
  EXPECT_EQ(checkpoint.step, 5);
  BilevelLoop<double> second(p);
  Index replayed = 0, fresh = 0;
  second.add_observer([&](const HyperStepRecord& r) { ++(r.restored ? replayed : fresh); });
  // A fresh problem object: nothing may survive in the old one's caches.
  Fixture g = make_fixture(30, 40, 10, std::log(1e-3), 11);
  const auto resumed = second.resume(*g.problem, checkpoint);
  EXPECT_EQ(replayed, 5);
  EXPECT_EQ(fresh, 7);
  ASSERT_EQ(resumed.steps, 12);
  EXPECT_TRUE(resumed.w == full.w);
  EXPECT_TRUE(resumed.lambda == full.lambda);
  expect_same_records(resumed.records, full.records);
  // Elapsed time carries over from the first session.
  EXPECT_GE(resumed.records.back().elapsed_seconds, resumed.records[4].elapsed_seconds);

  std::filesystem::remove(temp_path("full_" + std::to_string(batch_size)));
  std::filesystem::remove(p.checkpoint_path);
}

INSTANTIATE_TEST_SUITE_P(Batches, BilevelResume, ::testing::Values(Index(0), Index(8)));

TEST(BilevelCheckpoint, RefusesAnotherConfiguration) {
  Fixture f = make_fixture(20, 20, 5, std::log(1e-3), 3);
  BilevelParams p = base_params(Method::Identity);
  p.hyper_steps = 2;
  p.checkpoint_path = temp_path("refuse");
  BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
  const auto checkpoint = load_checkpoint<double>(p.checkpoint_path);

  BilevelParams other = p;
  other.inner.learning_rate = 0.07;
  try {
    BilevelLoop<double>(other).resume(*f.problem, checkpoint);
    FAIL() << "a checkpoint from another configuration was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("inner=adam lr=0.070000000000000007"), std::string::npos)
        << e.what();
  }
  BilevelParams shorter = p;
  shorter.hyper_steps = 1;
  EXPECT_THROW(BilevelLoop<double>(shorter).resume(*f.problem, checkpoint), std::invalid_argument);
  // Extending a finished run is allowed: hyper_steps is not part of the fingerprint.
  BilevelParams longer = p;
  longer.hyper_steps = 4;
  EXPECT_EQ(BilevelLoop<double>(longer).resume(*f.problem, checkpoint).steps, 4);
  std::filesystem::remove(p.checkpoint_path);
}

// The solver state carried across hyper-steps (generic/solver_state.hpp): CG warm-started from
// the previous step's v solves the same systems (same hypergradients to the solver tolerance)
// in fewer iterations once λ and w move slowly, and a resumed run restores that state so the
// continuation is bitwise the uninterrupted one.
TEST(BilevelSolverState, WarmStartedCgSolvesTheSameSystemsInFewerIterations) {
  Fixture f = make_fixture(30, 40, 10, std::log(1e-2), 5);
  BilevelParams p = base_params(Method::Cg);
  p.hyper_steps = 8;
  p.inner_steps = 5;
  p.method.steps = 200;
  p.method.cg.tolerance = 1e-9;
  // SGD on λ: Adam's sign-like first steps would turn rounding-level differences in entries
  // near zero into steps of the full learning rate.
  p.outer = {OptimizerKind::Sgd, 1.0};
  const auto cold = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
  p.method.warm_start = true;
  const auto warm = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
  ASSERT_EQ(cold.records.size(), warm.records.size());
  Index cold_iterations = 0, warm_iterations = 0;
  for (std::size_t i = 0; i < cold.records.size(); ++i) {
    EXPECT_EQ(cold.records[i].status, "converged");
    EXPECT_EQ(warm.records[i].status, "converged");
    if (i == 0) {
      EXPECT_EQ(cold.records[i].iterations, warm.records[i].iterations);  // no state yet
    }
    cold_iterations += cold.records[i].iterations;
    warm_iterations += warm.records[i].iterations;
    // Both solve H v = g to ||r|| ≤ 1e-9 ||g||: the trajectories agree to about that level.
    EXPECT_NEAR(warm.records[i].hypergradient_norm, cold.records[i].hypergradient_norm,
                1e-6 * cold.records[i].hypergradient_norm);
  }
  EXPECT_LT(warm_iterations, cold_iterations);
  EXPECT_LT((warm.lambda - cold.lambda).norm(), 1e-6 * (cold.lambda - f.lambda0).norm());
}

TEST(BilevelSolverState, ResumeRestoresTheWarmStart) {
  Fixture f = make_fixture(30, 40, 10, std::log(1e-2), 5);
  BilevelParams p = base_params(Method::Cg);
  p.hyper_steps = 6;
  p.inner_steps = 5;
  p.method.steps = 3;  // truncated: the warm start changes every iterate
  p.method.warm_start = true;
  const auto full = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
  p.checkpoint_path = temp_path("warm");
  BilevelLoop<double> first(p);
  Index seen = 0;
  first.add_observer([&](const HyperStepRecord&) { ++seen; });
  first.set_stop_request([&] { return seen >= 3; });
  ASSERT_EQ(first.run(*f.problem, f.w0, f.lambda0).steps, 3);
  const auto checkpoint = load_checkpoint<double>(p.checkpoint_path);
  EXPECT_EQ(checkpoint.solver_v.size(), f.w0.size());
  const auto resumed = BilevelLoop<double>(p).resume(*f.problem, checkpoint);
  EXPECT_TRUE(resumed.lambda == full.lambda);
  EXPECT_TRUE(resumed.w == full.w);
  expect_same_records(resumed.records, full.records);
  // Without the state the continuation differs: the test can fail.
  Checkpoint<double> stateless = checkpoint;
  stateless.solver_v.resize(0);
  const auto cold = BilevelLoop<double>(p).resume(*f.problem, stateless);
  EXPECT_FALSE(cold.lambda == full.lambda);
  std::filesystem::remove(p.checkpoint_path);
}

// Inner solvers in the loop: Newton reaches w*(λ) in every hyper-step, so the exact
// hypergradient is the true IFT hypergradient there; the record says so.
TEST(BilevelInnerSolver, NewtonReachesTheInnerOptimumEveryHyperStep) {
  Fixture f = make_fixture(30, 40, 6, std::log(1e-2), 13);
  BilevelParams p = base_params(Method::Exact);
  p.hyper_steps = 3;
  p.warmup_steps = 0;
  p.inner_solver = InnerSolver::Newton;
  p.inner_steps = 50;
  p.inner_tolerance = 1e-10;
  BilevelLoop<double> loop(p);
  Vector<double> lambda_seen;
  const auto result = loop.run(*f.problem, f.w0, f.lambda0);
  for (const auto& r : result.records) {
    EXPECT_EQ(r.inner_status, "converged");
    EXPECT_LT(r.inner_gradient_norm, 1e-10);
    EXPECT_GE(r.inner_iterations, 1);
  }
  // The returned w is w* at the λ of the last hypergradient (before the last outer step).
  f.problem->set_point(result.lambda, result.w);
  EXPECT_GT(f.problem->train_gradient().norm(), 1e-10);  // λ moved after the last solve
  EXPECT_THROW(parse_inner("bfgs", p), std::invalid_argument);
  BilevelParams bad = p;
  bad.inner_steps = 0;
  EXPECT_THROW(bad.check(), std::invalid_argument);
}

// Every inner solver reaches the same w*(λ) in the loop, so the same hypergradients and the
// same λ follow (to the inner tolerance), whichever solver got there.
TEST(BilevelInnerSolver, NewtonCgAndLbfgsFollowNewtonsTrajectory) {
  Fixture f = make_fixture(30, 40, 6, std::log(1e-2), 13);
  BilevelParams p = base_params(Method::Exact);
  p.hyper_steps = 3;
  p.warmup_steps = 0;
  p.inner_steps = 500;
  p.inner_tolerance = 1e-11;
  p.outer = {OptimizerKind::Sgd, 1.0};
  std::vector<BilevelResult<double>> results;
  for (const char* name : {"newton", "newton-cg", "lbfgs"}) {
    parse_inner(name, p);
    results.push_back(BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0));
    for (const auto& r : results.back().records) {
      EXPECT_EQ(r.inner_status, "converged") << name;
      EXPECT_LT(r.inner_gradient_norm, 1e-11) << name;
    }
  }
  const Vector<double> moved = results[0].lambda - f.lambda0;
  ASSERT_GT(moved.norm(), 0);
  for (std::size_t i = 1; i < results.size(); ++i) {
    EXPECT_LT((results[i].lambda - results[0].lambda).norm(), 1e-8 * moved.norm()) << i;
    EXPECT_LT((results[i].w - results[0].w).norm(), 1e-8 * results[0].w.norm()) << i;
  }
}

TEST(BilevelFinalEvaluation, AddsOneRecordAtTheFinalLambdaWithoutAnOuterStep) {
  Fixture f = make_fixture(30, 40, 10, std::log(1e-3), 7);
  BilevelParams p = base_params(Method::Cg);
  p.hyper_steps = 4;
  const auto plain = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
  p.evaluate_final = true;
  const auto with_final = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
  ASSERT_EQ(with_final.records.size(), 5u);
  EXPECT_TRUE(with_final.records.back().final_evaluation);
  EXPECT_EQ(with_final.records.back().step, 5);
  EXPECT_EQ(with_final.steps, 4);
  EXPECT_TRUE(with_final.lambda == plain.lambda);  // no fifth outer step
  EXPECT_FALSE(with_final.w == plain.w);           // but a fifth inner phase
  BilevelParams bad = p;
  bad.record_metrics = false;
  bad.target_accuracy = 1.0;
  EXPECT_THROW(bad.check(), std::invalid_argument);
}

TEST(Checkpoint, RejectsForeignAndTruncatedFiles) {
  const std::string path = temp_path("foreign");
  { std::ofstream(path) << "not a checkpoint"; }
  EXPECT_THROW(load_checkpoint<double>(path), std::runtime_error);

  Checkpoint<double> c;
  c.fingerprint = "x=1\n";
  c.step = 1;
  c.w = Vector<double>::LinSpaced(5, 0, 1);
  c.lambda = Vector<double>::Constant(5, -3);
  c.records.resize(1);
  c.records[0].message = "hello, world";
  save_checkpoint(path, c);
  const auto back = load_checkpoint<double>(path);
  EXPECT_TRUE(back.w == c.w);
  EXPECT_EQ(back.records[0].message, "hello, world");
  EXPECT_THROW(load_checkpoint<float>(path), std::runtime_error);  // another scalar type
  {
    // One flipped bit anywhere is refused by the checksum (here: inside w's values).
    std::string bytes;
    {
      std::ifstream in(path, std::ios::binary);
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    const std::size_t where = bytes.find("hello, world");
    ASSERT_NE(where, std::string::npos);
    for (const std::size_t at : {std::size_t(40), where + 3, bytes.size() - 12}) {
      std::string damaged = bytes;
      damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
      const std::string other = temp_path("damaged");
      { std::ofstream(other, std::ios::binary) << damaged; }
      try {
        load_checkpoint<double>(other);
        FAIL() << "a checkpoint with a flipped bit at byte " << at << " was loaded";
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("damaged"), std::string::npos) << e.what();
      }
      std::filesystem::remove(other);
    }
  }
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  EXPECT_THROW(load_checkpoint<double>(path), std::runtime_error);
  std::filesystem::remove(path);
}

// A checkpoint that passes its checksum (re-sealed with checkpoint_checksum, as
// fuzz/fuzz_checkpoint does) but claims more records than the file can hold is refused before
// the count sizes an allocation.
TEST(Checkpoint, RefusesARecordCountTheFileCannotHold) {
  const std::string path = temp_path("count");
  Checkpoint<double> c;
  c.fingerprint = "x=1\n";
  c.w = Vector<double>::Zero(3);
  c.lambda = Vector<double>::Zero(3);
  c.rng_state = "RNGSTATE";  // the record count follows it
  c.records.resize(1);
  save_checkpoint(path, c);
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::size_t count_at = bytes.find("RNGSTATE") + 8;
  auto sealed_with_count = [&](std::uint64_t count) {
    std::string b = bytes.substr(0, bytes.size() - 8);
    std::memcpy(b.data() + count_at, &count, sizeof count);
    const std::uint64_t sum = checkpoint_checksum(b.data(), b.size());
    b.append(reinterpret_cast<const char*>(&sum), sizeof sum);
    const std::string other = temp_path("count-patched");
    { std::ofstream(other, std::ios::binary) << b; }
    return other;
  };
  std::uint64_t stored = 0;
  std::memcpy(&stored, bytes.data() + count_at, sizeof stored);
  ASSERT_EQ(stored, 1u);
  EXPECT_EQ(load_checkpoint<double>(sealed_with_count(1)).records.size(), 1u);  // sealing is right
  for (const std::uint64_t count : {std::uint64_t{2}, std::uint64_t{1} << 40, ~std::uint64_t{0}}) {
    try {
      load_checkpoint<double>(sealed_with_count(count));
      FAIL() << "a record count of " << count << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove(temp_path("count-patched"));
  std::filesystem::remove(path);
}

// Fuzzing finding (fuzz_checkpoint, tests/fuzz-regressions/fuzz_checkpoint): an empty vector
// was read with memcpy(nullptr, …, 0), undefined behaviour that UBSan reports (and every
// checkpoint has one: solver_v is empty until a solver state is carried). Empty vectors must
// round-trip, and the crashing input, sealed as the harness seals it, must load or be refused
// cleanly (the sanitizer build, scripts/sanitize.sh, turns the old UB into a failure here).
TEST(Checkpoint, EmptyVectorsRoundTripFuzzRegression) {
  const std::string path = temp_path("empty");
  Checkpoint<float> c;
  c.fingerprint = "";
  save_checkpoint(path, c);
  const auto back = load_checkpoint<float>(path);
  EXPECT_EQ(back.w.size(), 0);
  EXPECT_EQ(back.solver_v.size(), 0);
  EXPECT_EQ(back.inner.first.size(), 0);

  std::string input;
  {
    std::ifstream in(std::string(IFT_SOURCE_DIR) +
                         "/tests/fuzz-regressions/fuzz_checkpoint/empty-vector-memcpy-null",
                     std::ios::binary);
    ASSERT_TRUE(in);
    input.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_FALSE(input.empty());
  std::string bytes = input.substr(1);  // fuzz_checkpoint.cpp: mode byte, then the file
  if (input[0] & 1) {
    const std::uint64_t sum = checkpoint_checksum(bytes.data(), bytes.size());
    bytes.append(reinterpret_cast<const char*>(&sum), sizeof sum);
  }
  { std::ofstream(path, std::ios::binary) << bytes; }
  try {
    if (input[0] & 2)
      (void)load_checkpoint<float>(path);
    else
      (void)load_checkpoint<double>(path);
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(Bilevel, OverfitsASmallValidationSet) {
  // DESIGN.md P4 in miniature: identity inverse, inner Adam, log λ = −4; per-weight decay has
  // enough freedom to fit every validation point.
  Fixture f = make_fixture(20, 20, 30, -4.0, 5);
  BilevelParams p = base_params(Method::Identity);
  p.hyper_steps = 1000;
  p.inner_steps = 10;
  p.warmup_steps = 100;
  p.target_accuracy = 1.0;
  const auto result = BilevelLoop<double>(p).run(*f.problem, f.w0, f.lambda0);
  ASSERT_EQ(result.reason, StopReason::TargetReached) << result.message;
  EXPECT_EQ(result.records.back().metrics.train_accuracy, 1.0);
  EXPECT_EQ(result.records.back().metrics.val_accuracy, 1.0);
  EXPECT_LT(result.records.front().metrics.val_accuracy, 1.0);  // it was not fitted from the start
}

TEST(Problem, BatchGradientOverAllRowsIsTheFullGradient) {
  Fixture f = make_fixture(25, 10, 6, -2.0, 9);
  const Vector<double> w = Vector<double>::LinSpaced(f.w0.size(), -0.5, 0.5);
  f.problem->set_point(f.lambda0, w);
  std::vector<Index> rows(25);
  for (Index i = 0; i < 25; ++i) rows[static_cast<std::size_t>(i)] = i;
  Vector<double> g;
  const double loss = f.problem->batch_train_gradient(f.lambda0, w, rows, g);
  EXPECT_NEAR(loss, f.problem->train_loss(), 1e-12);
  EXPECT_LT((g - f.problem->train_gradient()).norm(), 1e-12 * f.problem->train_gradient().norm());
  EXPECT_THROW(f.problem->batch_train_gradient(f.lambda0, w, {25}, g), std::invalid_argument);
}

// set_point forms ∇_w L_T lazily: after moving (and after curvature products that share the
// training cache) train_gradient() is the gradient at the new point, never the old one.
TEST(Problem, LazyTrainGradientFollowsTheCurrentPoint) {
  Fixture f = make_fixture(25, 10, 6, -2.0, 9);
  const Vector<double> w1 = Vector<double>::LinSpaced(f.w0.size(), -0.5, 0.5);
  const Vector<double> w2 = Vector<double>::LinSpaced(f.w0.size(), 0.4, -0.3);
  std::vector<Index> rows(25);
  for (Index i = 0; i < 25; ++i) rows[static_cast<std::size_t>(i)] = i;
  Vector<double> g1, g2, hv;
  f.problem->batch_train_gradient(f.lambda0, w1, rows, g1);
  f.problem->batch_train_gradient(f.lambda0, w2, rows, g2);
  ASSERT_GT((g1 - g2).norm(), 1e-3 * g2.norm());  // the two points are distinguishable
  f.problem->set_point(f.lambda0, w1);
  EXPECT_LT((f.problem->train_gradient() - g1).norm(), 1e-12 * g1.norm());
  f.problem->set_point(f.lambda0, w2);
  f.problem->hvp(g1, hv);
  f.problem->gauss_newton_product(g1, hv);
  EXPECT_LT((f.problem->train_gradient() - g2).norm(), 1e-12 * g2.norm());
  EXPECT_LT((f.problem->train_gradient() - g2).norm(), 1e-12 * g2.norm());  // cached: same value
}

TEST(Optimizers, StepsMatchTheirDefinitions) {
  const Vector<double> g = (Vector<double>(3) << 2.0, -0.5, 0.0).finished();
  Vector<double> x = Vector<double>::Zero(3);
  Optimizer<double> adam({OptimizerKind::Adam, 0.1}, 3);
  adam.step(x, g);  // first bias-corrected Adam step is lr · g / (|g| + ε)
  EXPECT_NEAR(x(0), -0.1, 1e-8);
  EXPECT_NEAR(x(1), 0.1, 1e-8);
  EXPECT_EQ(x(2), 0.0);
  x.setZero();
  Optimizer<double> momentum({OptimizerKind::Momentum, 0.1, 0.5}, 3);
  momentum.step(x, g);
  momentum.step(x, g);  // m = g, then 1.5 g: x = −0.1 · 2.5 g
  EXPECT_NEAR(x(0), -0.5, 1e-15);
  EXPECT_THROW(Optimizer<double>({OptimizerKind::Sgd, 0.0}, 3), std::invalid_argument);
  EXPECT_THROW(parse_optimizer("adagrad"), std::invalid_argument);
}

}  // namespace
