#include "ift/mpi/communicator.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
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

/// MPI_COMM_WORLD (duplicated, errors returned rather than aborting).
class MpiCommunicator final : public parallel::Communicator {
 public:
  MpiCommunicator() {
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
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
      check(MPI_Bcast(bytes, chunk, MPI_BYTE, root, comm_), "MPI_Bcast");
      bytes += chunk;
      n -= static_cast<std::size_t>(chunk);
    }
  }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }
  std::string name() const override { return "mpi"; }

 private:
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
      check(MPI_Allgather(x + offset, static_cast<int>(count), datatype<T>(), all.data(),
                          static_cast<int>(count), datatype<T>(), comm_),
            "MPI_Allgather");
      for (std::size_t i = 0; i < count; ++i) {
        T s = all[i];
        for (int r = 1; r < size_; ++r) s += all[static_cast<std::size_t>(r) * count + i];
        x[offset + i] = s;
      }
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
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
