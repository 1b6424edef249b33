#!/usr/bin/env bash
# predict end to end on a GPU with random weights of the real model shapes, and the
# memory check (reads20k x1 vs x10). The figures in bench/RESULTS.md ("predict: memory
# and end-to-end throughput") come from this script.
#   bench/predict_gpu.sh VIRNUCPRO_BINARY BENCH_DIR [WORK_DIR]
# BENCH_DIR holds reads20k.fa.gz and contigs.fa.gz (../shared/bench); WORK_DIR (default
# /tmp/vnp-real) receives the generated checkpoints (11 GB) and the outputs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
V=$1 B=$2 W=${3:-/tmp/vnp-real}
G=$ROOT/tests/fixtures/golden
mkdir -p "$W"
[[ -s $W/esm/model.safetensors ]] || python3 "$ROOT/tools/gen_random_checkpoint.py" esm2 "$W/esm" --device cuda
[[ -s $W/dna/pytorch_model.bin ]] || python3 "$ROOT/tools/gen_random_checkpoint.py" dnabert "$W/dna"
[[ -s $W/cls.pth ]] || python3 "$ROOT/tools/make_classifier.py" 3328 "$W/cls.pth"
zcat "$B/reads20k.fa.gz" >"$W/r1.fa"
for _ in $(seq 10); do cat "$W/r1.fa"; done >"$W/r10.fa"
zcat "$B/contigs.fa.gz" >"$W/contigs.fa"
run() { /usr/bin/time -f "$1: wall %e s, maxrss %M kB" "$V" predict "${@:2}"; }
# the pipeline alone: golden tiny models, golden outputs on the GPU
M="--esm $G/esm2 --dnabert $G/dnabert_s --classifier $G/classifier.pth"
for p in fp32 fp16; do
  run "golden $p" -l 500 -o "$W/golden_$p" $M --device cuda --precision $p "$G/input.fa"
  cmp "$W/golden_$p/prediction_results_highestscore.csv" \
      "$G/expected/prediction_results_highestscore.csv" && echo "golden $p: highest-score file identical"
done
run "golden models, reads20k" -l 300 -o "$W/g1" $M --device cuda "$W/r1.fa"
run "golden models, reads20k x10" -l 300 -o "$W/g10" $M --device cuda "$W/r10.fa"
# real shapes
M="--esm $W/esm --dnabert $W/dna --classifier $W/cls.pth"
run "contigs" -l 500 -o "$W/contigs" $M --device cuda "$W/contigs.fa"
run "contigs, --batch-tokens 65536" -l 500 -o "$W/c65" $M --device cuda --batch-tokens 65536 "$W/contigs.fa"
run "reads20k" -l 300 -o "$W/r1" $M --device cuda "$W/r1.fa"
run "reads20k x10" -l 300 -o "$W/r10" $M --device cuda "$W/r10.fa"
