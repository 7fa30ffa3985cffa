#!/usr/bin/env bash
# The installed package, used from outside: `cmake --install` the build tree into a prefix under
# it, configure tests/install/consumer against that prefix alone (CMAKE_PREFIX_PATH), build and
# run it; when ift routes Eigen to OpenBLAS, check that the consumer and an installed app load
# the OpenBLAS ift was linked with (the OpenMP build), not Debian's default alternative.
# With ift::mpi, the consumer of the `mpi` component runs a sum under mpiexec on 1 and 2
# processes; with ift::torch_distributed, the torch consumer links it too.
# Registered with CTest as install.consumer (tests/CMakeLists.txt).
# Usage: run.sh CMAKE BUILD_DIR CONSUMER_SOURCE CXX_COMPILER WITH_TORCH(ON|OFF) BLAS_DIR|none
#               [WITH_TORCH_DISTRIBUTED(ON|OFF) MPIEXEC|none]
set -euo pipefail
cmake=$1 build=$2 consumer_src=$3 cxx=$4 with_torch=$5 blas_dir=$6
with_torch_distributed=${7:-OFF} mpiexec=${8:-none}
with_mpi=OFF
[ "$mpiexec" != none ] && with_mpi=ON
work=$build/install-test
prefix=$work/prefix
log=$work/log.txt
rm -rf "$work"
mkdir -p "$work"
: >"$log"
step() { echo "install.consumer: $*"; }
fail() { echo "install.consumer: FAILED: $*" >&2; exit 1; }
run_logged() {  # command...: output to the log, shown on failure
  if ! "$@" >>"$log" 2>&1; then tail -60 "$log" >&2; fail "$*"; fi
}
start=$SECONDS

step "cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" >>"$log" 2>&1 ||
  { tail -20 "$log" >&2; fail "cmake --install (is everything built? scripts/build.sh builds all)"; }
[ -f "$prefix/lib/cmake/ift/iftConfig.cmake" ] || fail "no iftConfig.cmake under $prefix/lib/cmake/ift"
# The installed package must not point back into the source or build tree.
src_root=$(cd "$consumer_src/../../.." && pwd)
if grep -rlF -e "$src_root/" -e "$build/" "$prefix/lib/cmake/ift" | grep -q .; then
  grep -rnF -e "$src_root/" -e "$build/" "$prefix/lib/cmake/ift" | head -5 >&2
  fail "the installed CMake files name the source or build tree"
fi

step "configure the consumer (torch: $with_torch, torch_distributed: $with_torch_distributed, mpi: $with_mpi)"
run_logged "$cmake" -S "$consumer_src" -B "$work/consumer" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DIFT_CONSUMER_TORCH="$with_torch" \
  -DIFT_CONSUMER_TORCH_DISTRIBUTED="$with_torch_distributed" -DIFT_CONSUMER_MPI="$with_mpi"
found=$(sed -n 's/^ift_DIR:PATH=//p' "$work/consumer/CMakeCache.txt")
[ "$found" = "$prefix/lib/cmake/ift" ] || fail "the consumer found ift in '$found', not in $prefix"

step "build the consumer"
run_logged "$cmake" --build "$work/consumer" -j2

step "run it"
"$work/consumer/consumer" || fail "consumer"
if [ "$with_torch" = ON ]; then
  "$work/consumer/consumer_torch" || fail "consumer_torch"
fi
if [ "$with_mpi" = ON ]; then
  # As root (CI), Open MPI needs OMPI_ALLOW_RUN_AS_ROOT*; loopback transports only.
  for np in 1 2; do
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader,tcp \
      timeout 120 "$mpiexec" -n "$np" --oversubscribe "$work/consumer/consumer_mpi" ||
      fail "consumer_mpi under $mpiexec -n $np"
  done
fi

if [ "$blas_dir" != none ]; then
  # ldd prints the resolution the dynamic loader makes: "libopenblas.so.0 => /path (0x...)".
  check_blas() {  # executable
    local resolved
    resolved=$(ldd "$1" | awk '$1 == "libopenblas.so.0" { print $3 }')
    [ -n "$resolved" ] || fail "$1 does not load libopenblas.so.0"
    [ "$(dirname "$resolved")" = "$blas_dir" ] ||
      fail "$1 loads $resolved, not the OpenBLAS ift was linked with ($blas_dir)"
    step "$(basename "$1") loads $resolved"
  }
  check_blas "$work/consumer/consumer"
  installed_app=$prefix/bin/ift-compare
  if [ -x "$installed_app" ]; then
    readelf -d "$installed_app" | grep -E 'R(UN)?PATH' | grep -qF "$blas_dir" ||
      fail "the installed ift-compare has no RUNPATH to $blas_dir"
    check_blas "$installed_app"
  fi
fi
step "passed in $((SECONDS - start)) s"
