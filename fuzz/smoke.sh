#!/usr/bin/env bash
# Short fuzzing smoke run for CI: every fuzz_* harness built in BUILD_DIR runs for a few
# seconds on a scratch copy of its seed corpus (fuzz/corpus/<name>/). Any crash, leak,
# sanitizer report or timeout fails the run; the reproducer is left in the scratch dir.
#
# usage: fuzz/smoke.sh BUILD_DIR [SECONDS_PER_HARNESS]   (default 10: about 30 s for all on
# 2 cores; VNP_FUZZ_JOBS harnesses at a time, default nproc)
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

# One harness per core at a time (each is one single-threaded process): about 30 s for
# all on 2 cores. Their reports are printed in order once all are done.
jobs=${VNP_FUZZ_JOBS:-$(nproc)}
run_one() { # harness; exit status 0 = clean
  local bin=$1 name work
  name=$(basename "$bin")
  work="$scratch/$name"
  mkdir -p "$work/new" "$work/artifacts"
  local seeds=()
  [[ -d "$here/corpus/$name" ]] && seeds=("$here/corpus/$name")
  echo "== $name (${secs}s, seeds: ${seeds[*]:-none})" >"$work/report"
  # New inputs go to the scratch dir; the committed seed corpus is only read.
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/" "$work/new" "${seeds[@]}" >"$work/log" 2>&1; then
    { grep -E '^stat::number_of_executed_units|^Done' "$work/log" | tr '\n' ' '; echo; } >>"$work/report"
  else
    { echo "fuzz smoke: $name FAILED; log and reproducer in $work"; tail -40 "$work/log"; } \
      >>"$work/report"
    return 1
  fi
}

status=0
for bin in "${harnesses[@]}"; do
  while (( $(jobs -rp | wc -l) >= jobs )); do
    wait -n || true
  done
  name=$(basename "$bin")
  { if run_one "$bin"; then echo 0; else echo 1; fi >"$scratch/$name.rc"; } &
done
wait
for bin in "${harnesses[@]}"; do
  name=$(basename "$bin")
  cat "$scratch/$name/report"
  [[ $(cat "$scratch/$name.rc") == 0 ]] || status=1
done
if [[ $status -eq 0 ]]; then
  rm -rf "$scratch"
fi
exit $status
