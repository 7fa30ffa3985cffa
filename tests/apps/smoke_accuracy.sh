#!/usr/bin/env bash
# Smoke test of ift-accuracy (DESIGN.md P3), called as: smoke_accuracy.sh BIN_DIR SOURCE_DIR
# A tiny run (784-2-10 MLP, 100 + 100 rows, k = 0..3) must exit 0 and write accuracy.csv with the
# documented header; a bad option must exit non-zero with a message naming the option.
# Without Fashion-MNIST installed it runs on the seeded synthetic set (--data synthetic).
set -uo pipefail
BIN_DIR=${1:?usage: smoke_accuracy.sh BIN_DIR SOURCE_DIR}
APP="$BIN_DIR/ift-accuracy"
DATA=${IFT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
EXPECTED="model,method,k,relative_error,cosine,status,hvps,seconds"

fail() { echo "smoke_accuracy: FAIL: $*" >&2; exit 1; }
[ -x "$APP" ] || fail "$APP not built"
DATA_ARGS=()
if ! ls "$DATA"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "smoke_accuracy: Fashion-MNIST not found in $DATA; using --data synthetic"
  DATA_ARGS=(--data synthetic)
fi
tmp=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=PASSIVE

"$APP" --model mlp --hidden 2 --train 100 --val 100 --init-log-decay 0 --max-steps 3 --threads 1 "${DATA_ARGS[@]}" \
  --out "$tmp/run" --quiet >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "tiny run exited non-zero"; }
[ -f "$tmp/run/accuracy.csv" ] || fail "no accuracy.csv"
header=$(grep -v '^#' "$tmp/run/accuracy.csv" | head -n 1)
[ "$header" = "$EXPECTED" ] || fail "header is '$header', expected '$EXPECTED'"
# 4 k-independent rows + 8 k-dependent methods × 4 values of k.
rows=$(grep -v '^#' "$tmp/run/accuracy.csv" | tail -n +2 | wc -l)
[ "$rows" -eq 36 ] || fail "expected 36 rows, got $rows"
# nystrom (uniform sampling): k = 0..3 columns cost exactly k HVPs, no failure status.
awk -F, '$2 == "nystrom" { n++; if ($7 != $3 || $6 == "numerical-issue") bad = 1 }
         END { exit !(n == 4 && !bad) }' "$tmp/run/accuracy.csv" || fail "nystrom rows wrong"
# The exact method against itself: relative error 0, cosine 1.
awk -F, '$2 == "exact" { found = 1; if ($4 != 0 || $5 < 1 - 1e-12 || $5 > 1 + 1e-12) bad = 1 }
         END { exit !(found && !bad) }' "$tmp/run/accuracy.csv" || fail "exact row is not (0, 1)"

check_bad() {  # option, expected word in the message, arguments...
  local name=$1; shift
  if "$APP" "$@" --out "$tmp/bad" >"$tmp/bad.log" 2>&1; then fail "$* exited 0"; fi
  grep -q -- "$name" "$tmp/bad.log" || { cat "$tmp/bad.log" >&2; fail "message does not name $name"; }
}
check_bad --max-steps --max-steps=-1
check_bad --model --model svm
check_bad --methods --methods cg,bogus
check_bad --nystrom-sampling --nystrom-sampling columns
check_bad --rho --rho -1
check_bad --no-such-option --no-such-option
check_bad --init-log-decay --log-decay nan   # an old spelling: the error names the new one
# Bad input exits 2 (usage error).
"$APP" --max-steps=-1 --out "$tmp/bad" >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad option did not exit 2"
[ ! -e "$tmp/bad" ] || fail "output left behind for a bad option"
echo "smoke_accuracy: OK"
