#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (run before each
# release): configures build-asan with IFT_SANITIZE=address,undefined (every target, UB fatal:
# -fno-sanitize-recover), builds everything but the benchmarks, and runs CTest.
#   LibTorch is off (IFT_WITH_TORCH=OFF): its prebuilt libraries are not instrumented, and ASan's
#   interceptors with an uninstrumented libtorch report its own allocations (and its CUDA probing)
#   as errors, so the Torch adapter's tests say nothing about ift under a sanitizer.
#   OpenBLAS and libgomp are not instrumented either; the code that calls them is.
#   MPI is off too (IFT_WITH_MPI=OFF): Open MPI keeps its own allocations past MPI_Finalize, which
#   LeakSanitizer reports as leaks of every multi-process test; the sharded problems' arithmetic
#   is the same code the single-process suite runs.
# Usage: scripts/sanitize.sh [-R REGEX] [extra CMake configure arguments...]
#   -R REGEX   run only the CTest tests matching REGEX (default: all)
# Environment: IFT_ASAN_BUILD_DIR (default build-asan), ASAN_OPTIONS / UBSAN_OPTIONS (defaults
# below: leaks detected, every report fatal with a stack trace).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${IFT_ASAN_BUILD_DIR:-$root/build-asan}
regex=()
configure=()
while (($#)); do
  case $1 in
    -R) regex=(-R "$2"); shift 2 ;;
    *) configure+=("$1"); shift ;;
  esac
done
# -O2 as the release build (the suite's numerical tests would crawl at -O0) with line tables only
# (-g1: file:line in every report at a fraction of full debug info's compile time).
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DIFT_SANITIZE=address,undefined \
  -DIFT_WITH_TORCH=OFF -DIFT_WITH_MPI=OFF -DIFT_BUILD_BENCHMARKS=OFF "${configure[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
export OMP_WAIT_POLICY=PASSIVE
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Sanitized code runs several times slower: a longer per-test limit than the default build's.
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 3000 "${regex[@]}"
echo "sanitize.sh: the suite passed under address,undefined ($build)"
