#include "ift/torch/distributed.hpp"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace ift::deep {

void DistributedConfig::check() const {
  require(backend == "gloo" || backend == "nccl",
          "DistributedConfig::backend must be gloo or nccl (got '" + backend + "')");
  require(world_size >= 1, "DistributedConfig::world_size must be >= 1");
  require(rank >= 0 && rank < world_size,
          "DistributedConfig::rank must lie in [0, world_size) (got " + std::to_string(rank) +
              " of " + std::to_string(world_size) + ")");
  require(master_port >= 1 && master_port <= 65535,
          "DistributedConfig::master_port must lie in [1, 65535]");
  require(!master_addr.empty(), "DistributedConfig::master_addr is empty");
  require(timeout.count() > 0, "DistributedConfig::timeout must be positive");
}

using parallel::env_integer;

std::optional<DistributedConfig> distributed_config_from_env(const std::string& backend) {
  std::optional<long> size = env_integer("WORLD_SIZE");
  std::optional<long> rank = env_integer("RANK");
  if (!size) {
    size = env_integer("OMPI_COMM_WORLD_SIZE");
    rank = env_integer("OMPI_COMM_WORLD_RANK");
  }
  if (!size || *size == 1) return std::nullopt;
  if (!rank) throw std::invalid_argument("environment: WORLD_SIZE is set but RANK is not");
  DistributedConfig c;
  c.backend = backend;
  c.world_size = static_cast<int>(*size);
  c.rank = static_cast<int>(*rank);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) c.master_addr = addr;
  if (const auto port = env_integer("MASTER_PORT")) c.master_port = static_cast<int>(*port);
  if (const auto seconds = env_integer("IFT_DIST_TIMEOUT"))
    c.timeout = std::chrono::seconds(*seconds);
  c.check();
  return c;
}

struct ProcessGroupCommunicator::Impl {
  DistributedConfig config;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  ::torch::Device device{::torch::kCPU};

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) const {
    try {
      work->wait(config.timeout);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("torch.distributed (") + config.backend + ", rank " +
                               std::to_string(config.rank) + " of " +
                               std::to_string(config.world_size) + "): " + what +
                               " failed or timed out after " +
                               std::to_string(config.timeout.count()) + " ms: " + e.what());
    }
  }
};

ProcessGroupCommunicator::ProcessGroupCommunicator(const DistributedConfig& config)
    : impl_(std::make_unique<Impl>()) {
  config.check();
  impl_->config = config;
  const std::string where = config.master_addr + ":" + std::to_string(config.master_port);
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(config.master_port);
    options.isServer = config.rank == 0;
    options.numWorkers = static_cast<std::size_t>(config.world_size);
    options.waitWorkers = true;
    options.timeout = config.timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(config.master_addr, options);
    if (config.backend == "gloo") {
      auto gloo = c10d::ProcessGroupGloo::Options::create(config.timeout);
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(config.master_addr));
      impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, config.rank,
                                                                 config.world_size, gloo);
    } else {
#if defined(USE_C10D_NCCL)
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = config.timeout;
      impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, config.rank,
                                                                 config.world_size, nccl);
      impl_->device = ::torch::Device(::torch::kCUDA, ::torch::cuda::device_count() > 0
                                                         ? config.rank % static_cast<int>(::torch::cuda::device_count())
                                                         : 0);
#else
      throw std::runtime_error("this LibTorch was built without NCCL (use --backend gloo)");
#endif
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("torch.distributed: cannot join the " + config.backend +
                             " process group at " + where + " as rank " +
                             std::to_string(config.rank) + " of " +
                             std::to_string(config.world_size) + ": " + e.what());
  }
}

ProcessGroupCommunicator::~ProcessGroupCommunicator() = default;

int ProcessGroupCommunicator::rank() const { return impl_->config.rank; }
int ProcessGroupCommunicator::size() const { return impl_->config.world_size; }
std::string ProcessGroupCommunicator::name() const { return impl_->config.backend; }

void ProcessGroupCommunicator::sum(::torch::Tensor& t) {
  const int n = size();
  if (n == 1) return;
  require(t.is_contiguous(), "ProcessGroupCommunicator::sum: the tensor must be contiguous");
  std::vector<::torch::Tensor> input{t};
  std::vector<std::vector<::torch::Tensor>> output(1);
  for (int r = 0; r < n; ++r) output[0].push_back(::torch::empty_like(t));
  impl_->wait(impl_->group->allgather(output, input), "allgather (sum)");
  ::torch::NoGradGuard no_grad;
  ::torch::Tensor s = output[0][0].clone();
  for (int r = 1; r < n; ++r) s.add_(output[0][static_cast<std::size_t>(r)]);
  t.copy_(s);
}

double ProcessGroupCommunicator::sum(double x) {
  sum(&x, 1);
  return x;
}

void ProcessGroupCommunicator::sum(double* x, std::size_t n) {
  if (size() == 1 || n == 0) return;
  ::torch::Tensor t = ::torch::from_blob(x, {static_cast<std::int64_t>(n)}, ::torch::kDouble)
                          .to(impl_->device);
  sum(t);
  ::torch::from_blob(x, {static_cast<std::int64_t>(n)}, ::torch::kDouble).copy_(t.cpu());
}

void ProcessGroupCommunicator::sum(float* x, std::size_t n) {
  if (size() == 1 || n == 0) return;
  ::torch::Tensor t = ::torch::from_blob(x, {static_cast<std::int64_t>(n)}, ::torch::kFloat)
                          .to(impl_->device);
  sum(t);
  ::torch::from_blob(x, {static_cast<std::int64_t>(n)}, ::torch::kFloat).copy_(t.cpu());
}

void ProcessGroupCommunicator::broadcast(void* data, std::size_t n, int root) {
  if (size() == 1 || n == 0) return;
  ::torch::Tensor host = ::torch::from_blob(data, {static_cast<std::int64_t>(n)}, ::torch::kUInt8);
  std::vector<::torch::Tensor> tensors{host.to(impl_->device)};
  c10d::BroadcastOptions options;
  options.rootRank = root;
  impl_->wait(impl_->group->broadcast(tensors, options), "broadcast");
  host.copy_(tensors[0].cpu());
}

void ProcessGroupCommunicator::barrier() {
  if (size() == 1) return;
  impl_->wait(impl_->group->barrier(), "barrier");
}

}  // namespace ift::deep
