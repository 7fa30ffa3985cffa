// Uses the installed ift::torch: the library's conjugate gradient on flat LibTorch tensors
// (VectorSpace<torch::Tensor>) for a small SPD system, and ift::deep::flatten from the adapter
// library. Exit status 0 on success, 1 with a message on failure.
#include <cstdio>

#include <torch/torch.h>

#include <ift/linalg/cg.hpp>
#include <ift/linalg/operators.hpp>
#include <ift/torch/problem.hpp>
#include <ift/torch/tensor_space.hpp>

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
  std::printf("consumer_torch: cg on tensors, residual %.2e in %ld iterations\n", residual,
              static_cast<long>(r.iterations));
  return 0;
}
