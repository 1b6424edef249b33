#!/usr/bin/env bash
# A long fuzzing campaign: every fuzz_* harness in BUILD_DIR runs RUNS executions in
# one libFuzzer process (the number recorded in docs/TESTING.md), alongside WORKERS-1
# more processes with other random seeds that share its corpus. All harnesses run at
# the same time. Logs, the grown corpora and any reproducer go under OUT_DIR.
#
# usage: fuzz/campaign.sh BUILD_DIR OUT_DIR [RUNS=1000000] [WORKERS=1]
set -uo pipefail
build=${1:?usage: fuzz/campaign.sh BUILD_DIR OUT_DIR [RUNS] [WORKERS]}
out=${2:?usage: fuzz/campaign.sh BUILD_DIR OUT_DIR [RUNS] [WORKERS]}
runs=${3:-1000000}
workers=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"

pids=()
for bin in $(find "$build" -maxdepth 2 -type f -name 'fuzz_*' -perm -u+x | sort); do
  name=$(basename "$bin")
  mkdir -p "$out/$name/corpus" "$out/$name/artifacts"
  seeds=()
  [[ -d "$here/corpus/$name" ]] && seeds=("$here/corpus/$name")
  for w in $(seq 1 "$workers"); do
    ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
      "$bin" -runs="$runs" -seed="$w" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/$name/artifacts/" "$out/$name/corpus" "${seeds[@]}" \
        >"$out/$name/worker$w.log" 2>&1 &
    pids+=($!)
  done
done
status=0
for p in "${pids[@]}"; do
  wait "$p" || status=1
done
for d in "$out"/fuzz_*; do
  name=$(basename "$d")
  for log in "$d"/worker*.log; do
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "$name $(basename "$log" .log): executions=${execs:-?} seconds=${secs:-?} ${cov}" \
         "artifacts=$(ls "$d/artifacts" | wc -l)"
  done
done
exit $status
