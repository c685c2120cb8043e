#!/usr/bin/env bash
# One model of the zoo (tests/data/zoo.tar.xz) through what a user runs on it:
#   zoo_model.sh TESSERA MODEL.onnx
# `graph show`, `graph optimize` (which must write a graph verified against the model on random
# inputs: exit 0 and verified=yes) and `tune --model` (model only, no GPU needed); every one must
# exit 0. Prints the optimisation's last line (cost reduction, search time).
set -uo pipefail
tessera="$1"
model="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "zoo: $(basename "$model"): $*" >&2; exit 1; }

"$tessera" graph show "$model" > "$work/show.txt" 2>&1 || fail "graph show exited $?: $(tail -n 2 "$work/show.txt")"
"$tessera" graph optimize "$model" -o "$work/opt.onnx" --db "$work/t.db" --budget 20 > "$work/opt.txt" 2>&1 ||
  fail "graph optimize exited $?: $(tail -n 2 "$work/opt.txt")"
grep -q "verified=yes" "$work/opt.txt" || fail "graph optimize did not verify: $(tail -n 1 "$work/opt.txt")"
[ -s "$work/opt.onnx" ] || fail "graph optimize wrote no model"
"$tessera" tune --model "$model" --measure none --db "$work/t.db" > "$work/tune.txt" 2>&1 ||
  fail "tune --model exited $?: $(tail -n 2 "$work/tune.txt")"
echo "$(basename "$model" .onnx): $(tail -n 1 "$work/opt.txt")"
