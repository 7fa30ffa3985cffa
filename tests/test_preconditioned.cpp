// cg with KFAC as a split preconditioner ("cg+kfac", docs/methods.md): the powers of the damped
// Kronecker curvature K against each other, the preconditioned solve against the exact one,
// the theorem that makes it exact in one step (one training row and a global decay: H = K), its
// partial results against single calls (bitwise), warm starts, names and the failure status.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "fixtures.hpp"
#include "ift/generic/hypergradient.hpp"
#include "ift/linalg/kfac.hpp"
#include "ift/models/softmax_regression.hpp"
#include "ift/problems/regularized.hpp"

namespace {

using namespace ift;
using ift::testing::random_classification;
using ift::testing::random_vector;

template <class S>
struct Fixture {
  using Problem = RegularizedProblem<SoftmaxRegression<S>>;
  std::shared_ptr<const Dataset<S>> train, val;
  std::unique_ptr<Problem> problem;
  Vector<S> w, lambda;
};

template <class S = double>
Fixture<S> make_fixture(Index n_train, Index d, DecayKind decay, std::uint64_t seed,
                        double log_decay = -3.0) {
  Fixture<S> f;
  f.train = std::make_shared<const Dataset<S>>(random_classification<S>(n_train, d, 3, seed));
  f.val = std::make_shared<const Dataset<S>>(random_classification<S>(30, d, 3, seed + 1));
  SoftmaxRegression<S> model(d + 1, 3);
  const WeightDecay<S> wd(decay, model.num_params());
  f.problem = std::make_unique<typename Fixture<S>::Problem>(model, wd, f.train, f.val);
  f.w = random_vector<S>(model.num_params(), seed + 2, S(0.3));
  f.lambda = (random_vector<S>(wd.num_hyper(), seed + 3, S(0.5)).array() + S(log_decay)).matrix();
  f.problem->set_point(f.lambda, f.w);
  return f;
}

MethodSpec pcg(Index steps, bool warm = false) {
  MethodSpec spec = parse_method_spec(warm ? "cg+kfac+warm" : "cg+kfac");
  spec.steps = steps;
  return spec;
}

bool same_bits(const Vector<double>& a, const Vector<double>& b) {
  return a.size() == b.size() && (a.array() == b.array()).all();
}

TEST(KfacPowers, RootsComposeToTheInverseAndTheIdentity) {
  for (const KfacDampingMode mode : {KfacDampingMode::Exact, KfacDampingMode::Factored}) {
    Fixture<double> f = make_fixture(25, 5, DecayKind::PerWeight, 3);
    std::vector<double> shift;
    const auto blocks = f.problem->kfac_factors(shift);
    const Index D = f.problem->num_params();
    const KfacInverse<Vector<double>> K(D, blocks, 0.05, mode);
    ASSERT_EQ(K.status(), SolverStatus::Converged) << K.message();
    const Vector<double> x = random_vector<double>(D, 4);
    Vector<double> a(D), b(D), inverse(D), back(D);
    K.apply_power(x, a, KfacPower::InverseRoot);
    K.apply_power(a, b, KfacPower::InverseRoot);
    K.apply(x, inverse);
    EXPECT_LT((b - inverse).norm(), 1e-12 * inverse.norm()) << to_string(mode);
    K.apply_power(a, back, KfacPower::Root);  // K^(1/2) K^(−1/2) x = x
    EXPECT_LT((back - x).norm(), 1e-12 * x.norm()) << to_string(mode);
    // K^(1/2) K^(1/2) x, then K⁻¹: x again.
    K.apply_power(x, a, KfacPower::Root);
    K.apply_power(a, b, KfacPower::Root);
    K.apply(b, back);
    EXPECT_LT((back - x).norm(), 1e-11 * x.norm()) << to_string(mode);
    if (mode == KfacDampingMode::Exact) {  // and K^(1/2) K^(1/2) is the forward curvature
      const KfacCurvature<Vector<double>> forward(D, blocks, 0.05);
      forward.apply(x, a);
      EXPECT_LT((b - a).norm(), 1e-12 * a.norm());
    }
  }
}

TEST(PreconditionedCg, ConvergesToTheExactHypergradient) {
  Fixture<double> f = make_fixture(40, 8, DecayKind::PerWeight, 5);
  MethodSpec exact;
  exact.method = Method::Exact;
  const auto e = generic::hypergradient(*f.problem, exact);
  MethodSpec spec = pcg(f.problem->num_params());
  spec.cg.tolerance = 1e-13;
  const auto r = generic::hypergradient(*f.problem, spec);
  EXPECT_EQ(r.status, SolverStatus::Converged) << r.message;
  EXPECT_LT((r.v - e.v).norm(), 1e-9 * e.v.norm());
  EXPECT_LT((r.hypergradient - e.hypergradient).norm(), 1e-9 * e.hypergradient.norm());
  EXPECT_NE(r.message.find("KFAC-preconditioned"), std::string::npos) << r.message;
}

// With one training row and a global decay the Hessian is exactly Kronecker:
// H = S ⊗ x xᵀ + e^λ I = G ⊗ A + δ I with δ = e^λ (kfac's damping: the penalty's curvature), so
// K^(−1/2) H K^(−1/2) = I and one preconditioned CG step is the exact solve, while plain CG
// needs many.
TEST(PreconditionedCg, IsExactInOneStepWhenTheHessianIsKronecker) {
  Fixture<double> f = make_fixture(1, 6, DecayKind::Global, 7);
  MethodSpec exact;
  exact.method = Method::Exact;
  const auto e = generic::hypergradient(*f.problem, exact);
  const auto one = generic::hypergradient(*f.problem, pcg(1));
  EXPECT_LT((one.v - e.v).norm(), 1e-12 * e.v.norm());
  EXPECT_EQ(one.hvps, 1);
  MethodSpec plain = parse_method_spec("cg");
  plain.steps = 1;
  const auto p1 = generic::hypergradient(*f.problem, plain);
  EXPECT_GT((p1.v - e.v).norm(), 1e-3 * e.v.norm());  // plain CG is far off after one step
}

TEST(PreconditionedCg, BeatsPlainCgAtEqualHvpsOnAnIllConditionedProblem) {
  Fixture<double> f = make_fixture(60, 20, DecayKind::PerWeight, 9, -6.0);
  MethodSpec exact;
  exact.method = Method::Exact;
  const auto e = generic::hypergradient(*f.problem, exact);
  for (Index k : {3, 6}) {
    MethodSpec plain = parse_method_spec("cg");
    plain.steps = k;
    const double err_plain = (generic::hypergradient(*f.problem, plain).v - e.v).norm();
    const double err_pcg = (generic::hypergradient(*f.problem, pcg(k)).v - e.v).norm();
    EXPECT_LT(err_pcg, err_plain) << "k = " << k;
  }
}

TEST(PreconditionedCg, SweepEqualsSingleCallsBitwise) {
  Fixture<double> f = make_fixture(40, 8, DecayKind::PerWeight, 11);
  const std::vector<Index> ks{5, 0, 2, 9};
  const auto sweep = generic::hypergradient_sweep(*f.problem, pcg(9), ks);
  ASSERT_EQ(sweep.size(), ks.size());
  for (std::size_t j = 0; j < ks.size(); ++j) {
    const auto single = generic::hypergradient(*f.problem, pcg(ks[j]));
    EXPECT_TRUE(same_bits(sweep[j].v, single.v)) << "k = " << ks[j];
    EXPECT_EQ(sweep[j].hvps, single.hvps) << "k = " << ks[j];
    EXPECT_EQ(sweep[j].status, single.status) << "k = " << ks[j];
  }
}

TEST(PreconditionedCg, WarmStartRunToConvergenceEqualsCold) {
  Fixture<double> f = make_fixture(40, 20, DecayKind::PerWeight, 12);
  const Vector<double> lambda1 = f.lambda.array() + 1e-3;
  f.problem->set_point(lambda1, f.w);
  MethodSpec warm = pcg(300, true);
  warm.cg.tolerance = 1e-12;
  generic::SolverState<Vector<double>> state;
  generic::hypergradient(*f.problem, warm, nullptr, nullptr, &state);
  ASSERT_TRUE(state.has_v);
  f.problem->set_point(f.lambda, f.w);
  const auto w = generic::hypergradient(*f.problem, warm, nullptr, nullptr, &state);
  MethodSpec cold = warm;
  cold.warm_start = false;
  const auto c = generic::hypergradient(*f.problem, cold);
  EXPECT_EQ(w.status, SolverStatus::Converged);
  EXPECT_EQ(c.status, SolverStatus::Converged);
  EXPECT_LT((w.v - c.v).norm(), 1e-10 * c.v.norm());
  EXPECT_LT(w.iterations, c.iterations);
}

TEST(PreconditionedCg, AnUndefinedKfacInverseIsANumericalIssue) {
  // More features than rows makes A = XᵀX/n singular; a decay of e^-800 = 0 leaves no damping.
  Fixture<double> f = make_fixture(3, 10, DecayKind::Global, 13, -800.0);
  const auto r = generic::hypergradient(*f.problem, pcg(5));
  EXPECT_EQ(r.status, SolverStatus::NumericalIssue);
  EXPECT_NE(r.message.find("KFAC inverse not defined"), std::string::npos) << r.message;
  EXPECT_TRUE(r.v.allFinite());
  EXPECT_EQ(r.v.norm(), 0.0);
  // A sweep hands out the same failure for every k, in the caller's order.
  const auto sweep = generic::hypergradient_sweep(*f.problem, pcg(5), {5, 1, 5});
  ASSERT_EQ(sweep.size(), 3u);
  for (const auto& s : sweep) {
    EXPECT_EQ(s.status, SolverStatus::NumericalIssue);
    EXPECT_EQ(s.v.norm(), 0.0);
  }
}

TEST(PreconditionedCg, NamesAndChecks) {
  EXPECT_EQ(parse_method_spec("cg+kfac").name(), "cg+kfac");
  EXPECT_EQ(parse_method_spec("cg+kfac+warm").name(), "cg+kfac+warm");
  EXPECT_EQ(parse_method_spec("cg+warm+kfac").name(), "cg+kfac+warm");
  EXPECT_THROW(parse_method_spec("neumann+kfac"), std::invalid_argument);
  MethodSpec bad = parse_method_spec("cg+kfac");
  bad.method = Method::Neumann;
  EXPECT_THROW(bad.check(), std::invalid_argument);
}

TEST(PreconditionedCg, FloatAgreesWithDouble) {
  Fixture<float> f = make_fixture<float>(40, 8, DecayKind::PerWeight, 5);
  Fixture<double> d = make_fixture<double>(40, 8, DecayKind::PerWeight, 5);
  MethodSpec spec = pcg(30);
  spec.cg.tolerance = 1e-6;
  const auto rf = generic::hypergradient(*f.problem, spec);
  spec.cg.tolerance = 1e-13;
  const auto rd = generic::hypergradient(*d.problem, spec);
  const Vector<double> vf = rf.v.cast<double>();
  EXPECT_LT((vf - rd.v).norm(), 1e-3 * rd.v.norm());
}

}  // namespace
