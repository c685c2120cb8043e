#!/usr/bin/env bash
# Search benchmarks without a GPU (issue: learned model and evolve): replays the bundled H100
# dataset (tests/data) with combined models that never saw the workloads they guide.
#   - evolve: per workload (held out one at a time), the best found with 1/40 of the recorded
#     schedules as the budget, and the trials needed to reach 99 % and 100 % of the recorded
#     best, beside a random order;
#   - schedule: the default workload set as one job with a shared budget, gradient task
#     scheduler against round-robin, weighted total over the best the records allow.
# Builds the CPU parts if needed (about 2 minutes to run on 2 cores).
#
#   scripts/bench-replay.sh [BUILD_DIR] [replay_bench options...]   (default build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
build="${1:-build/release}"
if [ ! -x "$build/tests/replay_bench" ]; then
  tessera_build "$build" >"$build.log" 2>&1 || { tail -30 "$build.log"; exit 1; }
fi
exec "$build/tests/replay_bench" "$build/tests/data/h100-dataset.jsonl" "${@:2}"
