#!/usr/bin/env bash
# Smoke test of ift-compare: a tiny offline run (synthetic data), the documented CSV header,
# and a bad option rejected with a message naming it and no output left behind.
# Usage: smoke_compare.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 2 \
  --inner-steps 2 --warmup-steps 5 --steps 3 --threads 1 --out "$out/run" > "$out/stdout"
expected='method,step,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,hypergradient_norm,status,iterations,hvps,hypergradient_seconds,elapsed_seconds,message'
header=$(grep -v '^#' "$out/run/compare.csv" | head -n 1)
if [[ "$header" != "$expected" ]]; then
  echo "unexpected header: $header" >&2
  exit 1
fi
rows=$(grep -v '^#' "$out/run/compare.csv" | tail -n +2 | wc -l)
[[ "$rows" -eq 12 ]] || { echo "expected 12 rows (6 methods x 2 steps), got $rows" >&2; exit 1; }

# --resume of the finished run rebuilds the same table without recomputing.
cp "$out/run/compare.csv" "$out/before.csv"
"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 2 \
  --inner-steps 2 --warmup-steps 5 --steps 3 --threads 1 --out "$out/run" --resume > /dev/null
# The "# resume = true" echo differs; every table line must be identical.
cmp <(grep -v "^#" "$out/before.csv") <(grep -v "^#" "$out/run/compare.csv")

# An old spelling (kept as an alias for one release) still works: --n-train is --train,
# --inner-optimizer is --inner. One hyper-step of one method.
"$bin/ift-compare" --data synthetic --n-train 100 --val 100 --test 100 --hyper-steps 1 \
  --inner-steps 2 --warmup-steps 5 --methods identity --inner-optimizer adam --threads 1 \
  --out "$out/alias" > /dev/null
grep -q '^# train = 100$' "$out/alias/compare.csv" || { echo "--n-train did not set --train" >&2; exit 1; }

# nystrom in the bilevel loop: rank 20 by one block of 20 columns per hyper-step.
"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 2 \
  --inner-steps 2 --warmup-steps 5 --methods nystrom --steps 20 --nystrom-sampling leverage \
  --threads 1 --out "$out/nystrom" > /dev/null
# leverage: 20 columns + a 20-column sketch = 40 HVPs per hyper-step, status converged.
awk -F, '!/^#/ && $1 == "nystrom" { n++; if ($12 != 40 || $10 != "converged") bad = 1 }
         END { exit !(n == 2 && !bad) }' "$out/nystrom/compare.csv" ||
  { echo "nystrom rows wrong:" >&2; cat "$out/nystrom/compare.csv" >&2; exit 1; }

# Bad input: exit code 2, the option named on stderr, no output directory created.
check_bad() {
  local option=$1; shift
  local rc=0
  "$bin/ift-compare" --out "$out/bad" "$@" 2> "$out/stderr" || rc=$?
  [[ $rc -eq 2 ]] || { echo "ift-compare exited $rc (expected 2) for $*" >&2; exit 1; }
  grep -q -- "--$option" "$out/stderr" || { echo "message does not name --$option:" >&2; cat "$out/stderr" >&2; exit 1; }
  [[ ! -e "$out/bad" ]] || { echo "output left behind for $*" >&2; exit 1; }
}
check_bad methods --data synthetic --methods exact,bogus
check_bad hyper-steps --data synthetic --hyper-steps -1
check_bad alpha --data synthetic --alpha 0
check_bad nystrom-sampling --data synthetic --methods nystrom --nystrom-sampling bogus
check_bad rho --data synthetic --methods nystrom --rho -1
check_bad data --data mnist-digits
check_bad inner --data synthetic --inner lbfgs
check_bad unknown --data synthetic --unknown 3
# Size checks against Fashion-MNIST's row counts happen before any file is read.
check_bad train --data fashion-mnist --train 59000 --val 2000
check_bad test --data fashion-mnist --test 10001
echo "smoke_compare: ok"
