#!/usr/bin/env bash
# Installs the Debian packages ift needs, only those missing (fast when all are present).
# Usage: scripts/setup-deps.sh [--with-torch] [--with-mpi] [--with-fuzz] [--with-pytorch]
#   --with-torch   LibTorch (Debian's CPU build) for the deep-net adapter, Gloo headers for torch.distributed
#   --with-mpi     Open MPI for the data-parallel problems and their multi-process tests
#   --with-fuzz    clang 14 and its runtime (libFuzzer, sanitizers): scripts/fuzz.sh
#   --with-pytorch Debian's python3-torch (OpenBLAS) for bench/pytorch_compare.py
set -euo pipefail
packages=(build-essential cmake libeigen3-dev libspectra-dev liblbfgspp-dev libboost-program-options-dev
          libbenchmark-dev libgtest-dev zlib1g-dev dataset-fashion-mnist
          python3-matplotlib python3-numpy libopenblas0-pthread libopenblas-openmp-dev)
for arg in "$@"; do
  case $arg in
    --with-torch) packages+=(libtorch-dev libgloo-dev) ;;
    --with-mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    --with-fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
    --with-pytorch) packages+=(python3-torch) ;;
    *) echo "setup-deps.sh: unknown option '$arg' (expected --with-torch, --with-mpi, --with-fuzz or --with-pytorch)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "ift: installing ${missing[*]}" >&2
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
