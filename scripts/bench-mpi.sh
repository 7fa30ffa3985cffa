#!/usr/bin/env bash
# Strong scaling of data-parallel hypergradients over MPI (issue 12; bench/README.md "More than
# one process"): builds bench_mpi (-DIFT_WITH_MPI=ON), runs it under `mpirun -np 1` and then
# `-np 2` in this one script run, and writes results/bench-mpi/np{1,2}.json and table.md:
# t(1)/t(2), communication and computation, the cost model's prediction for 2 ranks against the
# measurement, and its predictions for N machines on a network.
#   scripts/bench-mpi.sh                     everything (about 5 minutes on an idle 2-core machine)
#   FILTER='LogReg' scripts/bench-mpi.sh     only some benchmarks (BM_MpiSum is always kept:
#                                            the model needs it)
#   BUILD_DIR=... OUT_DIR=... MPIEXEC_ARGS='--hostfile hosts' scripts/bench-mpi.sh
# One thread per rank (OMP_NUM_THREADS=1 unless set), so 2 ranks use 2 cores: a machine with
# fewer idle cores than ranks measures its load, not the scaling (the table prints the load
# average and the CPU-time figures, which do not count time a rank waited for a core).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
out=${OUT_DIR:-$root/results/bench-mpi}
filter=${FILTER:-.}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Open MPI refuses to start as root without these (containers, CI); shared memory and TCP only.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=${OMPI_MCA_btl:-self,vader,tcp}

IFT_BUILD_DIR=$build "$root/scripts/build.sh" --target bench_mpi -DIFT_WITH_MPI=ON
mpiexec=$(sed -n 's/^MPIEXEC_EXECUTABLE:FILEPATH=//p' "$build/CMakeCache.txt")
[[ -x "$mpiexec" && -x "$build/bin/bench_mpi" ]] ||
  { echo "bench-mpi.sh: no mpiexec or bench_mpi in $build (is libopenmpi-dev installed?)" >&2; exit 1; }
mkdir -p "$out"
for np in 1 2; do
  echo "bench-mpi.sh: -np $np (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086  # MPIEXEC_ARGS: several words on purpose
  "$mpiexec" -np "$np" --oversubscribe --bind-to none ${MPIEXEC_ARGS:-} "$build/bin/bench_mpi" \
    --benchmark_filter="BM_MpiSum|$filter" \
    --benchmark_out="$out/np$np.json" --benchmark_out_format=json
done
/usr/bin/python3 "$root/scripts/bench_mpi_table.py" "$out/np1.json" "$out/np2.json" > "$out/table.md"
cat "$out/table.md"
echo "bench-mpi.sh: wrote $out/table.md"
