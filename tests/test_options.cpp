// The apps' one option table (apps/options.hpp): the Boost.Program_options parser generated from
// it (the Eigen apps) and the built-in parser (the LibTorch apps) must read the same command line
// to the same values, map the old spellings, apply defaults, and reject bad input with the same
// message naming the option.
#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "app_common.hpp"
#include "options.hpp"

namespace {

using ift::app::OptionSet;
using ift::app::OptionValues;
using ift::app::UsageError;

/// An app using every option of the table, plus one of its own.
OptionSet every_option() {
  OptionSet set("test-app", "usage: test-app [options]");
  std::vector<std::string> names;
  for (const auto& spec : ift::app::option_table()) names.push_back(spec.name);
  set.use(names).add(
      ift::app::option("", "target", ift::app::ValueKind::Real, "ACC", "stop at this accuracy")
          .by_default("1")
          .check(ift::app::valid::fraction()));
  return set;
}

/// argv for the parsers: "prog" then the arguments.
struct Argv {
  explicit Argv(std::initializer_list<std::string> args) : strings{"prog"} {
    strings.insert(strings.end(), args.begin(), args.end());
  }
  int argc() const { return static_cast<int>(strings.size()); }
  const char* const* argv() const {  // rebuilt per call: an Argv may have been copied
    pointers.clear();
    for (const auto& s : strings) pointers.push_back(s.c_str());
    return pointers.data();
  }
  std::vector<std::string> strings;
  mutable std::vector<const char*> pointers;
};

std::optional<OptionValues> boost_parse(const OptionSet& set, const Argv& a) {
  return ift::app::parse_command_line(a.argc(), a.argv(), set);
}
std::optional<OptionValues> builtin_parse(const OptionSet& set, const Argv& a) {
  return ift::app::parse_builtin(a.argc(), a.argv(), set);
}

/// Both parsers' values for a command line that must parse.
std::pair<OptionValues, OptionValues> parse_both(const OptionSet& set, const Argv& a) {
  auto b = boost_parse(set, a);
  auto c = builtin_parse(set, a);
  EXPECT_TRUE(b && c);
  return {*b, *c};
}

/// The message each parser gives for a command line that must fail; both must be UsageError.
std::pair<std::string, std::string> errors_of(const OptionSet& set, const Argv& a) {
  std::string boost_message = "(no error)", builtin_message = "(no error)";
  try {
    boost_parse(set, a);
  } catch (const UsageError& e) {
    boost_message = e.what();
  }
  try {
    builtin_parse(set, a);
  } catch (const UsageError& e) {
    builtin_message = e.what();
  }
  return {boost_message, builtin_message};
}

TEST(Options, BothParsersReadTheSameCommandLineToTheSameValues) {
  const OptionSet set = every_option();
  const Argv a{"--data",  "synthetic", "--train",    "300",      "--val=200", "--init-log-decay",
               "-4",      "--methods", "cg,neumann", "--alpha",  "0.5",       "--warm-start",
               "--inner", "newton-cg", "--inner-lr", "1e-3",     "--out",     "results/x",
               "--quiet", "--seed",    "7",          "--device", "cuda:1",    "--target",
               "0.75"};
  const auto [b, c] = parse_both(set, a);
  EXPECT_EQ(b.texts(), c.texts());
  EXPECT_EQ(b.describe(), c.describe());
  EXPECT_EQ(c.text("data"), "synthetic");
  EXPECT_EQ(c.integer("train"), 300);
  EXPECT_EQ(c.integer("val"), 200);
  EXPECT_DOUBLE_EQ(c.real("init-log-decay"), -4.0);  // a negative value after its option
  EXPECT_EQ(c.list("methods"), (std::vector<std::string>{"cg", "neumann"}));
  EXPECT_TRUE(c.flag("warm-start"));
  EXPECT_TRUE(c.flag("quiet"));
  EXPECT_FALSE(c.flag("resume"));
  EXPECT_EQ(c.text("device"), "cuda:1");
  EXPECT_DOUBLE_EQ(c.real("target"), 0.75);
  EXPECT_TRUE(c.given("train"));
  EXPECT_FALSE(c.given("test"));
}

TEST(Options, DefaultsAreAppliedAndOptionalOptionsStayAbsent) {
  OptionSet set = every_option();
  set.set_defaults({{"train", "3500"}, {"out", "results/compare"}});
  const auto [b, c] = parse_both(set, Argv{});
  EXPECT_EQ(b.texts(), c.texts());
  EXPECT_EQ(c.integer("train"), 3500);  // the app's default
  EXPECT_EQ(c.integer("val"), 1000);    // the table's
  EXPECT_EQ(c.text("out"), "results/compare");
  EXPECT_DOUBLE_EQ(c.real("init-log-decay"), std::log(1e-3));
  EXPECT_EQ(c.text("inner"), "adam");
  EXPECT_FALSE(c.has("alpha"));  // absent: 1/λ_max
  EXPECT_FALSE(c.has("data-dir"));
  EXPECT_FALSE(c.flag("resume"));
  EXPECT_FALSE(c.given("train"));
  EXPECT_EQ(b.describe().find("alpha"), std::string::npos);
  EXPECT_NE(b.describe().find("train = 3500\n"), std::string::npos);
}

TEST(Options, OldSpellingsMapToTheNewNames) {
  const OptionSet set = every_option();
  const Argv old{"--n-train",
                 "50",
                 "--n-val",
                 "60",
                 "--n-test",
                 "70",
                 "--batch",
                 "10",
                 "--inner-optimizer",
                 "sgd",
                 "--log-decay",
                 "-3",
                 "--synthetic",
                 "--sweep-steps",
                 "0,5",
                 "--grad-tol",
                 "1e-8"};
  const Argv renamed{
      "--train",      "50",        "--val",        "60",  "--test",           "70",
      "--batch-size", "10",        "--inner",      "sgd", "--init-log-decay", "-3",
      "--data",       "synthetic", "--steps-list", "0,5", "--inner-tol",      "1e-8"};
  const auto [b_old, c_old] = parse_both(set, old);
  const auto [b_new, c_new] = parse_both(set, renamed);
  EXPECT_EQ(b_old.texts(), b_new.texts());
  EXPECT_EQ(c_old.texts(), c_new.texts());
  EXPECT_EQ(b_old.texts(), c_old.texts());
  EXPECT_EQ(c_old.index_list("steps-list"), (std::vector<ift::Index>{0, 5}));
  // The second old spelling of --init-log-decay.
  const auto [b, c] = parse_both(set, Argv{"--init-log-lambda", "-2"});
  EXPECT_DOUBLE_EQ(b.real("init-log-decay"), -2.0);
  EXPECT_DOUBLE_EQ(c.real("init-log-decay"), -2.0);
}

TEST(Options, ABadValueNamesTheOptionAndWhatWasExpected) {
  const OptionSet set = every_option();
  const std::vector<std::pair<Argv, std::string>> cases = {
      {Argv{"--hyper-steps", "-1"}, "--hyper-steps: expected an integer >= 0 (got '-1')"},
      {Argv{"--steps", "x"}, "--steps: expected an integer >= 0 (got 'x')"},
      {Argv{"--train", "0"}, "--train: expected an integer >= 1 (got '0')"},
      {Argv{"--alpha", "0"}, "--alpha: expected a number > 0 (got '0')"},
      {Argv{"--damping", "nan"}, "--damping: expected a number >= 0 (got 'nan')"},
      {Argv{"--init-log-decay", "inf"}, "--init-log-decay: expected a finite number (got 'inf')"},
      {Argv{"--target", "1.5"}, "--target: expected a number in (0, 1] (got '1.5')"},
      {Argv{"--inner", "bfgs"},
       "--inner: expected sgd, momentum, adam, newton, newton-cg or lbfgs (got 'bfgs')"},
      {Argv{"--methods", "cg,bogus"},
       "--methods: expected a comma-separated list of exact, cg, neumann, identity, zero, kfac, "
       "unrolled or nystrom (got 'cg,bogus')"},
      {Argv{"--steps-list", "0,-5"},
       "--steps-list: expected a comma-separated list of integers >= 0, e.g. 0,5,20,50 (got "
       "'0,-5')"},
      {Argv{"--device", "gpu"}, "--device: expected cpu, cuda or cuda:N (got 'gpu')"},
      // Through an alias the message names the new option.
      {Argv{"--n-train", "-3"}, "--train: expected an integer >= 1 (got '-3')"},
  };
  for (const auto& [argv, expected] : cases) {
    const auto [b, c] = errors_of(set, argv);
    EXPECT_EQ(b, expected);
    EXPECT_EQ(c, expected);
  }
}

TEST(Options, UnknownRepeatedAndMalformedInputIsAnError) {
  const OptionSet set = every_option();
  const std::vector<std::pair<Argv, std::string>> cases = {
      {Argv{"--bogus", "3"}, "unrecognised option '--bogus'"},
      {Argv{"--bogus=3"}, "unrecognised option '--bogus'"},
      {Argv{"--hyper", "3"}, "unrecognised option '--hyper'"},  // no abbreviations
      {Argv{"stray"}, "unexpected argument 'stray'"},
      {Argv{"--steps"}, "--steps: expected a value"},
      {Argv{"--resume=yes"}, "--resume: takes no value"},
      {Argv{"--steps", "3", "--steps", "4"}, "--steps: given more than once"},
      {Argv{"--n-train", "3", "--train", "4"},
       "--train: given more than once (as --n-train and --train)"},
  };
  for (const auto& [argv, expected] : cases) {
    const auto [b, c] = errors_of(set, argv);
    EXPECT_EQ(b, expected);
    EXPECT_EQ(c, expected);
  }
  // An option this app does not take is unknown even if the table has it.
  OptionSet small("small", "usage");
  small.use({"train"});
  const auto [b, c] = errors_of(small, Argv{"--steps", "3"});
  EXPECT_EQ(b, "unrecognised option '--steps'");
  EXPECT_EQ(c, "unrecognised option '--steps'");
}

TEST(Options, AppChoicesReplaceTheTables) {
  OptionSet set = every_option();
  set.set_choices("inner", {"sgd", "momentum", "adam"});
  const auto [b, c] = errors_of(set, Argv{"--inner", "newton"});
  EXPECT_EQ(b, "--inner: expected sgd, momentum or adam (got 'newton')");
  EXPECT_EQ(c, b);
}

TEST(Options, HelpListsTheGroupsAndStops) {
  const OptionSet set = every_option();
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  const auto b = boost_parse(set, Argv{"--help"});
  const std::string boost_help = captured.str();
  captured.str("");
  const auto c = builtin_parse(set, Argv{"-h"});
  std::cout.rdbuf(old);
  EXPECT_FALSE(b);
  EXPECT_FALSE(c);
  EXPECT_EQ(boost_help, captured.str());
  for (const char* group : {"Data:", "Model:", "Hyperparameters:", "Hypergradient method:",
                            "Bilevel loop (Algorithm 2) and inner solver:", "Output:",
                            "Threads, seed and device:", "test-app options:"})
    EXPECT_NE(boost_help.find(group), std::string::npos) << group;
  EXPECT_NE(boost_help.find("--train N"), std::string::npos);
  EXPECT_EQ(boost_help.find("--n-train"), std::string::npos);  // aliases are not advertised
}

TEST(Options, ValuesFillTheLibraryParameters) {
  const OptionSet set = every_option();
  const auto [b, c] = parse_both(set, Argv{"--steps",
                                           "7",
                                           "--alpha",
                                           "0.25",
                                           "--damping",
                                           "0.5",
                                           "--curvature",
                                           "gauss-newton",
                                           "--hyper-steps",
                                           "3",
                                           "--inner-steps",
                                           "4",
                                           "--batch-size",
                                           "16",
                                           "--inner",
                                           "momentum",
                                           "--inner-lr",
                                           "0.2",
                                           "--outer-optimizer",
                                           "sgd",
                                           "--outer-lr",
                                           "0.3",
                                           "--on-failure",
                                           "stop",
                                           "--checkpoint-every",
                                           "2",
                                           "--seed",
                                           "9"});
  const ift::MethodSpec spec = ift::app::method_spec(c, "cg");
  EXPECT_EQ(spec.method, ift::Method::Cg);
  EXPECT_EQ(spec.curvature, ift::Curvature::GaussNewton);
  EXPECT_EQ(spec.steps, 7);
  EXPECT_DOUBLE_EQ(spec.neumann.alpha, 0.25);
  EXPECT_DOUBLE_EQ(spec.damping, 0.5);
  ift::BilevelParams p;
  ift::app::apply_loop_options(b, p);
  EXPECT_EQ(p.hyper_steps, 3);
  EXPECT_EQ(p.inner_steps, 4);
  EXPECT_EQ(p.batch_size, 16);
  EXPECT_EQ(p.inner_solver, ift::InnerSolver::Optimizer);
  EXPECT_EQ(p.inner.kind, ift::OptimizerKind::Momentum);
  EXPECT_DOUBLE_EQ(p.inner.learning_rate, 0.2);
  EXPECT_EQ(p.outer.kind, ift::OptimizerKind::Sgd);
  EXPECT_DOUBLE_EQ(p.outer.learning_rate, 0.3);
  EXPECT_EQ(p.on_failure, ift::OnFailure::Stop);
  EXPECT_EQ(p.checkpoint_every, 2);
  EXPECT_EQ(p.seed, 9u);
  // Without --alpha, α stays 0: chosen from λ_max.
  const auto [d, e] = parse_both(set, Argv{});
  EXPECT_DOUBLE_EQ(ift::app::method_spec(e, "neumann").neumann.alpha, 0.0);
}

}  // namespace
