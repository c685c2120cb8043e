#!/usr/bin/env bash
# The main job: set up, build, and tune the bundled default workloads
# (configs/workloads/default.json) into ./tessera.db, then print the results table.
#
# With a GPU, candidates are constructed, ranked by the analytic model, built, checked
# and measured beside the vendor library. Without one, `tessera tune` says MODEL ONLY and
# records the model's ranking for the h100_sxm spec as `unmeasured` predictions.
# Extra arguments go to `tessera tune` (e.g. --topk 5, --time-limit 600, --target a100_sxm).
# Then `tessera graph optimize` runs the graph search on the bundled BERT-base model with
# the operator costs ./tessera.db holds (the model's estimates for the rest), and last
# `tessera report` writes ./tessera-report.html.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh
tessera_build build/release
tessera=build/release/cli/tessera

echo
echo "== GPUs =="
"$tessera" devices
echo
echo "== tessera tune --workloads configs/workloads/default.json --db ./tessera.db $* =="
"$tessera" tune --workloads configs/workloads/default.json --db ./tessera.db "$@"
echo
echo "== ./tessera.db =="
"$tessera" db list --db ./tessera.db
echo
# The graph search on a bundled model, costed with what ./tessera.db holds (else the model).
echo "== tessera graph optimize bert_base.onnx --db ./tessera.db =="
"$tessera" graph optimize build/release/tests/data/graphs/bert_base.onnx -o build/release/bert_base.opt.onnx \
  --db ./tessera.db
echo
# One page with the tuning curves, the roofline, the cost model's accuracy and the failures.
echo "== tessera report --db ./tessera.db -o tessera-report.html =="
"$tessera" report --db ./tessera.db -o tessera-report.html
echo "open $(pwd)/tessera-report.html in a browser"
