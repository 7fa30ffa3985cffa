// A timing decorator over any Communicator (ift/parallel/communicator.hpp): forwards every call
// to the communicator it wraps and accumulates the wall time spent inside each kind of call,
// the number of calls and the scalars summed. What bench/bench_mpi.cpp uses to separate
// communication from computation (bench/README.md, "More than one process"):
//
//   auto timed = std::make_shared<parallel::TimedCommunicator>(mpi.world());
//   problem.distribute(timed, train_shard, val_shard);
//   ...                                    // hypergradients, hyper-steps
//   timed->totals().sum_seconds            // time inside sum(), waiting for peers included
//
// The time inside a collective includes waiting for the slowest rank to arrive (load
// imbalance), not only the transfer; on a machine with more processes than cores it also
// includes the time the rank was not scheduled, which the CPU time does not (the CPU time of a
// rank that waits is the MPI library's polling). Not thread-safe, like the communicators it wraps: only the
// thread that calls the problem's methods may call it (MPI_THREAD_FUNNELED).
#pragma once

#include <chrono>
#include <cstddef>
#include <ctime>
#include <memory>
#include <string>
#include <utility>

#include "ift/core.hpp"
#include "ift/parallel/communicator.hpp"

namespace ift::parallel {

class TimedCommunicator final : public Communicator {
 public:
  /// What went through the communicator since construction or the last reset().
  struct Totals {
    double sum_seconds = 0;        // inside sum(), both scalar types
    long long sums = 0;            // calls of sum()
    double summed_scalars = 0;     // Σ n over those calls (doubles and floats)
    double summed_bytes = 0;       // Σ n·sizeof(T): one rank's contribution
    double broadcast_seconds = 0;
    long long broadcasts = 0;
    double broadcast_bytes = 0;
    double barrier_seconds = 0;
    long long barriers = 0;
    /// The calling thread's CPU time inside every collective (CLOCK_THREAD_CPUTIME_ID).
    double cpu_seconds = 0;
    /// Every collective's wall time: sums, broadcasts and barriers.
    double seconds() const { return sum_seconds + broadcast_seconds + barrier_seconds; }
  };

  explicit TimedCommunicator(std::shared_ptr<Communicator> inner) : inner_(std::move(inner)) {
    require(inner_ != nullptr, "TimedCommunicator: no communicator to wrap");
  }

  const Totals& totals() const { return totals_; }
  void reset() { totals_ = Totals{}; }
  const std::shared_ptr<Communicator>& inner() const { return inner_; }

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  void sum(double* x, std::size_t n) override { timed_sum(x, n); }
  void sum(float* x, std::size_t n) override { timed_sum(x, n); }
  void broadcast(void* data, std::size_t n, int root) override {
    const double c0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    inner_->broadcast(data, n, root);
    totals_.broadcast_seconds += since(t0);
    totals_.cpu_seconds += thread_cpu_seconds() - c0;
    ++totals_.broadcasts;
    totals_.broadcast_bytes += static_cast<double>(n);
  }
  void barrier() override {
    const double c0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    inner_->barrier();
    totals_.barrier_seconds += since(t0);
    totals_.cpu_seconds += thread_cpu_seconds() - c0;
    ++totals_.barriers;
  }
  std::string name() const override { return "timed(" + inner_->name() + ")"; }

 private:
  using Clock = std::chrono::steady_clock;
  static double since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

 public:
  /// The calling thread's CPU time in seconds (POSIX CLOCK_THREAD_CPUTIME_ID).
  static double thread_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
  }

 private:
  template <class T>
  void timed_sum(T* x, std::size_t n) {
    const double c0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    inner_->sum(x, n);
    totals_.sum_seconds += since(t0);
    totals_.cpu_seconds += thread_cpu_seconds() - c0;
    ++totals_.sums;
    totals_.summed_scalars += static_cast<double>(n);
    totals_.summed_bytes += static_cast<double>(n * sizeof(T));
  }

  std::shared_ptr<Communicator> inner_;
  Totals totals_;
};

}  // namespace ift::parallel
