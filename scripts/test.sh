#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs the whole suite through CTest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-deps.sh" --with-torch --with-mpi
"$root/scripts/build.sh"
export OMP_WAIT_POLICY=PASSIVE
ctest --test-dir "${IFT_BUILD_DIR:-$root/build}" --output-on-failure -j"$(nproc)"
