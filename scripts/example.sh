#!/usr/bin/env bash
# Installs dependencies, builds, and runs VirNucPro on the bundled example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p out/example
# First use downloads ESM-2 3B, DNABERT-S and the classifier (about 12 GB) into
# $VIRNUCPRO_MODELS or ~/.cache/virnucpro, verifies them, and reuses them afterwards.
# Add --device cuda on a GPU node.
./build/virnucpro predict -l 500 -o out/example examples/example.fa
head -5 out/example/prediction_results.txt
cat out/example/sequences.tsv
