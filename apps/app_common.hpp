// Shared helpers for the Eigen apps' thin mains (STYLE.md item 8): the option table
// (options.hpp) parsed by Boost.Program_options, common options, data loading, the P1 problem,
// stop signals, a progress bar and the CSV columns of a bilevel hyper-step. Header-only: each
// app is one translation unit. The LibTorch apps use options.hpp alone (no Boost).
#pragma once

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
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
#include "ift/models/softmax_regression.hpp"
#include "ift/problem.hpp"
#include "ift/parallel/communicator.hpp"
#include "ift/problems/regularized.hpp"
#include "options.hpp"
#ifdef IFT_HAVE_MPI
#include "ift/mpi/communicator.hpp"
#endif

namespace ift::app {

namespace po = boost::program_options;

// ---- The Boost.Program_options parser over the option table -----------------------------------

inline void require_same_configuration(int argc, const char* const* argv);

/// Parses argv with Boost.Program_options, its description generated from `set` (one switch per
/// name and alias; no abbreviations, as the built-in parser). Prints --help and returns nothing
/// for --help. Unknown options, repeated options, bad values and positional arguments become
/// UsageError naming the option, worded as parse_builtin words them. Several processes: first
/// checks that every rank was started with the same command line (require_same_configuration).
inline std::optional<OptionValues> parse_command_line(int argc, const char* const* argv,
                                                      const OptionSet& set) {
  require_same_configuration(argc, argv);  // several processes: the same run on every rank
  po::options_description desc;
  desc.add_options()("help,h", "");
  auto add = [&](const std::string& name, bool flag) {
    if (flag)
      desc.add_options()(name.c_str(), po::bool_switch());
    else
      desc.add_options()(name.c_str(), po::value<std::string>());
  };
  for (const auto& spec : set.options()) {
    add(spec.name, spec.kind == ValueKind::Flag);
    for (const auto& alias : spec.aliases)
      add(alias.name, spec.kind == ValueKind::Flag || !alias.implied.empty());
  }
  namespace style = po::command_line_style;
  OptionValues values;
  try {
    const po::parsed_options parsed = po::command_line_parser(argc, argv)
                                          .options(desc)
                                          .style(style::default_style & ~style::allow_guessing)
                                          .allow_unregistered()
                                          .run();
    const auto unknown = po::collect_unrecognized(parsed.options, po::include_positional);
    if (!unknown.empty()) {
      const std::string& token = unknown.front();
      if (token.rfind("-", 0) == 0)
        throw UsageError("unrecognised option '" + token.substr(0, token.find('=')) + "'");
      throw UsageError("unexpected argument '" + token + "'");
    }
    // In command-line order, so a repeated option is reported as parse_builtin reports it.
    for (const po::option& option : parsed.options) {
      if (option.string_key == "help") {
        std::cout << set.help();
        return std::nullopt;
      }
      const auto [spec, alias] = set.find(option.string_key);
      if (!spec) throw UsageError("unrecognised option '--" + option.string_key + "'");
      if (spec->kind == ValueKind::Flag || (alias && !alias->implied.empty()))
        values.give(*spec, option.string_key,
                    alias && !alias->implied.empty() ? alias->implied : "true");
      else
        values.give(*spec, option.string_key, option.value.empty() ? "" : option.value.front());
    }
  } catch (const po::invalid_command_line_syntax& e) {
    throw UsageError(e.get_option_name() +
                     (e.kind() == po::invalid_command_line_syntax::extra_parameter
                          ? ": takes no value"
                          : ": expected a value"));
  } catch (const po::error& e) {
    throw UsageError(e.what());
  }
  values.finish(set);
  return values;
}

// ---- Processes (data-parallel runs) -------------------------------------------------------------

/// The processes of this run: MPI's world under `mpirun -np N` (apps built with ift::mpi), else
/// one process. Set by run_parallel_main before the app's body runs.
inline std::shared_ptr<parallel::Communicator>& world() {
  static std::shared_ptr<parallel::Communicator> comm = std::make_shared<parallel::SelfCommunicator>();
  return comm;
}
/// Rank 0 alone writes CSV files, plots, checkpoints, progress and the console summary.
inline bool is_root() { return world()->rank() == 0; }

/// run_main (options.hpp: exit codes 2 for usage errors, 1 otherwise) inside the run's processes.
/// Under MPI an error on any rank ends the whole job (MPI_Abort with the exit code) instead of
/// leaving the other ranks waiting in a collective; a command-line error, the same on every
/// rank, is printed by rank 0 only.
inline int run_parallel_main(const char* app, int& argc, char**& argv, const std::function<int()>& body) {
#ifdef IFT_HAVE_MPI
  std::optional<mpi::Environment> mpi;
  try {
    mpi.emplace(argc, argv);
    world() = mpi->world();
  } catch (const std::exception& e) {
    std::cerr << app << ": error: " << e.what() << "\n";
    return 1;
  }
  if (world()->size() > 1) {
    // Rank 0 alone writes the console output (summaries, tables, progress on stdout); the
    // other ranks keep stderr for their errors and warnings.
    if (!is_root() && std::freopen("/dev/null", "w", stdout) == nullptr)
      std::cerr << app << " [rank " << world()->rank() << "]: warning: stdout not silenced\n";
    int code = 0;
    try {
      code = body();
    } catch (const UsageError& e) {
      if (is_root()) std::cerr << app << ": error: " << e.what() << " (see " << app << " --help)\n";
      code = 2;
    } catch (const std::invalid_argument& e) {
      std::cerr << app << " [rank " << world()->rank() << "]: error: " << e.what() << "\n";
      code = 2;
    } catch (const std::exception& e) {
      std::cerr << app << " [rank " << world()->rank() << "]: error: " << e.what() << "\n";
      code = 1;
    }
    if (code == 1 || code == 2) {
      std::cerr.flush();
      mpi::abort(code);
    }
    world().reset();
    return code;
  }
#else
  (void)argc;
  (void)argv;
#endif
  return run_main(app, body);
}

/// The stop request of a data-parallel run: a stop signal seen by any rank, agreed on by all
/// (one scalar sum per poll), so that every rank leaves the loop after the same hyper-step.
inline bool stop_agreed(bool local) {
  if (world()->size() == 1) return local;
  return parallel::sum(*world(), local ? 1.0 : 0.0) > 0;
}

/// Every rank's `mine`, in rank order, on every rank (lengths by one sum, then one broadcast
/// per rank: the communicator seam, whatever its engine).
inline std::vector<std::string> all_gather_text(parallel::Communicator& comm, const std::string& mine) {
  const int N = comm.size();
  if (N == 1) return {mine};
  Vector<double> lengths = Vector<double>::Zero(N);  // exact: lengths < 2⁵³
  lengths(comm.rank()) = static_cast<double>(mine.size());
  comm.sum(lengths.data(), static_cast<std::size_t>(lengths.size()));
  std::vector<std::string> all(static_cast<std::size_t>(N));
  for (int r = 0; r < N; ++r) {
    std::string& text = all[static_cast<std::size_t>(r)];
    text = r == comm.rank() ? mine : std::string(static_cast<std::size_t>(lengths(r)), '\0');
    comm.broadcast(text.data(), text.size(), r);
  }
  return all;
}

/// A mismatched configuration across ranks (mpirun started ranks with different arguments, or
/// data folders) would make them compute different problems, or wait in different collectives:
/// the command line and the data folder are compared with rank 0's before anything is parsed,
/// and a difference ends the job with exit code 2 and an error on EVERY rank naming the first
/// argument that differs.
inline void require_same_configuration(int argc, const char* const* argv) {
  if (world()->size() == 1) return;
  std::vector<std::string> mine;
  for (int i = 1; i < argc; ++i) mine.emplace_back(argv[i]);
  mine.push_back("(Fashion-MNIST folder " + default_fashion_mnist_dir() + ")");
  std::string joined;
  for (const auto& item : mine) joined += item + '\n';
  const std::vector<std::string> all = all_gather_text(*world(), joined);
  std::vector<int> differing;
  for (std::size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0]) differing.push_back(static_cast<int>(r));
  if (differing.empty()) return;
  const int rank = world()->rank();
  std::string message = "the ranks were started with different configurations: ";
  std::string list;
  for (int r : differing) list += (list.empty() ? "rank " : ", rank ") + std::to_string(r);
  message += list + " differ" + (differing.size() == 1 ? "s" : "") + " from rank 0";
  if (rank != 0 && all[static_cast<std::size_t>(rank)] != all[0]) {
    std::vector<std::string> root;  // rank 0's items
    std::istringstream in(all[0]);
    for (std::string line; std::getline(in, line);) root.push_back(line);
    std::size_t i = 0;
    while (i < mine.size() && i < root.size() && mine[i] == root[i]) ++i;
    message += "; here argument " + std::to_string(i + 1) + " is '" +
               (i < mine.size() ? mine[i] : std::string("(none)")) + "', on rank 0 '" +
               (i < root.size() ? root[i] : std::string("(none)")) + "'";
  }
  message += " (every rank must run the same command line on the same data)";
  const std::string line = std::filesystem::path(argv[0]).filename().string() + " [rank " +
                           std::to_string(rank) + "]: error: " + message + "\n";
  std::fputs(line.c_str(), stderr);  // one write: the ranks' lines do not interleave
  std::fflush(stderr);
  world()->barrier();  // every rank has printed before the job ends
#ifdef IFT_HAVE_MPI
  mpi::abort(2);
#else
  throw UsageError(message);
#endif
}

/// Independent work split over the ranks, for the apps whose work is a list of independent
/// items on one problem (the (method, k) pairs of ift-hypergrad --sweep, the methods of
/// ift-accuracy). One item's outcome as plain numbers (sent bit for bit) and texts.
struct WorkRecord {
  std::vector<double> numbers;
  std::vector<std::string> texts;
};

/// The rank of each item: greedy longest-processing-time on `costs` (estimates, any unit):
/// items by decreasing cost (ties by index) each to the least-loaded rank (ties: the lowest
/// rank). Deterministic: every rank computes the same assignment.
inline std::vector<int> assign_work(const std::vector<double>& costs, int ranks) {
  std::vector<std::size_t> order(costs.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return costs[a] > costs[b]; });
  std::vector<double> load(static_cast<std::size_t>(ranks), 0.0);
  std::vector<int> owner(costs.size(), 0);
  for (const std::size_t i : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    owner[i] = static_cast<int>(least);
    load[static_cast<std::size_t>(least)] += costs[i];
  }
  return owner;
}

/// Computes items [0, costs.size()): with `split` and several ranks each rank computes the items
/// assign_work gives it, on its own full (not distributed) problem, and rank 0 gathers every
/// record in item order (the other ranks get empty records); otherwise every rank computes every
/// item (a distributed problem needs all ranks in each of its sums). The records are those of
/// one process bit for bit when the items are computed by the same code on the same problem.
inline std::vector<WorkRecord> split_work(const std::vector<double>& costs, bool split,
                                          const std::function<WorkRecord(std::size_t)>& compute) {
  std::vector<WorkRecord> records(costs.size());
  const int N = world()->size();
  if (!split || N == 1) {
    for (std::size_t i = 0; i < costs.size(); ++i) records[i] = compute(i);
    return records;
  }
  const std::vector<int> owner = assign_work(costs, N);
  std::string mine;  // per own item: index, counts, raw doubles, texts with their lengths
  auto put = [&mine](const void* p, std::size_t n) { mine.append(static_cast<const char*>(p), n); };
  for (std::size_t i = 0; i < costs.size(); ++i) {
    if (owner[i] != world()->rank()) continue;
    const WorkRecord r = compute(i);
    const std::uint64_t head[3] = {i, r.numbers.size(), r.texts.size()};
    put(head, sizeof head);
    put(r.numbers.data(), r.numbers.size() * sizeof(double));
    for (const std::string& t : r.texts) {
      const std::uint64_t length = t.size();
      put(&length, sizeof length);
      put(t.data(), t.size());
    }
  }
  const std::vector<std::string> all = all_gather_text(*world(), mine);
  if (!is_root()) return records;
  for (const std::string& blob : all) {
    std::size_t at = 0;
    auto get = [&](void* p, std::size_t n) {
      require(at + n <= blob.size(), "split_work: a truncated record");
      std::copy_n(blob.data() + at, n, static_cast<char*>(p));
      at += n;
    };
    while (at < blob.size()) {
      std::uint64_t head[3];
      get(head, sizeof head);
      require(head[0] < records.size(), "split_work: a record of an unknown item");
      WorkRecord& r = records[head[0]];
      r.numbers.resize(head[1]);
      get(r.numbers.data(), head[1] * sizeof(double));
      r.texts.resize(head[2]);
      for (std::string& t : r.texts) {
        std::uint64_t length = 0;
        get(&length, sizeof length);
        t.resize(length);
        get(t.data(), length);
      }
    }
  }
  return records;
}

// ---- Common options ----------------------------------------------------------------------------

/// The data, output, thread and seed options every Eigen app takes.
struct CommonOptions {
  std::uint64_t seed = 0;
  int threads = 0;  // 0: leave OpenMP's and Eigen's defaults
  std::string out = ".";
  std::string data = "fashion-mnist";
  std::string data_dir;                // empty: default_fashion_mnist_dir()
  Index train = 0, val = 0, test = 0;  // rows of each split (0 where the app has no option)
};

inline void check_sizes(const CommonOptions& c, Index n_train, Index n_val, Index n_test);
inline void check_run_memory(const OptionValues& v, const CommonOptions& c, bool exact_reference);

/// The common options of parsed values, with --threads applied to OpenMP and Eigen, the split
/// sizes checked against the data set and the memory the run needs against what is available
/// (check_run_memory; exact_reference: the app computes the exact hypergradient whatever the
/// methods), all before anything is loaded or written.
inline CommonOptions apply_common_options(const OptionValues& v, bool exact_reference = false) {
  CommonOptions c;
  if (v.has("seed")) c.seed = v.integer_u64("seed");
  if (v.has("threads")) c.threads = static_cast<int>(v.integer("threads"));
  if (v.has("out")) {
    c.out = v.text("out");
    prepare_output_dir(c.out);  // before any work: a bad --out fails now, not after the run
  }
  if (v.has("data")) c.data = v.text("data");
  if (v.has("data-dir")) c.data_dir = v.text("data-dir");
  if (v.has("train")) c.train = v.integer("train");
  if (v.has("val")) c.val = v.integer("val");
  if (v.has("test")) c.test = v.integer("test");
  if (v.has("train")) check_sizes(c, c.train, c.val, c.test);
  if (v.has("batch-size") && v.has("train"))
    require_option(v.integer("batch-size") <= c.train, "batch-size",
                   "must lie in [0, --train] (0: full batch)");
  if (v.has("train")) check_run_memory(v, c, exact_reference);
  if (c.threads > 0) {
#ifdef IFT_HAVE_OPENMP
    omp_set_num_threads(c.threads);
#endif
    Eigen::setNbThreads(c.threads);
  }
  return c;
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

/// Refuses (UsageError naming the options) a run that cannot fit in the memory available, before
/// any allocation. The estimate is a lower bound of what the run holds at once: the splits as
/// doubles with the bias column (synthetic data: generated whole, then cut), the Fashion-MNIST
/// train images read whole, and what the methods store: exact (and dense Newton, and an exact
/// reference) a D × D curvature and its factor, unrolled k + 1 copies of w, D the model's
/// parameter count (logreg: 785 × 10; mlp: 785 × H + (H + 1) × 10).
inline void check_run_memory(const OptionValues& v, const CommonOptions& c, bool exact_reference) {
  constexpr std::uint64_t kFeatures = 785, kClasses = 10, kDouble = sizeof(double);
  const auto rows = static_cast<std::uint64_t>(c.train) + static_cast<std::uint64_t>(c.val) +
                    static_cast<std::uint64_t>(c.test);  // each <= 10⁹ (limits::kRows)
  MemoryEstimate e;
  std::string options = "--train, --val, --test";
  e.add("data splits", {rows, kFeatures, kDouble});
  if (c.data == "synthetic")
    e.add("synthetic data before the split", {rows, kFeatures - 1, kDouble});
  else
    e.add("Fashion-MNIST images read", {static_cast<std::uint64_t>(kFashionTrainRows), 784});
  std::uint64_t D = kFeatures * kClasses;
  if (v.has("model") && v.text("model") == "mlp" && v.has("hidden")) {
    const auto h = static_cast<std::uint64_t>(v.integer("hidden"));  // <= 10⁹: no overflow
    D = kFeatures * h + (h + 1) * kClasses;
    options += ", --hidden";
  }
  std::vector<std::string> methods;
  if (v.has("methods")) methods = v.list("methods");
  if (v.has("method")) methods.push_back(v.text("method"));
  const auto uses = [&](const char* m) {
    return std::find(methods.begin(), methods.end(), m) != methods.end();
  };
  if (exact_reference || uses("exact") || (v.has("inner") && v.text("inner") == "newton"))
    e.add("dense D × D curvature and factor", {2, D, D, kDouble});
  if (uses("unrolled")) {
    std::uint64_t k = v.has("steps") ? static_cast<std::uint64_t>(v.integer("steps")) : 0;
    if (v.has("steps-list"))
      for (const Index s : v.index_list("steps-list")) k = std::max(k, static_cast<std::uint64_t>(s));
    e.add("unrolled trajectory (k + 1 copies of w)", {k + 1, D, kDouble});
    options += ", --steps";
  }
  check_memory(e, options);
}

/// Train/validation/test splits with the bias column appended (785 features): Fashion-MNIST by
/// DESIGN.md P1's rules, or seeded blobs (784 features, 10 classes) cut in the same order.
inline Splits<double> load_all_rows(const CommonOptions& c) {
  const Index n_train = c.train, n_val = c.val, n_test = c.test;
  if (c.data == "fashion-mnist")
    return load_fashion_mnist<double>(
        n_train, n_val, n_test, true,
        c.data_dir.empty() ? default_fashion_mnist_dir() : c.data_dir);
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

/// The rows this process works on: every row for one process (load_all_rows); under MPI this
/// rank's contiguous shard of each split (parallel::contiguous_shard), read from the files
/// without keeping the other rows. Apps that shard call distribute_problem on the problem.
/// whole_train: every rank reads every training row (ift-distill, whose training rows only
/// initialise λ).
inline Splits<double> load_data(const CommonOptions& c, bool whole_train = false) {
  if (world()->size() == 1) return load_all_rows(c);
  const int r = world()->rank(), N = world()->size();
  const auto st = whole_train ? parallel::Shard{0, c.train, c.train}
                              : parallel::contiguous_shard(c.train, r, N);
  const auto sv = parallel::contiguous_shard(c.val, r, N);
  const auto ss = c.test > 0 ? parallel::contiguous_shard(c.test, r, N) : parallel::Shard{};
  if (c.data == "fashion-mnist")
    return load_fashion_mnist_part<double>(
        c.train, c.val, c.test, {st.begin, st.count}, {sv.begin, sv.count}, {ss.begin, ss.count},
        true, c.data_dir.empty() ? default_fashion_mnist_dir() : c.data_dir);
  const Splits<double> all = load_all_rows(c);  // seeded blobs: the same on every rank, then cut
  Splits<double> s;
  s.train = all.train.slice(st.begin, st.count);
  s.val = all.val.slice(sv.begin, sv.count);
  s.test = all.test.slice(ss.begin, ss.count);
  return s;
}

// ---- Problems
// ------------------------------------------------------------------------------------

/// Per-weight weight decay on `model` over the splits (DESIGN.md P1's family; P3 and P4 on an MLP):
/// L_T = mean cross-entropy(train) + ½ Σ exp(λ_i) w_i², L_V = mean cross-entropy(val); the test
/// set is attached when it has rows. `kind`/`groups`: another weight-decay family (ift-baselines:
/// global, or per-class with groups = classes on softmax regression).
template <class Model>
RegularizedProblem<Model> make_decay_problem(Model model, Splits<double> data,
                                             DecayKind kind = DecayKind::PerWeight,
                                             Index groups = 1) {
  const Index D = model.num_params();
  return RegularizedProblem<Model>(
      std::move(model), WeightDecay<double>(kind, D, groups),
      std::make_shared<const Dataset<double>>(std::move(data.train)),
      std::make_shared<const Dataset<double>>(std::move(data.val)),
      data.test.size() ? std::make_shared<const Dataset<double>>(std::move(data.test)) : nullptr);
}

/// DESIGN.md P1: multinomial logistic regression on the splits' features (785 with the bias
/// load_data appends; W is 10 × 785, class-major), one weight decay per weight (D = 7850).
inline RegularizedProblem<SoftmaxRegression<double>> make_p1_problem(Splits<double> data) {
  SoftmaxRegression<double> model(data.train.num_features(), 10);
  return make_decay_problem(std::move(model), std::move(data));
}

/// Makes a problem built from load_data's rows this rank's part of the data-parallel problem
/// (a no-op for one process): the contiguous shards of --train, --val and --test.
template <class Model>
void distribute_problem(RegularizedProblem<Model>& problem, const CommonOptions& c) {
  if (world()->size() == 1) return;
  const int r = world()->rank(), N = world()->size();
  problem.distribute(world(), parallel::contiguous_shard(c.train, r, N),
                     parallel::contiguous_shard(c.val, r, N),
                     c.test > 0 ? parallel::contiguous_shard(c.test, r, N) : parallel::Shard{});
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
      : label_(std::move(label)), total_(total), enabled_(is_root() && isatty(STDERR_FILENO) == 1),
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
