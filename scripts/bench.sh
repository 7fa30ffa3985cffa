#!/usr/bin/env bash
# Builds the Google Benchmark suites and runs a selection that finishes in under ten minutes on
# a 2-core machine; JSON results go to results/bench/ (git-ignored).
#   scripts/bench.sh            the default selection (see FILTER_* below)
#   FULL=1 scripts/bench.sh     every registered benchmark (hours: the deep MLP's k = 20 solvers,
#                               KFAC eigendecompositions and n = 10,000 Hessians are heavy)
#   MIN_TIME=0.5 scripts/bench.sh   longer runs per benchmark (default 0.05 s: one or a few
#                               iterations of the heavy cases)
#   CMAKE_ARGS=-DIFT_USE_BLAS=OFF BUILD_DIR=build-eigen OUT_DIR=results/bench-eigen scripts/bench.sh
#                               the same suites on Eigen's own kernels instead of OpenBLAS
# OMP_WAIT_POLICY=PASSIVE: on a shared 2-core machine spinning OpenMP threads collapse when the
# cores are oversubscribed (DESIGN.md §5); passive waiting costs little when they are not.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
out=${OUT_DIR:-$root/results/bench}
min_time=${MIN_TIME:-0.05}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
start=$(date +%s)
"$root/scripts/setup-deps.sh"

# CMAKE_ARGS: extra configure flags, e.g. CMAKE_ARGS=-DIFT_USE_BLAS=OFF BUILD_DIR=build-eigen
# for the suites on Eigen's own kernels (bench/README.md compares the two).
cmake -S "$root" -B "$build" -DIFT_BUILD_TESTS=OFF -DIFT_BUILD_APPS=OFF -DIFT_WITH_TORCH=OFF \
  -DIFT_BUILD_BENCHMARKS=ON ${CMAKE_ARGS:-} >/dev/null
targets=(bench_logreg bench_mlp)
# Eigen vs OpenBLAS (built when libopenblas-dev is installed: scripts/setup-deps.sh does).
# (grep without -q: an early exit would SIGPIPE cmake and, under pipefail, fail the test)
if cmake --build "$build" --target help | grep bench_openblas >/dev/null; then
  targets+=(bench_openblas)
fi
cmake --build "$build" --target "${targets[@]}" -j2
mkdir -p "$out"

if [[ "${FULL:-0}" == 1 ]]; then
  FILTER_LOGREG='.'
  FILTER_MLP='.'
else
  # GEMM yardsticks; logistic regression n = 1,000 everything (double and float, 1 and 2
  # threads) except KFAC in float; n = 10,000 gradient/HVP/Gauss-Newton/mixed; the dense path at
  # n = 1,000 in double.
  FILTER_LOGREG='^BM_Gemm|^BM_(Gradient|HvpScratch|HvpCached|GaussNewton|MixedProduct)_LogReg|^BM_(Cg|Neumann|Unrolled|Identity|Kfac|InnerSteps5|HyperStep)_LogReg<double>/n:1000/|^BM_(Cg|Neumann|Identity)_LogReg<float>/n:1000/|^BM_(Hessian|Cholesky|DensePath)_LogReg<double>/n:1000/'
  # MLP 784-256-10: everything on 2 threads, components on 1 thread; 784-1000-1000-10: components
  # in double and float on 2 threads, cg/neumann k in {1, 5}, identity, and the Algorithm-2 step.
  FILTER_MLP='^BM_Gemm|_Mlp784x256x10<(double|float)>/n:1000/(k:[0-9]+/)?threads:2|^BM_(Gradient|HvpScratch|HvpCached|GaussNewton|MixedProduct)_Mlp784x256x10<double>/n:1000/threads:1|^BM_(Gradient|HvpScratch|HvpCached|GaussNewton|MixedProduct)_Mlp784x1000x1000x10<(double|float)>/n:1000/threads:2|^BM_(Cg|Neumann)_Mlp784x1000x1000x10<double>/n:1000/k:(1|5)/threads:2|^BM_(Identity|InnerSteps5|HyperStep)_Mlp784x1000x1000x10<double>/n:1000/threads:2'
fi

"$build/bin/bench_logreg" --benchmark_filter="$FILTER_LOGREG" --benchmark_min_time="$min_time" \
  --benchmark_out="$out/bench_logreg.json" --benchmark_out_format=json
"$build/bin/bench_mlp" --benchmark_filter="$FILTER_MLP" --benchmark_min_time="$min_time" \
  --benchmark_out="$out/bench_mlp.json" --benchmark_out_format=json
if [[ -x "$build/bin/bench_openblas" ]]; then
  "$build/bin/bench_openblas" --benchmark_min_time="$min_time" \
    --benchmark_out="$out/bench_openblas.json" --benchmark_out_format=json
fi
# The issue's targets, one row per measured case, from the JSON just written.
if [[ -x /usr/bin/python3 ]]; then
  /usr/bin/python3 "$root/plots/bench_targets.py" "$out/bench_logreg.json" "$out/bench_mlp.json" \
    > "$out/targets.md" && cat "$out/targets.md"
fi
echo "bench.sh: wall time $(( $(date +%s) - start )) s; JSON in $out"
