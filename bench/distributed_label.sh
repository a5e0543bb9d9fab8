#!/usr/bin/env bash
# The demo's labeling job (policy samples of held-out problems, Monte Carlo
# step labels by rollouts of the demo policy) run by 1 process and by N local
# ranks, each at one thread (torch and OpenBLAS), on this machine. Prints the
# wall times, the speed-up against the ideal N, and whether the outputs are
# byte-identical. On a machine with N free cores the ratio shows the
# group's overhead; across machines the same command runs with --master.
#
#   bench/distributed_label.sh [BUILD_DIR] [PROBLEMS] [RANKS]
set -euo pipefail
build=${1:-build}
problems=${2:-40}
ranks=${3:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export STEPVERIFY_TORCH_THREADS=1 STEPVERIFY_BLAS_THREADS=1

# The solutions to label: 16 policy samples per dev problem, as the demo draws them.
"$build/stepverify" demo --models "$root/models" --set dev --problems "$problems" --candidates "$work/c.jsonl" \
  --json >/dev/null 2>&1
# One label line per sample: question, solution (steps on lines), gold.
python3 - "$work/c.jsonl" "$work/in.jsonl" <<'PY' 2>/dev/null || { echo "needs python3 to reshape the job"; exit 0; }
import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as out:
    for line in f:
        p = json.loads(line)
        for c in p["candidates"]:
            out.write(json.dumps({"question": p["question"], "solution": c["text"], "gold": p["gold"]}) + "\n")
PY
n=$(wc -l <"$work/in.jsonl")
args=(label --policy "$root/models/policy" --input "$work/in.jsonl" --rollouts 4 --requests-per-call 64)

t0=$(date +%s.%N)
"$build/stepverify" "${args[@]}" --output "$work/one.jsonl" 2>/dev/null
t1=$(date +%s.%N)
"$root/scripts/launch_local.sh" "$ranks" "$build/stepverify" "${args[@]}" --output "$work/many.jsonl" 2>/dev/null
t2=$(date +%s.%N)

same=$(cmp -s "$work/one.jsonl" "$work/many.jsonl" && echo yes || echo NO)
awk -v n="$n" -v r="$ranks" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v same="$same" 'BEGIN {
  one = t1 - t0; many = t2 - t1
  printf "label: %d solutions, 4 rollouts per step prefix, one thread per process\n", n
  printf "  1 process: %.1f s\n  %d ranks:   %.1f s (speed-up %.2fx of an ideal %dx; efficiency %.0f%%)\n", one, r, many, one / many, r, 100 * one / many / r
  printf "  outputs byte-identical: %s\n", same
}'
