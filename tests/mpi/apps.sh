#!/usr/bin/env bash
# The apps under mpirun (issue 12): `mpirun -np N ift-compare / ift-overfit` give one process's
# results, rank 0 alone writes, a run resumes with a different N, and errors end every rank.
# Usage: apps.sh BIN_DIR MPIEXEC
set -euo pipefail
source "$(dirname "$0")/common.sh"

common=("${data[@]}" --train 301 --val 203 --test 101 --inner-steps 3 --warmup-steps 10
        --steps 5 --methods cg,neumann,identity,kfac --threads 1)

# SGD: the sharded sums differ from one process's by the order of additions only (≤ 1e-12).
"$bin/ift-compare" "${common[@]}" --hyper-steps 4 --inner sgd --inner-lr 0.1 --out "$out/one" > /dev/null
for np in 2 3; do
  run_np $np "$bin/ift-compare" "${common[@]}" --hyper-steps 4 --inner sgd --inner-lr 0.1 --out "$out/np$np" > "$out/stdout$np"
  echo "ift-compare, sgd, -np $np:"
  compare_csv "$out/one/compare.csv" "$out/np$np/compare.csv" 1e-12
  # One writer: the same files as one process, one summary on stdout.
  [[ "$(ls "$out/one")" == "$(ls "$out/np$np")" ]] || { echo "files differ: $(ls "$out/np$np")" >&2; exit 1; }
  [[ $(grep -c '^wrote ' "$out/stdout$np") -eq 1 ]] || { echo "expected one summary" >&2; exit 1; }
done

# Adam divides each step by √v, so gradient entries near zero turn rounding differences into
# relative changes of their updates: a looser bound (2.6e-12 measured on one configuration).
"$bin/ift-compare" "${common[@]}" --hyper-steps 3 --inner adam --out "$out/one-adam" > /dev/null
run_np 2 "$bin/ift-compare" "${common[@]}" --hyper-steps 3 --inner adam --out "$out/np2-adam" > /dev/null
echo "ift-compare, adam, -np 2:"
compare_csv "$out/one-adam/compare.csv" "$out/np2-adam/compare.csv" 1e-11

# A run of 2 processes, continued by 3 (--resume with more hyper-steps), equals one process.
run_np 2 "$bin/ift-compare" "${common[@]}" --hyper-steps 2 --inner sgd --inner-lr 0.1 --out "$out/resumed" > /dev/null
run_np 3 "$bin/ift-compare" "${common[@]}" --hyper-steps 4 --inner sgd --inner-lr 0.1 --out "$out/resumed" --resume > /dev/null
echo "ift-compare, 2 processes then --resume on 3:"
compare_csv "$out/one/compare.csv" "$out/resumed/compare.csv" 1e-12

# ift-overfit on the MLP: products of a two-layer net, sharded.
overfit=("${data[@]}" --train 60 --val 41 --test 50 --model mlp --hidden 8 --hyper-steps 3
         --inner-steps 3 --warmup-steps 5 --method cg --steps 4 --inner sgd --inner-lr 0.1 --threads 1)
"$bin/ift-overfit" "${overfit[@]}" --out "$out/of1" > /dev/null
run_np 2 "$bin/ift-overfit" "${overfit[@]}" --out "$out/of2" > /dev/null
echo "ift-overfit, mlp, -np 2:"
compare_csv "$out/of1/overfit.csv" "$out/of2/overfit.csv" 1e-12

# Errors: a command-line error is reported once with exit code 2; an error on the ranks (a
# missing data folder) ends the whole job with exit code 1, no rank left waiting.
rc=0
run_np 2 "$bin/ift-compare" --methods bogus --out "$out/bad" 2> "$out/err" > /dev/null || rc=$?
[[ $rc -eq 2 ]] || { echo "bad option under mpirun: exit $rc, expected 2" >&2; cat "$out/err" >&2; exit 1; }
[[ $(grep -c -- "--methods" "$out/err") -ge 1 ]] || { echo "message does not name --methods" >&2; exit 1; }
rc=0
timeout 120 "$mpiexec" -np 2 --oversubscribe "$bin/ift-compare" --data fashion-mnist --data-dir "$out/nowhere" \
  --train 10 --val 10 --test 0 --out "$out/bad2" 2> "$out/err2" > /dev/null || rc=$?
[[ $rc -eq 1 ]] || { echo "missing data under mpirun: exit $rc, expected 1" >&2; cat "$out/err2" >&2; exit 1; }
grep -q "nowhere" "$out/err2" || { echo "message does not name the folder" >&2; cat "$out/err2" >&2; exit 1; }
echo "mpi apps: ok"
