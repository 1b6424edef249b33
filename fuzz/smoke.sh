#!/usr/bin/env bash
# Short fuzzing smoke run for CI: every fuzz_* harness built in BUILD_DIR runs for a few
# seconds on a scratch copy of its seed corpus (fuzz/corpus/<name>/). Any crash, leak,
# sanitizer report or timeout fails the run; the reproducer is left in the scratch dir.
#
# usage: fuzz/smoke.sh BUILD_DIR [SECONDS_PER_HARNESS]   (default 10: about 1 min for all)
set -euo pipefail
build=${1:?usage: fuzz/smoke.sh BUILD_DIR [SECONDS]}
secs=${2:-${VNP_FUZZ_SECONDS:-10}}
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vnp-fuzz-smoke.XXXXXX")

mapfile -t harnesses < <(find "$build" -maxdepth 2 -type f -name 'fuzz_*' -perm -u+x | sort)
if [[ ${#harnesses[@]} -eq 0 ]]; then
  echo "fuzz smoke: no fuzz_* harness under $build (configure with -DVNP_FUZZ=ON, CC=clang)" >&2
  exit 1
fi

status=0
for bin in "${harnesses[@]}"; do
  name=$(basename "$bin")
  work="$scratch/$name"
  mkdir -p "$work/new" "$work/artifacts"
  seeds=()
  [[ -d "$here/corpus/$name" ]] && seeds=("$here/corpus/$name")
  echo "== $name (${secs}s, seeds: ${seeds[*]:-none})"
  # New inputs go to the scratch dir; the committed seed corpus is only read.
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/" "$work/new" "${seeds[@]}" >"$work/log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^Done' "$work/log" | tr '\n' ' '
    echo
  else
    status=1
    echo "fuzz smoke: $name FAILED; log and reproducer in $work" >&2
    tail -40 "$work/log" >&2
  fi
done
if [[ $status -eq 0 ]]; then
  rm -rf "$scratch"
fi
exit $status
