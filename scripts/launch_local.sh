#!/usr/bin/env bash
# Starts N ranks of one stepverify command on this machine, as torchrun does:
# each gets RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT (a free
# loopback port unless MASTER_PORT is set) and STEPVERIFY_JOB_ID (this job's
# keys in the store). Rank 0's output is the job's. When a rank fails, the
# others are stopped; the exit status is the first failure's (0 when every
# rank succeeded; 128 + the signal when the launcher is interrupted).
#
#   scripts/launch_local.sh 2 build/stepverify score --model DIR --input IN.jsonl --output OUT.jsonl
set -uo pipefail

if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N COMMAND [ARGS...]" >&2
  exit 2
fi
n=$1
shift
if [ -z "${MASTER_PORT:-}" ]; then
  MASTER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + RANDOM % 40000)))
fi
export WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT
export STEPVERIFY_JOB_ID=${STEPVERIFY_JOB_ID:-local-$$-$RANDOM}

pids=()
for ((r = 0; r < n; r++)); do
  RANK=$r "$@" &
  pids+=($!)
done
stop_all() { kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; }
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

# Poll the ranks (portable to any bash): the first failure stops the others.
status=0
running=("${pids[@]}")
while [ ${#running[@]} -gt 0 ]; do
  still=()
  for pid in "${running[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      still+=("$pid")
      continue
    fi
    wait "$pid"
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
      status=$rc
      echo "launch_local: a rank (pid $pid) exited with status $rc; stopping the others" >&2
      kill "${pids[@]}" 2>/dev/null
    fi
  done
  running=("${still[@]+"${still[@]}"}")
  [ ${#running[@]} -gt 0 ] && sleep 0.1
done
exit $status
