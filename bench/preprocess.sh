#!/usr/bin/env bash
# Preprocessing throughput on one core (not a test): `virnucpro preprocess` on the
# two benchmark inputs, RUNS runs each, pinned to one CPU.
#   bench/preprocess.sh [path/to/virnucpro] [bench dir]
# Throughput is uncompressed input bytes per second of the whole process (start
# to exit: decompression, parsing, chunking, translation, writing the three
# files), from the best wall-clock run and from the best CPU time (user + sys;
# the honest figure on a loaded machine, where wall time includes waiting for a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/virnucpro}
dir=${2:-../shared/bench}
runs=${RUNS:-7}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
TIMEFORMAT='%R %U %S'

printf '%-16s %5s %9s %11s %9s %11s %9s\n' input chunk "input MB" "best wall s" "MB/s" \
  "best CPU s" "MB/s"
for spec in "contigs.fa.gz 500" "reads20k.fa.gz 300"; do
  read -r file chunk <<<"$spec"
  bytes=$(gzip -dc "$dir/$file" | wc -c)
  : >"$out/times"
  for ((i = 0; i < runs; i++)); do
    rm -rf "$out/o"
    { time "${pin[@]}" "$bin" preprocess -q -l "$chunk" -o "$out/o" "$dir/$file"; } 2>>"$out/times"
  done
  awk -v f="$file" -v c="$chunk" -v n="$bytes" '
    { w = $1; cpu = $2 + $3; if (NR == 1 || w < bw) bw = w; if (NR == 1 || cpu < bc) bc = cpu }
    END { printf "%-16s %5s %9.2f %11.3f %9.1f %11.3f %9.1f\n", f, c, n / 1e6, bw, n / 1e6 / bw,
          bc, n / 1e6 / bc }' "$out/times"
done
