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
          .reals(ift::app::Interval::open_closed(0, 1)));
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

/// Each command line must fail in both parsers with exactly its message.
void expect_errors(const OptionSet& set, const std::vector<std::pair<Argv, std::string>>& cases) {
  for (const auto& [argv, expected] : cases) {
    const auto [b, c] = errors_of(set, argv);
    EXPECT_EQ(b, expected);
    EXPECT_EQ(c, expected);
  }
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
      {Argv{"--hyper-steps", "-1"},
       "--hyper-steps: expected an integer in [0, 10000000] (got '-1')"},
      {Argv{"--steps", "x"}, "--steps: expected an integer in [0, 1000000] (got 'x')"},
      {Argv{"--train", "0"}, "--train: expected an integer in [1, 1000000000] (got '0')"},
      {Argv{"--alpha", "0"}, "--alpha: expected a number in (0, 1e+06] (got '0')"},
      {Argv{"--damping", "nan"}, "--damping: expected a number in [0, 1e+06] (got 'nan')"},
      {Argv{"--init-log-decay", "inf"},
       "--init-log-decay: expected a number in [-50, 50] (got 'inf')"},
      {Argv{"--target", "1.5"}, "--target: expected a number in (0, 1] (got '1.5')"},
      {Argv{"--inner", "bfgs"},
       "--inner: expected sgd, momentum, adam, newton, newton-cg or lbfgs (got 'bfgs')"},
      {Argv{"--methods", "cg,bogus"},
       "--methods: expected a comma-separated list of exact, cg, neumann, identity, zero, kfac, "
       "unrolled, shine or nystrom (cg and neumann also with +warm, +fresh, +fixed, cg with +kfac "
       "or +ritz, e.g. cg+warm, cg+kfac+warm, cg+ritz+warm) (got "
       "'cg,bogus')"},
      {Argv{"--tolerance-schedule", "linear"},
       "--tolerance-schedule: expected none, quadratic, cubic or geometric (got 'linear')"},
      {Argv{"--steps-list", "0,-5"},
       "--steps-list: expected a comma-separated list of integers in [0, 1000000], e.g. "
       "0,5,20,50 (got '0,-5')"},
      {Argv{"--device", "gpu"}, "--device: expected cpu, cuda or cuda:N (got 'gpu')"},
      // Through an alias the message names the new option.
      {Argv{"--n-train", "-3"}, "--train: expected an integer in [1, 1000000000] (got '-3')"},
  };
  expect_errors(set, cases);
}

// Issue 14, point 5: every numeric option has a range, refused outside it with the range named.
TEST(Options, NumericOptionsAreCheckedAgainstTheirRanges) {
  const OptionSet set = every_option();
  const std::vector<std::pair<Argv, std::string>> cases = {
      // exp(700) overflows double: the decay is bounded so exp(λ) stays finite even in float.
      {Argv{"--init-log-decay", "700"},
       "--init-log-decay: expected a number in [-50, 50] (got '700')"},
      // A tolerance of inf would make every inner solver "converge" at once (old spelling too).
      {Argv{"--grad-tol", "inf"}, "--inner-tol: expected a number in (0, 1] (got 'inf')"},
      {Argv{"--inner-tol", "0"}, "--inner-tol: expected a number in (0, 1] (got '0')"},
      // -1 is refused, not wrapped to 2⁶⁴ − 1; 2⁶⁴ itself is out of range.
      {Argv{"--seed", "-1"}, "--seed: expected an integer in [0, 18446744073709551615] (got '-1')"},
      {Argv{"--seed", "18446744073709551616"},
       "--seed: expected an integer in [0, 18446744073709551615] (got '18446744073709551616')"},
      // Sizes near 2⁶³ are refused by the range, before any size arithmetic.
      {Argv{"--train", "9223372036854775807"},
       "--train: expected an integer in [1, 1000000000] (got '9223372036854775807')"},
      {Argv{"--val", "99999999999999999999999"},
       "--val: expected an integer in [1, 1000000000] (got '99999999999999999999999')"},
      {Argv{"--threads", "5000"}, "--threads: expected an integer in [0, 4096] (got '5000')"},
      {Argv{"--outer-lr", "1e300"}, "--outer-lr: expected a number in (0, 1e+06] (got '1e300')"},
      {Argv{"--steps", " 3"}, "--steps: expected an integer in [0, 1000000] (got ' 3')"},
  };
  expect_errors(set, cases);
  // The ends of each range are inside it.
  const auto [b, c] = parse_both(set, Argv{"--seed", "18446744073709551615", "--init-log-decay",
                                           "-50", "--inner-tol", "1", "--train", "1000000000"});
  ift::BilevelParams p;
  ift::app::apply_loop_options(c, p);
  EXPECT_EQ(p.seed, ~std::uint64_t{0});
  EXPECT_EQ(b.integer_u64("seed"), ~std::uint64_t{0});
  EXPECT_NE(b.describe().find("seed = 18446744073709551615\n"), std::string::npos);
}

TEST(Options, EveryNumericOptionDocumentsItsRange) {
  const OptionSet set = every_option();
  const std::string help = set.help();
  for (const auto& spec : set.options()) {
    if (spec.kind != ift::app::ValueKind::Integer && spec.kind != ift::app::ValueKind::Real)
      continue;
    ASSERT_FALSE(spec.range.empty()) << spec.name;
    EXPECT_NE(help.find("(range " + spec.range + ")"), std::string::npos) << spec.name;
  }
  // A numeric option declared without one is a programming error, caught when an app takes it.
  OptionSet app("app", "usage");
  EXPECT_THROW(app.add(ift::app::option("", "count", ift::app::ValueKind::Integer, "N", "a count")),
               std::logic_error);
}

TEST(Options, MemoryEstimatesSaturateInsteadOfWrapping) {
  ift::app::MemoryEstimate e;
  e.add("small", {1000, 8});
  EXPECT_EQ(e.total(), 8000u);
  // 2⁶³ rows × 785 features × 8 bytes wraps modulo 2⁶⁴ to a small number; it must saturate.
  e.add("huge", {std::uint64_t{1} << 63, 785, 8});
  EXPECT_EQ(e.total(), ~std::uint64_t{0});
  ift::app::MemoryEstimate empty;
  empty.add("nothing", {0, ~std::uint64_t{0}, 8});
  EXPECT_EQ(empty.total(), 0u);

  ift::app::MemoryEstimate run;
  run.add("data splits", {3000, 785, 8});  // 18.84 MB
  EXPECT_NO_THROW(ift::app::check_memory(run, "--train", std::uint64_t{20'000'000}));
  try {
    ift::app::check_memory(run, "--train", std::uint64_t{10'000'000});
    ADD_FAILURE() << "an estimate above the limit was accepted";
  } catch (const UsageError& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find("--train: the run needs at least 18.84 MB (data splits 18.84 MB)"),
              std::string::npos) << what;
    EXPECT_NE(what.find("more than the 10 MB of memory available"), std::string::npos) << what;
  }
}

// A synthetic run of 3 × 10⁹ rows is in range option by option but needs terabytes: refused
// before anything is allocated, naming the size options, with the estimate.
TEST(Options, ARunThatCannotFitIsRefusedBeforeAllocating) {
  OptionSet set("app", "usage");
  set.use(ift::app::selection::kData).use({"methods", "steps", "out"});
  const Argv a{"--data", "synthetic", "--train", "1000000000", "--val", "1000000000",
               "--test", "1000000000", "--out", ::testing::TempDir()};
  const auto v = ift::app::parse_command_line(a.argc(), a.argv(), set);
  ASSERT_TRUE(v);
  try {
    ift::app::apply_common_options(*v);
    ADD_FAILURE() << "a run needing terabytes was accepted";
  } catch (const UsageError& error) {
    const std::string what = error.what();
    EXPECT_EQ(what.rfind("--train, --val, --test: the run needs at least ", 0), 0u) << what;
    EXPECT_NE(what.find("data splits 18.84 TB"), std::string::npos) << what;
    EXPECT_NE(what.find("dense D × D curvature and factor 986 MB"), std::string::npos) << what;
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
  expect_errors(set, cases);
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

// Warm starts, sampled curvature and HOAG schedules (docs/methods.md): suffixes and flags.
TEST(Options, WarmStartsSamplingAndSchedules) {
  const OptionSet set = every_option();
  const auto [b, c] = parse_both(
      set, Argv{"--methods", "exact,cg,neumann+fresh", "--warm-start", "--curvature-batch", "8",
                "--seed", "4", "--tolerance-schedule", "cubic", "--tolerance0", "0.5"});
  for (const OptionValues* v : {&b, &c}) {
    // --warm-start reaches every listed method that can warm start, and only those.
    EXPECT_EQ(ift::app::method_spec(*v, "exact").name(), "exact");
    EXPECT_EQ(ift::app::method_spec(*v, "cg").name(), "cg+warm");
    const ift::MethodSpec s = ift::app::method_spec(*v, "neumann+fresh");
    EXPECT_EQ(s.name(), "neumann+fresh+warm");
    EXPECT_EQ(s.curvature_batch, 8);
    EXPECT_EQ(s.sampling_seed, 4u);
    EXPECT_NO_THROW(s.check());
    ift::BilevelParams p;
    ift::app::apply_loop_options(*v, p);
    EXPECT_EQ(p.tolerance_schedule, ift::ToleranceSchedule::Cubic);
    EXPECT_DOUBLE_EQ(*p.tolerance_at(2), 0.5 / 8);
  }
  // A sampled method without its batch size names the option.
  const auto [d, e] = parse_both(set, Argv{"--methods", "cg+fixed"});
  try {
    (void)ift::app::method_spec(e, "cg+fixed");
    ADD_FAILURE() << "no error without --curvature-batch";
  } catch (const UsageError& error) {
    EXPECT_NE(std::string(error.what()).find("--curvature-batch"), std::string::npos);
  }
  // A suffix the method cannot take: refused while parsing, with the reason.
  const auto [f, g] = errors_of(set, Argv{"--methods", "cg,kfac+warm"});
  EXPECT_NE(f.find("cannot warm start"), std::string::npos) << f;
  EXPECT_EQ(f, g);
}

// The split of a sweep's independent work over ranks (app::assign_work): every item goes to one
// rank, the same assignment every time, and greedy list scheduling's bound holds: no rank's load
// exceeds the mean load plus the largest item (Graham 1966), for LPT order even 4/3 of optimal.
TEST(Options, SweepWorkIsSplitOverRanksWithinTheListSchedulingBound) {
  const std::vector<double> costs = {7850, 1, 1, 1, 4, 4, 10, 10, 31, 31, 2, 1, 3, 6, 6, 20};
  for (int ranks : {1, 2, 3, 5}) {
    const std::vector<int> owner = ift::app::assign_work(costs, ranks);
    ASSERT_EQ(owner.size(), costs.size());
    EXPECT_EQ(owner, ift::app::assign_work(costs, ranks)) << "not deterministic";
    std::vector<double> load(static_cast<std::size_t>(ranks), 0.0);
    double total = 0, largest = 0;
    for (std::size_t i = 0; i < costs.size(); ++i) {
      ASSERT_GE(owner[i], 0);
      ASSERT_LT(owner[i], ranks);
      load[static_cast<std::size_t>(owner[i])] += costs[i];
      total += costs[i];
      largest = std::max(largest, costs[i]);
    }
    for (double l : load) EXPECT_LE(l, total / ranks + largest);
  }
  // Equal costs: round-robin in item order (ties go to the lowest rank, items by index).
  EXPECT_EQ(ift::app::assign_work({1, 1, 1, 1, 1}, 2), (std::vector<int>{0, 1, 0, 1, 0}));
}

}  // namespace
