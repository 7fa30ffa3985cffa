#!/usr/bin/env bash
# Builds and runs the libFuzzer targets of fuzz/ (every reader of outside bytes: IDX raw and
# gzipped, CSV, .npy, checkpoints, the apps' option parser) under AddressSanitizer and
# UndefinedBehaviorSanitizer, with clang 14 (scripts/setup-deps.sh --with-fuzz installs it).
#
# Usage: scripts/fuzz.sh [--smoke] [--no-build] [--time SECONDS] [--jobs N] [--logs DIR]
#                        [--build DIR] [--apps DIR] [TARGET...]
#   (default)        configure and build DIR (default build-fuzz), make the seed corpora, then run
#                    every target (or those named) for SECONDS each (default 1800), N at a time
#                    (default 2), niced; logs, crash inputs and final stats under DIR/fuzz-logs
#                    (or --logs). Exit 1 when any target found something.
#   --smoke          a few seconds per target over its seed corpus, no build (CTest's fuzz.smoke
#                    when IFT_FUZZ=ON): exit 1 on any finding.
#   --no-build       use the targets already built in DIR
#   --apps DIR       the regular build's apps, for seeds from their output (default build/bin)
# The corpus each run grows is kept in DIR/fuzz-corpus/TARGET, so later runs continue from it.
# A finding is an input file (crash-*, leak-*, oom-*, timeout-*) next to the logs: reproduce it
# with `DIR/bin/TARGET FILE`, fix the reader and add the input to its unit test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
seconds=1800
jobs=2
smoke=0
build_it=1
apps=$root/build/bin
logs=
targets=()
while (($#)); do
  case $1 in
    --smoke) smoke=1; build_it=0; seconds=5; shift ;;
    --no-build) build_it=0; shift ;;
    --apps) apps=$2; shift 2 ;;
    --time) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(fuzz_idx fuzz_csv fuzz_npy fuzz_checkpoint fuzz_options)
logs=${logs:-$build/fuzz-logs}

if ((build_it)); then
  command -v clang++-14 >/dev/null ||
    { echo "fuzz.sh: clang++-14 not found: scripts/setup-deps.sh --with-fuzz" >&2; exit 1; }
  # The library without OpenMP, BLAS, Torch or -march=native: less uninstrumented code to leave
  # blind spots, and a build that runs on any x86-64.
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
    -DIFT_FUZZ=ON -DIFT_BUILD_TESTS=OFF -DIFT_BUILD_BENCHMARKS=OFF -DIFT_BUILD_APPS=OFF \
    -DIFT_USE_OPENMP=OFF -DIFT_USE_BLAS=OFF -DIFT_WITH_TORCH=OFF -DIFT_NATIVE=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" make_checkpoint_seed
fi

seeds=$build/fuzz-seeds
if [[ ! -d $seeds ]] || ((!smoke)); then
  rm -rf "$seeds"
  IFT_CHECKPOINT_SEED_MAKER=$build/bin/make_checkpoint_seed \
    /usr/bin/python3 "$root/scripts/fuzz-seeds.py" "$seeds" "$apps"
fi
mkdir -p "$logs"

run() {
  local target=$1 corpus=$build/fuzz-corpus/$1
  # The smoke run starts from the seeds alone (the grown corpus can take longer than the run
  # to load) and keeps nothing.
  ((smoke)) && corpus=$(mktemp -d)
  mkdir -p "$corpus"
  # Inputs that once broke a reader (tests/fuzz-regressions/TARGET) join the seeds.
  local extra=()
  [[ -d $root/tests/fuzz-regressions/$target ]] && extra=("$root/tests/fuzz-regressions/$target")
  # The long runs fork a child per job and go on after a finding (-ignore_*), so one run of
  # SECONDS collects every finding; the smoke run stops at the first.
  local mode=()
  ((smoke)) || mode=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
  local status=0
  rm -f "$logs/$target"-{crash,leak,oom,timeout,slow-unit}-*
  nice -n 10 "$build/bin/$target" "${mode[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="$logs/$target-" \
    "$corpus" "$seeds/$target" "${extra[@]}" >"$logs/$target.log" 2>&1 || status=$?
  local found
  found=$(find "$logs" -maxdepth 1 -name "$target-*" ! -name '*.log' ! -name '*.summary' | wc -l)
  ((found == 0)) || status=1
  # The last progress line has the coverage (cov, ft) and the executions (#N).
  local last stats
  last=$(grep -E '^#[0-9]+' "$logs/$target.log" | tail -n 1 || true)
  stats=$(grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$logs/$target.log" | tr -s ' ' | tr '\n' ' ' || true)
  echo "$target: exit $status; $found findings; $last; $stats"
  ((smoke)) && rm -rf "$corpus"
  return "$status"
}

failed=()
if ((smoke)); then
  for t in "${targets[@]}"; do run "$t" || failed+=("$t"); done
else

  for t in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
    run "$t" > "$logs/$t.summary" &
  done
  wait || true
  for t in "${targets[@]}"; do
    cat "$logs/$t.summary"
    grep -q ': exit 0;' "$logs/$t.summary" || failed+=("$t")
  done
fi
if ((${#failed[@]})); then
  echo "fuzz.sh: findings in ${failed[*]} (inputs and logs under $logs)" >&2
  exit 1
fi
echo "fuzz.sh: no findings (${#targets[@]} targets, ${seconds}s each)"
