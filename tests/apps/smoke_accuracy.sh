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
# 4 k-independent rows + 9 k-dependent methods (cg+kfac included) × 4 values of k.
rows=$(grep -v '^#' "$tmp/run/accuracy.csv" | tail -n +2 | wc -l)
[ "$rows" -eq 40 ] || fail "expected 40 rows, got $rows"
# cg+kfac (KFAC-preconditioned cg): k HVPs for k iterations, never a failure status on this
# well-posed problem, and k = 0 is v = 0 (relative error 1).
awk -F, '$2 == "cg+kfac" { n++; if ($7 != $3 || $6 == "numerical-issue") bad = 1
                           if ($3 == 0 && $4 != 1) bad = 1 }
         END { exit !(n == 4 && !bad) }' "$tmp/run/accuracy.csv" || fail "cg+kfac rows wrong"
# nystrom (uniform sampling): k = 0..3 columns cost exactly k HVPs, no failure status.
awk -F, '$2 == "nystrom" { n++; if ($7 != $3 || $6 == "numerical-issue") bad = 1 }
         END { exit !(n == 4 && !bad) }' "$tmp/run/accuracy.csv" || fail "nystrom rows wrong"
# The exact method against itself: relative error 0, cosine 1.
awk -F, '$2 == "exact" { found = 1; if ($4 != 0 || $5 < 1 - 1e-12 || $5 > 1 + 1e-12) bad = 1 }
         END { exit !(found && !bad) }' "$tmp/run/accuracy.csv" || fail "exact row is not (0, 1)"

# Stochastic curvature (docs/methods.md): sampled cg and neumann, a row per k; the run twice
# with the same --seed gives the same table (reproducible draws).
for run in s1 s2; do
  "$APP" --model mlp --hidden 2 --train 100 --val 100 --init-log-decay 0 --steps-list 0,3 --threads 1 \
    "${DATA_ARGS[@]}" --methods cg+fresh,cg+fixed,neumann+fresh,neumann+fixed --curvature-batch 20 \
    --seed 3 --out "$tmp/$run" --quiet >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "sampled run exited non-zero"; }
done
rows=$(grep -v '^#' "$tmp/s1/accuracy.csv" | tail -n +2 | wc -l)
[ "$rows" -eq 8 ] || fail "expected 8 sampled rows (4 methods x 2 k), got $rows"
cmp <(grep -v '^#' "$tmp/s1/accuracy.csv" | cut -d, -f1-7) <(grep -v '^#' "$tmp/s2/accuracy.csv" | cut -d, -f1-7) \
  || fail "sampled curvature is not reproducible with the same --seed"
# EKFAC on the MLP (docs/methods.md, "KFAC's eigenbasis put to more use"): kfac and cg+kfac with
# the corrected eigenvalues run on it (the option is refused where a model lacks them).
"$APP" --model mlp --hidden 2 --train 100 --val 100 --init-log-decay 0 --steps-list 0,3 --threads 1 \
  "${DATA_ARGS[@]}" --methods exact,kfac,cg+kfac --kfac-eigenvalues corrected --kfac-penalty eigenbasis \
  --out "$tmp/ekfac" --quiet >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; fail "EKFAC run exited non-zero"; }
grep -q '^mlp,kfac,.*,converged,' "$tmp/ekfac/accuracy.csv" || { cat "$tmp/ekfac/accuracy.csv" >&2; fail "no converged EKFAC row"; }
# shine from the pairs of an L-BFGS w* (the same MLP): k = 0 is the estimate alone (converged,
# 0 HVPs), k = 1..3 refine it by k CG steps (k HVPs + 1 for the start's residual; CG's status).
# Asked for by name without --inner lbfgs it is a usage error naming --methods (the default list
# leaves it out, and says so).
"$APP" --model mlp --hidden 2 --train 100 --val 100 --init-log-decay 0 --inner lbfgs \
  --methods exact,shine --max-steps 3 --threads 1 "${DATA_ARGS[@]}" --out "$tmp/shine" --quiet \
  >"$tmp/shine.log" 2>&1 || { cat "$tmp/shine.log" >&2; fail "shine run exited non-zero"; }
awk -F, '$2 == "shine" { n++
           if ($3 == 0 && ($6 != "converged" || $7 != 0)) bad = 1
           if ($3 > 0 && (($6 != "converged" && $6 != "max-iterations") || $7 != $3 + 1)) bad = 1 }
         END { exit !(n == 4 && !bad) }' <(grep -v '^#' "$tmp/shine/accuracy.csv") ||
  { cat "$tmp/shine/accuracy.csv" >&2; fail "shine rows: expected k = 0..3, k + 1 HVPs (0 at k = 0)"; }
grep -q "shine left out" "$tmp/run/accuracy.csv" || fail "the default run does not say shine was left out"

check_bad() {  # option, expected word in the message, arguments...
  local name=$1; shift
  if "$APP" "$@" --out "$tmp/bad" >"$tmp/bad.log" 2>&1; then fail "$* exited 0"; fi
  grep -q -- "$name" "$tmp/bad.log" || { cat "$tmp/bad.log" >&2; fail "message does not name $name"; }
}
check_bad --max-steps --max-steps=-1
check_bad --model --model svm
check_bad --methods --methods cg,bogus
check_bad --methods --methods shine   # needs --inner lbfgs
check_bad --nystrom-sampling --nystrom-sampling columns
check_bad --rho --rho -1
check_bad --no-such-option --no-such-option
check_bad --init-log-decay --log-decay nan   # an old spelling: the error names the new one
check_bad --curvature-batch --methods cg+fresh   # a sampled method without its batch size
# Bad input exits 2 (usage error).
"$APP" --max-steps=-1 --out "$tmp/bad" >/dev/null 2>&1; [ $? -eq 2 ] || fail "bad option did not exit 2"
[ ! -e "$tmp/bad" ] || fail "output left behind for a bad option"
echo "smoke_accuracy: OK"
