#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test: the normal build (with the
# CUDA backend compiled when nvcc is present) and the ASan+UBSan build, the
# multi-worker tests under ThreadSanitizer, plus a short fuzzing smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
export VNP_PYTHON=${VNP_PYENV:-/opt/virnucpro-pyenv}/bin/python
jobs=$(nproc)
# Each stage's header says when it starts (seconds since the start: the log then gives
# every stage's time; docs/TESTING.md, "Time of the default run").
stage() { echo "== $* (at ${SECONDS} s) =="; }
trap 'echo "== end (at ${SECONDS} s, exit $?) =="' EXIT

stage "release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVNP_PYTHON="$VNP_PYTHON" >/dev/null
cmake --build build -j"$jobs"
stage "release ctest"
(cd build && ctest --output-on-failure -j"$jobs")
# Where nvcc is, the release build compiles the CUDA backend for every architecture a
# release supports (A100, A10/RTX 30, L4/L40S/RTX 40, H100/H200): CI fails if one is missing
# from the built library or from what `virnucpro version` reports. (Only this build
# compiles CUDA: the sanitizer and fuzzing builds leave it out.)
if command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  # (plus the Hopper-only kernels, sm_90a machine code alone: src/backend/cuda/sm90)
  build/tests/backend/vnp_fatbin_archs build/libvnp_backend_cuda.a "80;86;89;90" 90
  build/virnucpro version | grep -qx 'CUDA architectures: 80;86;89;90;90a' ||
    { echo "virnucpro version does not report CUDA architectures 80;86;89;90;90a" >&2; exit 1; }
fi

stage "sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVNP_SANITIZE=ON -DVNP_PYTHON="$VNP_PYTHON" >/dev/null
cmake --build build-asan -j"$jobs"
stage "sanitizer ctest"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j"$jobs")

stage "thread sanitizer build (TSan): the multi-worker tests"
# Only what the multi-worker tests need (the CLI they run and the two test programs);
# RelWithDebInfo keeps TSan's ~20x slowdown of the compute kernels bearable. setarch -R
# (no address randomization, inherited by the CLI the tests run) avoids GCC 12's TSan
# aborting with "unexpected memory mapping" on kernels with vm.mmap_rnd_bits > 28.
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVNP_TSAN=ON -DVNP_PYTHON="$VNP_PYTHON" >/dev/null
cmake --build build-tsan -j"$jobs" --target test_workers test_predict_fake virnucpro_cli
(cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
   setarch "$(uname -m)" -R ctest --output-on-failure -j"$jobs" -R 'test_workers|test_predict_fake')

if [[ -f fuzz/CMakeLists.txt ]]; then
  stage "fuzz smoke"
  CC=clang cmake -S . -B build-fuzz -DVNP_FUZZ=ON -DVNP_TESTS=OFF -DVNP_CUDA=OFF >/dev/null
  cmake --build build-fuzz -j"$jobs"
  bash fuzz/smoke.sh build-fuzz
fi
