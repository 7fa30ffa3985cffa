// Strong scaling of data-parallel hypergradients over MPI (issue 12 item 6), run under
// `mpirun -np N bench_mpi` (scripts/bench-mpi.sh runs N = 1 and 2 and writes the table of
// bench/README.md "More than one process"). Every rank holds a contiguous shard of the same
// training and validation rows (parallel::contiguous_shard) of a RegularizedProblem that was
// distribute()d over a TimedCommunicator wrapping MPI_COMM_WORLD, so the time inside the
// reductions (waiting for the other ranks included) is separated from the computation.
//
//   BM_MpiSum/D:d                   one Communicator::sum of d doubles (d = 1: the latency α;
//                                   d = D of each model: the per-product transfer)
//   BM_MpiHypergradient_<model>/n:  set_point + a cg(20) hypergradient (tolerance 0: 20 products;
//                                   the MLP's on the Gauss-Newton curvature, cg_spec)
//   BM_MpiHyperStep_<model>/n:      one Algorithm-2 hyper-step through the library's loop:
//                                   5 full-batch SGD steps + cg(20) + one SGD step on λ
// Models: P1 (softmax regression, D = 7,850, n = 1,000 and 10,000 rows) and the MLP
// 784-256-10 (D = 203,530, n = 1,000), per-weight decay at λ = log 1e-3, double; n = 16 rows
// measures the work that does not shrink with the rows (the replicated vector work of CG and
// the optimisers), which the cost model needs.
//
// Every benchmark runs a fixed number of iterations (the ranks must make the same collective
// calls) and starts each iteration at a barrier (outside the timing). Only rank 0 reports: the
// others run with a reporter that prints nothing and without --benchmark_out. Counters (per
// call, rank 0 unless said): ranks, comm_ms (wall time inside the collectives), compute_ms (the
// rest), compute_max_ms (the slowest rank's); the same in the thread's CPU time: comm_cpu_ms,
// compute_cpu_ms, compute_cpu_max_ms (on a machine with more runnable processes than cores the
// wall times include time the rank was not scheduled; the CPU times do not); sums,
// scalars_summed (one rank's contribution), recv_MB ((N−1)·8 bytes per scalar: what the
// rank-order gather receives), hvps.
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <type_traits>
#include <vector>

#include "bench_common.hpp"
#include "ift/mpi/communicator.hpp"
#include "ift/parallel/timed_communicator.hpp"

namespace ift::bench {
namespace {

std::shared_ptr<parallel::Communicator> g_world;         // MPI_COMM_WORLD (or one process)
std::shared_ptr<parallel::TimedCommunicator> g_timed;   // the same, timed: what problems use

constexpr Index kCgSteps = 20;
constexpr int kInnerSteps = 5;

/// Rank r's shard of a model's problem on train rows [0, n) and validation rows [n, 2n) of the
/// benchmark pool, at λ = log 1e-3 and the bench suites' starting w (rank 0's, broadcast).
template <class Tag>
struct Sharded {
  using Model = typename Tag::template Model<double>;
  Model model;
  WeightDecay<double> decay;
  std::unique_ptr<RegularizedProblem<Model>> problem;
  Vector<double> lambda, w;

  explicit Sharded(Index n)
      : model(Tag::template make<double>()), decay(DecayKind::PerWeight, model.num_params()) {
    const int r = g_timed->rank(), N = g_timed->size();
    const parallel::Shard st = parallel::contiguous_shard(n, r, N);
    const parallel::Shard sv = parallel::contiguous_shard(n, r, N);
    problem = std::make_unique<RegularizedProblem<Model>>(
        model, decay, rows<double>(st.begin, st.count, Tag::bias),
        rows<double>(n + sv.begin, sv.count, Tag::bias));
    problem->distribute(g_timed, st, sv);
    const Index D = model.num_params();
    lambda = Vector<double>::Constant(D, kLogDecay);
    if constexpr (Tag::bias)
      w = Vector<double>::Random(D) * 0.01;
    else
      w = model.initial_weights(1);
    g_world->broadcast(w.data(), sizeof(double) * static_cast<std::size_t>(D), 0);
  }
  static Sharded& get(Index n) {
    static std::map<Index, std::unique_ptr<Sharded>> table;
    auto& slot = table[n];
    if (!slot) slot = std::make_unique<Sharded>(n);
    return *slot;
  }
};

/// cg(20) with tolerance 0: all k iterations, the same work at every point and on every N. The
/// MLP's Hessian is indefinite at its starting point (CG stops at negative curvature after 4–5
/// HVPs), so the MLP's CG runs on the Gauss-Newton curvature (positive definite with the penalty;
/// a product costs about an HVP: one R-forward and one backward pass, one sum of D scalars).
template <class Tag>
MethodSpec cg_spec() {
  MethodSpec spec;
  spec.method = Method::Cg;
  spec.steps = kCgSteps;
  spec.cg.tolerance = 0;
  if constexpr (!std::is_same_v<Tag, LogRegTag>) spec.curvature = Curvature::GaussNewton;
  return spec;
}

/// Each rank's value of x, on every rank (a sum of one-hot slots: no other collective needed).
std::vector<double> gather(double x) {
  std::vector<double> all(static_cast<std::size_t>(g_world->size()), 0.0);
  all[static_cast<std::size_t>(g_world->rank())] = x;
  g_world->sum(all.data(), all.size());
  return all;
}

/// Runs op() once untimed, then once per benchmark iteration after a barrier, and writes the
/// counters of the file comment.
template <class Op>
void run_timed(benchmark::State& state, Op&& op) {
  op();
  double busy = 0, cpu = 0;
  long long calls = 0;
  g_world->barrier();
  g_timed->reset();
  for (auto _ : state) {
    state.PauseTiming();
    g_world->barrier();
    state.ResumeTiming();
    const double c0 = parallel::TimedCommunicator::thread_cpu_seconds();
    const auto t0 = Clock::now();
    op();
    busy += seconds_since(t0);
    cpu += parallel::TimedCommunicator::thread_cpu_seconds() - c0;
    ++calls;
  }
  const double c = static_cast<double>(std::max<long long>(calls, 1));
  const auto& t = g_timed->totals();
  const double comm = t.seconds() / c, total = busy / c, compute = total - comm;
  const double compute_cpu = (cpu - t.cpu_seconds) / c;
  const std::vector<double> computes = gather(compute), compute_cpus = gather(compute_cpu);
  const int N = g_world->size();
  state.counters["ranks"] = N;
  state.counters["comm_ms"] = comm * 1e3;
  state.counters["compute_ms"] = compute * 1e3;
  state.counters["compute_max_ms"] = *std::max_element(computes.begin(), computes.end()) * 1e3;
  state.counters["compute_cpu_ms"] = compute_cpu * 1e3;
  state.counters["compute_cpu_max_ms"] =
      *std::max_element(compute_cpus.begin(), compute_cpus.end()) * 1e3;
  state.counters["comm_cpu_ms"] = t.cpu_seconds / c * 1e3;
  state.counters["sums"] = static_cast<double>(t.sums) / c;
  state.counters["scalars_summed"] = t.summed_scalars / c;
  state.counters["recv_MB"] = double(N - 1) * t.summed_bytes / c * 1e-6;
}

void BM_MpiSum(benchmark::State& state, Index d) {
  Vector<double> x = Vector<double>::Ones(d);
  run_timed(state, [&] {
    x.setOnes();
    g_timed->sum(x.data(), static_cast<std::size_t>(d));
    benchmark::DoNotOptimize(x.data());
  });
}

template <class Tag>
void BM_MpiHypergradient(benchmark::State& state, Index n) {
  auto& s = Sharded<Tag>::get(n);
  HypergradientEngine<double> engine(cg_spec<Tag>());
  Index hvps = 0;
  std::string status;
  run_timed(state, [&] {
    s.problem->set_point(s.lambda, s.w);
    const HypergradientResult<double> r = engine.compute(*s.problem);
    benchmark::DoNotOptimize(r.hypergradient.data());
    hvps = r.hvps;
    status = to_string(r.status);
  });
  state.counters["hvps"] = double(hvps);
  state.SetLabel(status);
}

/// w and λ carry over from call to call (the loop's state is w, λ and the optimisers').
template <class Tag>
void BM_MpiHyperStep(benchmark::State& state, Index n) {
  auto& s = Sharded<Tag>::get(n);
  BilevelParams p;
  p.method = cg_spec<Tag>();
  p.inner = {OptimizerKind::Sgd, 0.05};
  p.outer = {OptimizerKind::Sgd, 0.01};
  p.record_metrics = false;
  p.hyper_steps = 1;
  p.inner_steps = kInnerSteps;
  BilevelLoop<double> loop(p);
  Vector<double> w = s.w, lambda = s.lambda;
  double hvps = 0;
  std::string status;
  run_timed(state, [&] {
    auto r = loop.run(*s.problem, w, lambda);
    w = std::move(r.w);
    lambda = std::move(r.lambda);
    hvps = r.records.empty() ? 0.0 : double(r.records.back().hvps);
    status = r.records.empty() ? std::string() : r.records.back().status;
  });
  state.counters["hvps"] = hvps;
  state.SetLabel(status);
}

/// Fixed iteration counts: the ranks must agree on them (a timed count would differ per rank).
template <class F>
void add_fixed(const std::string& name, int iterations, F&& f) {
  add(name, std::forward<F>(f))->Iterations(iterations);
}

template <class Tag>
void register_sharded(const std::vector<std::pair<Index, int>>& sizes) {
  const std::string model = Tag::name;
  for (const auto& [n, iterations] : sizes) {
    const std::string nt = "/n:" + std::to_string(n);
    add_fixed("BM_MpiHypergradient_" + model + "/cg:20" + nt, iterations,
              [n](benchmark::State& st) { BM_MpiHypergradient<Tag>(st, n); });
    add_fixed("BM_MpiHyperStep_" + model + "/cg:20" + nt, iterations,
              [n](benchmark::State& st) { BM_MpiHyperStep<Tag>(st, n); });
  }
}

/// Rank ≠ 0: reports nothing.
class SilentReporter final : public benchmark::BenchmarkReporter {
 public:
  bool ReportContext(const Context&) override { return true; }
  void ReportRuns(const std::vector<Run>&) override {}
};

}  // namespace
}  // namespace ift::bench

int main(int argc, char** argv) {
  using namespace ift::bench;
  ift::mpi::Environment mpi(argc, argv);
  g_world = mpi.world();
  g_timed = std::make_shared<ift::parallel::TimedCommunicator>(g_world);
  const bool root = g_world->rank() == 0;
  // The other ranks take the same options but write no file.
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i)
    if (root || std::strncmp(argv[i], "--benchmark_out", 15) != 0) args.push_back(argv[i]);
  int nargs = static_cast<int>(args.size());
  args.push_back(nullptr);
  char** argp = args.data();
  benchmark::Initialize(&nargs, argp);
  if (benchmark::ReportUnrecognizedArguments(nargs, argp)) return 1;
  benchmark::AddCustomContext("ranks", std::to_string(g_world->size()));
  benchmark::AddCustomContext("communicator", g_timed->name());
  if (std::ifstream load("/proc/loadavg"); load) {  // how busy the machine was (shared cores)
    std::string one, five, fifteen;
    load >> one >> five >> fifteen;
    benchmark::AddCustomContext("loadavg", one + " " + five + " " + fifteen);
  }

  // One thread per rank unless OMP_NUM_THREADS says otherwise (scripts/bench-mpi.sh sets it).
  const char* threads = std::getenv("OMP_NUM_THREADS");
  set_threads(threads != nullptr && std::atoi(threads) > 0 ? std::atoi(threads) : 1);
  for (ift::Index d : {ift::Index{1}, ift::Index{7850}, ift::Index{203530}})
    add_fixed("BM_MpiSum/D:" + std::to_string(d), d > 10000 ? 200 : 1000,
              [d](benchmark::State& st) { BM_MpiSum(st, d); });
  register_sharded<LogRegTag>({{16, 20}, {1000, 20}, {10000, 5}});
  register_sharded<MlpSmallTag>({{16, 10}, {1000, 3}});

  SilentReporter silent;
  if (root)
    benchmark::RunSpecifiedBenchmarks();
  else
    benchmark::RunSpecifiedBenchmarks(&silent);
  benchmark::Shutdown();
  g_timed.reset();
  g_world.reset();  // MPI_Comm_free before MPI_Finalize (the Environment's destructor)
  return 0;
}
