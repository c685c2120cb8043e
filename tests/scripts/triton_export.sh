#!/usr/bin/env bash
# The Triton export of real H100 records is Python as pasted (ast), in Triton's names:
#   triton_export.sh TESSERA RECORDS.jsonl
# Triton itself needs a GPU; the lent machine ran the file (README, "Exports").
set -uo pipefail
tessera="$1"
records="$2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "triton_export: $*" >&2; exit 1; }
"$tessera" db import --db "$work/t.db" "$records" > /dev/null 2>&1 || fail "db import failed"
"$tessera" db export --db "$work/t.db" --format triton --top 3 -o "$work/configs.py" 2> "$work/err.txt" ||
  fail "export exited $?: $(tail -n 1 "$work/err.txt")"
python3 -c "import ast, sys; ast.parse(open(sys.argv[1]).read())" "$work/configs.py" || fail "not valid Python"
grep -q "num_warps=" "$work/configs.py" || fail "no num_warps written"
grep -q '"BLOCK_SIZE_M"' "$work/configs.py" || fail "no BLOCK_SIZE_M"
! grep -q '"BLOCK_M"' "$work/configs.py" || fail "an old BLOCK_M name"
# Records of kernels this tessera no longer builds (the old gemm_simt) say their warps are unknown.
grep -E "gemm_(wgmma|tc|tf32)[ ,].*warps unknown" "$work/configs.py" && fail "a config whose warps are unknown"
echo "triton_export: $(grep -c 'triton.Config(' "$work/configs.py") configs, valid Python"
