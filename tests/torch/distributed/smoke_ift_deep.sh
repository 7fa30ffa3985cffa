#!/usr/bin/env bash
# ift-deep data-parallel on Gloo (issue 12): 2 processes over 127.0.0.1 give one process's CSV
# (ResNet with per-weight decay; CNN with a learned augmentation), rank 0 alone writes, the
# ResNet reaches a million per-weight decays, and a missing peer ends the run with an error
# after the timeout instead of hanging.
# Usage: smoke_ift_deep.sh IFT_DEEP SOURCE_DIR
set -euo pipefail
deep=$1
src=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMP_NUM_THREADS=1
run2() { bash "$src/tests/torch/distributed/run.sh" 2 "$@"; }

compare_csv() {  # compare_csv REF OTHER TOL (tests/compare_csv.py)
  /usr/bin/env python3 "$(dirname "$0")/../../compare_csv.py" "$@"
}

common=(--data synthetic --train 64 --val 32 --test 32 --hyper-steps 2 --inner-steps 2
        --batch-size 16 --inner sgd --threads 1 --dtype double)
for case in "--model resnet --filters 4 --method cg --steps 3" \
            "--model cnn --filters 2 --hyper augmentation --method neumann --steps 3"; do
  # shellcheck disable=SC2086
  "$deep" "${common[@]}" $case --out "$out/one" 2> /dev/null
  # shellcheck disable=SC2086
  run2 "$deep" "${common[@]}" $case --out "$out/two" 2> "$out/err"
  echo "ift-deep $case, 2 processes:"
  compare_csv "$out/one/ift-deep.csv" "$out/two/ift-deep.csv" 1e-12
  grep -q '^# processes = 2$' "$out/two/ift-deep.csv" || { echo "processes not echoed" >&2; exit 1; }
  [[ $(grep -c "wrote" "$out/err") -eq 1 ]] || { echo "expected one writer's summary" >&2; cat "$out/err" >&2; exit 1; }
  rm -rf "$out/one" "$out/two"
done

# Over a million per-weight decays through LibTorch (one hyper-step, float, identity).
"$deep" --data synthetic --train 16 --val 16 --test 0 --model resnet --filters 40 --hyper-steps 1 \
  --inner-steps 1 --batch-size 16 --method identity --inner sgd --threads 2 --dtype float \
  --out "$out/big" 2> /dev/null
grep -q '^# num_hyper = 1084970$' "$out/big/ift-deep.csv" || { echo "ResNet size changed" >&2; exit 1; }
/usr/bin/env python3 - "$out/big/ift-deep.csv" <<'PY'
import csv, math, sys
rows = list(csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#")))
h = float(rows[0]["hypergradient_norm"])
if not (math.isfinite(h) and h > 0):
    sys.exit(f"hypergradient norm {h} over 1,084,970 decays")
print(f"  ResNet, 1,084,970 per-weight decays: ||h|| = {h:.3e}")
PY

# A peer that never joins: rank 0 waits for the store's timeout, then fails naming the address.
rc=0
port=$(/usr/bin/env python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port IFT_DIST_TIMEOUT=5 timeout 120 \
  "$deep" "${common[@]}" --model cnn --out "$out/alone" 2> "$out/err" > /dev/null || rc=$?
[[ $rc -eq 1 ]] || { echo "a missing peer: exit $rc, expected 1" >&2; cat "$out/err" >&2; exit 1; }
grep -q "127.0.0.1:$port" "$out/err" || { echo "the message does not name the address:" >&2; cat "$out/err" >&2; exit 1; }
[[ ! -e "$out/alone/ift-deep.csv" ]] || { echo "a CSV was written by a run that never started" >&2; exit 1; }
echo "smoke_ift_deep (distributed): ok"
