// MLPs 784-256-10 and 784-1000-1000-10 (tanh, softmax cross-entropy; 1,796,010 weights and as
// many per-weight decay hyperparameters for the deep one) on 1,000 Fashion-MNIST rows: gradient,
// HVPs, Gauss-Newton and mixed products, each method's hypergradient for k in {1, 5, 20}, and one
// Algorithm-2 hyper-step (5 SGD steps + neumann(5) + outer step) against 5 plain SGD steps; in
// double and float, on 1 and 2 threads. The solver benchmarks (cg, neumann, unrolled, identity,
// kfac) run at the Glorot point (/point:init) and at a trained point (/point:trained: L-BFGS to a
// local minimum once, cached in bench-cache/ beside the binary). BM_HvpBlock_*: nystrom's k
// column products as one batched R-operator against k sequential HVPs. Counters: bench_common.hpp.
#include "bench_common.hpp"

int main(int argc, char** argv) {
  using namespace ift::bench;
  register_gemm();
  const std::vector<ift::Index> sizes{1000}, ks{1, 5, 20};
  register_model<MlpSmallTag, double>(sizes, ks, /*step_sizes=*/sizes);
  register_model<MlpSmallTag, float>(sizes, ks, sizes);
  register_model<MlpDeepTag, double>(sizes, ks, sizes);
  register_model<MlpDeepTag, float>(sizes, ks, sizes);
  for (ift::Index k : {8, 20})
    for (int t : {1, 2}) {
      const std::string suffix =
          "/n:1000/k:" + std::to_string(k) + "/threads:" + std::to_string(t);
      add(std::string("BM_HvpBlock_") + MlpSmallTag::name + "<double>" + suffix,
          [=](benchmark::State& st) { BM_HvpBlock<MlpSmallTag, double>(st, 1000, k, t); });
      add(std::string("BM_HvpBlock_") + MlpDeepTag::name + "<double>" + suffix,
          [=](benchmark::State& st) { BM_HvpBlock<MlpDeepTag, double>(st, 1000, k, t); });
      add(std::string("BM_HvpBlock_") + MlpDeepTag::name + "<float>" + suffix,
          [=](benchmark::State& st) { BM_HvpBlock<MlpDeepTag, float>(st, 1000, k, t); });
    }
  return run_main(argc, argv);
}
