#!/usr/bin/env bash
# Smoke test of ift-deep (docs/torch.md example): a few hyper-steps on CPU, the CSV's fixed
# header and one row per step, the echoed parameters, and resume from a checkpoint reproducing
# an uninterrupted run row for row. Uses Fashion-MNIST when installed, synthetic images else.
set -euo pipefail
app=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=()
if [ ! -e "${IFT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}/train-images-idx3-ubyte.gz" ] &&
   [ ! -e "${IFT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}/train-images-idx3-ubyte" ]; then
  data=(--data synthetic)
fi
common=(--train 300 --val 200 --test 200 --method cg --steps 3 --inner-steps 5 --threads 1 "${data[@]}")

"$app" "${common[@]}" --hyper-steps 3 --out "$work/full"
mv "$work/full/ift-deep.csv" "$work/full.csv"
header='step,train_loss,train_accuracy,val_loss,val_accuracy,test_loss,test_accuracy,hypergradient_norm,status,iterations,hvps,alpha,hyper_seconds,seconds'
grep -qx "$header" "$work/full.csv" || { echo "header mismatch"; cat "$work/full.csv"; exit 1; }
grep -q '^# method = cg' "$work/full.csv" || { echo "parameters not echoed"; exit 1; }
rows=$(grep -v '^#' "$work/full.csv" | tail -n +2 | wc -l)
[ "$rows" -eq 3 ] || { echo "expected 3 rows, found $rows"; exit 1; }

"$app" "${common[@]}" --hyper-steps 2 --csv "$work/part.csv" --checkpoint "$work/ck.pt"
"$app" "${common[@]}" --hyper-steps 3 --csv "$work/part.csv" --checkpoint "$work/ck.pt" --resume
# Everything but the timing columns must agree.
diff <(grep -v '^#' "$work/full.csv" | cut -d, -f1-12) <(grep -v '^#' "$work/part.csv" | cut -d, -f1-12) ||
  { echo "resumed run differs from the uninterrupted one"; exit 1; }

# The old spellings (aliases for one release) and --csv FILE still work and give the same table.
old=(--n-train 300 --n-val 200 --n-test 200 --method cg --steps 3 --inner-steps 5 --threads 1 --batch 100
     --inner-optimizer adam --init-log-lambda -5)
[ ${#data[@]} -eq 0 ] || old+=(--synthetic)
"$app" "${old[@]}" --hyper-steps 1 --csv "$work/old.csv"
diff <(grep -v '^#' "$work/old.csv" | head -n 2 | cut -d, -f1-12) <(grep -v '^#' "$work/full.csv" | head -n 2 | cut -d, -f1-12) ||
  { echo "old spellings gave a different run"; exit 1; }

# Misuse is an error (exit 2) with a message naming the option, not a crash.
rc=0; "$app" --method nonsense 2>"$work/err" || rc=$?
[ "$rc" -eq 2 ] || { echo "bad method: exit $rc, expected 2"; exit 1; }
grep -q -- "--method: expected" "$work/err"
rc=0; "$app" --batch-size -1 2>"$work/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--batch-size" "$work/err" || { echo "bad --batch-size not rejected"; exit 1; }
rc=0; "$app" --method kfac --kfac-eigenvalues corrected 2>"$work/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--kfac-eigenvalues" "$work/err" || { echo "EKFAC on LibTorch not refused"; exit 1; }
echo "smoke_ift_deep: ok"
