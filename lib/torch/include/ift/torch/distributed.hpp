// The communicator seam (ift/parallel/communicator.hpp) on torch.distributed's C++ process
// groups (c10d): Gloo for CPU tensors, NCCL for CUDA tensors, connected through a TCPStore
// (MASTER_ADDR:MASTER_PORT) as torchrun and torch.distributed.launch set it up. A TorchProblem
// that is distribute()d sums its data terms over the group; the solvers, the hypergradient and
// the bilevel loop run unchanged on every rank.
//
//   RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT   (torchrun's variables; or an MPI launcher's
//   OMPI_COMM_WORLD_RANK / OMPI_COMM_WORLD_SIZE with MASTER_ADDR and MASTER_PORT)
//
// Sums are deterministic: every rank gathers every rank's tensor (allgather) and adds them in
// rank order on its own device, so all ranks hold the same bits whatever the backend's
// reduction algorithm. Every collective waits at most `timeout`; a rank that died or never came
// makes the others fail with an error naming the operation instead of hanging.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <torch/torch.h>

#include "ift/parallel/communicator.hpp"
#include "ift/torch/problem.hpp"

namespace ift::deep {

/// Where and how to join a process group.
struct DistributedConfig {
  std::string backend = "gloo";  ///< "gloo" (CPU tensors) or "nccl" (CUDA tensors)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int rank = 0;
  int world_size = 1;
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  /// Checks ranges, naming the field: rank in [0, world_size), port in [1, 65535], backend.
  void check() const;
};

/// The configuration from the environment (RANK / WORLD_SIZE, or Open MPI's
/// OMPI_COMM_WORLD_RANK / _SIZE; MASTER_ADDR default 127.0.0.1, MASTER_PORT default 29500);
/// nothing when no world size is set or it is 1. Throws std::invalid_argument naming a variable
/// that does not parse.
std::optional<DistributedConfig> distributed_config_from_env(const std::string& backend);

/// A c10d process group as a (Tensor)Communicator: sums of tensors on the group's device, and
/// of host data (copied to that device and back).
class ProcessGroupCommunicator final : public TensorCommunicator {
 public:
  /// Joins the group (rank 0 hosts the TCPStore). Throws std::runtime_error naming the
  /// address, the backend and what failed (e.g. the store's timeout when a peer never came).
  explicit ProcessGroupCommunicator(const DistributedConfig& config);
  ~ProcessGroupCommunicator() override;
  ProcessGroupCommunicator(const ProcessGroupCommunicator&) = delete;
  ProcessGroupCommunicator& operator=(const ProcessGroupCommunicator&) = delete;

  int rank() const override;
  int size() const override;
  void sum(double* x, std::size_t n) override;
  void sum(float* x, std::size_t n) override;
  void broadcast(void* data, std::size_t n, int root) override;
  void barrier() override;
  std::string name() const override;

  /// t ← Σ_r t^(r), in rank order, in place (t on the group's device for NCCL; any CPU tensor
  /// for Gloo). Contiguous tensors of any shape and floating dtype.
  void sum(::torch::Tensor& t) override;
  double sum(double x);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ift::deep
