#!/usr/bin/env bash
# Smoke test of ift-baselines: a tiny offline run (synthetic data, a budget of seconds) of every
# kind of method, the documented CSV header, rows for both starts of the searches, a budget that
# is honoured, and bad input rejected with a message naming the option and nothing written.
# Usage: smoke_baselines.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin/ift-baselines" --data synthetic --train 100 --val 100 --test 100 --budget 60 \
  --family per-class --methods random-search,bayes-opt,hypernetwork,cg --threads 1 \
  --out "$out/run" > "$out/stdout"
csv="$out/run/baselines.csv"
expected='method,start,step,cost,seconds,train_loss,val_loss,val_accuracy,test_loss,test_accuracy,best_val_loss,lambda_mean,lambda_min,lambda_max,inner_iterations,inner_status,hypergradient_norm,gp_jitter,status,message'
header=$(grep -v '^#' "$csv" | head -n 1)
[[ "$header" == "$expected" ]] || { echo "unexpected header: $header" >&2; exit 1; }
grep -q '^# cost in gradient-equivalents, ratios timed at the start: gradient=1 ' "$csv" \
  || { echo "no cost ratios in the header" >&2; exit 1; }
for pair in random-search,reinit random-search,warm-best bayes-opt,reinit bayes-opt,warm-best \
            hypernetwork,warm cg,warm; do
  grep -q "^$pair," "$csv" || { echo "no rows for $pair" >&2; cat "$out/stdout" >&2; exit 1; }
done
# Every method stops once it has spent the budget: only its last row may exceed it, and the
# best validation loss never increases along a method's rows.
/usr/bin/python3 - "$csv" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith('#'))]
runs = {}
for r in rows:
    runs.setdefault((r['method'], r['start']), []).append(r)
for key, rs in runs.items():
    costs = [float(r['cost']) for r in rs]
    assert all(c < 60 for c in costs[:-1]), (key, costs)
    assert costs == sorted(costs), (key, costs)
    best = [float(r['best_val_loss']) for r in rs]
    assert all(b2 <= b1 for b1, b2 in zip(best, best[1:])), (key, best)
    assert all(float(r['lambda_min']) >= -10 and float(r['lambda_max']) <= 1
               for r in rs if r['method'] in ('random-search', 'bayes-opt')), key
PY

# The MLP: the hypernetwork and an IFT method on a tiny network.
"$bin/ift-baselines" --data synthetic --train 60 --val 60 --test 0 --budget 15 --model mlp \
  --hidden 4 --methods hypernetwork,cg --threads 1 --out "$out/mlp" > /dev/null
for m in hypernetwork cg; do
  grep -q "^$m,warm," "$out/mlp/baselines.csv" || { echo "no MLP rows for $m" >&2; exit 1; }
done

# The plot script reads the table.
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
  /usr/bin/python3 "$2/plots/plot_baselines.py" "$csv" -o "$out/plot.png" > /dev/null
  [[ -s "$out/plot.png" ]] || { echo "no plot written" >&2; exit 1; }
fi

# Ctrl-C: stops between rows with exit code 130 and every finished row in a whole CSV file.
"$bin/ift-baselines" --data synthetic --train 100 --val 100 --test 100 --budget 1000000 \
  --methods random-search --threads 1 --out "$out/int" > "$out/int.out" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  sleep 0.1
  [[ -f "$out/int/baselines.csv" ]] && (( $(grep -vc '^#' "$out/int/baselines.csv") >= 3 )) && break
done
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[[ $rc -eq 130 ]] || { echo "interrupted run exited $rc (expected 130)" >&2; cat "$out/int.out" >&2; exit 1; }
grep -q "interrupted" "$out/int.out" || { echo "no interruption message" >&2; exit 1; }
/usr/bin/python3 - "$out/int/baselines.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith('#')))
assert len(rows) >= 2 and all(len(r) == 20 and r['status'] for r in rows), rows[-1]
PY

# Bad input: exit code 2, the option named on stderr, no output directory created.
check_bad() {
  local option=$1; shift
  local rc=0
  "$bin/ift-baselines" --out "$out/bad" "$@" 2> "$out/stderr" || rc=$?
  [[ $rc -eq 2 ]] || { echo "ift-baselines exited $rc (expected 2) for $*" >&2; exit 1; }
  grep -q -- "--$option" "$out/stderr" || { echo "message does not name --$option:" >&2; cat "$out/stderr" >&2; exit 1; }
  [[ ! -e "$out/bad" ]] || { echo "output left behind for $*" >&2; exit 1; }
}
check_bad methods --data synthetic --family per-weight --methods bayes-opt
check_bad methods --data synthetic --methods cg,bogus
check_bad family --data synthetic --model mlp --family per-class
check_bad budget --data synthetic --budget 0
check_bad log-decay-max --data synthetic --log-decay-min 2 --log-decay-max 1
check_bad hyper-rank --data synthetic --family per-class --hyper-rank 11
check_bad starts --data synthetic --starts warm,warm
echo "smoke_baselines: ok"
