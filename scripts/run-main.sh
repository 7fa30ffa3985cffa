#!/usr/bin/env bash
# The main job: installs what is missing, builds in Release, and runs the paper's comparison of
# inverse approximations (problem P2, the paper's Figure 5) on real Fashion-MNIST, writing
# results/compare/compare.csv and results/compare/compare.png.
# Extra arguments go to ift-compare (see build/bin/ift-compare --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-deps.sh"
"$root/scripts/build.sh" --target ift-compare   # only what this job runs (the plot is python)
out="$root/results/compare"
export OMP_WAIT_POLICY=PASSIVE
"${IFT_BUILD_DIR:-$root/build}/bin/ift-compare" --out "$out" "$@"
/usr/bin/python3 "$root/plots/plot_compare.py" "$out/compare.csv" -o "$out/compare.png"
echo "ift: wrote $out/compare.csv and $out/compare.png"
