#!/usr/bin/env bash
# Runs each libFuzzer program of BUILD_DIR for SECONDS (make fuzz).
#   scripts/fuzz.sh BUILD_DIR SECONDS [TARGET...]
# Each target starts from its kept corpus, tests/fuzz/corpus/<target>/ (read
# only), and a working corpus BUILD_DIR/fuzz/corpus/<target>/ that grows
# between runs. Bounds per input: 4 KiB for text targets, 64 KiB for file
# formats; 10 s (-timeout) and 2 GiB (-rss_limit_mb). A finding is written to
# BUILD_DIR/fuzz/findings/<target>-*; fix it and add the input to the kept
# corpus, where the normal suite runs it (group "fuzz").
set -euo pipefail
build=${1:?build dir}
seconds=${2:?seconds}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(safetensors config spec bpe_files tokenize spm_model state_dict jsonl answer)
fi
mkdir -p "$build/fuzz/findings"
failed=()
for t in "${targets[@]}"; do
  case $t in
    safetensors|bpe_files|spm_model|state_dict) max_len=65536 ;;
    *) max_len=4096 ;;
  esac
  work="$build/fuzz/corpus/$t"
  mkdir -p "$work"
  echo "fuzz: $t for ${seconds}s" >&2
  if ! "$build/tests/fuzz/fuzz_$t" "$work" "$root/tests/fuzz/corpus/$t" \
      -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$build/fuzz/findings/$t-" -print_final_stats=1 \
      > "$build/fuzz/$t.log" 2>&1; then
    tail -40 "$build/fuzz/$t.log" >&2
    failed+=("$t")
  else
    grep -E "stat::number_of_executed_units|cov:" "$build/fuzz/$t.log" | tail -2 >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]} (inputs under $build/fuzz/findings/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets clean for ${seconds}s each" >&2
