#!/usr/bin/env bash
# Collects the learned cost model's measured dataset on a GPU: for every workload of
# configs/workloads/dataset.json, construction's top 10, then a seeded random sample of its
# valid space, then model-guided evolution (mutations and crossovers of the measured ones),
# measured into DB. The first two phases resume: the tuner skips what DB already holds for
# this GPU, so run it again (with the same DB) to go on where a time limit stopped it. The
# evolution phase adds up to EVOLVE new schedules per workload on every run.
#
#   scripts/collect-dataset.sh DB [SECONDS] [SAMPLE] [SET] [EVOLVE]
#     SECONDS  stop starting new batches after this long, build included (default 540)
#     SAMPLE   random schedules per workload (default 130; smaller spaces are taken whole)
#     SET      workload set (default configs/workloads/dataset.json)
#     EVOLVE   evolved schedules per workload (default 0: none)
#
# On a cluster, TESSERA_LAUNCH is the MPI launcher each `tessera tune` runs under (README, "Tuning
# on a cluster"), e.g. TESSERA_LAUNCH="mpirun --enable-recovery --hostfile hosts -n 4": rank 0
# (the first host) runs the search and writes DB, every rank measures on its node's GPUs. Use a
# --batch of a few times the GPUs (TESSERA_BATCH, default 32).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
db="${1:?usage: scripts/collect-dataset.sh DB [SECONDS] [SAMPLE] [SET] [EVOLVE]}"
seconds="${2:-540}"
sample="${3:-130}"
set_file="${4:-configs/workloads/dataset.json}"
evolve="${5:-0}"
start=$(date +%s)
build="${TESSERA_BUILD_DIR:-build/gpu}"
launch=()
# shellcheck disable=SC2206
[ -n "${TESSERA_LAUNCH:-}" ] && launch=(${TESSERA_LAUNCH})
if [ ${#launch[@]} -eq 0 ] && ! tessera_gpu_present; then
  echo "collect-dataset: no GPU here (nvidia-smi finds none); run it on the lent GPU machine" >&2
  exit 1
fi
tessera_gpu_build "$build"
tessera="$build/cli/tessera"
left() {  # seconds of the budget left, at least 1
  local l=$(( seconds - ($(date +%s) - start) ))
  echo $(( l > 1 ? l : 1 ))
}
common=(--workloads "$set_file" --db "$db" --measure gpu --min-time-ms 10 --batch "${TESSERA_BATCH:-32}")
echo "collect-dataset: construction's top 10 ($(left) s left)"
"${launch[@]}" "$tessera" tune "${common[@]}" --topk 10 --time-limit "$(left)" >"$db.top10.txt"
echo "collect-dataset: random samples of $sample ($(left) s left)"
"${launch[@]}" "$tessera" tune "${common[@]}" --strategy random --trials "$sample" --seed 1 --time-limit "$(left)" \
  >"$db.random.txt"
if [ "$evolve" -gt 0 ]; then
  echo "collect-dataset: evolution, $evolve per workload ($(left) s left)"
  "${launch[@]}" "$tessera" tune "${common[@]}" --strategy evolve --trials "$evolve" --batch 8 --seed 1 --time-limit "$(left)" \
    >"$db.evolve.txt"
fi
echo "collect-dataset: $(( $(date +%s) - start )) s"
"$tessera" db stats --db "$db"
