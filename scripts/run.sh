#!/usr/bin/env bash
# The main job: set up, build, then run the furthest part of the tuning pipeline that
# exists on the bundled default workloads (configs/workloads/default.json).
#
# `tessera tune` (construction, ranking, measurement, records into ./tessera.db) is not
# built yet; until it is, this shows what the pipeline starts from: every workload's
# iteration domain, FLOPs, minimum DRAM bytes and roofline floor on the target, and the
# GPUs found. Nothing is written to ./tessera.db yet.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh
tessera_build build/release
tessera=build/release/cli/tessera

echo
echo "== GPUs =="
"$tessera" devices
target=()
if ! "$tessera" devices --json | grep -q '"fingerprint"'; then
  echo "(model-only: no GPU here, so floors are for the h100_sxm spec; nothing is measured)"
  target=(--target h100_sxm)
fi
echo
echo "== Default workloads: roofline floors (no tuning yet: 'tessera tune' is not built) =="
"$tessera" workload list --workloads configs/workloads/default.json "${target[@]}"
