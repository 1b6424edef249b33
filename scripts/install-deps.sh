#!/usr/bin/env bash
# Installs what building VirNucPro needs on Debian 12 (run as root).
# With --test, also what the test suite needs (clang for fuzzing, a web server
# for the download tests, Python reference tooling for differential tests).
set -euo pipefail
pkgs=(build-essential cmake pkg-config zlib1g-dev libbz2-dev liblzma-dev libzstd-dev
      libcjson-dev libopenblas-dev libcurl4-openssl-dev libssl-dev)
if [[ "${1:-}" == "--test" ]]; then
  # chromium + libxml2-utils: report.html opened in a real browser, the SVGs checked
  # (tests/pipeline/test_report.c)
  pkgs+=(libcmocka-dev clang libclang-rt-14-dev lighttpd python3 python3-venv python3-torch python3-numpy
        man-db snakemake slurm-wlm munge chromium libxml2-utils)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [[ "${1:-}" == "--test" ]]; then
  # Reference implementations for differential tests: a venv on Debian's python3
  # that sees Debian's torch/numpy and adds the small PyPI packages.
  venv=${VNP_PYENV:-/opt/virnucpro-pyenv}
  if [[ ! -x "$venv/bin/python" ]]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
      fair-esm==2.0.0 tokenizers safetensors
fi
