#!/usr/bin/env bash
# Builds the release binary and its two packages into build-pkg/:
#   virnucpro_<version>_<arch>.deb     for Debian 12 (declares its Debian dependencies)
#   virnucpro-<version>-Linux.tar.gz   relocatable, with every library it needs beyond
#                                      glibc: unpack anywhere, no root needed to run it
# Usage: bash scripts/package.sh [--no-cuda]   (CUDA backend: as found, like the build)
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=ON
[[ "${1:-}" == "--no-cuda" ]] && cuda=OFF
if [[ $(id -u) == 0 ]]; then
  bash scripts/install-deps.sh
fi
cmake -S . -B build-pkg -DCMAKE_BUILD_TYPE=Release -DVNP_TESTS=OFF -DVNP_CUDA="$cuda" >/dev/null
cmake --build build-pkg -j"$(nproc)"
(cd build-pkg && cpack -B "$PWD")
ls -l build-pkg/*.deb build-pkg/*.tar.gz
