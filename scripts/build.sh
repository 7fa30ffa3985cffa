#!/usr/bin/env bash
# Configures and builds ift in Release into build/; executables land in build/bin/.
# Usage: scripts/build.sh [--target NAME]... [CMake configure arguments...]
#   --target NAME   build only NAME (repeatable; default: everything). scripts/run-main.sh builds
#                   only ift-compare, scripts/test.sh everything, in the same build directory with
#                   the same configuration, so neither forces the other to reconfigure or rebuild.
#   other arguments go to CMake's configure step, e.g. -DIFT_WITH_TORCH=OFF.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${IFT_BUILD_DIR:-$root/build}
targets=()
configure=()
while (($#)); do
  case $1 in
    --target)
      (($# >= 2)) || { echo "build.sh: --target needs a target name" >&2; exit 2; }
      targets+=("$2"); shift 2 ;;
    --target=*) targets+=("${1#--target=}"); shift ;;
    *) configure+=("$1"); shift ;;
  esac
done
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${configure[@]}" >/dev/null
if ((${#targets[@]})); then
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
else
  cmake --build "$build" -j"$(nproc)"
fi
