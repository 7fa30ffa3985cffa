# The set-up of the multi-process app tests (sourced by apps.sh and parallel_apps.sh with the
# arguments BIN_DIR MPIEXEC): bin, mpiexec, a scratch folder $out removed at exit, one OpenMP
# thread per rank, the data set (Fashion-MNIST when installed, else the seeded blobs), and:
#   run_np N app args...             mpirun with N processes on this machine's 2 cores
#   compare_csv REF OTHER TOL [...]  tests/compare_csv.py
bin=$1
mpiexec=$2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export OMP_NUM_THREADS=1
run_np() {
  local np=$1; shift
  "$mpiexec" -np "$np" --oversubscribe "$@"
}
compare_csv() {
  /usr/bin/env python3 "$(dirname "${BASH_SOURCE[0]}")/../compare_csv.py" "$@"
}
data=(--data fashion-mnist)
[[ -e /usr/share/datasets/fashion-mnist || -n "${IFT_FASHION_MNIST_DIR:-}" ]] || data=(--data synthetic)
