#!/usr/bin/env bash
# `tessera report` rendered by headless Chromium (Debian's chromium-headless-shell, or chromium):
#   report.sh TESSERA RECORDS.jsonl MODEL.onnx
# A database of the H100 records, three of them copied as failures (synthetic, labelled so in
# their error text) and one graph-search result of MODEL.onnx; the page is loaded with
# --dump-dom and the test reads what the browser laid out: every chart the command counted,
# each with a size and marks, the roofline with a point per workload, and the page's numbers.
# TESSERA_REPORT_SCREENSHOT=FILE.png also keeps a screenshot. Exit 77 (skipped) without a
# browser.
set -uo pipefail
tessera="$1"
records="$2"
model="$3"
browser=$(command -v chromium-headless-shell || command -v chromium || true)
[ -n "$browser" ] || { echo "report: no headless Chromium (chromium-headless-shell or chromium)"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "report: $*" >&2; exit 1; }

"$tessera" db import --db "$work/t.db" "$records" > /dev/null || fail "db import failed"
python3 - "$records" "$work/fail.jsonl" <<'EOF' || fail "could not write the failed records"
import json, sys
lines = open(sys.argv[1]).read().splitlines()[:3]
with open(sys.argv[2], "w") as out:
    for i, (line, status) in enumerate(zip(lines, ["compile_error", "incorrect", "timeout"])):
        r = json.loads(line)
        r["measurement"]["status"] = status
        r["measurement"]["error"] = "synthetic %s record of the report test" % status
        r["timestamp_s"] += 1000 + i
        out.write(json.dumps(r) + "\n")
EOF
"$tessera" db import --db "$work/t.db" "$work/fail.jsonl" > /dev/null || fail "db import of the failures failed"
"$tessera" graph optimize "$model" -o "$work/o.onnx" --db "$work/t.db" --budget 20 > /dev/null 2>&1 ||
  fail "graph optimize failed"
"$tessera" report --db "$work/t.db" -o "$work/report.html" --json > "$work/summary.json" || fail "report exited $?"

# Headless Chromium, no sandbox (CI runs as root), its profile in the scratch directory and
# /dev/shm not relied on (small in containers), bounded in time.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-extensions --no-first-run \
  --disable-dev-shm-usage --user-data-dir="$work/profile" --dump-dom "file://$work/report.html" > "$work/dom.html" 2> "$work/browser.log" ||
  fail "the browser failed: $(tail -n 2 "$work/browser.log")"
if [ -n "${TESSERA_REPORT_SCREENSHOT:-}" ]; then
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1300,2400 \
    --disable-dev-shm-usage --user-data-dir="$work/profile" \
    --screenshot="$TESSERA_REPORT_SCREENSHOT" "file://$work/report.html" > /dev/null 2>&1 ||
    fail "the screenshot failed"
fi

python3 - "$work/dom.html" "$work/summary.json" "$records" <<'EOF'
import html, json, re, sys
dom = open(sys.argv[1]).read()
summary = json.load(open(sys.argv[2]))
def check(ok, what):
    if not ok:
        sys.exit("report: " + what)
m = re.search(r'<body[^>]*data-rendered="([^"]*)"', dom)
check(m, "the page's script did not run in the browser (no data-rendered on <body>)")
charts = json.loads(html.unescape(m.group(1)))
check(len(charts) == summary["charts"], "%d charts laid out, the command counted %d" % (len(charts), summary["charts"]))
check(all(c["width"] > 100 and c["height"] > 100 for c in charts), "a chart without a size: %s" % charts)
by_id = {c["id"]: c for c in charts}
check("roofline" in by_id and "model" in by_id, "no roofline or cost-model chart: %s" % list(by_id)[:5])
curves = [c for c in charts if c["id"].startswith("curve-")]
check(len(curves) == summary["workloads"], "%d tuning curves for %d workloads" % (len(curves), summary["workloads"]))
check(all(c["marks"] >= 2 for c in curves), "a tuning curve without its marks")
# The roofline: each workload's best, and the vendor's where measured, under at least one roof.
check(by_id["roofline"]["marks"] >= summary["workloads"] + 1, "roofline marks: %d" % by_id["roofline"]["marks"])
text = re.sub(r"<[^>]+>", " ", dom)
# Numbers the page must show: the fastest record of BERT's FFN GEMM, its vendor time, the
# model's accuracy, the failures and the graph.
ffn = [json.loads(l) for l in open(sys.argv[3])]
ffn = [r["measurement"]["median_us"] for r in ffn if r["measurement"]["status"] == "ok" and r["workload"] == {
    "kind": "matmul", "m": 4096, "n": 3072, "k": 768, "dtype": "f16", "epilogue": "bias+gelu"}]
check(ffn, "no record of the FFN GEMM in the test data")
best = ("%.5g us" if min(ffn) >= 100 else "%.4g us") % min(ffn)  # as the page writes times
check(best in text, "no %s (the FFN GEMM's best) on the page" % best)
check(re.search(r"Pairwise accuracy\s+0\.\d+", text), "no pairwise accuracy")
check(re.search(r"3 of %d records failed" % summary["records"], text), "no failure count")
for status in ("compile_error", "incorrect", "timeout"):
    check("synthetic %s record" % status in text, "no %s row" % status)
check(re.search(r"tiny_resblock[^<]*", dom) and "No graph-search result" not in text, "no graph row")
print("report: %d charts laid out (%d tuning curves), roofline %d marks, numbers found" %
      (len(charts), len(curves), by_id["roofline"]["marks"]))
EOF
