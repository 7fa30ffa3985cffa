// Uses the installed ift::mpi, run by tests/install/run.sh under `mpiexec -n 1` (MPI initialised,
// the communicator is MPI's) and `-n 2` (a real sum): each rank contributes (rank + 1)·x and the
// rank-order sum must give N(N+1)/2·x, the same bits on every rank (checked by a broadcast of
// rank 0's result). Exit status 0 on success; on failure a message and MPI_Abort (exit 1 for
// every rank, none left waiting in a collective).
#include <cmath>
#include <cstdio>
#include <cstring>

#include <ift/mpi/communicator.hpp>

int main(int argc, char** argv) {
  ift::mpi::Environment mpi(argc, argv);
  if (!mpi.active()) {
    std::fprintf(stderr, "consumer_mpi: FAILED: not started by an MPI launcher (mpiexec)\n");
    return 1;
  }
  const auto comm = mpi.world();
  const int r = comm->rank(), N = comm->size();
  double x[3] = {1.0, -0.5, 1e-3};
  for (double& v : x) v *= r + 1;
  comm->sum(x, 3);
  double root[3];
  std::memcpy(root, x, sizeof x);
  comm->broadcast(root, sizeof root, 0);
  const double factor = 0.5 * N * (N + 1);
  const double expected[3] = {factor, -0.5 * factor, 1e-3 * factor};
  for (int i = 0; i < 3; ++i)
    if (std::abs(x[i] - expected[i]) > 1e-15 * std::abs(expected[i]) || x[i] != root[i]) {
      std::fprintf(stderr, "consumer_mpi: FAILED: rank %d of %d: sum[%d] = %.17g, expected %.17g (rank 0: %.17g)\n",
                   r, N, i, x[i], expected[i], root[i]);
      ift::mpi::abort(1);  // the other ranks may wait in a collective: end them all
    }
  if (comm->name() != "mpi") {
    std::fprintf(stderr, "consumer_mpi: FAILED: communicator %s, expected mpi\n", comm->name().c_str());
    ift::mpi::abort(1);
  }
  comm->barrier();
  if (r == 0) std::printf("consumer_mpi: ift::mpi sum on %d process(es): %g %g %g\n", N, x[0], x[1], x[2]);
  return 0;
}
