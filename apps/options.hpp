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
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ift/bilevel_params.hpp"
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

/// Returns "" when the text is acceptable, else what was expected ("an integer >= 0").
using Validator = std::function<std::string(const std::string&)>;

namespace valid {

inline Validator integer_at_least(long long low) {
  return [low](const std::string& t) -> std::string {
    const auto x = to_integer(t);
    return x && *x >= low ? "" : "an integer >= " + std::to_string(low);
  };
}
/// A number > low (strict) or >= low, finite.
inline Validator number_above(double low, bool strict, std::string what) {
  return [=](const std::string& t) -> std::string {
    const auto x = to_real(t);
    return x && std::isfinite(*x) && (strict ? *x > low : *x >= low) ? "" : what;
  };
}
inline Validator positive() { return number_above(0, true, "a number > 0"); }
inline Validator non_negative() { return number_above(0, false, "a number >= 0"); }
inline Validator finite() {
  return [](const std::string& t) -> std::string {
    const auto x = to_real(t);
    return x && std::isfinite(*x) ? "" : "a finite number";
  };
}
inline Validator fraction() {  // (0, 1]
  return [](const std::string& t) -> std::string {
    const auto x = to_real(t);
    return x && *x > 0 && *x <= 1 ? "" : "a number in (0, 1]";
  };
}
inline Validator non_empty() {
  return [](const std::string& t) -> std::string { return t.empty() ? "a non-empty value" : ""; };
}
/// A comma-separated list of integers >= 0 ("0,5,20,50").
inline Validator index_list() {
  return [](const std::string& t) -> std::string {
    const auto items = split_list(t);
    const bool ok = !items.empty() && std::all_of(items.begin(), items.end(), [](const auto& s) {
      const auto x = to_integer(s);
      return x && *x >= 0;
    });
    return ok ? "" : "a comma-separated list of integers >= 0, e.g. 0,5,20,50";
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

/// Every option shared by two or more apps, in --help order. The defaults are the usual ones;
/// an app states its own where they differ (OptionSet::set_default).
inline const std::vector<OptionSpec>& option_table() {
  using K = ValueKind;
  namespace g = groups;
  const std::vector<std::string> methods = {"exact", "cg",   "neumann",  "identity",
                                            "zero",  "kfac", "unrolled", "nystrom"};
  const auto int_at_least = valid::integer_at_least;
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
          .check(int_at_least(1))
          .alias("n-train"),
      option(g::kData, "val", K::Integer, "N", "validation rows: the next N rows of the train file")
          .by_default("1000")
          .check(int_at_least(1))
          .alias("n-val"),
      option(g::kData, "test", K::Integer, "N", "test rows: [0, N) of the t10k file")
          .by_default("1000")
          .check(int_at_least(0))
          .alias("n-test"),
      // Model
      option(g::kModel, "model", K::Text, "NAME",
             "logreg: softmax regression (785 features with the bias); mlp: 784-hidden-10 "
             "(ift-deep: 784-128-10 tanh); cnn: a small CNN (ift-deep)")
          .by_default("logreg")
          .one_of({"logreg", "mlp"}),
      option(g::kModel, "hidden", K::Integer, "H", "MLP hidden units")
          .by_default("50")
          .check(int_at_least(1)),
      option(g::kModel, "activation", K::Text, "NAME", "MLP activation")
          .by_default("tanh")
          .one_of({"tanh", "sigmoid", "softplus", "relu"}),
      // Hyperparameters
      option(g::kHyper, "init-log-decay", K::Real, "L",
             "initial log weight decay λ_i of every weight (L_T gets ½ Σ exp(λ_i) w_i²; "
             "-6.907755278982137 = log 1e-3)")
          .by_default("-6.907755278982137")
          .check(valid::finite())
          .alias("log-decay")
          .alias("init-log-lambda"),
      // Hypergradient method (DESIGN.md §1)
      option(g::kMethod, "method", K::Text, "NAME", "inverse approximation of H⁻¹ (DESIGN.md §1)")
          .by_default("exact")
          .one_of(methods),
      option(g::kMethod, "methods", K::Text, "LIST", "comma-separated inverse approximations")
          .by_default("exact,kfac,cg,neumann,identity,zero")
          .list_of(methods),
      option(g::kMethod, "curvature", K::Text, "NAME",
             "what stands in for H (outer-product and fisher: neumann only)")
          .by_default("hessian")
          .one_of({"hessian", "gauss-newton", "outer-product", "fisher"}),
      option(g::kMethod, "steps", K::Integer, "K",
             "CG iterations / Neumann terms / unrolled steps / Nyström rank k")
          .by_default("20")
          .check(int_at_least(0)),
      option(g::kMethod, "steps-list", K::Text, "LIST",
             "comma-separated k of a sweep, e.g. 0,1,2,5,10,20,50")
          .check(valid::index_list())
          .alias("sweep-steps"),
      option(g::kMethod, "alpha", K::Real, "A",
             "Neumann / unrolled step size (omit it: 1/λ_max by power iteration)")
          .check(valid::positive()),
      option(g::kMethod, "damping", K::Real, "D",
             "δ added to the curvature by exact, cg and neumann; KFAC's explicit damping")
          .by_default("0")
          .check(valid::non_negative()),
      option(g::kMethod, "power-iterations", K::Integer, "P",
             "power iterations for the automatic α")
          .by_default("200")
          .check(int_at_least(1)),
      flag(g::kMethod, "warm-start", "cg: start from the previous hyper-step's v instead of 0"),
      option(g::kMethod, "nystrom-sampling", K::Text, "NAME",
             "nystrom's columns: uniform, diagonal (∝ |H_ii|, Hutchinson estimate: 10 HVPs) or "
             "leverage (ridge leverage of a 20-column sketch: 20 HVPs); seeded by --seed")
          .by_default("uniform")
          .one_of({"uniform", "diagonal", "leverage"}),
      option(g::kMethod, "rho", K::Real, "R",
             "nystrom's ρ in (ρI + P + C M⁺ Cᵀ)⁻¹, P the penalty's exact curvature, when "
             "--damping is 0 (a positive --damping is ρ)")
          .by_default("0")
          .check(valid::non_negative()),
      // Bilevel loop and inner solver
      option(g::kLoop, "hyper-steps", K::Integer, "T", "outer iterations (hyper-steps)")
          .by_default("10")
          .check(int_at_least(0)),
      option(g::kLoop, "inner-steps", K::Integer, "N",
             "inner optimiser steps per hyper-step (w is warm-started); inner solvers: most "
             "iterations")
          .by_default("10")
          .check(int_at_least(0)),
      option(g::kLoop, "warmup-steps", K::Integer, "N", "inner steps before the first hyper-step")
          .by_default("0")
          .check(int_at_least(0)),
      option(g::kLoop, "batch-size", K::Integer, "B", "rows per inner minibatch (0: full batch)")
          .by_default("0")
          .check(int_at_least(0))
          .alias("batch"),
      option(g::kLoop, "inner", K::Text, "NAME",
             "how w moves in a hyper-step: --inner-steps optimiser steps (sgd, momentum, adam) "
             "or an inner solver to --inner-tol (newton, newton-cg, lbfgs)")
          .by_default("adam")
          .one_of({"sgd", "momentum", "adam", "newton", "newton-cg", "lbfgs"})
          .alias("inner-optimizer"),
      option(g::kLoop, "inner-lr", K::Real, "E", "inner learning rate")
          .by_default("0.01")
          .check(valid::positive()),
      option(g::kLoop, "inner-tol", K::Real, "TOL",
             "inner solvers (Newton, …) stop at ||∇_w L_T|| below this")
          .by_default("1e-10")
          .check(valid::positive())
          .alias("grad-tol"),
      option(g::kLoop, "outer-optimizer", K::Text, "NAME", "optimiser on λ")
          .by_default("adam")
          .one_of({"sgd", "momentum", "adam"}),
      option(g::kLoop, "outer-lr", K::Real, "E", "outer learning rate")
          .by_default("0.1")
          .check(valid::positive()),
      option(g::kLoop, "on-failure", K::Text, "NAME",
             "continue or stop a run when its hypergradient fails numerically")
          .by_default("continue")
          .one_of({"continue", "stop"}),
      option(g::kLoop, "checkpoint-every", K::Integer, "K",
             "hyper-steps between checkpoints (0: only at the end or on SIGINT/SIGTERM)")
          .by_default("5")
          .check(int_at_least(0)),
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
          .check(int_at_least(0)),
      option(g::kRun, "seed", K::Integer, "S",
             "seed of every random choice (synthetic data, minibatches, initial weights)")
          .by_default("0")
          .check(int_at_least(0)),
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
                                                 "warm-start", "nystrom-sampling", "rho"};
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
      options_.push_back(*it);
    }
    return *this;
  }
  /// An option of this app alone.
  OptionSet& add(OptionSpec spec) {
    if (spec.group.empty()) spec.group = app_ + " options";
    options_.push_back(std::move(spec));
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
  long long integer(const std::string& name) const { return *to_integer(text(name)); }
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
    for (const auto& s : split_list(text(name))) out.push_back(static_cast<Index>(*to_integer(s)));
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
        s << *to_integer(text);
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
  if (v.has("seed")) p.seed = static_cast<std::uint64_t>(v.integer("seed"));
}

/// The method group as a MethodSpec for `method` (one of --methods, or --method's value).
inline MethodSpec method_spec(const OptionValues& v, const std::string& method) {
  MethodSpec spec;
  spec.method = parse_option("method", [&] { return parse_method(method); });
  if (v.has("curvature")) spec.curvature = parse_curvature(v.text("curvature"));
  if (v.has("steps")) spec.steps = v.integer("steps");
  if (v.has("alpha")) spec.neumann.alpha = v.real("alpha");
  if (v.has("damping")) spec.damping = v.real("damping");
  if (v.has("power-iterations")) spec.neumann.power_iterations = v.integer("power-iterations");
  spec.warm_start = v.flag("warm-start");
  apply_nystrom_options(v, spec.nystrom);
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
  if (v.has("outer-optimizer"))
    p.outer.kind =
        parse_option("outer-optimizer", [&] { return parse_optimizer(v.text("outer-optimizer")); });
  if (v.has("outer-lr")) p.outer.learning_rate = v.real("outer-lr");
  if (v.has("on-failure"))
    p.on_failure =
        parse_option("on-failure", [&] { return parse_on_failure(v.text("on-failure")); });
  if (v.has("checkpoint-every")) p.checkpoint_every = v.integer("checkpoint-every");
  if (v.has("seed")) p.seed = static_cast<std::uint64_t>(v.integer("seed"));
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
  } catch (const std::invalid_argument& e) {
    std::cerr << app << ": error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << app << ": error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace ift::app
