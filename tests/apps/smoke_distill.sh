#!/usr/bin/env bash
# Smoke test of ift-distill (DESIGN.md P5), called as: smoke_distill.sh BIN_DIR SOURCE_DIR
# A tiny run (3 outer steps, a few hundred real rows) must exit 0 and write distill.csv with the
# documented header and distilled.png; a bad option must exit non-zero naming the option.
# Without Fashion-MNIST installed it runs on the seeded synthetic set (--data synthetic).
set -uo pipefail
BIN_DIR=${1:?usage: smoke_distill.sh BIN_DIR SOURCE_DIR}
APP="$BIN_DIR/ift-distill"
DATA=${IFT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
EXPECTED="step,val_loss,val_accuracy,test_accuracy,hypergradient_norm,status,inner_gradient_norm,seconds"

fail() { echo "smoke_distill: FAIL: $*" >&2; exit 1; }
[ -x "$APP" ] || fail "$APP not built"
DATA_ARGS=()
if ! ls "$DATA"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "smoke_distill: Fashion-MNIST not found in $DATA; using --data synthetic"
  DATA_ARGS=(--data synthetic)
fi
tmp=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=PASSIVE

"$APP" --hyper-steps 3 --train 300 --val 300 --test 300 --threads 1 "${DATA_ARGS[@]}" --out "$tmp/run" \
  --quiet >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "tiny run exited non-zero"; }
[ -f "$tmp/run/distill.csv" ] || fail "no distill.csv"
[ -s "$tmp/run/distilled.png" ] || fail "no distilled.png"
header=$(grep -v '^#' "$tmp/run/distill.csv" | head -n 1)
[ "$header" = "$EXPECTED" ] || fail "header is '$header', expected '$EXPECTED'"
rows=$(grep -v '^#' "$tmp/run/distill.csv" | tail -n +2 | wc -l)
[ "$rows" -eq 4 ] || fail "expected 4 rows (steps 0..3), got $rows"
grep -q "test accuracy" "$tmp/log" || fail "no final test accuracy printed"

# Stop and resume: 2 outer steps with a checkpoint, then --resume to 3, must give the rows of an
# uninterrupted 3-step run (all but the seconds column).
"$APP" --hyper-steps 2 --train 300 --val 300 --test 300 --threads 1 "${DATA_ARGS[@]}" \
  --out "$tmp/cut" --quiet >"$tmp/cut.log" 2>&1 || { cat "$tmp/cut.log" >&2; fail "2-step run"; }
[ -f "$tmp/cut/checkpoint-distill.bin" ] || fail "no checkpoint written"
"$APP" --hyper-steps 3 --train 300 --val 300 --test 300 --threads 1 "${DATA_ARGS[@]}" \
  --out "$tmp/cut" --quiet --resume >"$tmp/resume.log" 2>&1 || { cat "$tmp/resume.log" >&2; fail "resume"; }
diff <(grep -v '^#' "$tmp/run/distill.csv" | cut -d, -f1-7) \
     <(grep -v '^#' "$tmp/cut/distill.csv" | cut -d, -f1-7) >&2 ||
  fail "the resumed run's rows differ from the uninterrupted run's"
cmp -s "$tmp/run/distilled.npy" "$tmp/cut/distilled.npy" || fail "resumed images differ"

check_bad() {  # option, arguments...
  local name=$1; shift
  if "$APP" "$@" --out "$tmp/bad" >"$tmp/bad.log" 2>&1; then fail "$* exited 0"; fi
  grep -q -- "$name" "$tmp/bad.log" || { cat "$tmp/bad.log" >&2; fail "message does not name $name"; }
}
check_bad --outer-lr --outer-lr=-1
check_bad --init --init zeros
check_bad --method --method bogus
check_bad --no-such-option --no-such-option
check_bad --inner --inner lbfgs
check_bad --test --test 0
echo "smoke_distill: OK"
