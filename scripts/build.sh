#!/usr/bin/env bash
# Configures (once) and builds ift in Release into build/; executables land in build/bin/.
# Extra arguments are passed to CMake's configure step, e.g. -DIFT_WITH_TORCH=OFF.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${IFT_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
