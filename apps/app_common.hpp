// Shared helpers for the thin mains in apps/ (STYLE.md item 8): common options, validation with
// messages that name the option, data loading, parameter echoes, stop signals, a progress bar
// and the CSV columns of a bilevel hyper-step. Header-only: each app is one translation unit.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/any.hpp>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <Eigen/Core>

#ifdef IFT_HAVE_OPENMP
#include <omp.h>
#endif

#include "ift/checkpoint.hpp"
#include "ift/data/fashion_mnist.hpp"
#include "ift/data/synthetic.hpp"
#include "ift/io/csv_writer.hpp"

namespace ift::app {

namespace po = boost::program_options;

/// Bad command-line input: reported as "<app>: error: <message>" with exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// parse(text) with its std::invalid_argument re-thrown as UsageError("--<option>: …"), so a bad
/// value names the option it came from.
template <class Parse>
auto parse_option(const std::string& option, Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const std::invalid_argument& e) {
    throw UsageError("--" + option + ": " + e.what());
  }
}

/// Throws UsageError("--<option>: <what>") unless ok.
inline void require_option(bool ok, const std::string& option, const std::string& what) {
  if (!ok) throw UsageError("--" + option + ": " + what);
}

// ---- Common options ----------------------------------------------------------------------------

struct CommonOptions {
  std::uint64_t seed = 0;
  int threads = 0;  // 0: leave OpenMP's and Eigen's defaults
  std::string out = ".";
  std::string data = "fashion-mnist";
};

inline void add_common_options(po::options_description& desc, CommonOptions& c) {
  desc.add_options()
      ("help,h", "print this help and exit")
      ("seed", po::value(&c.seed)->default_value(c.seed),
       "seed of every random choice (synthetic data, minibatches, initial weights)")
      ("threads", po::value(&c.threads)->default_value(c.threads),
       "OpenMP and Eigen threads (0: their defaults); resumed runs need the same count to be "
       "bitwise identical")
      ("out", po::value(&c.out)->default_value(c.out), "output directory (created if missing)")
      ("data", po::value(&c.data)->default_value(c.data),
       "fashion-mnist (the Debian package's IDX files) or synthetic (seeded Gaussian blobs with "
       "784 features, for offline runs)");
}

/// Parses argv; prints help and returns false for --help. Unknown options, bad values and
/// positional arguments become UsageError naming the option.
inline bool parse_options(int argc, char** argv, const po::options_description& desc,
                          const std::string& usage, po::variables_map& vm) {
  try {
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    if (vm.count("help")) {
      std::cout << usage << "\n\n" << desc << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  return true;
}

/// Validates the common options and applies --threads to OpenMP and Eigen.
inline void apply_common_options(const CommonOptions& c) {
  require_option(c.threads >= 0, "threads", "must be >= 0 (got " + std::to_string(c.threads) + ")");
  require_option(c.data == "fashion-mnist" || c.data == "synthetic", "data",
                 "unknown data set '" + c.data + "' (expected fashion-mnist or synthetic)");
  require_option(!c.out.empty(), "out", "must not be empty");
  if (c.threads > 0) {
#ifdef IFT_HAVE_OPENMP
    omp_set_num_threads(c.threads);
#endif
    Eigen::setNbThreads(c.threads);
  }
}

/// The thread count actually in effect (part of a run's fingerprint).
inline int effective_threads() {
#ifdef IFT_HAVE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// ---- Data ----------------------------------------------------------------------------------------

inline constexpr Index kFashionTrainRows = 60000;  // train file: train + validation rows
inline constexpr Index kFashionTestRows = 10000;   // t10k file

/// Checks sizes against the data set (naming the options) before anything is loaded or written.
inline void check_sizes(const CommonOptions& c, Index n_train, Index n_val, Index n_test) {
  require_option(n_train >= 1, "train", "must be >= 1 (got " + std::to_string(n_train) + ")");
  require_option(n_val >= 1, "val", "must be >= 1 (got " + std::to_string(n_val) + ")");
  require_option(n_test >= 0, "test", "must be >= 0 (got " + std::to_string(n_test) + ")");
  if (c.data == "fashion-mnist") {
    require_option(n_train + n_val <= kFashionTrainRows, "train",
                   "--train + --val = " + std::to_string(n_train + n_val) +
                       " exceeds the 60000 rows of Fashion-MNIST's train file (validation rows "
                       "come from it too)");
    require_option(n_test <= kFashionTestRows, "test",
                   std::to_string(n_test) + " exceeds the 10000 rows of Fashion-MNIST's test file");
  }
}

/// Train/validation/test splits with the bias column appended (785 features): Fashion-MNIST by
/// DESIGN.md P1's rules, or seeded blobs (784 features, 10 classes) cut in the same order.
inline Splits<double> load_data(const CommonOptions& c, Index n_train, Index n_val, Index n_test) {
  if (c.data == "fashion-mnist") return load_fashion_mnist<double>(n_train, n_val, n_test, true);
  // Separation 3 keeps the blobs overlapping in 784 dimensions at small n, so validation loss
  // has something to gain from the hyperparameters.
  const Dataset<double> all = make_blobs<double>(n_train + n_val + n_test, 784, 10, 3.0, c.seed);
  Splits<double> s;
  s.train = all.slice(0, n_train);
  s.val = all.slice(n_train, n_val);
  s.test = all.slice(n_train + n_val, n_test);
  s.train.append_bias_column();
  s.val.append_bias_column();
  s.test.append_bias_column();
  return s;
}

// ---- Parameter echo ------------------------------------------------------------------------------

/// "name = value" per option, in the variables_map's (alphabetical) order: the '#' header of
/// every CSV, so a table says how it was made.
inline std::string describe_options(const po::variables_map& vm) {
  std::ostringstream s;
  for (const auto& [name, value] : vm) {
    if (name == "help") continue;
    const boost::any& v = value.value();
    s << name << " = ";
    if (const auto* x = boost::any_cast<std::string>(&v)) s << *x;
    else if (const auto* x = boost::any_cast<int>(&v)) s << *x;
    else if (const auto* x = boost::any_cast<long>(&v)) s << *x;
    else if (const auto* x = boost::any_cast<long long>(&v)) s << *x;
    else if (const auto* x = boost::any_cast<unsigned long>(&v)) s << *x;
    else if (const auto* x = boost::any_cast<unsigned long long>(&v)) s << *x;
    else if (const auto* x = boost::any_cast<bool>(&v)) s << (*x ? "true" : "false");
    else if (const auto* x = boost::any_cast<double>(&v)) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", *x);
      s << buf;
    } else s << "(set)";
    s << "\n";
  }
  return s.str();
}

// ---- Stop signals ----------------------------------------------------------------------------

/// The signal that asked the run to stop (0: none). Only set by the handler; polled between
/// hyper-steps, where the loop writes a checkpoint and returns.
inline volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" inline void ift_app_on_stop_signal(int sig) { g_stop_signal = sig; }

inline void install_stop_signals() {
  std::signal(SIGINT, ift_app_on_stop_signal);
  std::signal(SIGTERM, ift_app_on_stop_signal);
}
inline bool stop_requested() { return g_stop_signal != 0; }

// ---- Progress bar ----------------------------------------------------------------------------

/// One line on stderr, redrawn per hyper-step: count, bar, rate, time left, validation loss.
/// Silent unless stderr is a terminal, so logs and CI output stay clean.
class ProgressBar {
 public:
  ProgressBar(std::string label, Index total)
      : label_(std::move(label)), total_(total), enabled_(isatty(STDERR_FILENO) == 1),
        start_(std::chrono::steady_clock::now()) {}
  ~ProgressBar() { finish(); }

  void update(const HyperStepRecord& r) {
    if (r.restored) {
      ++restored_;
      return;
    }
    if (!enabled_) return;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double done_here = static_cast<double>(r.step - restored_);
    const double rate = seconds > 0 ? done_here / seconds : 0;
    const double left = rate > 0 ? static_cast<double>(total_ - r.step) / rate : 0;
    const int width = 20;
    const int filled = total_ > 0 ? static_cast<int>(width * r.step / total_) : width;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\r%s %lld/%lld [%s] %.2f it/s, %.0fs left, val loss %.5f   ",
                 label_.c_str(), static_cast<long long>(r.step), static_cast<long long>(total_),
                 bar.c_str(), rate, left, r.metrics.val_loss);
    std::fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  std::string label_;
  Index total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
  Index restored_ = 0;
  bool drawn_ = false;
};

// ---- CSV columns of a hyper-step ---------------------------------------------------------------

/// The columns every bilevel app writes after its own leading ones (documented in each app).
inline const std::vector<std::string>& record_columns() {
  static const std::vector<std::string> columns = {
      "step",          "train_loss", "train_accuracy", "val_loss",
      "val_accuracy",  "test_loss",  "test_accuracy",  "hypergradient_norm",
      "status",        "iterations", "hvps",           "hypergradient_seconds",
      "elapsed_seconds", "message"};
  return columns;
}

inline std::vector<io::CsvCell> record_cells(const HyperStepRecord& r) {
  const Metrics& m = r.metrics;
  const double nan = std::nan("");
  return {r.step,
          m.train_loss,
          m.has_accuracy ? m.train_accuracy : nan,
          m.val_loss,
          m.has_accuracy ? m.val_accuracy : nan,
          m.has_test ? m.test_loss : nan,
          m.has_test && m.has_accuracy ? m.test_accuracy : nan,
          r.hypergradient_norm,
          r.status,
          r.iterations,
          r.hvps,
          r.hypergradient_seconds,
          r.elapsed_seconds,
          r.message};
}

// ---- main ----------------------------------------------------------------------------------------

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

/// OpenMP threads that spin while they wait collapse when a shared 2-core machine is
/// oversubscribed (the scripts and CTest export OMP_WAIT_POLICY=PASSIVE for this reason). libgomp
/// reads the variable once, when it is loaded, before main: so when the user has not set it, this
/// sets PASSIVE and re-executes the program once (same arguments). Call it first in main. When
/// the re-execution fails the program simply continues with the runtime's default. The policy
/// changes how idle threads wait, never what is computed.
inline void prefer_passive_omp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (::setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  ::execv("/proc/self/exe", argv);  // returns only on failure
}

}  // namespace ift::app
