// MethodSpec: one definition of each method's parameters. The solver structs (CgParams,
// NeumannParams, KfacParams) hold them with their defaults; MethodSpec composes them, maps its
// one user-level k and compute_residual onto them, and its check() is theirs, naming the field.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "ift/method.hpp"

namespace ift {
namespace {

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(MethodSpec, StepsAndResidualAreMappedOntoEverySolver) {
  MethodSpec s;
  s.steps = 7;
  s.compute_residual = true;
  s.cg.tolerance = 0;
  s.neumann.alpha = 0.25;
  s.neumann.power_iterations = 9;
  s.neumann.power_tolerance = 1e-3;
  s.neumann.seed = 5;
  EXPECT_NO_THROW(s.check());
  const CgParams cg = s.cg_params();
  EXPECT_EQ(cg.max_iterations, 7);
  EXPECT_TRUE(cg.true_residual);
  EXPECT_EQ(cg.tolerance, 0.0);  // the solver's own fields pass through
  EXPECT_EQ(cg.reorthogonalize, s.cg.reorthogonalize);
  const NeumannParams neumann = s.neumann_params();
  EXPECT_EQ(neumann.steps, 7);
  EXPECT_TRUE(neumann.compute_residual);
  EXPECT_EQ(neumann.alpha, 0.25);
  // unrolled's automatic α comes from neumann's power iteration settings.
  const PowerIterationParams power = s.power_params();
  EXPECT_EQ(power.max_iterations, 9);
  EXPECT_EQ(power.tolerance, 1e-3);
  EXPECT_EQ(power.seed, 5u);
}

TEST(MethodSpec, CheckDelegatesToTheSolverStructsNamingTheField) {
  const auto fails = [](const std::function<void(MethodSpec&)>& edit) {
    MethodSpec s;
    edit(s);
    return message_of([&] { s.check(); });
  };
  std::string m = fails([](MethodSpec& s) { s.cg.tolerance = -1; });
  EXPECT_TRUE(contains(m, "MethodSpec::cg") && contains(m, "tolerance")) << m;
  m = fails([](MethodSpec& s) { s.neumann.safety = 2; });
  EXPECT_TRUE(contains(m, "MethodSpec::neumann") && contains(m, "safety")) << m;
  m = fails([](MethodSpec& s) { s.neumann.alpha = -1; });
  EXPECT_TRUE(contains(m, "MethodSpec::neumann") && contains(m, "alpha")) << m;
  m = fails([](MethodSpec& s) { s.neumann.power_iterations = 0; });
  EXPECT_TRUE(contains(m, "MethodSpec::neumann") && contains(m, "power_iterations")) << m;
  m = fails([](MethodSpec& s) { s.kfac.damping_mode = static_cast<KfacDampingMode>(7); });
  EXPECT_TRUE(contains(m, "MethodSpec::kfac") && contains(m, "damping_mode")) << m;
  m = fails([](MethodSpec& s) { s.steps = -1; });
  EXPECT_TRUE(contains(m, "MethodSpec::steps")) << m;
  m = fails([](MethodSpec& s) { s.damping = -1; });
  EXPECT_TRUE(contains(m, "MethodSpec::damping")) << m;
  // The mapped fields are the method-level ones: setting them in a struct as well is refused.
  m = fails([](MethodSpec& s) { s.cg.max_iterations = s.steps + 1; });
  EXPECT_TRUE(contains(m, "cg.max_iterations") && contains(m, "steps")) << m;
  m = fails([](MethodSpec& s) { s.neumann.compute_residual = true; });
  EXPECT_TRUE(contains(m, "neumann.compute_residual") && contains(m, "compute_residual")) << m;
  // A struct already holding the mapped values is consistent.
  MethodSpec s;
  s.steps = 4;
  s.cg = s.cg_params();
  s.neumann = s.neumann_params();
  EXPECT_NO_THROW(s.check());
}

}  // namespace
}  // namespace ift
