#!/usr/bin/env bash
# On the lent GPU machine, the short form of scripts/gpu-check.sh for one call of the device
# tool: build only the CLI and the GPU family tests (40-55 s there), run the GPU tests that
# $TESTS names (a gtest filter, e.g. "FamiliesGpu.HopperGemm*"; none when unset), then
# scripts/bench-conv.sh over the workload sets given (construction's top 10 of each, beside the
# vendor library, into one fresh database; GEMM sets too), and export that database's records.
#
#   scripts/gpu-bench.sh [SET.json ...]      default: configs/workloads/default.json
#
# Carry .gpu-deps (scripts/fetch-gpu-deps.sh). $TESSERA_TUNE_ARGS goes to tune (default
# "--min-time-ms 20"); $TEST_S and $BENCH_S bound the tests and the benchmark in seconds
# (defaults 300 and 480). Output: build/gpu/bench-conv.* and, where $OUT is set (the device
# tool's folder), gpu-tests.txt, bench.txt and records.jsonl there.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

if ! tessera_gpu_present; then
  echo "gpu-bench: no GPU here (nvidia-smi finds none); run it on the lent GPU machine" >&2
  exit 1
fi
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(configs/workloads/default.json)
build=build/gpu
out="${OUT:-$build}"
start=$(date +%s)
TESSERA_BUILD_TARGETS="tessera kernels_gpu_test" tessera_gpu_build "$build" || exit 1
echo "gpu-bench: built in $(( $(date +%s) - start )) s"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if [ -n "${TESTS:-}" ]; then
  timeout "${TEST_S:-300}" "$build/tests/kernels_gpu_test" --gtest_filter="$TESTS" >"$out/gpu-tests.txt" 2>&1
  echo "gpu-bench: GPU tests exit $? at $(( $(date +%s) - start )) s"
  grep -E '^\[  (FAILED|PASSED) |\[ family   \]|Failure|outputs off' "$out/gpu-tests.txt" | head -n 40
fi
TESSERA_TUNE_ARGS="${TESSERA_TUNE_ARGS:---min-time-ms 20}" timeout "${BENCH_S:-480}" \
  scripts/bench-conv.sh "$build" "${sets[@]}" >"$out/bench.txt" 2>&1
echo "gpu-bench: benchmark exit $? at $(( $(date +%s) - start )) s"
"$build/cli/tessera" db export --format jsonl --db "$build/bench-conv.db" -o "$out/records.jsonl" | tail -n 1
cat "$out/bench.txt"
