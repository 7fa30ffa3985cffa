// The communicator seam (ift/parallel/communicator.hpp) on MPI (Debian's Open MPI 4.1), for the
// Eigen problems. Built as ift::mpi when IFT_WITH_MPI finds MPI; the core library does not
// depend on it.
//
//   int main(int argc, char** argv) {
//     ift::mpi::Environment mpi(argc, argv);   // MPI_Init only under an MPI launcher
//     auto comm = mpi.world();                 // MpiCommunicator, or SelfCommunicator
//     problem.distribute(comm, contiguous_shard(...), ...);
//   }
#pragma once

#include <memory>

#include "ift/parallel/communicator.hpp"

namespace ift::mpi {

/// True when this process was started by an MPI launcher (mpirun / mpiexec / srun set the
/// process-manager variables OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK).
bool launched_by_mpi();

/// Ends every process of the job with exit code `code` (MPI_Abort on MPI_COMM_WORLD): what an
/// error on one rank must do, since the others would wait for it in their next collective.
[[noreturn]] void abort(int code);

/// MPI for the lifetime of the object: initialised (MPI_THREAD_FUNNELED: OpenMP threads never
/// call MPI) when launched by an MPI launcher and not yet initialised, finalised at
/// destruction if this object initialised it. Without a launcher nothing is initialised and
/// world() is a SelfCommunicator, so the same binary runs alone.
class Environment {
 public:
  Environment(int& argc, char**& argv);
  ~Environment();
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;

  bool active() const { return active_; }
  /// MPI_COMM_WORLD as a Communicator (errors are returned and thrown as std::runtime_error
  /// naming the call), or a SelfCommunicator when MPI is not active. Every collective waits at
  /// most IFT_DIST_TIMEOUT seconds (default 120, as the torch.distributed path): past that, a
  /// peer hangs or died, and the rank prints the collective and its rank and ends the job
  /// (MPI_Abort, exit code 1). Test hook: IFT_TEST_HANG_RANK=r makes rank r hang (sleep)
  /// before its collective number IFT_TEST_HANG_AFTER (default 0, counted from 0).
  std::shared_ptr<parallel::Communicator> world() const;

 private:
  bool active_ = false;
  bool owner_ = false;
};

}  // namespace ift::mpi
