#!/usr/bin/env bash
# GPU check of the LibTorch adapter (docs/torch.md): configure a build against the PyTorch
# installation's LibTorch (CUDA), build only the torch targets, run the Eigen-vs-LibTorch
# cross-checks on the device, time the deep-net operations on the device and on the CPU, run a
# short ift-deep job on the device, and print a summary. Exit status: 0 when every cross-check
# passed, 1 when one failed, 2 when nothing could be built.
#
# Made for a machine with a GPU, CUDA, CMake and PyTorch but no internet and no apt packages:
#   - Torch_DIR from $Torch_DIR, else python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'
#     + /Torch, else Debian's /usr/lib/x86_64-linux-gnu/cmake/Torch;
#   - apt-only dependencies may be missing: GTest, Google Benchmark and Boost parts are turned off
#     when absent (ift-torch-check replaces the gtest suite); when the top-level project cannot
#     be configured at all (Spectra or Eigen missing, find_package(... REQUIRED) there), a minimal
#     wrapper project builds ift + lib/torch alone;
#   - Eigen's, Spectra's, LBFGSpp's and zlib's headers can be carried from a machine that has them:
#     run `scripts/gpu-check.sh --stage-deps` there (copies them under build-gpu-deps/, an
#     ignored folder) and carry that folder along; this script then finds them.
#
# Options (environment variables in brackets):
#   --device NAME     cuda (default) or cpu, to rehearse the script on a CPU-only machine [IFT_GPU_DEVICE]
#   --build-dir DIR   build folder (default build-gpu) [IFT_GPU_BUILD_DIR]
#   --deps DIR        staged headers (default build-gpu-deps) [IFT_GPU_DEPS]
#   --jobs N          parallel compile jobs (default: nproc) [IFT_GPU_JOBS]
#   --quick           skip the timings and the ift-deep run
#   --stage-deps      only copy Eigen/Spectra/LBFGSpp/zlib headers (and libz) into --deps, then exit
#   [IFT_GPU_FORCE_WRAPPER=1] skip the top-level project (to rehearse the wrapper path)
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
device=${IFT_GPU_DEVICE:-cuda}
build=${IFT_GPU_BUILD_DIR:-$root/build-gpu}
deps=${IFT_GPU_DEPS:-$root/build-gpu-deps}
jobs=${IFT_GPU_JOBS:-$(nproc 2>/dev/null || echo 4)}
quick=0
stage=0
while [ $# -gt 0 ]; do
  case $1 in
    --device) device=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --deps) deps=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --stage-deps) stage=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
  esac
done
case $build in /*) ;; *) build=$root/$build ;; esac
case $deps in /*) ;; *) deps=$root/$deps ;; esac

log=$build/gpu-check.log
summary=()
note() { echo "== $*"; summary+=("$*"); }

# ---- --stage-deps: copy header-only dependencies for carrying ----------------------------------
if [ $stage -eq 1 ]; then
  mkdir -p "$deps"
  [ -d /usr/include/eigen3 ] && cp -r /usr/include/eigen3 "$deps/" && echo "staged eigen3"
  [ -d /usr/include/Spectra ] && mkdir -p "$deps/spectra" && cp -r /usr/include/Spectra "$deps/spectra/" &&
    echo "staged Spectra"
  # LBFGSpp (header-only; lbfgs_solve in lib/src/inner.cpp)
  [ -f /usr/include/LBFGS.h ] && mkdir -p "$deps/lbfgspp" &&
    cp -r /usr/include/LBFGS.h /usr/include/LBFGSpp "$deps/lbfgspp/" && echo "staged LBFGSpp"
  if [ -f /usr/include/zlib.h ]; then
    mkdir -p "$deps/zlib/include" "$deps/zlib/lib"
    cp /usr/include/zlib.h /usr/include/zconf.h "$deps/zlib/include/" 2>/dev/null
    cp /usr/include/x86_64-linux-gnu/zconf.h "$deps/zlib/include/" 2>/dev/null
    cp -L /usr/lib/x86_64-linux-gnu/libz.so.1 "$deps/zlib/lib/libz.so" 2>/dev/null
    echo "staged zlib"
  fi
  du -sh "$deps"
  exit 0
fi

mkdir -p "$build"
: > "$log"
echo "gpu-check: root $root, build $build, device $device, log $log"

# ---- The machine ----------------------------------------------------------------------------
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/gpu: /'
fi
python=$(command -v python3 || true)
torch_dir=${Torch_DIR:-}
if [ -z "$torch_dir" ] && [ -n "$python" ]; then
  prefix=$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
  [ -n "$prefix" ] && torch_dir=$prefix/Torch
  "$python" -c 'import torch; print("pytorch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available(), "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI)' 2>/dev/null
fi
[ -z "$torch_dir" ] && torch_dir=/usr/lib/x86_64-linux-gnu/cmake/Torch
if [ ! -f "$torch_dir/TorchConfig.cmake" ]; then
  echo "gpu-check: no TorchConfig.cmake under $torch_dir (set Torch_DIR)" >&2
  exit 2
fi
echo "Torch_DIR: $torch_dir"

# A CUDA LibTorch's CMake config needs the CUDA toolkit (nvcc and headers).
cuda_args=()
for cuda in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -n "$cuda" ] && [ -x "$cuda/bin/nvcc" ]; then
    cuda_args=(-DCUDAToolkit_ROOT="$cuda" -DCUDA_TOOLKIT_ROOT_DIR="$cuda" -DCMAKE_CUDA_COMPILER="$cuda/bin/nvcc")
    echo "CUDA toolkit: $cuda"
    break
  fi
done

# ---- Which optional parts exist here --------------------------------------------------------
have_cmake_package() {  # name: a throwaway find_package in script mode is unreliable; probe files
  local name=$1
  for d in /usr/lib/x86_64-linux-gnu/cmake /usr/lib/cmake /usr/local/lib/cmake /usr/share/cmake \
           /usr/local/lib64/cmake /usr/lib64/cmake; do
    ls "$d" 2>/dev/null | grep -qi "^$name" && return 0
  done
  return 1
}
tests=OFF; bench=OFF
have_cmake_package GTest && tests=ON
have_cmake_package benchmark && bench=ON
echo "GTest: $tests, Google Benchmark: $bench"

extra=()
[ -d "$deps/eigen3" ] && extra+=(-DEIGEN3_INCLUDE_DIR="$deps/eigen3")
[ -f "$deps/lbfgspp/LBFGS.h" ] && extra+=(-DLBFGSPP_INCLUDE_DIR="$deps/lbfgspp")
common=(-DCMAKE_BUILD_TYPE=Release -DIFT_WITH_TORCH=ON -DTorch_DIR="$torch_dir"
        -DIFT_BUILD_APPS=OFF -DIFT_BUILD_TESTS=$tests -DIFT_BUILD_BENCHMARKS=$bench
        "${cuda_args[@]}" "${extra[@]}")

# ---- Configure: the real project first, the wrapper if that fails ---------------------------
configured=0
if [ "${IFT_GPU_FORCE_WRAPPER:-0}" != 1 ] && cmake -S "$root" -B "$build" "${common[@]}" >>"$log" 2>&1; then
  configured=1
  note "configured the top-level project"
else
  echo "gpu-check: the top-level project did not configure (see $log); using the wrapper project"
  wrapper=$build/wrapper-src
  wbuild=$build/wrapper
  mkdir -p "$wrapper"
  cat > "$wrapper/CMakeLists.txt" <<EOF
# Minimal stand-in for the top level: ift from lib/src and lib/torch, no Spectra, no apps.
cmake_minimum_required(VERSION 3.20)
project(ift_gpu_check LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY \${PROJECT_BINARY_DIR}/bin)
set(IFT_BUILD_TESTS $tests)
set(IFT_BUILD_BENCHMARKS $bench)
set(IFT_USE_OPENMP OFF)
set(IFT_NATIVE ON)
find_package(Eigen3 3.4 NO_MODULE QUIET)
if(NOT TARGET Eigen3::Eigen)
  add_library(Eigen3::Eigen INTERFACE IMPORTED)
  set_target_properties(Eigen3::Eigen PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "$deps/eigen3")
endif()
find_package(ZLIB QUIET)
if(NOT TARGET ZLIB::ZLIB)
  add_library(ZLIB::ZLIB UNKNOWN IMPORTED)
  set_target_properties(ZLIB::ZLIB PROPERTIES IMPORTED_LOCATION "$deps/zlib/lib/libz.so"
                        INTERFACE_INCLUDE_DIRECTORIES "$deps/zlib/include")
endif()
add_library(ift_warnings INTERFACE)
target_compile_options(ift_warnings INTERFACE -Wall -Wextra -Wno-maybe-uninitialized -Wno-uninitialized)
file(GLOB_RECURSE IFT_SOURCES $root/lib/src/*.cpp)
add_library(ift STATIC \${IFT_SOURCES})
add_library(ift::ift ALIAS ift)
target_include_directories(ift PUBLIC $root/lib/include)
target_link_libraries(ift PUBLIC Eigen3::Eigen PRIVATE ZLIB::ZLIB)
target_compile_options(ift PUBLIC -march=native)
find_path(LBFGSPP_INCLUDE_DIR NAMES LBFGS.h HINTS "$deps/lbfgspp")
if(LBFGSPP_INCLUDE_DIR)
  target_include_directories(ift SYSTEM PRIVATE \${LBFGSPP_INCLUDE_DIR})
endif()
find_package(Torch REQUIRED)
add_subdirectory($root/lib/torch \${PROJECT_BINARY_DIR}/lib/torch)
EOF
  if cmake -S "$wrapper" -B "$wbuild" "${common[@]}" >>"$log" 2>&1; then
    configured=1
    build=$wbuild
    note "configured the wrapper project (top level failed: see $log)"
  fi
fi
if [ $configured -eq 0 ]; then
  tail -30 "$log"
  echo "gpu-check: configuration failed (see $log)" >&2
  exit 2
fi
grep -E "ift: |_GLIBCXX_USE_CXX11_ABI" "$log" | sort -u

# ---- Build the torch targets only -----------------------------------------------------------
targets=(ift-torch-check ift-deep)
[ "$tests" = ON ] && targets+=(test_torch_crosscheck)
[ "$bench" = ON ] && targets+=(bench_torch)
built=()
for t in "${targets[@]}"; do
  if cmake --build "$build" --target "$t" -j"$jobs" >>"$log" 2>&1; then
    built+=("$t")
  else
    note "build of $t FAILED (see $log)"
  fi
done
bin=$build/bin
[ -x "$bin/ift-torch-check" ] || { tail -40 "$log"; echo "gpu-check: ift-torch-check did not build" >&2; exit 2; }
note "built: ${built[*]}"

export OMP_WAIT_POLICY=PASSIVE
status=0

# ---- Cross-checks on the device -------------------------------------------------------------
echo "---- cross-checks on $device (double)"
if "$bin/ift-torch-check" --device "$device" --dtype double | tee "$build/crosscheck.txt"; then
  note "cross-checks on $device: all passed ($(grep -c '^ok' "$build/crosscheck.txt") checks)"
else
  status=1
  note "cross-checks on $device: $(grep -c '^FAIL' "$build/crosscheck.txt") FAILED: $(grep '^FAIL' "$build/crosscheck.txt" | awk '{print $2}' | tr '\n' ' ')"
fi
if [ -x "$bin/test_torch_crosscheck" ]; then
  # The gtest suite runs on the CPU (its fixtures are CPU/double by design).
  if "$bin/test_torch_crosscheck" --gtest_brief=1 >"$build/gtest.txt" 2>&1; then
    note "test_torch_crosscheck (CPU): passed"
  else
    status=1
    note "test_torch_crosscheck (CPU): FAILED (see $build/gtest.txt)"
  fi
fi

if [ $quick -eq 0 ]; then
  # ---- Timings: the device against the CPU, float and double ---------------------------------
  : > "$build/timings.txt"
  for dtype in float double; do
    echo "---- timings on $device ($dtype)"
    "$bin/ift-torch-check" --device "$device" --dtype "$dtype" --timing --repeats 5 2>&1 |
      grep '^timing' | sed "s/^timing/$device $dtype/" | tee -a "$build/timings.txt"
  done
  if [ "$device" != cpu ]; then
    echo "---- timings on cpu (float), for the ratio"
    "$bin/ift-torch-check" --device cpu --dtype float --timing --repeats 3 2>&1 |
      grep '^timing' | sed 's/^timing/cpu float/' | tee -a "$build/timings.txt"
  fi
  note "timings: $build/timings.txt"

  # ---- A short Algorithm-2 run on the device ----------------------------------------------
  data=(--data synthetic)
  fm=${IFT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
  [ -e "$fm/train-images-idx3-ubyte.gz" ] || [ -e "$fm/train-images-idx3-ubyte" ] && data=(--data-dir "$fm")
  for hyper in weight-decay augmentation; do
    for method in cg kfac; do
      start=$(date +%s.%N)
      if "$bin/ift-deep" --device "$device" --dtype float --hyper "$hyper" --method "$method" \
           --steps 5 --hyper-steps 5 --train 5000 --val 2000 --test 2000 --inner-steps 20 \
           --batch-size 256 "${data[@]}" --csv "$build/deep-$hyper-$method.csv" >>"$log" 2>&1; then
        secs=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo "?")
        last=$(grep -v '^#' "$build/deep-$hyper-$method.csv" | tail -1 | cut -d, -f5,9,11)
        note "ift-deep $hyper/$method on $device: ok in ${secs}s (last row val_acc,status,hvps = $last)"
      else
        status=1
        note "ift-deep $hyper/$method on $device: FAILED (see $log)"
      fi
    done
  done

  # ---- Google Benchmark, when it was built ------------------------------------------------
  if [ -x "$bin/bench_torch" ]; then
    "$bin/bench_torch" --benchmark_min_time=0.2 2>&1 | tee "$build/bench_torch.txt" | grep -E "^BM_" || true
    note "bench_torch (CPU, Eigen vs LibTorch): $build/bench_torch.txt"
  fi
fi

echo
echo "==================== gpu-check summary ===================="
for line in "${summary[@]}"; do echo "  $line"; done
[ $quick -eq 0 ] && [ -f "$build/timings.txt" ] && sed 's/^/  /' "$build/timings.txt"
echo "  exit status $status"
exit $status
