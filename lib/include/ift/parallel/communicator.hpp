// The communicator seam (DESIGN.md §4, beside the vector-space seam): what a data-parallel
// problem needs from the engine that connects its processes. Only problems reduce: the solvers,
// the hypergradient composition and the bilevel loop run the same code on every rank, on
// vectors that are already identical everywhere (every reduction ends with the same bits on
// every rank), so they never see the communicator.
//
//   rank(), size()              this process and the number of processes
//   sum(x, n)                   x ← Σ_r x^(r), element-wise, on every rank
//   broadcast(bytes, n, root)   root's bytes to every rank
//   barrier()
//
// Determinism: sum adds the ranks' contributions in rank order, x^(0) + x^(1) + … + x^(N−1),
// on every rank, so a run's numbers do not depend on timing or on the reduction algorithm an
// MPI library picks. Implementations: SelfCommunicator (one process, the default: every call is
// a no-op), MpiCommunicator (Open MPI, lib/mpi, when IFT_WITH_MPI finds it), and one over a
// torch.distributed process group for tensors (planned: issue 12).
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ift/core.hpp"

namespace ift::parallel {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// x ← Σ_r x^(r), summed in rank order on every rank (the same bits everywhere).
  virtual void sum(double* x, std::size_t n) = 0;
  virtual void sum(float* x, std::size_t n) = 0;
  /// Copies `n` bytes at `data` on rank `root` to `data` on every rank.
  virtual void broadcast(void* data, std::size_t n, int root) = 0;
  virtual void barrier() = 0;
  /// "self", "mpi", …: for messages and CSV comments.
  virtual std::string name() const = 0;
};

/// One process: rank 0 of 1; sums and broadcasts leave their data as it is.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void sum(double*, std::size_t) override {}
  void sum(float*, std::size_t) override {}
  void broadcast(void*, std::size_t, int) override {}
  void barrier() override {}
  std::string name() const override { return "self"; }
};

/// The rows of a data set that one rank holds: [begin, begin + count) of `total`.
struct Shard {
  Index begin = 0;
  Index count = 0;
  Index total = 0;
  /// This shard's weight in a mean over all rows: count / total.
  double weight() const { return total > 0 ? static_cast<double>(count) / static_cast<double>(total) : 0.0; }
};

/// Contiguous row ranges (the default sharding): with total = q·N + m, ranks r < m hold q + 1
/// rows and the others q, in rank order, so shard sizes differ by at most one row (no product
/// that could overflow). Throws when a rank would hold no row (more processes than rows).
inline Shard contiguous_shard(Index total, int rank, int size) {
  require(size >= 1 && rank >= 0 && rank < size,
          "contiguous_shard: rank " + std::to_string(rank) + " of " + std::to_string(size));
  require(total >= size, "contiguous_shard: " + std::to_string(total) + " rows cannot be shared by " +
                             std::to_string(size) + " processes (each needs at least one row)");
  const Index q = total / size, m = total % size, r = rank;
  return Shard{q * r + std::min(r, m), q + (r < m ? 1 : 0), total};
}

/// An integer from the environment variable `name` (the launchers' RANK, WORLD_SIZE, …, and
/// IFT_DIST_TIMEOUT): nothing when unset or empty; anything but a whole integer is an error naming
/// the variable.
inline std::optional<long> env_integer(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0')
    throw std::invalid_argument(std::string("environment variable ") + name +
                                ": expected an integer, got '" + text + "'");
  return value;
}

/// What a problem's distribute() checks of each shard it is given: it lies in its set and
/// matches the `local` rows the problem was built on (an error naming `who` and `what`).
inline void require_shard(const std::string& who, const char* what, const Shard& s, Index local) {
  require(s.count == local && s.begin >= 0 && s.begin + s.count <= s.total,
          who + ": the " + what + " shard [" + std::to_string(s.begin) + ", " +
              std::to_string(s.begin + s.count) + ") of " + std::to_string(s.total) +
              " rows does not match the " + std::to_string(local) + " local rows");
}

/// Σ over ranks of a vector or matrix (contiguous storage), in place.
template <class Derived>
void sum(Communicator& comm, Eigen::PlainObjectBase<Derived>& x) {
  comm.sum(x.data(), static_cast<std::size_t>(x.size()));
}
/// Σ over ranks of a scalar.
template <class S>
S sum(Communicator& comm, S x) {
  comm.sum(&x, 1);
  return x;
}

/// A data-parallel problem's data term: this rank's mean over its rows, weighted by its share
/// (count/total), summed over the ranks. Without a communicator (one process) the value is left
/// as it is, bit for bit.
template <class Derived>
void sum_shares(Communicator* comm, Eigen::PlainObjectBase<Derived>& x, const Shard& shard) {
  if (comm == nullptr) return;
  x *= static_cast<typename Derived::Scalar>(shard.weight());
  sum(*comm, x);
}
template <class T>
  requires std::is_arithmetic_v<T>
T sum_shares(Communicator* comm, T x, const Shard& shard) {
  if (comm == nullptr) return x;
  return sum(*comm, static_cast<T>(x * static_cast<T>(shard.weight())));
}

}  // namespace ift::parallel
