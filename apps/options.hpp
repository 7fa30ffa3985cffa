// The apps' one option table (DESIGN.md §4: an option group is written once). Every option any
// app takes is declared here or, if only one app has it, in that app with the same OptionSpec:
// its name, the old spellings it still accepts (aliases, kept for one release), help text,
// default and one validator. The same table drives both parsers: the Eigen apps hand it to
// Boost.Program_options (app_common.hpp, parse_command_line), the LibTorch apps, which must
// build with Torch alone, to the small parser below (parse_builtin). Either way the result is
// the same OptionValues, bad values get the same message, "--<option>: expected <what> (got
// '<value>')", and --help lists the same groups.
//
// Header-only and free of Boost; it needs only the library's Boost-free headers.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>
#include <functional>
#include <iostream>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ift/bilevel_params.hpp"
#include "ift/format.hpp"
#include "ift/method.hpp"
#include "ift/optimizers.hpp"

namespace ift::app {

/// Bad command-line input: reported as "<app>: error: <message>" with exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Throws UsageError("--<option>: <what>") unless ok (checks that involve several options).
inline void require_option(bool ok, const std::string& option, const std::string& what) {
  if (!ok) throw UsageError("--" + option + ": " + what);
}

/// Checks before any work that `dir` (the --out folder) can be written: it is a writable folder,
/// or it does not exist yet and its nearest existing ancestor is a writable folder (the app
/// creates it when it writes, so a rejected command line leaves nothing behind). Throws
/// UsageError naming `option` and why, so a bad output place fails at once instead of after
/// minutes of computing.
inline void prepare_output_dir(const std::string& dir, const std::string& option = "out") {
  namespace fs = std::filesystem;
  require_option(!dir.empty(), option, "expected a folder (got '')");
  std::error_code error;
  fs::path existing = fs::absolute(fs::path(dir), error);
  while (!existing.empty() && !fs::exists(existing, error) && existing.has_parent_path() &&
         existing.parent_path() != existing)
    existing = existing.parent_path();
  require_option(fs::is_directory(existing, error), option,
                 "'" + existing.string() + "' " +
                     (existing.string() == fs::absolute(fs::path(dir), error).string()
                          ? "exists and is not a folder"
                          : "is not a folder, so '" + dir + "' cannot be created"));
  require_option(::access(existing.c_str(), W_OK) == 0, option,
                 "the folder '" + existing.string() + "' is not writable");
}

/// parse() with its std::invalid_argument re-thrown as UsageError("--<option>: …").
template <class Parse>
auto parse_option(const std::string& option, Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const std::invalid_argument& e) {
    throw UsageError("--" + option + ": " + e.what());
  }
}

// ---- Values and validators -----------------------------------------------------------------

enum class ValueKind { Flag, Integer, Real, Text };

/// The whole text as an integer / a number, or nothing.
inline std::optional<long long> to_integer(const std::string& text) {
  if (text.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
  return x;
}
/// The whole text as an unsigned integer (digits only: "-1" is refused, not wrapped), or nothing.
inline std::optional<unsigned long long> to_unsigned(const std::string& text) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const unsigned long long x = std::strtoull(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size()) return std::nullopt;
  return x;
}
inline std::optional<double> to_real(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double x = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return x;
}

inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream s(text);
  std::string item;
  while (std::getline(s, item, ',')) out.push_back(item);
  return out;
}

/// "a, b or c".
inline std::string or_list(const std::vector<std::string>& items) {
  std::string s;
  for (std::size_t i = 0; i < items.size(); ++i)
    s += (i == 0 ? "" : i + 1 == items.size() ? " or " : ", ") + items[i];
  return s;
}

/// Returns "" when the text is acceptable, else what was expected ("an integer in [0, 20]").
using Validator = std::function<std::string(const std::string&)>;

/// The range of a real-valued option: finite bounds, each open or closed. NaN and ±inf lie
/// outside every range (a tolerance of inf would "converge" at once).
struct Interval {
  double low = 0, high = 0;
  bool low_open = false, high_open = false;

  static Interval closed(double low, double high) { return {low, high, false, false}; }
  static Interval open_closed(double low, double high) { return {low, high, true, false}; }
  static Interval open(double low, double high) { return {low, high, true, true}; }

  bool contains(double x) const {
    return std::isfinite(x) && (low_open ? x > low : x >= low) && (high_open ? x < high : x <= high);
  }
  /// "(0, 1e+06]".
  std::string text() const {
    return std::string(low_open ? "(" : "[") + format_number(low) + ", " + format_number(high) +
           (high_open ? ")" : "]");
  }
};

/// "[low, high]" for integers.
inline std::string integer_range(unsigned long long low, unsigned long long high) {
  return "[" + std::to_string(low) + ", " + std::to_string(high) + "]";
}

namespace valid {

/// An integer in [low, high] (digits only, so no sign: every integer option is >= 0).
inline Validator integer_in(unsigned long long low, unsigned long long high) {
  return [low, high](const std::string& t) -> std::string {
    const auto x = to_unsigned(t);
    return x && *x >= low && *x <= high ? "" : "an integer in " + integer_range(low, high);
  };
}
/// A number in `range` (finite).
inline Validator real_in(Interval range) {
  return [range](const std::string& t) -> std::string {
    const auto x = to_real(t);
    return x && range.contains(*x) ? "" : "a number in " + range.text();
  };
}

inline Validator non_empty() {
  return [](const std::string& t) -> std::string { return t.empty() ? "a non-empty value" : ""; };
}
/// A comma-separated list of integers in [low, high] ("0,5,20,50").
inline Validator index_list(unsigned long long low, unsigned long long high) {
  return [low, high](const std::string& t) -> std::string {
    const auto items = split_list(t);
    const bool ok = !items.empty() && std::all_of(items.begin(), items.end(), [&](const auto& s) {
      const auto x = to_unsigned(s);
      return x && *x >= low && *x <= high;
    });
    return ok ? "" : "a comma-separated list of integers in " + integer_range(low, high) +
                         ", e.g. 0,5,20,50";
  };
}
/// Method names as in --methods: a base name of `bases`, for cg and neumann with the suffixes
/// +warm, +fresh, +fixed, for cg also +kfac or +ritz (ift::parse_method_spec); (list) a comma-separated
/// list of distinct ones.
inline Validator method_names(std::vector<std::string> bases, bool list) {
  return [bases = std::move(bases), list](const std::string& t) -> std::string {
    const std::string expected = std::string(list ? "a comma-separated list of " : "") +
                                 or_list(bases) + " (cg and neumann also with +warm, +fresh, " +
                                 "+fixed, cg with +kfac or +ritz, e.g. cg+warm, cg+kfac+warm, " +
                                 "cg+ritz+warm)";
    std::vector<std::string> items;
    for (auto& s : split_list(t))
      if (!s.empty()) items.push_back(s);
    if (items.empty() || (!list && items.size() != 1)) return expected;
    for (const auto& item : items) {
      const std::string base = item.substr(0, item.find('+'));
      if (std::find(bases.begin(), bases.end(), base) == bases.end()) return expected;
      try {
        (void)parse_method_spec(item);
      } catch (const std::invalid_argument& e) {
        return expected + "; " + e.what();
      }
    }
    const std::set<std::string> distinct(items.begin(), items.end());
    return distinct.size() == items.size() ? "" : "a list without repeated items";
  };
}
/// One of `choices`, or (list) a comma-separated non-empty list of distinct ones (a repeated
/// item would run the same experiment twice under one name).
inline Validator choice(std::vector<std::string> choices, bool list) {
  return [choices = std::move(choices), list](const std::string& t) -> std::string {
    auto known = [&](const std::string& s) {
      return std::find(choices.begin(), choices.end(), s) != choices.end();
    };
    if (list) {
      std::vector<std::string> items;
      for (auto& s : split_list(t))
        if (!s.empty()) items.push_back(s);
      if (!items.empty() && std::all_of(items.begin(), items.end(), known)) {
        const std::set<std::string> distinct(items.begin(), items.end());
        return distinct.size() == items.size() ? "" : "a list without repeated items";
      }
      return "a comma-separated list of " + or_list(choices);
    }
    return known(t) ? "" : or_list(choices);
  };
}

}  // namespace valid

// ---- The table -----------------------------------------------------------------------------

/// An old spelling of an option. `implied` non-empty: a flag standing for --<option> <implied>
/// (--synthetic for --data synthetic).
struct Alias {
  std::string name;
  std::string implied;
};

struct OptionSpec {
  std::string group;  ///< a title in --help
  std::string name;   ///< without the leading "--"
  ValueKind kind = ValueKind::Text;
  std::string value_name;  ///< N, X, NAME, … in --help
  std::string help;
  std::optional<std::string> default_value;  ///< nothing: absent unless given
  /// The validator: from `choices` where there are any, else `validate` (empty: anything).
  std::vector<std::string> choices;
  bool list = false;  ///< choices: a comma-separated list of them
  Validator validate;
  std::vector<Alias> aliases;
  /// A numeric option's range ("[0, 1000000]", "(0, 1]"): shown in --help and checked by
  /// `validate`, both set by integers() / reals() / integer_list(), so the range is written once.
  /// Every Integer and Real option must have one (OptionSet refuses it otherwise).
  std::string range;

  // Builders, so a table entry reads as what it says.
  OptionSpec& by_default(std::optional<std::string> value) {
    default_value = std::move(value);
    return *this;
  }
  OptionSpec& one_of(std::vector<std::string> values) {
    choices = std::move(values);
    return *this;
  }
  OptionSpec& list_of(std::vector<std::string> values) {
    list = true;
    return one_of(std::move(values));
  }
  OptionSpec& check(Validator v) {
    validate = std::move(v);
    return *this;
  }
  /// An integer option's range [low, high].
  OptionSpec& integers(unsigned long long low, unsigned long long high) {
    range = integer_range(low, high);
    return check(valid::integer_in(low, high));
  }
  /// A real option's range (finite bounds).
  OptionSpec& reals(Interval interval) {
    range = interval.text();
    return check(valid::real_in(interval));
  }
  /// A list of integers, each in [low, high].
  OptionSpec& integer_list(unsigned long long low, unsigned long long high) {
    range = "each in " + integer_range(low, high);
    return check(valid::index_list(low, high));
  }
  /// An old spelling; `implied` makes it a flag standing for --<name> <implied>.
  OptionSpec& alias(std::string old_name, std::string implied = "") {
    aliases.push_back({std::move(old_name), std::move(implied)});
    return *this;
  }

  /// "" when text is acceptable, else what was expected.
  std::string expected(const std::string& text) const {
    if (!choices.empty()) return valid::choice(choices, list)(text);
    if (kind == ValueKind::Flag) return text == "true" || text == "false" ? "" : "true or false";
    return validate ? validate(text) : "";
  }
};

/// An option taking a value; group "" in an app's own options means "<app> options".
inline OptionSpec option(std::string group, std::string name, ValueKind kind,
                         std::string value_name, std::string help) {
  OptionSpec spec;
  spec.group = std::move(group);
  spec.name = std::move(name);
  spec.kind = kind;
  spec.value_name = std::move(value_name);
  spec.help = std::move(help);
  return spec;
}
/// A switch: false unless given.
inline OptionSpec flag(std::string group, std::string name, std::string help) {
  return option(std::move(group), std::move(name), ValueKind::Flag, "", std::move(help))
      .by_default("false");
}

namespace groups {
inline const char* const kData = "Data";
inline const char* const kModel = "Model";
inline const char* const kHyper = "Hyperparameters";
inline const char* const kMethod = "Hypergradient method";
inline const char* const kLoop = "Bilevel loop (Algorithm 2) and inner solver";
inline const char* const kOutput = "Output";
inline const char* const kRun = "Threads, seed and device";
}  // namespace groups

/// The bounds of the numeric options' ranges (OptionSpec::integers / reals; --help shows them).
namespace limits {
/// Rows of a split, hidden units, batch size: 10⁹ rows of 785 doubles are 6 TB, beyond any
/// machine, and a bound keeps every size product far from overflow. What fits is decided by the
/// memory estimate before any allocation (app_common.hpp, check_memory).
inline constexpr unsigned long long kRows = 1'000'000'000;
/// Loop counts: hyper-steps, inner and warm-up steps, checkpoint interval.
inline constexpr unsigned long long kSteps = 10'000'000;
/// A method's k (CG iterations, Neumann terms, unrolled steps) and power iterations.
inline constexpr unsigned long long kMethodSteps = 1'000'000;
/// |λ| <= 50: exp(λ) lies in [1.9e-22, 5.2e21], finite in float (max 3.4e38) as in double, with
/// about 16 orders of magnitude to spare for the penalty ½ exp(λ_i) w_i² and its derivatives
/// (--init-log-decay 700 overflowed exp in double and failed every step).
inline constexpr double kLogDecay = 50;
/// Learning rates, step sizes and damping: positive (or >= 0) and at most this.
inline constexpr double kRate = 1e6;
inline constexpr unsigned long long kThreads = 4096;
/// Every seed std::mt19937_64 takes: [0, 2⁶⁴ − 1].
inline constexpr unsigned long long kSeed = ~0ULL;
}  // namespace limits

/// Every option shared by two or more apps, in --help order. The defaults are the usual ones;
/// an app states its own where they differ (OptionSet::set_default).
inline const std::vector<OptionSpec>& option_table() {
  using K = ValueKind;
  namespace g = groups;
  const std::vector<std::string> methods = {"exact", "cg",   "neumann",  "identity",
                                            "zero",  "kfac", "unrolled", "shine",
                                            "nystrom"};
  namespace L = limits;
  static const std::vector<OptionSpec> table = {
      // Data (DESIGN.md P1's splits: train, then validation rows of the train file; test rows
      // of the t10k file).
      option(g::kData, "data", K::Text, "NAME",
             "the Debian package's Fashion-MNIST IDX files, or seeded synthetic data (784 "
             "features, 10 classes) for offline runs")
          .by_default("fashion-mnist")
          .one_of({"fashion-mnist", "synthetic"})
          .alias("synthetic", "synthetic"),
      option(g::kData, "data-dir", K::Text, "DIR",
             "Fashion-MNIST IDX folder (default $IFT_FASHION_MNIST_DIR or "
             "/usr/share/datasets/fashion-mnist)")
          .check(valid::non_empty()),
      option(g::kData, "train", K::Integer, "N", "training rows: [0, N) of the train file")
          .by_default("1000")
          .integers(1, L::kRows)
          .alias("n-train"),
      option(g::kData, "val", K::Integer, "N", "validation rows: the next N rows of the train file")
          .by_default("1000")
          .integers(1, L::kRows)
          .alias("n-val"),
      option(g::kData, "test", K::Integer, "N", "test rows: [0, N) of the t10k file")
          .by_default("1000")
          .integers(0, L::kRows)
          .alias("n-test"),
      // Model
      option(g::kModel, "model", K::Text, "NAME",
             "logreg: softmax regression (785 features with the bias); mlp: 784-hidden-10 "
             "(ift-deep: 784-128-10 tanh); cnn: a small CNN (ift-deep)")
          .by_default("logreg")
          .one_of({"logreg", "mlp"}),
      option(g::kModel, "hidden", K::Integer, "H", "MLP hidden units")
          .by_default("50")
          .integers(1, L::kRows),
      option(g::kModel, "activation", K::Text, "NAME", "MLP activation")
          .by_default("tanh")
          .one_of({"tanh", "sigmoid", "softplus", "relu"}),
      // Hyperparameters
      option(g::kHyper, "init-log-decay", K::Real, "L",
             "initial log weight decay λ_i of every weight (L_T gets ½ Σ exp(λ_i) w_i²; "
             "-6.907755278982137 = log 1e-3)")
          .by_default("-6.907755278982137")
          .reals(Interval::closed(-L::kLogDecay, L::kLogDecay))
          .alias("log-decay")
          .alias("init-log-lambda"),
      // Hypergradient method (DESIGN.md §1)
      option(g::kMethod, "method", K::Text, "NAME",
             "inverse approximation of H⁻¹ (DESIGN.md §1): exact, cg, neumann, identity, zero, "
             "kfac, unrolled or shine; cg and neumann take the suffixes +warm (start from the previous "
             "hyper-step's v), +fresh / +fixed (minibatch curvature, docs/methods.md); cg also "
             "+kfac or +ritz (preconditioners)")
          .by_default("exact")
          .check(valid::method_names(methods, false)),
      option(g::kMethod, "methods", K::Text, "LIST",
             "comma-separated inverse approximations, as --method (e.g. cg,cg+warm,neumann+warm)")
          .by_default("exact,kfac,cg,neumann,identity,zero")
          .list_of({})  // a list (an app's set_choices keeps it one); names checked below
          .check(valid::method_names(methods, true)),
      option(g::kMethod, "curvature", K::Text, "NAME",
             "what stands in for H (outer-product and fisher: neumann only)")
          .by_default("hessian")
          .one_of({"hessian", "gauss-newton", "outer-product", "fisher"}),
      option(g::kMethod, "steps", K::Integer, "K",
             "k: CG iterations, Neumann terms, unrolled steps, shine's CG steps, Nyström rank")
          .by_default("20")
          .integers(0, L::kMethodSteps),
      option(g::kMethod, "steps-list", K::Text, "LIST",
             "comma-separated k of a sweep, e.g. 0,1,2,5,10,20,50")
          .integer_list(0, L::kMethodSteps)
          .alias("sweep-steps"),
      option(g::kMethod, "alpha", K::Real, "A",
             "Neumann / unrolled step size (omit it: 1/λ_max by power iteration)")
          .reals(Interval::open_closed(0, L::kRate)),
      option(g::kMethod, "damping", K::Real, "D",
             "δ added to the curvature by exact, cg and neumann; KFAC's explicit damping")
          .by_default("0")
          .reals(Interval::closed(0, L::kRate)),
      option(g::kMethod, "power-iterations", K::Integer, "P",
             "power iterations for the automatic α")
          .by_default("200")
          .integers(1, L::kMethodSteps),
      flag(g::kMethod, "warm-start",
           "cg, neumann: start from the previous hyper-step's v instead of 0 (as the +warm "
           "suffix, for every listed method that can; neumann + --steps 1: SOBA)"),
      option(g::kMethod, "curvature-sampling", K::Text, "NAME",
             "cg, neumann: Hessian-vector products on minibatches of --curvature-batch training "
             "rows, a fresh one per product or one fixed per solve (as the +fresh / +fixed "
             "suffix, for every listed method that can); full: every row")
          .by_default("full")
          .one_of({"full", "fresh", "fixed"}),
      option(g::kMethod, "curvature-batch", K::Integer, "B",
             "rows per curvature minibatch (sampled curvature; seeded by --seed)")
          .integers(1, L::kRows),
      option(g::kMethod, "nystrom-sampling", K::Text, "NAME",
             "nystrom's columns: uniform, diagonal (∝ |H_ii|, Hutchinson estimate: 10 HVPs) or "
             "leverage (ridge leverage of a 20-column sketch: 20 HVPs); seeded by --seed")
          .by_default("uniform")
          .one_of({"uniform", "diagonal", "leverage"}),
      option(g::kMethod, "kfac-penalty", K::Text, "NAME",
             "kfac, cg+kfac: the penalty's curvature (a decay per weight) as its mean, added to "
             "the damping, or its diagonal in each layer's Kronecker eigenbasis (eigenbasis)")
          .by_default("mean")
          .one_of({"mean", "eigenbasis"}),
      option(g::kMethod, "kfac-eigenvalues", K::Text, "NAME",
             "kfac, cg+kfac: each layer's eigenvalues in its Kronecker eigenbasis, those of "
             "G ⊗ A (kronecker) or the data curvature's exact diagonal there (corrected: EKFAC; "
             "the Eigen models, not the LibTorch adapter)")
          .by_default("kronecker")
          .one_of({"kronecker", "corrected"}),
      option(g::kMethod, "ritz-memory", K::Integer, "M",
             "cg+ritz: most Ritz pairs recycled across hyper-steps (the preconditioner's rank m)")
          .by_default("20")
          .integers(1, 1000),
      option(g::kMethod, "ritz-accept", K::Real, "T",
             "cg+ritz: a solve's Ritz pair (θ, u) is recycled when ‖H u − θ u‖ <= T·θ")
          .by_default("0.1")
          .reals(Interval::open_closed(0, 1)),
      option(g::kMethod, "rho", K::Real, "R",
             "nystrom's ρ in (ρI + P + C M⁺ Cᵀ)⁻¹, P the penalty's exact curvature, when "
             "--damping is 0 (a positive --damping is ρ)")
          .by_default("0")
          .reals(Interval::closed(0, L::kRate)),
      option(g::kMethod, "exact-precision", K::Text, "NAME",
             "exact's factorisation: double, mixed (float Cholesky refined to double accuracy "
             "in double, falling back to double when that fails; docs/methods.md) or auto "
             "(mixed from D = 1000 on in double)")
          .by_default("auto")
          .one_of({"auto", "double", "mixed"}),
      // Bilevel loop and inner solver
      option(g::kLoop, "hyper-steps", K::Integer, "T", "outer iterations (hyper-steps)")
          .by_default("10")
          .integers(0, L::kSteps),
      option(g::kLoop, "inner-steps", K::Integer, "N",
             "inner optimiser steps per hyper-step (w is warm-started); inner solvers: most "
             "iterations")
          .by_default("10")
          .integers(0, L::kSteps),
      option(g::kLoop, "warmup-steps", K::Integer, "N", "inner steps before the first hyper-step")
          .by_default("0")
          .integers(0, L::kSteps),
      option(g::kLoop, "batch-size", K::Integer, "B", "rows per inner minibatch (0: full batch)")
          .by_default("0")
          .integers(0, L::kRows)
          .alias("batch"),
      option(g::kLoop, "inner", K::Text, "NAME",
             "how w moves in a hyper-step: --inner-steps optimiser steps (sgd, momentum, adam) "
             "or an inner solver to --inner-tol (newton, newton-cg, lbfgs)")
          .by_default("adam")
          .one_of({"sgd", "momentum", "adam", "newton", "newton-cg", "lbfgs"})
          .alias("inner-optimizer"),
      option(g::kLoop, "inner-lr", K::Real, "E", "inner learning rate")
          .by_default("0.01")
          .reals(Interval::open_closed(0, L::kRate)),
      option(g::kLoop, "inner-tol", K::Real, "TOL",
             "inner solvers (Newton, …) stop at ||∇_w L_T|| below this")
          .by_default("1e-10")
          .reals(Interval::open_closed(0, 1))
          .alias("grad-tol"),
      option(g::kLoop, "tolerance-schedule", K::Text, "NAME",
             "HOAG (Pedregosa 2016): at hyper-step t both the inner solvers' --inner-tol and "
             "the linear solve's tolerance become ε0/t² (quadratic), ε0/t³ (cubic) or "
             "ε0·0.9^t (geometric); --steps stays the cap")
          .by_default("none")
          .one_of({"none", "quadratic", "cubic", "geometric"}),
      option(g::kLoop, "tolerance0", K::Real, "E", "ε0 of --tolerance-schedule")
          .by_default("1e-3")
          .reals(Interval::open_closed(0, L::kRate)),
      option(g::kLoop, "lbfgs-memory", K::Integer, "M",
             "correction pairs the L-BFGS inner solver keeps (LBFGSpp's m): the rank of the "
             "inverse estimate that --method shine reuses")
          .by_default("10")
          .integers(1, 100'000),
      option(g::kLoop, "outer-optimizer", K::Text, "NAME", "optimiser on λ")
          .by_default("adam")
          .one_of({"sgd", "momentum", "adam"}),
      option(g::kLoop, "outer-lr", K::Real, "E", "outer learning rate")
          .by_default("0.1")
          .reals(Interval::open_closed(0, L::kRate)),
      option(g::kLoop, "on-failure", K::Text, "NAME",
             "continue or stop a run when its hypergradient fails numerically")
          .by_default("continue")
          .one_of({"continue", "stop"}),
      option(g::kLoop, "checkpoint-every", K::Integer, "K",
             "hyper-steps between checkpoints (0: only at the end or on SIGINT/SIGTERM)")
          .by_default("5")
          .integers(0, L::kSteps),
      flag(g::kLoop, "resume", "continue from the run's checkpoint"),
      // Output
      option(g::kOutput, "out", K::Text, "DIR", "output directory (created if missing)")
          .by_default(".")
          .check(valid::non_empty()),
      flag(g::kOutput, "quiet", "print only the summary"),
      // Threads, seed, device
      option(g::kRun, "threads", K::Integer, "T",
             "threads (OpenMP/Eigen or LibTorch; 0: their defaults); resumed runs need the same "
             "count to be bitwise identical")
          .by_default("0")
          .integers(0, L::kThreads),
      option(g::kRun, "seed", K::Integer, "S",
             "seed of every random choice (synthetic data, minibatches, initial weights)")
          .by_default("0")
          .integers(0, L::kSeed),
      option(g::kRun, "device", K::Text, "NAME", "LibTorch device: cpu, cuda or cuda:N")
          .by_default("cpu")
          .check([](const std::string& t) -> std::string {
            const bool ok = t == "cpu" || t == "cuda" ||
                            (t.rfind("cuda:", 0) == 0 && to_integer(t.substr(5)).value_or(-1) >= 0);
            return ok ? "" : "cpu, cuda or cuda:N";
          }),
      option(g::kRun, "dtype", K::Text, "NAME", "LibTorch scalar type")
          .by_default("float")
          .one_of({"float", "double"}),
  };
  return table;
}

/// Ready-made selections from the table, for OptionSet::use: what the apps of a kind take.
namespace selection {
inline const std::vector<std::string> kData = {"data", "data-dir", "train", "val", "test"};
/// With --method or --methods.
inline const std::vector<std::string> kMethod = {"steps", "alpha", "damping", "power-iterations",
                                                 "warm-start", "nystrom-sampling", "rho",
                                                 "ritz-memory", "ritz-accept", "kfac-penalty",
                                                 "kfac-eigenvalues"};
/// Algorithm 2's loop (ift-compare, ift-overfit, ift-deep).
inline const std::vector<std::string> kLoop = {
    "hyper-steps", "inner-steps", "batch-size",       "inner", "inner-lr", "outer-optimizer",
    "outer-lr",    "on-failure",  "checkpoint-every", "resume"};
inline const std::vector<std::string> kRun = {"out", "threads", "seed"};
}  // namespace selection

/// The options of one app: some of the table's, with the app's defaults and choices, and the
/// app's own (group "<app> options").
class OptionSet {
 public:
  OptionSet(std::string app, std::string usage) : app_(std::move(app)), usage_(std::move(usage)) {}

  /// Takes these options from the table (a name it lacks is a programming error).
  OptionSet& use(std::initializer_list<const char*> names) {
    return use(std::vector<std::string>(names.begin(), names.end()));
  }
  OptionSet& use(const std::vector<std::string>& names) {
    const auto& table = option_table();
    for (const std::string& name : names) {
      auto it = std::find_if(table.begin(), table.end(),
                             [&](const OptionSpec& s) { return s.name == name; });
      if (it == table.end()) throw std::logic_error("no option --" + name);
      options_.push_back(checked(*it));
    }
    return *this;
  }
  /// An option of this app alone.
  OptionSet& add(OptionSpec spec) {
    if (spec.group.empty()) spec.group = app_ + " options";
    options_.push_back(checked(std::move(spec)));
    return *this;
  }
  OptionSet& set_default(const std::string& name, std::optional<std::string> value) {
    at(name).default_value = std::move(value);
    return *this;
  }
  /// The app's defaults where they differ from the table's: {{"train", "3500"}, …}.
  OptionSet& set_defaults(std::initializer_list<std::pair<const char*, const char*>> values) {
    for (const auto& [name, value] : values) set_default(name, value);
    return *this;
  }
  OptionSet& set_choices(const std::string& name, std::vector<std::string> choices) {
    at(name).choices = std::move(choices);
    return *this;
  }

  const std::string& app() const { return app_; }
  const std::vector<OptionSpec>& options() const { return options_; }

  /// The option a command-line name (canonical or alias) stands for, with the alias if any.
  std::pair<const OptionSpec*, const Alias*> find(const std::string& name) const {
    for (const auto& spec : options_) {
      if (spec.name == name) return {&spec, nullptr};
      for (const auto& alias : spec.aliases)
        if (alias.name == name) return {&spec, &alias};
    }
    return {nullptr, nullptr};
  }

  /// The usage text, then the options group by group (aliases are not listed: README has them).
  std::string help() const {
    std::ostringstream s;
    s << usage_ << "\n";
    std::vector<std::string> order;
    for (const auto& spec : options_)
      if (std::find(order.begin(), order.end(), spec.group) == order.end())
        order.push_back(spec.group);
    for (const auto& group : order) {
      s << "\n" << group << ":\n";
      for (const auto& spec : options_) {
        if (spec.group != group) continue;
        std::string left = "  --" + spec.name;
        if (spec.kind != ValueKind::Flag) left += " " + spec.value_name;
        std::string text = spec.help;
        if (!spec.choices.empty())
          text += (spec.list ? " (some of " : " (") + or_list(spec.choices) + ")";
        if (!spec.range.empty()) text += " (range " + spec.range + ")";
        if (spec.default_value && spec.kind != ValueKind::Flag)
          text += " [default " + (spec.default_value->empty() ? "''" : *spec.default_value) + "]";
        s << left;
        if (left.size() < 26)
          s << std::string(26 - left.size(), ' ');
        else
          s << "\n" << std::string(26, ' ');
        s << wrap(text, 26, 100) << "\n";
      }
    }
    s << "\n  -h, --help              print this help and exit\n";
    return s.str();
  }

 private:
  /// A numeric option without a range is a programming error (issue 14: every numeric option
  /// has a documented range, checked at parse time).
  static OptionSpec checked(OptionSpec spec) {
    if ((spec.kind == ValueKind::Integer || spec.kind == ValueKind::Real) && spec.range.empty())
      throw std::logic_error("option --" + spec.name +
                             " is numeric but has no range (OptionSpec::integers or reals)");
    return spec;
  }
  OptionSpec& at(const std::string& name) {
    for (auto& spec : options_)
      if (spec.name == name) return spec;
    throw std::logic_error("no option --" + name + " in " + app_);
  }
  static std::string wrap(const std::string& text, std::size_t indent, std::size_t width) {
    std::string out, word;
    std::size_t column = indent;
    std::istringstream words(text);
    while (words >> word) {
      const std::size_t length = word.size();  // bytes: close enough for UTF-8 symbols
      if (column > indent && column + 1 + length > width) {
        out += "\n" + std::string(indent, ' ');
        column = indent;
      } else if (column > indent) {
        out += ' ';
        ++column;
      }
      out += word;
      column += length;
    }
    return out;
  }

  std::string app_, usage_;
  std::vector<OptionSpec> options_;
};

/// The parsed options: every option with a value (given or default), as text, typed on access.
class OptionValues {
 public:
  /// Records a value typed on the command line as `as` (the name or an alias of spec).
  void give(const OptionSpec& spec, const std::string& as, const std::string& text) {
    if (auto it = given_as_.find(spec.name); it != given_as_.end())
      throw UsageError("--" + spec.name + ": given more than once" +
                       (as != spec.name || it->second != spec.name
                            ? " (as --" + it->second + " and --" + as + ")"
                            : std::string()));
    given_as_[spec.name] = as;
    given_.insert(spec.name);
    put(spec, text);
  }
  /// After the command line: defaults for what was not given, then every value validated.
  void finish(const OptionSet& set) {
    for (const auto& spec : set.options()) {
      if (!given_.count(spec.name) && spec.default_value) put(spec, *spec.default_value);
      if (auto it = text_.find(spec.name); it != text_.end()) {
        const std::string what = spec.expected(it->second);
        if (!what.empty())
          throw UsageError("--" + spec.name + ": expected " + what + " (got '" + it->second + "')");
      }
    }
  }
  /// A default decided after parsing (ift-deep's --experiment overfit): only if not given.
  void default_to(const std::string& name, const std::string& text) {
    if (!given_.count(name)) text_[name] = text;
  }

  bool has(const std::string& name) const { return text_.count(name) > 0; }
  bool given(const std::string& name) const { return given_.count(name) > 0; }
  const std::string& text(const std::string& name) const {
    auto it = text_.find(name);
    if (it == text_.end()) throw std::logic_error("option --" + name + " has no value");
    return it->second;
  }
  /// An Integer option's value; integer_u64 for one whose range passes 2⁶³ − 1 (--seed).
  long long integer(const std::string& name) const {
    const auto x = to_integer(text(name));
    if (!x) throw std::logic_error("option --" + name + " is not a signed 64-bit integer");
    return *x;
  }
  std::uint64_t integer_u64(const std::string& name) const {
    const auto x = to_unsigned(text(name));
    if (!x) throw std::logic_error("option --" + name + " is not an unsigned 64-bit integer");
    return *x;
  }
  double real(const std::string& name) const { return *to_real(text(name)); }
  bool flag(const std::string& name) const { return has(name) && text(name) == "true"; }
  std::vector<std::string> list(const std::string& name) const {
    std::vector<std::string> out;
    for (auto& s : split_list(text(name)))
      if (!s.empty()) out.push_back(s);
    return out;
  }
  std::vector<Index> index_list(const std::string& name) const {
    std::vector<Index> out;
    for (const auto& s : split_list(text(name))) out.push_back(static_cast<Index>(*to_unsigned(s)));
    return out;
  }
  const std::map<std::string, std::string>& texts() const { return text_; }

  /// "name = value" per option with a value, alphabetically: the '#' header of every CSV, so a
  /// table says how it was made. Numbers as parsed (%.17g), flags as true/false.
  std::string describe() const {
    std::ostringstream s;
    for (const auto& [name, text] : text_) {
      s << name << " = ";
      auto kind = kinds_.find(name);
      if (kind != kinds_.end() && kind->second == ValueKind::Real) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.17g", *to_real(text));
        s << buf;
      } else if (kind != kinds_.end() && kind->second == ValueKind::Integer) {
        if (const auto x = to_unsigned(text)) s << *x;  // validated: digits only
        else s << text;
      } else {
        s << text;
      }
      s << "\n";
    }
    return s.str();
  }

 private:
  void put(const OptionSpec& spec, const std::string& text) {
    text_[spec.name] = text;
    kinds_[spec.name] = spec.kind;
  }
  std::map<std::string, std::string> text_;
  std::map<std::string, ValueKind> kinds_;
  std::set<std::string> given_;
  std::map<std::string, std::string> given_as_;  // the name it was typed as
};

/// The parser of the LibTorch apps (no Boost): --name VALUE, --name=VALUE, flags as --name,
/// -h/--help. Names are matched exactly (no abbreviations), as the Boost parser is told to.
/// Returns nothing after printing --help.
inline std::optional<OptionValues> parse_builtin(int argc, const char* const* argv,
                                                 const OptionSet& set) {
  OptionValues values;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << set.help();
      return std::nullopt;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2)
      throw UsageError(arg.rfind("-", 0) == 0 ? "unrecognised option '" + arg + "'"
                                              : "unexpected argument '" + arg + "'");
    const auto eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const auto [spec, alias] = set.find(name);
    if (!spec) throw UsageError("unrecognised option '--" + name + "'");
    const bool flag = spec->kind == ValueKind::Flag || (alias && !alias->implied.empty());
    std::string value;
    if (flag) {
      if (eq != std::string::npos) throw UsageError("--" + name + ": takes no value");
      value = alias && !alias->implied.empty() ? alias->implied : "true";
    } else if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else {
      if (i + 1 >= argc) throw UsageError("--" + name + ": expected a value");
      value = argv[++i];
    }
    values.give(*spec, name, value);
  }
  values.finish(set);
  return values;
}

// ---- From values to the library's parameters ---------------------------------------------------

/// --nystrom-sampling, --rho and --seed into NystromParams (where the app has them).
inline void apply_nystrom_options(const OptionValues& v, NystromParams& p) {
  if (v.has("nystrom-sampling"))
    p.sampling = parse_option("nystrom-sampling",
                              [&] { return parse_nystrom_sampling(v.text("nystrom-sampling")); });
  if (v.has("rho")) p.rho = v.real("rho");
  if (v.has("seed")) p.seed = v.integer_u64("seed");
}

/// --kfac-penalty and --kfac-eigenvalues into KfacParams (where the app has them).
inline void apply_kfac_options(const OptionValues& v, KfacParams& p) {
  if (v.has("kfac-penalty"))
    p.penalty = v.text("kfac-penalty") == "eigenbasis" ? KfacPenalty::Eigenbasis : KfacPenalty::Mean;
  if (v.has("kfac-eigenvalues"))
    p.eigenvalues = v.text("kfac-eigenvalues") == "corrected" ? KfacEigenvalues::Corrected
                                                               : KfacEigenvalues::Kronecker;
}

/// --exact-precision into DenseParams (where the app has it).
inline void apply_exact_options(const OptionValues& v, DenseParams& p) {
  if (v.has("exact-precision"))
    p.precision = parse_option("exact-precision",
                               [&] { return parse_dense_precision(v.text("exact-precision")); });
}

/// The method group as a MethodSpec for `method` (one of --methods, or --method's value, with
/// its suffixes). --warm-start and --curvature-sampling apply to the methods that support them.
inline MethodSpec method_spec(const OptionValues& v, const std::string& method) {
  MethodSpec spec = parse_option("method", [&] { return parse_method_spec(method); });
  if (v.has("curvature")) spec.curvature = parse_curvature(v.text("curvature"));
  if (v.has("steps")) spec.steps = v.integer("steps");
  if (v.has("alpha")) spec.neumann.alpha = v.real("alpha");
  if (v.has("damping")) spec.damping = v.real("damping");
  if (v.has("power-iterations")) spec.neumann.power_iterations = v.integer("power-iterations");
  if (v.flag("warm-start") && supports_warm_start(spec.method)) spec.warm_start = true;
  if (v.has("curvature-sampling") && spec.sampling == CurvatureSampling::Full &&
      supports_curvature_sampling(spec.method))
    spec.sampling = parse_curvature_sampling(v.text("curvature-sampling"));
  if (spec.sampling != CurvatureSampling::Full) {
    require_option(v.has("curvature-batch"), "curvature-batch",
                   "needed with sampled curvature (" + spec.name() + "): rows per minibatch");
    spec.curvature_batch = v.integer("curvature-batch");
  }
  if (v.has("seed")) spec.sampling_seed = v.integer_u64("seed");
  apply_nystrom_options(v, spec.nystrom);
  if (v.has("ritz-memory")) spec.ritz.memory = v.integer("ritz-memory");
  if (v.has("ritz-accept")) spec.ritz.accept = v.real("ritz-accept");
  apply_kfac_options(v, spec.kfac);
  apply_exact_options(v, spec.exact);
  return spec;
}

/// The loop group into BilevelParams: hyper-steps, inner-steps, batch-size, inner (+ inner-lr,
/// inner-tol), outer-optimizer (+ outer-lr), on-failure, checkpoint-every, seed. Not
/// --warmup-steps: ift-compare warms up once for all methods, outside the loop.
inline void apply_loop_options(const OptionValues& v, BilevelParams& p) {
  if (v.has("hyper-steps")) p.hyper_steps = v.integer("hyper-steps");
  if (v.has("inner-steps")) p.inner_steps = v.integer("inner-steps");
  if (v.has("batch-size")) p.batch_size = v.integer("batch-size");
  if (v.has("inner")) parse_option("inner", [&] { parse_inner(v.text("inner"), p); });
  if (v.has("inner-lr")) p.inner.learning_rate = v.real("inner-lr");
  if (v.has("inner-tol")) p.inner_tolerance = v.real("inner-tol");
  if (v.has("tolerance-schedule"))
    p.tolerance_schedule = parse_option(
        "tolerance-schedule", [&] { return parse_tolerance_schedule(v.text("tolerance-schedule")); });
  if (v.has("tolerance0")) p.tolerance0 = v.real("tolerance0");
  if (v.has("outer-optimizer"))
    p.outer.kind =
        parse_option("outer-optimizer", [&] { return parse_optimizer(v.text("outer-optimizer")); });
  if (v.has("outer-lr")) p.outer.learning_rate = v.real("outer-lr");
  if (v.has("on-failure"))
    p.on_failure =
        parse_option("on-failure", [&] { return parse_on_failure(v.text("on-failure")); });
  if (v.has("checkpoint-every")) p.checkpoint_every = v.integer("checkpoint-every");
  if (v.has("seed")) p.seed = v.integer_u64("seed");
}

// ---- Memory a run needs, checked before any allocation ---------------------------------------

/// "1.5 GB", "640 kB", "12 B" (powers of 1000).
inline std::string format_bytes(std::uint64_t bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double x = static_cast<double>(bytes);
  int u = 0;
  while (x >= 1000 && u < 6) x /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g %s", x, units[u]);
  return buf;
}

/// Memory available to a new allocation now, in bytes: MemAvailable of /proc/meminfo (Linux;
/// page cache counts as available), else sysconf's available physical pages, else nothing.
inline std::optional<std::uint64_t> available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  std::uint64_t kb = 0;
  while (meminfo >> key >> kb) {
    std::getline(meminfo, unit);
    if (key == "MemAvailable:") return kb * 1024;
  }
  const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
  return std::nullopt;
}

/// What a run will hold at least, part by part. Products and sums saturate at 2⁶⁴ − 1 instead
/// of wrapping (sizes near 2⁶³ must not pass the check by overflowing): such a part cannot fit
/// anyway.
class MemoryEstimate {
 public:
  /// Adds `what`, the product of `factors` (counts, then bytes per item).
  MemoryEstimate& add(std::string what, std::initializer_list<std::uint64_t> factors) {
    std::uint64_t bytes = 1;
    bool saturated = false;
    for (const std::uint64_t f : factors) {
      if (f == 0) return *this;  // an empty part
      saturated = saturated || __builtin_mul_overflow(bytes, f, &bytes);
    }
    parts_.emplace_back(std::move(what), saturated ? ~std::uint64_t{0} : bytes);
    return *this;
  }
  std::uint64_t total() const {
    std::uint64_t sum = 0;
    for (const auto& part : parts_)
      if (__builtin_add_overflow(sum, part.second, &sum)) return ~std::uint64_t{0};
    return sum;
  }
  /// "6.28 TB (data splits 6.28 TB + exact: dense D × D curvature 986 MB)".
  std::string describe() const {
    std::string s = format_bytes(total()) + " (";
    for (std::size_t i = 0; i < parts_.size(); ++i)
      s += (i ? " + " : "") + parts_[i].first + " " + format_bytes(parts_[i].second);
    return s + ")";
  }

 private:
  std::vector<std::pair<std::string, std::uint64_t>> parts_;
};

/// Refuses, before any work, a run whose estimate exceeds the memory available (or `limit`
/// when given): UsageError naming `options`, the estimate and the limit. No estimate of the
/// limit (no /proc/meminfo, no sysconf): nothing is refused.
inline void check_memory(const MemoryEstimate& estimate, const std::string& options,
                         std::optional<std::uint64_t> limit = available_memory()) {
  if (!limit || estimate.total() <= *limit) return;
  throw UsageError(options + ": the run needs at least " + estimate.describe() + ", more than the " +
                   format_bytes(*limit) + " of memory available (MemAvailable); choose smaller sizes");
}

// ---- main
// ----------------------------------------------------------------------------------------

/// Runs `body`, turning exceptions into a message on stderr and a non-zero exit code:
/// 2 for bad command-line input, 1 for anything else (unreadable data, I/O errors).
inline int run_main(const char* app, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::cerr << app << ": error: " << e.what() << " (see " << app << " --help)\n";
    return 2;
  } catch (const std::bad_alloc&) {
    // check_memory refuses what cannot fit before the run starts; this is what slipped past
    // the estimate (or memory taken by others meanwhile).
    std::cerr << app << ": error: out of memory (an allocation failed): the run needs more memory "
                        "than is available; choose smaller sizes (--train, --val, --test, "
                        "--hidden, --steps)\n";
    return 1;
  } catch (const std::invalid_argument& e) {
    std::cerr << app << ": error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << app << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace ift::app
