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

# Warm starts and inexact solves (docs/methods.md): cold and warm side by side under distinct
# names, SOBA (neumann+warm, one HVP per hyper-step after the first), a HOAG schedule, sampled
# curvature; and --warm-start for every listed method that can (exact cannot: it stays exact).
"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 3 \
  --inner-steps 2 --warmup-steps 5 --steps 1 --threads 1 --out "$out/warm" \
  --methods cg,cg+warm,neumann+warm,neumann+fresh+warm --curvature-batch 20 \
  --tolerance-schedule quadratic --tolerance0 1e-2 > /dev/null
for m in cg cg+warm neumann+warm neumann+fresh+warm; do
  n=$(grep -c "^$m,[0-9]" "$out/warm/compare.csv" || true)
  [[ "$n" -eq 3 ]] || { echo "expected 3 rows of $m, got $n" >&2; exit 1; }
done
# neumann+warm --steps 1: hyper-steps 2 and 3 cost one HVP each (hvps is column 12).
hvps=$(awk -F, '$1 == "neumann+warm" && $2 > 1 { print $12 }' "$out/warm/compare.csv" | sort -u)
[[ "$hvps" == "1" ]] || { echo "neumann+warm --steps 1 spent '$hvps' HVPs per later step" >&2; exit 1; }
"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 2 \
  --inner-steps 2 --warmup-steps 5 --steps 2 --threads 1 --out "$out/flag" \
  --methods exact,cg --warm-start > /dev/null
grep -q '^cg+warm,2,' "$out/flag/compare.csv" || { echo "--warm-start did not name cg+warm" >&2; exit 1; }
grep -q '^exact,2,' "$out/flag/compare.csv" || { echo "--warm-start renamed exact" >&2; exit 1; }
# Krylov recycling (docs/methods.md "cg+ritz"): the first hyper-step is plain cg, later ones
# are preconditioned by the recycled Ritz pairs (the message names m); --ritz-memory checked.
"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 3 \
  --inner-steps 2 --warmup-steps 5 --steps 4 --threads 1 --out "$out/ritz" \
  --methods cg+ritz+warm,cg+kfac+ritz --ritz-memory 4 > /dev/null
grep -q '^cg+ritz+warm,1,.*Ritz-preconditioned (m = 0: plain cg)' "$out/ritz/compare.csv" ||
  { echo "cg+ritz+warm: step 1 is not plain cg" >&2; cat "$out/ritz/compare.csv" >&2; exit 1; }
grep -q '^cg+ritz+warm,3,.*Ritz-preconditioned (m = [1-4],' "$out/ritz/compare.csv" ||
  { echo "cg+ritz+warm: step 3 recycled no pair" >&2; cat "$out/ritz/compare.csv" >&2; exit 1; }
n=$(grep -c '^cg+kfac+ritz,[0-9]' "$out/ritz/compare.csv" || true)
[[ "$n" -eq 3 ]] || { echo "expected 3 rows of cg+kfac+ritz, got $n" >&2; exit 1; }
if "$bin/ift-compare" --data synthetic --methods cg+ritz --ritz-memory 0 --out "$out/bad_ritz" \
  2> "$out/bad_ritz.err"; then
  echo "--ritz-memory 0 was accepted" >&2; exit 1
fi
grep -q -- '--ritz-memory' "$out/bad_ritz.err" || { echo "--ritz-memory 0: message lacks the option" >&2; exit 1; }
# KFAC's eigenbasis options (docs/methods.md): EKFAC's corrected eigenvalues and the penalty in
# the eigenbases, named in every row's message.
"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 2 \
  --inner-steps 2 --warmup-steps 5 --steps 3 --threads 1 --out "$out/ekfac" \
  --methods cg+kfac+warm,kfac --damping 1e-4 --kfac-eigenvalues corrected --kfac-penalty eigenbasis > /dev/null
n=$(grep -c '^cg+kfac+warm,[0-9].*EKFAC inverse (corrected eigenvalues).*penalty in the eigenbases' "$out/ekfac/compare.csv" || true)
[[ "$n" -eq 2 ]] || { echo "cg+kfac+warm: expected 2 EKFAC rows, got $n" >&2; cat "$out/ekfac/compare.csv" >&2; exit 1; }
grep -q '^kfac,2,.*EKFAC inverse' "$out/ekfac/compare.csv" ||
  { echo "kfac: no EKFAC row" >&2; cat "$out/ekfac/compare.csv" >&2; exit 1; }
# Algorithm 2 with SHINE: the inner phase is L-BFGS to --inner-tol, and each hypergradient
# reuses its pairs: 0 HVPs, status converged, in every row.
"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 2 \
  --inner lbfgs --inner-steps 200 --inner-tol 1e-8 --warmup-steps 5 --methods shine --steps 0 \
  --threads 1 --out "$out/shine" > /dev/null
rows=$(grep -v '^#' "$out/shine/compare.csv" | tail -n +2 | wc -l)
[[ "$rows" -eq 2 ]] || { echo "shine: expected 2 rows, got $rows" >&2; exit 1; }
awk -F, 'NR > 1 && $1 == "shine" { n++; if ($10 != "converged" || $12 != 0) bad = 1 }
         END { exit !(n == 2 && !bad) }' <(grep -v '^#' "$out/shine/compare.csv") ||
  { echo "shine rows are not converged with 0 HVPs:" >&2; cat "$out/shine/compare.csv" >&2; exit 1; }
# nystrom in the bilevel loop: rank 20 by one block of 20 columns per hyper-step.
"$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 2 \
  --inner-steps 2 --warmup-steps 5 --methods nystrom --steps 20 --nystrom-sampling leverage \
  --threads 1 --out "$out/nystrom" > /dev/null
# leverage: 20 columns + a 20-column sketch = 40 HVPs per hyper-step, status converged.
awk -F, '!/^#/ && $1 == "nystrom" { n++; if ($12 != 40 || $10 != "converged") bad = 1 }
         END { exit !(n == 2 && !bad) }' "$out/nystrom/compare.csv" ||
  { echo "nystrom rows wrong:" >&2; cat "$out/nystrom/compare.csv" >&2; exit 1; }

# --exact-precision (docs/methods.md): at D = 7,850 mixed runs a float Cholesky refined in
# double and says so in the message column; double does not take that path.
for p in mixed double; do
  "$bin/ift-compare" --data synthetic --train 100 --val 100 --test 100 --hyper-steps 1 \
    --inner-steps 2 --warmup-steps 5 --methods exact --exact-precision $p --threads 1 \
    --out "$out/exact-$p" > /dev/null
done
grep -q '^exact,1,.*,converged,.*mixed-precision Cholesky' "$out/exact-mixed/compare.csv" ||
  { echo "--exact-precision mixed: no mixed-precision row" >&2; cat "$out/exact-mixed/compare.csv" >&2; exit 1; }
grep -q '^exact,1,.*,converged,' "$out/exact-double/compare.csv" &&
  ! grep -q 'mixed-precision' "$out/exact-double/compare.csv" ||
  { echo "--exact-precision double: wrong row" >&2; cat "$out/exact-double/compare.csv" >&2; exit 1; }

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
check_bad methods --data synthetic --methods cg,exact+warm
check_bad methods --data synthetic --methods cg+lukewarm
check_bad curvature-batch --data synthetic --methods cg+fresh
check_bad tolerance-schedule --data synthetic --tolerance-schedule linear
check_bad tolerance0 --data synthetic --tolerance0 0
check_bad hyper-steps --data synthetic --hyper-steps -1
check_bad alpha --data synthetic --alpha 0
check_bad nystrom-sampling --data synthetic --methods nystrom --nystrom-sampling bogus
check_bad rho --data synthetic --methods nystrom --rho -1
check_bad kfac-eigenvalues --data synthetic --methods cg+kfac --kfac-eigenvalues exact
check_bad kfac-penalty --data synthetic --methods cg+kfac --kfac-penalty median
check_bad exact-precision --data synthetic --methods exact --exact-precision single
check_bad data --data mnist-digits
check_bad inner --data synthetic --inner newton
check_bad inner --data synthetic --methods shine --inner adam   # shine needs the L-BFGS pairs
check_bad unknown --data synthetic --unknown 3
# Size checks against Fashion-MNIST's row counts happen before any file is read.
check_bad train --data fashion-mnist --train 59000 --val 2000
check_bad test --data fashion-mnist --test 10001
echo "smoke_compare: ok"
