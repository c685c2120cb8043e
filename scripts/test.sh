#!/usr/bin/env bash
# The test command: set up, build, and run every test (the `gpu` label only when a GPU is
# present). Exits non-zero on any failure. Build directory: build/release.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh
tessera_build build/release

labels=(-LE gpu)
if tessera_gpu_present; then
  labels=()
  echo "test: GPU present: running the gpu-labelled tests too"
else
  echo "test: no GPU: skipping the gpu-labelled tests (scripts/gpu-check.sh runs them on a GPU)"
fi
ctest --test-dir build/release --output-on-failure -j "${TESSERA_JOBS:-2}" "${labels[@]}"
