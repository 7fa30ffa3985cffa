#include "ift/mpi/communicator.hpp"

#include <mpi.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ift::mpi {
namespace {

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string("MPI: ") + call + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

template <class T>
MPI_Datatype datatype();
template <>
MPI_Datatype datatype<double>() { return MPI_DOUBLE; }
template <>
MPI_Datatype datatype<float>() { return MPI_FLOAT; }

/// A positive integer of seconds from the environment variable `name` (nothing when unset or
/// empty); anything else is an error naming the variable.
std::optional<long> env_seconds(const char* name) {
  const std::optional<long> value = parallel::env_integer(name);
  if (value && *value <= 0)
    throw std::invalid_argument(std::string("environment variable ") + name +
                                ": expected a positive number of seconds, got '" +
                                std::getenv(name) + "'");
  return value;
}

/// MPI_COMM_WORLD (duplicated, errors returned rather than aborting). Every collective is
/// started non-blocking and waited for with a deadline (the watchdog, see wait()).
class MpiCommunicator final : public parallel::Communicator {
 public:
  MpiCommunicator() {
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    timeout_seconds_ = env_seconds("IFT_DIST_TIMEOUT").value_or(120);
    // Test hook (tests/mpi/apps.sh): rank IFT_TEST_HANG_RANK stops answering (sleeps, alive)
    // before its collective number IFT_TEST_HANG_AFTER (0: the first), as a hung peer would.
    if (const char* hang = std::getenv("IFT_TEST_HANG_RANK"); hang && std::atoi(hang) == rank_) {
      const char* after = std::getenv("IFT_TEST_HANG_AFTER");
      hang_before_ = after ? std::atol(after) : 0;
    }
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void sum(double* x, std::size_t n) override { ordered_sum(x, n); }
  void sum(float* x, std::size_t n) override { ordered_sum(x, n); }
  void broadcast(void* data, std::size_t n, int root) override {
    auto* bytes = static_cast<char*>(data);
    while (n > 0) {
      const int chunk = static_cast<int>(std::min<std::size_t>(n, 1u << 30));
      MPI_Request request = MPI_REQUEST_NULL;
      before_collective("MPI_Ibcast");
      check(MPI_Ibcast(bytes, chunk, MPI_BYTE, root, comm_, &request), "MPI_Ibcast");
      wait(request, "MPI_Ibcast");
      bytes += chunk;
      n -= static_cast<std::size_t>(chunk);
    }
  }
  void barrier() override {
    MPI_Request request = MPI_REQUEST_NULL;
    before_collective("MPI_Ibarrier");
    check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
    wait(request, "MPI_Ibarrier");
  }
  std::string name() const override { return "mpi"; }

 private:
  /// Counts collectives; the test hook's rank hangs here (alive, never reaching the call).
  void before_collective(const char* call) {
    if (hang_before_ >= 0 && collectives_ == hang_before_) {
      std::fprintf(stderr, "ift (MPI, rank %d): IFT_TEST_HANG_RANK: hanging before collective #%ld (%s)\n",
                   rank_, collectives_, call);
      std::fflush(stderr);
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    ++collectives_;
  }

  /// The watchdog: waits for a started collective, polling MPI_Test (which also progresses it)
  /// with a short back-off, for at most IFT_DIST_TIMEOUT seconds (default 120). A rank that
  /// hangs without dying would leave every other rank blocked in its next collective forever;
  /// past the deadline this rank prints the collective and its rank and ends the whole job
  /// (MPI_Abort, exit code 1). Open MPI itself ends the job when a rank dies.
  void wait(MPI_Request& request, const char* call) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto deadline = start + std::chrono::seconds(timeout_seconds_);
    auto pause = std::chrono::microseconds(0);
    for (long polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), call);
      if (done) return;
      // Spin briefly (loopback collectives complete in microseconds), then sleep 10 µs growing
      // to 250 µs between polls: waiting ranks leave the cores to the ranks still computing.
      if (polls >= 100) {
        if (clock::now() > deadline) {
          std::fprintf(stderr,
                       "ift (MPI, rank %d of %d): error: %s (collective #%ld) did not complete "
                       "within %ld s (IFT_DIST_TIMEOUT): another rank hangs or died; ending the "
                       "job\n",
                       rank_, size_, call, collectives_ - 1, timeout_seconds_);
          std::fflush(stderr);
          mpi::abort(1);
        }
        pause = std::min(std::chrono::microseconds(250),
                         std::max(std::chrono::microseconds(10), pause * 2));
        std::this_thread::sleep_for(pause);
      }
    }
  }

  /// Every rank gathers every rank's chunk (MPI_Allgather) and adds them in rank order itself:
  /// the same sum, bit for bit, on every rank and in every run, whatever algorithm the MPI
  /// library would pick for MPI_Allreduce. Chunks bound the gather buffer to about 32 MiB.
  template <class T>
  void ordered_sum(T* x, std::size_t n) {
    if (size_ == 1 || n == 0) return;
    const std::size_t per_rank = std::max<std::size_t>(1, (std::size_t{32} << 20) / sizeof(T) / static_cast<std::size_t>(size_));
    std::vector<T> all(std::min(n, per_rank) * static_cast<std::size_t>(size_));
    for (std::size_t offset = 0; offset < n; offset += per_rank) {
      const std::size_t count = std::min(per_rank, n - offset);
      MPI_Request request = MPI_REQUEST_NULL;
      before_collective("MPI_Iallgather");
      check(MPI_Iallgather(x + offset, static_cast<int>(count), datatype<T>(), all.data(),
                           static_cast<int>(count), datatype<T>(), comm_, &request),
            "MPI_Iallgather");
      wait(request, "MPI_Iallgather");
      for (std::size_t i = 0; i < count; ++i) {
        T s = all[i];
        for (int r = 1; r < size_; ++r) s += all[static_cast<std::size_t>(r) * count + i];
        x[offset + i] = s;
      }
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  long timeout_seconds_ = 120;
  long collectives_ = 0;   // started so far
  long hang_before_ = -1;  // test hook: hang before this collective (-1: never)
};

}  // namespace

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

void abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; if it ever did, still end this process
}

Environment::Environment(int& argc, char**& argv) {
  int initialized = 0;
  check(MPI_Initialized(&initialized), "MPI_Initialized");
  if (!initialized && launched_by_mpi()) {
    int provided = 0;
    check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owner_ = true;
    initialized = 1;
  }
  active_ = initialized != 0;
}

Environment::~Environment() {
  if (owner_) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

std::shared_ptr<parallel::Communicator> Environment::world() const {
  if (!active_) return std::make_shared<parallel::SelfCommunicator>();
  return std::make_shared<MpiCommunicator>();
}

}  // namespace ift::mpi
