// Uses the installed ift::torch: the library's conjugate gradient on flat LibTorch tensors
// (VectorSpace<torch::Tensor>) for a small SPD system, and ift::deep::flatten from the adapter
// library; with ift::torch_distributed (IFT_HAVE_TORCH_DISTRIBUTED, set by that target), the
// torchrun variables parsed by the installed library. Exit status 0 on success, 1 with a message
// on failure.
#include <cstdio>
#include <cstdlib>

#include <torch/torch.h>

#include <ift/linalg/cg.hpp>
#include <ift/linalg/operators.hpp>
#include <ift/torch/problem.hpp>
#include <ift/torch/tensor_space.hpp>
#ifdef IFT_HAVE_TORCH_DISTRIBUTED
#include <ift/torch/distributed.hpp>
#endif

int main() {
  torch::manual_seed(1);
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  const torch::Tensor B = torch::randn({20, 20}, options);
  const torch::Tensor H = B.mm(B.t()) + torch::eye(20, options);
  // g as the flat concatenation of two tensors, by the adapter library.
  const torch::Tensor g = ift::deep::flatten({torch::ones({12}, options), torch::arange(8, options)},
                                             {torch::zeros({12}, options), torch::zeros({8}, options)});
  if (g.numel() != 20) {
    std::fprintf(stderr, "consumer_torch: FAILED: flatten gave %ld entries\n", long(g.numel()));
    return 1;
  }
  const ift::FunctionOperator<torch::Tensor> op(
      20, [&H](const torch::Tensor& x, torch::Tensor& y) { y = H.mv(x); });
  ift::CgParams params;
  params.max_iterations = 100;
  params.tolerance = 1e-12;
  const auto r = ift::conjugate_gradient(op, g, params);
  const double residual = ((H.mv(r.x) - g).norm() / g.norm()).item<double>();
  if (r.status != ift::SolverStatus::Converged || !(residual < 1e-9)) {
    std::fprintf(stderr, "consumer_torch: FAILED: cg status %s, residual %g\n",
                 ift::to_string(r.status), residual);
    return 1;
  }
#ifdef IFT_HAVE_TORCH_DISTRIBUTED
  // One process (no WORLD_SIZE) is no group; WORLD_SIZE=4, RANK=3 with a master is rank 3 of 4.
  unsetenv("WORLD_SIZE");
  unsetenv("OMPI_COMM_WORLD_SIZE");
  const bool alone = !ift::deep::distributed_config_from_env("gloo").has_value();
  setenv("WORLD_SIZE", "4", 1);
  setenv("RANK", "3", 1);
  setenv("MASTER_ADDR", "node-0", 1);
  setenv("MASTER_PORT", "29512", 1);
  const auto config = ift::deep::distributed_config_from_env("gloo");
  if (!alone || !config || config->rank != 3 || config->world_size != 4 ||
      config->master_addr != "node-0" || config->master_port != 29512) {
    std::fprintf(stderr, "consumer_torch: FAILED: torch.distributed configuration from the environment\n");
    return 1;
  }
  std::printf("consumer_torch: ift::torch_distributed linked, rank %d of %d at %s:%d\n", config->rank,
              config->world_size, config->master_addr.c_str(), config->master_port);
#endif
  std::printf("consumer_torch: cg on tensors, residual %.2e in %ld iterations\n", residual,
              static_cast<long>(r.iterations));
  return 0;
}
