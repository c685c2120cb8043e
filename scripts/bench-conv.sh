#!/usr/bin/env bash
# Convolutions against cuDNN, as the default job finds them: for each workload set, `tessera
# tune --topk 10` (construction's top 10, measured in one worker beside cuDNN) into a fresh
# database, then one line per workload (best time, cuDNN's, the ratio, the family and schedule
# that won) and, per set, the geometric mean and the lowest ratio of its convolutions.
#
#   scripts/bench-conv.sh [BUILD_DIR] [SET.json ...]
#     default: build/gpu; configs/workloads/resnet50-conv.json, batch1-conv.json, batch32-conv.json
# Extra `tessera tune` arguments go in $TESSERA_TUNE_ARGS (e.g. "--min-time-ms 20").
# Output: BUILD_DIR/bench-conv.<set>.json (tune --json) and BUILD_DIR/bench-conv.db.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/gpu}"
shift || true
sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(configs/workloads/resnet50-conv.json configs/workloads/batch1-conv.json
                               configs/workloads/batch32-conv.json)
tessera="$build/cli/tessera"
db="$build/bench-conv.db"
rm -f "$db" "$db-wal" "$db-shm"
summaries=()
for set in "${sets[@]}"; do
  name=$(basename "$set" .json)
  out="$build/bench-conv.$name.json"
  # shellcheck disable=SC2086
  "$tessera" tune --workloads "$set" --db "$db" --topk 10 ${TESSERA_TUNE_ARGS:-} --json >"$out" 2>"$build/bench-conv.$name.log" || {
    echo "bench-conv: tune failed on $set (log: $build/bench-conv.$name.log)" >&2
    tail -n 5 "$build/bench-conv.$name.log" >&2
    continue
  }
  summaries+=("$(python3 - "$set" "$out" <<'PY'
import json, math, sys
entries = json.load(open(sys.argv[1]))["workloads"]
rows = json.load(open(sys.argv[2]))  # in the set's order
ratios = []
if rows:
    print(f"target: {rows[0]['target']}")
print(f"{'workload':<34} {'best us':>9} {'cuDNN us':>9} {'ratio':>7}  schedule")
for i, r in enumerate(rows):
    key = r["workload"]
    label = entries[i].get("label", key) if i < len(entries) else key
    best = r.get("best")
    if not best:
        print(f"{label[:34]:<34} {'-':>9} {'-':>9} {'-':>7}  no correct result ({r['failed']} failed)")
        continue
    m = best["measurement"]
    v = m.get("vendor_us")
    ratio = v / m["median_us"] if v else None
    if ratio and key.startswith("conv2d"):
        ratios.append(ratio)
    s = best["schedule"]
    knobs = ",".join(f"{k}={v}" for k, v in s["knobs"].items())
    print(f"{label[:34]:<34} {m['median_us']:9.2f} {v if v else float('nan'):9.2f} "
          f"{(f'{ratio:.2f}x') if ratio else '-':>7}  {s['family']}:{knobs}")
if ratios:
    geo = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
    print(f"SUMMARY {sys.argv[1]}: {len(ratios)} convolutions, geomean {geo:.3f}x cuDNN, lowest {min(ratios):.2f}x")
PY
)")
  echo "${summaries[-1]}"
  echo
done
echo "Convolutions vs cuDNN (construction's top 10, same worker):"
for s in "${summaries[@]}"; do grep '^SUMMARY' <<<"$s" | sed 's/^SUMMARY //'; done
