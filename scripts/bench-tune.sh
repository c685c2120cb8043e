#!/usr/bin/env bash
# Benchmark of construction + measurement on a GPU (issue: Roller construction and the
# tuning job). For each shape: `tessera tune` with construction's top 10 (timed), then an
# evenly spaced sample of the family's whole valid space measured into the same database,
# then `tessera model eval` over everything measured. Prints, per shape: construction time,
# construct + measure time, best of the top 10 against the best of the sample, and the best
# against the vendor library; then the analytic model's rank correlation.
#
#   scripts/bench-tune.sh [BUILD_DIR] [SAMPLE]     (default build/gpu, 400 schedules per shape)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/gpu}"
sample="${2:-400}"
tessera="$build/cli/tessera"
db="$build/bench-tune.db"
rm -f "$db" "$db-wal" "$db-shm"
shapes=(
  "matmul:m=4096,n=4096,k=4096:f16"
  "matmul:m=4096,n=3072,k=768:f16:epilogue=bias+gelu"
  "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16"
  "matmul:m=4096,n=768,k=3072:f16:epilogue=bias+residual"
  "conv2d:n=32,h=56,w=56,c=256,k=64,r=1,s=1:f16"
)
out="$build/bench-tune.jsonl"
: >"$out"
for w in "${shapes[@]}"; do
  start=$(python3 -c "import time; print(time.time())")
  "$tessera" tune --workload "$w" --db "$db" --topk 10 --json >"$build/bench-tune.top10.json" 2>"$build/bench-tune.log"
  top10_s=$(python3 -c "import time; print(time.time() - $start)")
  "$tessera" tune --workload "$w" --db "$db" --strategy exhaustive --trials "$sample" --min-time-ms 10 --json \
    >"$build/bench-tune.all.json" 2>>"$build/bench-tune.log"
  python3 - "$w" "$top10_s" "$build/bench-tune.top10.json" "$build/bench-tune.all.json" >>"$out" <<'PY'
import json, sys
w, wall, top, allr = sys.argv[1], float(sys.argv[2]), json.load(open(sys.argv[3]))[0], json.load(open(sys.argv[4]))[0]
best10 = top.get("best", {}).get("measurement", {})
best = allr.get("best", {}).get("measurement", {})
print(json.dumps({"workload": w, "construct_s": top["construct_s"], "top10_wall_s": wall,
                  "top10_best_us": best10.get("median_us"), "sample_best_us": best.get("median_us"),
                  "sampled": allr["measured"] + allr["skipped_already_in_db"], "space": allr["ranked"],
                  "vendor_us": best.get("vendor_us"), "failed": top["failed"] + allr["failed"]}))
PY
done
"$tessera" model eval --db "$db" >"$build/bench-tune.eval.txt" || true
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'workload':52} {'construct':>9} {'top10 wall':>10} {'top10 best':>10} {'sample best':>11} {'top10/best':>10} {'vendor':>8} {'best/vendor':>11} {'sampled':>9}")
for r in rows:
    t, b, v = r["top10_best_us"], r["sample_best_us"], r["vendor_us"]
    ratio = f"{b / t:.3f}" if t and b else "-"
    vr = f"{v / b:.3f}x" if v and b else "-"
    print(f"{r['workload'][:52]:52} {r['construct_s']:8.3f}s {r['top10_wall_s']:9.1f}s {t or 0:10.2f} {b or 0:11.2f} {ratio:>10} {v or 0:8.2f} {vr:>11} {r['sampled']:>4}/{r['space']}")
PY
tail -n 1 "$build/bench-tune.eval.txt"
