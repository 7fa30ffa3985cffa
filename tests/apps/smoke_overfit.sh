#!/usr/bin/env bash
# Smoke test of ift-overfit: tiny offline runs (logreg and mlp), the documented CSV header, and
# a bad option rejected with a message naming it and no output left behind.
# Usage: smoke_overfit.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

expected='model,method,step,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,hypergradient_norm,status,iterations,hvps,hypergradient_seconds,elapsed_seconds,message'
for model in logreg mlp; do
  "$bin/ift-overfit" --data synthetic --model "$model" --hidden 8 --train 20 --val 20 --test 50 \
    --hyper-steps 2 --inner-steps 2 --warmup-steps 5 --threads 1 --out "$out/$model" > "$out/stdout"
  header=$(grep -v '^#' "$out/$model/overfit.csv" | head -n 1)
  if [[ "$header" != "$expected" ]]; then
    echo "unexpected header ($model): $header" >&2
    exit 1
  fi
  rows=$(grep -v '^#' "$out/$model/overfit.csv" | tail -n +2 | wc -l)
  [[ "$rows" -ge 1 && "$rows" -le 2 ]] || { echo "expected 1-2 rows, got $rows" >&2; exit 1; }
  grep -q "test accuracy" "$out/stdout"
done

check_bad() {
  local option=$1; shift
  local rc=0
  "$bin/ift-overfit" --data synthetic --out "$out/bad" "$@" 2> "$out/stderr" || rc=$?
  [[ $rc -eq 2 ]] || { echo "ift-overfit exited $rc (expected 2) for $*" >&2; exit 1; }
  grep -q -- "--$option" "$out/stderr" || { echo "message does not name --$option:" >&2; cat "$out/stderr" >&2; exit 1; }
  [[ ! -e "$out/bad" ]] || { echo "output left behind for $*" >&2; exit 1; }
}
check_bad model --model resnet
check_bad method --method inverse
check_bad inner-lr --inner-lr 0
check_bad target --target 1.5
check_bad unknown-option --unknown-option 3
check_bad train --n-train 0   # an old spelling: the error names the new one
echo "smoke_overfit: ok"
