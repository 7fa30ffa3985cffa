// Timing, allocation counting and the GEMM and STREAM-copy yardsticks shared by every ift
// benchmark binary; depends on Eigen, Google Benchmark and OpenMP only (plus the header-only
// ift/core.hpp and linalg/parallel_gemm.hpp), so a binary that must not link the library
// (bench_openblas) can use it too.
//
// Allocation counting: bench/memory_meter.cpp (one object per binary) replaces malloc and free,
// counts allocations and live bytes, and registers them with Google Benchmark's memory-manager
// hook (allocs_per_iter, max_bytes_used in every benchmark's output); CallMeter reads the same
// count for `allocs_per_call`, the heap allocations of the timed calls alone (operator new,
// Eigen's aligned_malloc, ...).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ift/core.hpp"
#include "ift/linalg/parallel_gemm.hpp"

#include "memory_meter.hpp"

namespace ift::bench {

// ---- Threads ------------------------------------------------------------------------------------
/// One pool only (DESIGN.md §5): Eigen's GEMMs and the library's loops both use OpenMP.
inline void set_threads(int threads) {
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  Eigen::setNbThreads(threads);
}

template <class S>
const char* type_name() {
  return sizeof(S) == 8 ? "double" : "float";
}

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- Yardstick 1: GEMM throughput ---------------------------------------------------------------
constexpr Index kGemmSize = 2000;

inline std::map<std::string, double>& gemm_table() {
  static std::map<std::string, double> table;
  return table;
}
inline std::string gemm_key(const char* type, int threads) {
  return std::string(type) + "/" + std::to_string(threads);
}

template <class S>
struct GemmOperands {
  Matrix<S> A, B, C;
  static GemmOperands& get() {
    static GemmOperands g{Matrix<S>::Random(kGemmSize, kGemmSize),
                          Matrix<S>::Random(kGemmSize, kGemmSize),
                          Matrix<S>::Zero(kGemmSize, kGemmSize)};
    return g;
  }
  /// The library's GEMM (ift::gemm: its own packed kernel on the OpenMP pool), the yardstick.
  void run() { ift::gemm(C, A, B); }
  /// Eigen's product: Eigen's kernels, or OpenBLAS's under EIGEN_USE_BLAS (reported beside).
  void run_eigen() { C.noalias() = A * B; }
};

/// The machine's GEMM throughput for this type and thread count: the best of 5 square products
/// (the practical limit; a median would fold in the shared machine's slow moments). Measured
/// once per process unless BM_Gemm ran first.
template <class S>
double gemm_gflops(int threads) {
  auto& table = gemm_table();
  const std::string key = gemm_key(type_name<S>(), threads);
  if (auto it = table.find(key); it != table.end()) return it->second;
  set_threads(threads);
  auto& g = GemmOperands<S>::get();
  g.run();
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    g.run();
    best = std::max(best, 2.0 * std::pow(static_cast<double>(kGemmSize), 3) / seconds_since(t0) * 1e-9);
  }
  table[key] = best;
  return best;
}

/// C = A B for square N = 2000: GFLOPs is the best iteration's throughput. BM_Gemm times the
/// library's GEMM (ift::gemm), the binary's fastest and the yardstick of gemm_fraction everywhere;
/// BM_GemmEigen times Eigen's product (OpenBLAS's dgemm under EIGEN_USE_BLAS: its AVX2 kernels on
/// Zen 5), the library's other dense products (Hessians, Cholesky), for comparison only. Register
/// with 5+ iterations.
template <class S, bool kLibrary = true>
void BM_Gemm(benchmark::State& state, int threads) {
  set_threads(threads);
  auto& g = GemmOperands<S>::get();
  const auto run = [&] {
    if constexpr (kLibrary)
      g.run();
    else
      g.run_eigen();
  };
  run();
  double best = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    run();
    benchmark::DoNotOptimize(g.C.data());
    benchmark::ClobberMemory();
    best = std::max(best, 2.0 * std::pow(static_cast<double>(kGemmSize), 3) / seconds_since(t0) * 1e-9);
  }
  if constexpr (kLibrary) gemm_table()[gemm_key(type_name<S>(), threads)] = best;
  state.counters["GFLOPs"] = best;
}

/// Accumulates the wall time of the timed part of each iteration (UseRealTime is set too, but
/// this also excludes paused setup) and allocations, and writes the common counters.
///
/// Ratios are taken against a reference (one gradient, or the 5 inner steps) timed *interleaved*
/// with the measured calls, outside the benchmark's timing: on a shared machine whose speed drifts
/// by 20–50% over seconds, a yardstick timed once at start-up gave ratios off by as much (a
/// gradient measured at 0.68× "one gradient" in one run). The reference runs after a measured call
/// while it has had fewer than 3 calls or less total time than the measured operation, so cheap
/// operations do not pay for many references.
struct CallMeter {
  double busy = 0, ref_busy = 0;
  long long calls = 0, ref_calls = 0, allocs = 0;
  Clock::time_point t0;
  long long a0 = 0;
  void start() {
    a0 = mallocs();
    t0 = Clock::now();
  }
  void stop() {
    busy += seconds_since(t0);
    allocs += mallocs() - a0;
    ++calls;
  }
  template <class F>
  void interleave(benchmark::State& state, F&& reference) {
    if (ref_calls >= 3 && ref_busy >= busy) return;
    state.PauseTiming();
    const auto r0 = Clock::now();
    reference();
    ref_busy += seconds_since(r0);
    ++ref_calls;
    state.ResumeTiming();
  }
  double per_call() const { return busy / static_cast<double>(std::max<long long>(calls, 1)); }
  /// Time per call over the interleaved reference's time per call (NaN without a reference).
  double ratio() const {
    if (ref_calls == 0) return std::nan("");
    return per_call() / (ref_busy / static_cast<double>(ref_calls));
  }
  /// The ratio to the interleaved reference (counter `ratio_name`, when there was one),
  /// allocs_per_call, and GFLOP/s with its fraction of GEMM when flops > 0, GB/s when bytes > 0.
  void report(benchmark::State& state, double flops, double bytes, double gemm,
              const char* ratio_name = "x_gradient") const {
    const double t = per_call();
    if (ref_calls > 0) state.counters[ratio_name] = ratio();
    state.counters["allocs_per_call"] =
        static_cast<double>(allocs) / static_cast<double>(std::max<long long>(calls, 1));
    if (flops > 0) {
      state.counters["GFLOPs"] = flops / t * 1e-9;
      state.counters["gemm_fraction"] = flops / t * 1e-9 / gemm;
    }
    if (bytes > 0) state.counters["GBps"] = bytes / t * 1e-9;
  }
};

/// Registers with real time in milliseconds (OpenMP threads make CPU time meaningless).
template <class F>
benchmark::internal::Benchmark* add(const std::string& name, F&& f) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<F>(f))
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

/// Times op() per benchmark iteration with reference() interleaved (CallMeter), after one
/// untimed call of each: first-touch page faults of freshly sized buffers (tens of ms for the
/// deep MLP's caches, a second for a D² factor) are set-up, not the operation.
template <class Op, class Ref>
CallMeter measure(benchmark::State& state, Op&& op, Ref&& reference) {
  op();
  reference();
  CallMeter m;
  for (auto _ : state) {
    m.start();
    op();
    benchmark::ClobberMemory();
    m.stop();
    m.interleave(state, reference);
  }
  return m;
}

/// Same without a reference (no ratio counter): kernels compared by GFLOP/s alone.
template <class Op>
CallMeter measure(benchmark::State& state, Op&& op) {
  op();
  CallMeter m;
  for (auto _ : state) {
    m.start();
    op();
    benchmark::ClobberMemory();
    m.stop();
  }
  return m;
}

inline void register_gemm() {
  for (int t : {1, 2}) {
    add("BM_Gemm<double>/N:2000/threads:" + std::to_string(t),
        [t](benchmark::State& s) { BM_Gemm<double>(s, t); })
        ->Iterations(5);
    add("BM_Gemm<float>/N:2000/threads:" + std::to_string(t),
        [t](benchmark::State& s) { BM_Gemm<float>(s, t); })
        ->Iterations(5);
    add("BM_GemmEigen<double>/N:2000/threads:" + std::to_string(t),
        [t](benchmark::State& s) { BM_Gemm<double, false>(s, t); })
        ->Iterations(5);
    add("BM_GemmEigen<float>/N:2000/threads:" + std::to_string(t),
        [t](benchmark::State& s) { BM_Gemm<float, false>(s, t); })
        ->Iterations(5);
  }
}

// ---- Yardstick 2: STREAM-like copy bandwidth ----------------------------------------------------
/// Sizes of the copy yardstick: the source array of an in-cache copy (source + destination fit
/// the last-level cache with room, like P1's 6.3 MB X at n = 1,000) and of an out-of-cache one
/// (beyond any cache, like X at n = 10,000: 63 MB).
constexpr Index kStreamInCacheBytes = 6 << 20;
constexpr Index kStreamOutOfCacheBytes = 64 << 20;

inline std::map<std::string, double>& stream_table() {
  static std::map<std::string, double> table;
  return table;
}
inline std::string stream_key(Index bytes, int threads) {
  return std::to_string(bytes) + "/" + std::to_string(threads);
}

/// dst = src over `bytes` of doubles, split into one contiguous range per OpenMP thread (STREAM's
/// Copy kernel); the arrays are allocated and touched once per size and thread count.
struct StreamOperands {
  Vector<double> src, dst;
  static StreamOperands& get(Index bytes) {
    static std::map<Index, StreamOperands> table;
    auto& s = table[bytes];
    if (s.src.size() == 0) {
      s.src = Vector<double>::Constant(bytes / Index(sizeof(double)), 1.0);
      s.dst = Vector<double>::Zero(s.src.size());
    }
    return s;
  }
  void run() {
    const Index n = src.size();
#pragma omp parallel
    {
      Index t = 0, nt = 1;
#ifdef _OPENMP
      t = omp_get_thread_num();
      nt = omp_get_num_threads();
#endif
      const Index begin = n * t / nt, end = n * (t + 1) / nt;
      dst.segment(begin, end - begin) = src.segment(begin, end - begin);
    }
  }
};

/// The copy bandwidth in GB/s (bytes read + bytes written per second, STREAM's convention) for a
/// source of `bytes` on `threads` threads: the best of 20 copies. Measured once per process
/// unless BM_Stream ran first. A kernel that only reads X compares its read bytes with it.
inline double stream_gbps(Index bytes, int threads) {
  auto& table = stream_table();
  const std::string key = stream_key(bytes, threads);
  if (auto it = table.find(key); it != table.end()) return it->second;
  set_threads(threads);
  auto& s = StreamOperands::get(bytes);
  s.run();
  double best = 0;
  for (int i = 0; i < 20; ++i) {
    const auto t0 = Clock::now();
    s.run();
    best = std::max(best, 2.0 * double(bytes) / seconds_since(t0) * 1e-9);
  }
  table[key] = best;
  return best;
}

/// The copy yardstick for a kernel that streams `bytes` per call: in-cache below 16 MB.
inline double stream_gbps_for(double bytes, int threads) {
  return stream_gbps(bytes <= 16e6 ? kStreamInCacheBytes : kStreamOutOfCacheBytes, threads);
}

/// STREAM Copy of a `bytes` source (best iteration's GB/s, the yardstick of bw_fraction).
template <class S>
void BM_Stream(benchmark::State& state, Index bytes, int threads) {
  set_threads(threads);
  auto& s = StreamOperands::get(bytes);
  s.run();
  double best = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    s.run();
    benchmark::DoNotOptimize(s.dst.data());
    benchmark::ClobberMemory();
    best = std::max(best, 2.0 * double(bytes) / seconds_since(t0) * 1e-9);
  }
  stream_table()[stream_key(bytes, threads)] = best;
  state.counters["GBps"] = best;
}

inline void register_stream() {
  for (int t : {1, 2})
    for (Index bytes : {kStreamInCacheBytes, kStreamOutOfCacheBytes})
      add("BM_Stream<double>/MB:" + std::to_string(bytes >> 20) + "/threads:" + std::to_string(t),
          [=](benchmark::State& s) { BM_Stream<double>(s, bytes, t); })
          ->Iterations(20);
}

inline int run_main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_heap_meter();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace ift::bench
