#!/usr/bin/env bash
# The measurement behind IFT_USE_BLAS=AUTO: the same key benchmarks built against OpenBLAS (A, the
# default build in build-bench) and against Eigen's own kernels (B, build-eigen), run alternately
# A, B, A, B, A, B so that the shared machine's drift hits both; plots/bench_ab.py prints the
# median of the three rounds per benchmark. About 10 minutes on 2 cores (5 of them building).
#   scripts/bench-blas-vs-eigen.sh          JSON in results/bench-ab/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT_DIR:-$root/results/bench-ab}
"$root/scripts/setup-deps.sh"
common=(-DIFT_BUILD_TESTS=OFF -DIFT_BUILD_APPS=OFF -DIFT_WITH_TORCH=OFF -DIFT_BUILD_BENCHMARKS=ON)
cmake -S "$root" -B "$root/build-bench" "${common[@]}" -DIFT_USE_BLAS=AUTO >/dev/null
cmake -S "$root" -B "$root/build-eigen" "${common[@]}" -DIFT_USE_BLAS=OFF >/dev/null
for d in build-bench build-eigen; do cmake --build "$root/$d" --target bench_logreg bench_mlp -j2; done
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
logreg='^BM_(Gradient|HvpCached|Neumann|Cg|HyperStep|InnerSteps5)_LogReg<(double|float)>/n:1000/(k:5/)?threads:(1|2)|^BM_(Hessian|Cholesky|DensePath)_LogReg<double>/n:1000/threads:2'
mlp='^BM_(Gradient|HvpCached|GaussNewton)_Mlp784x256x10<(double|float)>/n:1000/threads:2|^BM_(Gradient|HvpCached|HyperStep|InnerSteps5)_Mlp784x1000x1000x10<double>/n:1000/threads:2|^BM_Neumann_Mlp784x1000x1000x10<double>/n:1000/k:5/threads:2'
mkdir -p "$out"
for round in 1 2 3; do
  for variant in A B; do
    dir=$root/build-bench
    [[ $variant == B ]] && dir=$root/build-eigen
    "$dir/bin/bench_logreg" --benchmark_filter="$logreg" --benchmark_min_time=0.05 \
      --benchmark_out="$out/$variant$round-logreg.json" --benchmark_out_format=json >/dev/null
    "$dir/bin/bench_mlp" --benchmark_filter="$mlp" --benchmark_min_time=0.05 \
      --benchmark_out="$out/$variant$round-mlp.json" --benchmark_out_format=json >/dev/null
  done
done
/usr/bin/python3 "$root/plots/bench_ab.py" "$out"
