#!/usr/bin/env bash
# Starts N ranks of one stepverify command on this machine, as torchrun does:
# each gets RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1 and MASTER_PORT (a free
# loopback port unless MASTER_PORT is set). Rank 0's output is the job's.
# When a rank fails, the others are stopped; the exit status is the first
# failure's (0 when every rank succeeded).
#
#   scripts/launch_local.sh 2 build/stepverify score --model DIR --input IN.jsonl --output OUT.jsonl
set -uo pipefail

if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N COMMAND [ARGS...]" >&2
  exit 2
fi
n=$1
shift
port=${MASTER_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))}
export WORLD_SIZE=$n MASTER_ADDR=127.0.0.1 MASTER_PORT=$port

pids=()
for ((r = 0; r < n; r++)); do
  RANK=$r "$@" &
  pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null' INT TERM

status=0
remaining=$n
while [ "$remaining" -gt 0 ]; do
  wait -n -p done_pid "${pids[@]}" 2>/dev/null
  rc=$?
  [ -z "${done_pid:-}" ] && break
  remaining=$((remaining - 1))
  if [ "$rc" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$rc
    echo "launch_local: a rank (pid $done_pid) exited with status $rc; stopping the others" >&2
    kill "${pids[@]}" 2>/dev/null
  fi
  unset done_pid
done
wait 2>/dev/null
exit $status
