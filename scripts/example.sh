#!/usr/bin/env bash
# Installs dependencies, builds, and runs VirNucPro on the bundled example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p out/example
./build/virnucpro preprocess -l 500 -o out/example examples/example.fa
ls -l out/example
