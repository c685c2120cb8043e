#!/usr/bin/env bash
# Model-guided evolution against the whole space, on a GPU (issue: learned model and evolve).
# Trains the combined model on the bundled H100 dataset (tests/data), then for workloads the
# dataset does not hold: `tune --strategy evolve` with 1/40 of the space as its trial budget,
# and `tune --strategy exhaustive` over the whole space, in separate databases. Prints the
# best of each and their ratio (exhaustive best / evolve best: 1.000 means evolve found it).
#
#   scripts/bench-evolve.sh [BUILD_DIR [SHAPE...]]   (default build/gpu, already built; default shapes below)
#   TESSERA_EVOLVE_SAMPLE=N  the exhaustive side measures an evenly spaced sample of N schedules
#                            where the space is larger (the `all` column says how many it measured);
#                            evolve's budget stays 1/40 of the whole space
#   TESSERA_EVOLVE_REUSE=1   keep the databases of an earlier run (resume an interrupted one)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/gpu}"
tessera="$build/cli/tessera"
[ -f "$build.env" ] && source "$build.env"
work="$build/bench-evolve"
sample="${TESSERA_EVOLVE_SAMPLE:-0}"
if [ "${TESSERA_EVOLVE_REUSE:-0}" != 1 ] || [ ! -f "$work/evolve.db" ]; then
  rm -rf "$work" && mkdir -p "$work"
  tar -xJf tests/data/h100-dataset.tar.xz -C "$work"
  "$tessera" db import "$work/h100-dataset.jsonl" --db "$work/evolve.db" >/dev/null
  "$tessera" model train --db "$work/evolve.db" --folds 0
fi
shapes=("${@:2}")
if [ ${#shapes[@]} -eq 0 ]; then
  shapes=(
    "softmax:rows=8192,cols=2048:f16"
    "layernorm:rows=8192,cols=2048:f16"
    "layernorm:rows=32768,cols=256:f32"
  )
fi
printf '%-40s %6s %8s %12s %6s %12s %9s\n' workload space trials "evolve us" all "all us" ratio
for w in "${shapes[@]}"; do
  all_trials=()
  [ "$sample" -gt 0 ] && all_trials=(--trials "$sample")
  "$tessera" tune --workload "$w" --db "$work/all.db" --strategy exhaustive "${all_trials[@]}" --batch 32 --min-time-ms 10 \
    --json >"$work/all.json" 2>>"$work/log"
  space=$(python3 -c "import json; print(json.load(open('$work/all.json'))[0]['ranked'])")
  trials=$(( (space + 39) / 40 ))
  "$tessera" tune --workload "$w" --db "$work/evolve.db" --strategy evolve --trials "$trials" --batch $(( trials < 32 ? trials : 32 )) --min-time-ms 10 \
    --json >"$work/evolve.json" 2>>"$work/log"
  python3 - "$w" "$space" "$trials" "$work/evolve.json" "$work/all.json" <<'PY'
import json, sys
w, space, trials, e, a = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.load(open(sys.argv[4]))[0], json.load(open(sys.argv[5]))[0]
eb, ab = e["best"]["measurement"]["median_us"], a["best"]["measurement"]["median_us"]
print(f"{w:40} {space:6} {e['measured'] + e['skipped_already_in_db']:8} {eb:12.2f} {a['measured'] + a['skipped_already_in_db']:6} {ab:12.2f} {ab / eb:9.3f}")
PY
done
