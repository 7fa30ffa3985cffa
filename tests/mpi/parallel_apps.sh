#!/usr/bin/env bash
# The apps made multi-process by issue 12 items 3-4, under mpirun: ift-hypergrad (one method
# sharded; --sweep split over the ranks), ift-accuracy (methods split over the ranks),
# ift-distill (validation and test rows sharded), the MPI watchdog (a hung rank ends the job),
# --resume after that failed run, and a configuration that differs across ranks.
# Usage: parallel_apps.sh BIN_DIR MPIEXEC
set -euo pipefail
source "$(dirname "$0")/common.sh"
fail() { echo "$*" >&2; exit 1; }
one_writer() {  # one_writer REF_DIR DIR STDOUT: the same files as one process, one summary
  [[ "$(ls "$1")" == "$(ls "$2")" ]] || fail "files differ: $(ls "$2") vs $(ls "$1")"
  [[ $(grep -c '^wrote ' "$3") -eq 1 ]] || fail "expected one summary on stdout"
}

# ift-hypergrad --sweep: the (method, k) pairs split over 2 ranks, each on the full problem,
# equal one process's bit for bit (every rank runs one process's code on its pairs). --inner
# lbfgs and --curvature-batch bring in shine and the sampled curvatures.
hyper=("${data[@]}" --train 301 --val 203 --test 101 --threads 1 --inner lbfgs --quiet)
"$bin/ift-hypergrad" "${hyper[@]}" --sweep --steps-list 0,3 --curvature-batch 50 --out "$out/h1" > /dev/null
run_np 2 "$bin/ift-hypergrad" "${hyper[@]}" --sweep --steps-list 0,3 --curvature-batch 50 --out "$out/h2" > "$out/h2.out"
echo "ift-hypergrad --sweep, pairs split over 2 processes:"
compare_csv "$out/h1/summary.csv" "$out/h2/summary.csv" 0
one_writer "$out/h1" "$out/h2" "$out/h2.out"
# One method, data-parallel (rows sharded, sums reduced): the cg(3) row of the sweep.
run_np 2 "$bin/ift-hypergrad" "${hyper[@]}" --method cg --steps 3 --out "$out/h2cg" > /dev/null
grep -v '^#' "$out/h1/summary.csv" | awk -F, 'NR == 1 || ($1 == "cg" && $2 == "hessian" && $3 == "3")' > "$out/h1cg.csv"
[[ $(wc -l < "$out/h1cg.csv") -eq 2 ]] || fail "no cg(3) row in the sweep"
echo "ift-hypergrad --method cg, rows sharded over 2 processes:"
compare_csv "$out/h1cg.csv" "$out/h2cg/summary.csv" 1e-12

# ift-accuracy: its methods (each k-series whole) split over 2 and 3 ranks: bit for bit.
accuracy=("${data[@]}" --model mlp --hidden 2 --train 120 --val 60 --steps-list 0,2,5 --inner lbfgs
          --threads 1 --quiet --curvature-batch 30
          --methods exact,gauss-newton/exact,kfac,identity,cg,neumann,unrolled,shine,nystrom,cg+fresh,fisher/neumann)
"$bin/ift-accuracy" "${accuracy[@]}" --out "$out/a1" > /dev/null
for np in 2 3; do
  run_np $np "$bin/ift-accuracy" "${accuracy[@]}" --out "$out/a$np" > "$out/a$np.out"
  echo "ift-accuracy, methods split over $np processes:"
  compare_csv "$out/a1/accuracy.csv" "$out/a$np/accuracy.csv" 0
  one_writer "$out/a1" "$out/a$np" "$out/a$np.out"
done

# ift-distill: validation and test rows sharded. inner_gradient_norm is the inner solve's final
# gradient norm, at rounding level (5e-14): compared absolutely.
distill=("${data[@]}" --train 200 --val 101 --test 53 --hyper-steps 4 --steps 30 --threads 1 --quiet
         --checkpoint-every 1)
"$bin/ift-distill" "${distill[@]}" --out "$out/d1" > /dev/null
# (2 processes here; 3 in the resumed run below.)
run_np 2 "$bin/ift-distill" "${distill[@]}" --out "$out/d2" > "$out/d2.out"
echo "ift-distill, -np 2:"
compare_csv "$out/d1/distill.csv" "$out/d2/distill.csv" 1e-12 --abs inner_gradient_norm=1e-12
one_writer "$out/d1" "$out/d2" "$out/d2.out"

# The watchdog: rank 1 hangs (alive) before its 21st collective; rank 0 gives up after
# IFT_DIST_TIMEOUT seconds, names the collective and itself, and ends the job (exit 1).
rc=0
IFT_TEST_HANG_RANK=1 IFT_TEST_HANG_AFTER=20 IFT_DIST_TIMEOUT=2 timeout 120 \
  "$mpiexec" -np 2 --oversubscribe "$bin/ift-distill" "${distill[@]}" --out "$out/hang" \
  > /dev/null 2> "$out/hang.err" || rc=$?
[[ $rc -eq 1 ]] || { cat "$out/hang.err" >&2; fail "hung rank: exit $rc, expected 1"; }
grep -q "rank 0 of 2): error: MPI_Iallgather (collective #20) did not complete within 2 s (IFT_DIST_TIMEOUT)" "$out/hang.err" ||
  { cat "$out/hang.err" >&2; fail "no watchdog error naming the collective and the rank"; }
echo "hung rank: the job ended with exit 1 after IFT_DIST_TIMEOUT"
# --resume continues the failed run (on 3 processes) to one process's result.
rows=$(grep -vc '^#' "$out/hang/distill.csv")
[[ -e "$out/hang/checkpoint-distill.bin" && $rows -gt 1 && $rows -lt 6 ]] ||
  fail "the failed run should have left a checkpoint part of the way ($rows CSV lines)"
run_np 3 "$bin/ift-distill" "${distill[@]}" --out "$out/hang" --resume > /dev/null
echo "ift-distill failed on 2 processes after $((rows - 1)) rows, resumed on 3:"
compare_csv "$out/d1/distill.csv" "$out/hang/distill.csv" 1e-12 --abs inner_gradient_norm=1e-12

# A configuration that differs across ranks: an error on every rank, exit code 2, no hang.
rc=0
timeout 120 "$mpiexec" -np 2 --oversubscribe bash -c \
  'n=301; [[ $OMPI_COMM_WORLD_RANK == 1 ]] && n=302; exec "$0" --train $n --val 10 --test 0 --out "$1"' \
  "$bin/ift-compare" "$out/mismatch" > /dev/null 2> "$out/mismatch.err" || rc=$?
[[ $rc -eq 2 ]] || { cat "$out/mismatch.err" >&2; fail "mismatched ranks: exit $rc, expected 2"; }
grep -q "\[rank 0\]: error: the ranks were started with different configurations: rank 1 differs" "$out/mismatch.err" &&
  grep -q "\[rank 1\]: error: .*here argument 2 is '302', on rank 0 '301'" "$out/mismatch.err" ||
  { cat "$out/mismatch.err" >&2; fail "the mismatch is not reported on every rank"; }
echo "mismatched configuration: reported on every rank, exit 2"
echo "mpi parallel apps: ok"
