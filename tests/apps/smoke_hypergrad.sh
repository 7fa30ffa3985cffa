#!/usr/bin/env bash
# Smoke test of ift-hypergrad's inner solvers (DESIGN.md P1), called as:
#   smoke_hypergrad.sh BIN_DIR SOURCE_DIR
# A small P1 (300 training rows) solved by --inner newton-cg and --inner lbfgs: each run must exit
# 0, certify ||w − w*|| <= 5e-13·||w*|| (the default --w-tol), and the two w_star.npy must agree
# to 1e-12 relative (two certified solves of the same strongly convex problem). Dense Newton
# (--inner newton) takes a minute even here (a 7,850² Cholesky per step) and is left to
# tests/test_inner.cpp and bench_inner. Bad --inner / --w-tol values must name the option.
# Needs Fashion-MNIST (ift-hypergrad has no synthetic data); without it the test says so and passes.
set -uo pipefail
BIN_DIR=${1:?usage: smoke_hypergrad.sh BIN_DIR SOURCE_DIR}
APP="$BIN_DIR/ift-hypergrad"
DATA=${IFT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}

fail() { echo "smoke_hypergrad: FAIL: $*" >&2; exit 1; }
[ -x "$APP" ] || fail "$APP not built"
if ! ls "$DATA"/train-images-idx3-ubyte* >/dev/null 2>&1; then
  echo "smoke_hypergrad: Fashion-MNIST not found in $DATA; skipped"
  exit 0
fi
tmp=$(mktemp -d) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=PASSIVE

for inner in newton-cg lbfgs; do
  "$APP" --inner "$inner" --n-train 300 --n-val 100 --n-test 100 --method cg --steps 5 \
    --data-dir "$DATA" --out "$tmp/$inner" --quiet >"$tmp/$inner.log" 2>&1 ||
    { cat "$tmp/$inner.log" >&2; fail "--inner $inner exited non-zero"; }
  grep -q "warning" "$tmp/$inner.log" && { cat "$tmp/$inner.log" >&2; fail "--inner $inner warned"; }
  # "w*: NAME, ... (relative X)": the certified relative bound must be <= 5e-13.
  bound=$(sed -n 's/^w\*: .*(relative \([^)]*\))$/\1/p' "$tmp/$inner.log")
  [ -n "$bound" ] || { cat "$tmp/$inner.log" >&2; fail "no w* line for --inner $inner"; }
  awk -v b="$bound" 'BEGIN { exit !(b <= 5e-13) }' || fail "--inner $inner: bound $bound > 5e-13"
done
/usr/bin/python3 - "$tmp/newton-cg/w_star.npy" "$tmp/lbfgs/w_star.npy" <<'EOF' || fail "w* differ"
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
rel = np.linalg.norm(a - b) / np.linalg.norm(a)
print(f"smoke_hypergrad: ||w_newton-cg - w_lbfgs|| / ||w|| = {rel:.2e}")
sys.exit(0 if rel <= 1e-12 else 1)
EOF

# SHINE from the pairs of the L-BFGS w* solve: one row, converged, 1 HVP (the residual only).
"$APP" --inner lbfgs --n-train 300 --n-val 100 --n-test 100 --method shine --steps 0 \
  --data-dir "$DATA" --out "$tmp/shine" --quiet >"$tmp/shine.log" 2>&1 ||
  { cat "$tmp/shine.log" >&2; fail "--method shine exited non-zero"; }
awk -F, '$1 == "shine" { n++; if ($14 != "converged" || $16 != 1 || $12 == "") bad = 1 }
         END { exit !(n == 1 && !bad) }' "$tmp/shine/summary.csv" ||
  { cat "$tmp/shine/summary.csv" >&2; fail "shine row: expected converged, 1 HVP, a relative error"; }
# nystrom at rank 200 (issue 11): one block of 200 columns + the residual HVP ift-hypergrad asks
# for = 201 HVPs, converged, a relative error below 1.
"$APP" --n-train 300 --n-val 100 --n-test 100 --method nystrom --steps 200 --data-dir "$DATA" \
  --out "$tmp/nystrom" --quiet >"$tmp/nystrom.log" 2>&1 ||
  { cat "$tmp/nystrom.log" >&2; fail "--method nystrom --steps 200 exited non-zero"; }
/usr/bin/python3 - "$tmp/nystrom/summary.csv" <<'EOF' || { cat "$tmp/nystrom/summary.csv" >&2; fail "nystrom row wrong"; }
import csv, math, sys
rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#"))]
r = [r for r in rows if r["method"] == "nystrom"][0]
ok = r["status"] == "converged" and int(r["hvps"]) == 201 and int(r["steps"]) == 200 and \
     math.isfinite(float(r["relative_error"])) and float(r["relative_error"]) < 1
print(f"smoke_hypergrad: nystrom(200) relative error {r['relative_error']}, cosine {r['cosine']}")
sys.exit(0 if ok else 1)
EOF

check_bad() {  # option, arguments...
  local name=$1; shift
  if "$APP" "$@" --out "$tmp/bad" >"$tmp/bad.log" 2>&1; then fail "$* exited 0"; fi
  grep -q -- "$name" "$tmp/bad.log" || { cat "$tmp/bad.log" >&2; fail "message does not name $name"; }
}
check_bad --inner --inner bogus
check_bad --method --method cg+warm   # one hypergradient has no previous v
check_bad --curvature-batch --method neumann+fresh
check_bad --inner --method shine   # shine needs --inner lbfgs (default newton-cg)
check_bad --w-tol --w-tol 0
check_bad --out --out /etc/hostname/sub

# Sampled curvature beside the deterministic methods in --sweep: cg/neumann +fresh/+fixed rows.
"$APP" --n-train 300 --n-val 100 --n-test 100 --sweep --steps-list 0,2 --curvature-batch 50 \
  --data-dir "$DATA" --out "$tmp/sweep" --quiet >"$tmp/sweep.log" 2>&1 ||
  { cat "$tmp/sweep.log" >&2; fail "--sweep with --curvature-batch exited non-zero"; }
for m in cg+fresh cg+fixed neumann+fresh neumann+fixed; do
  n=$(grep -c "^$m," "$tmp/sweep/summary.csv" || true)
  [ "$n" -eq 2 ] || fail "--sweep: expected 2 rows of $m, got $n"
done

# A failed reference (decay exp(-50) ≈ 2e-22, the lower end of --init-log-decay: H singular to
# working precision) must not look like success: exit code 1, a
# message, and no relative error or cosine in the table or the CSV.
rc=0
"$APP" --train 50 --val 50 --test 50 --init-log-decay -50 --inner-tol 1e-3 --w-tol 0.9 \
  --threads 1 --quiet --out "$tmp/singular" >"$tmp/singular.log" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || { cat "$tmp/singular.log" >&2; fail "a failed exact reference exited $rc, expected 1"; }
grep -q "exact reference hypergradient failed" "$tmp/singular.log" || fail "no message for the failed reference"
grep -qi "nan" "$tmp/singular.log" && fail "NaN printed for a failed reference"
grep -v '^#' "$tmp/singular/summary.csv" | tail -n +2 | grep -q ',,,' || fail "relative error/cosine not left empty"
echo "smoke_hypergrad: OK"
