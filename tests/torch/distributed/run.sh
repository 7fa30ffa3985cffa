#!/usr/bin/env bash
# Runs a torch.distributed program as N processes on this machine, joined through a TCPStore on
# 127.0.0.1 at a free port (torchrun's variables: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT);
# fails when any process fails, and kills the others then (no process is left waiting).
# Usage: run.sh N PROGRAM [ARGS...]
set -euo pipefail
n=$1; shift
port=$(/usr/bin/env python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pids=()
for ((rank = 0; rank < n; ++rank)); do
  RANK=$rank WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then
    status=1
    kill "${pids[@]}" 2>/dev/null || true
  fi
done
exit $status
