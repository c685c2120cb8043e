#!/usr/bin/env bash
# scripts/check-sizes.py on a made-up tree: it passes files and functions within the limits and
# fails (naming them) on a file over 1,000 lines and on a function over 150; device code
# (kernels/cuda/) is exempt, and braces in comments and strings do not count.
set -uo pipefail
check="$(cd "$(dirname "$0")/../.." && pwd)/scripts/check-sizes.py"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
for m in core kernels costmodel measure db search graph cli tests; do
  mkdir -p "$tree/$m"
  printf 'int f(int x) {\n  return x;  // }\n}\n' >"$tree/$m/a.cc"
done
fail=0
expect() {  # expect RC PATTERN
  out=$(python3 "$check" "$tree" 2>&1)
  rc=$?
  if [ "$rc" -ne "$1" ] || ! grep -q -- "$2" <<<"$out"; then
    echo "FAILED: expected exit $1 and '$2', got exit $rc:"
    echo "$out"
    fail=1
  fi
}
long_function() {  # long_function NAME LINES: a function of LINES lines, braces in a string too
  echo "int $1() {"
  echo '  const char* s = "{{{";'
  for ((i = 0; i < $2 - 3; ++i)); do echo "  int v$i = $i;"; done
  echo "}"
}
expect 0 "within 1000 and 150 lines"
long_function ok 150 >"$tree/graph/b.cc"
expect 0 "within 1000 and 150 lines"
long_function too_long 151 >"$tree/graph/b.cc"
expect 1 "graph/b.cc:1: too_long is 151 lines (at most 150)"
rm "$tree/graph/b.cc"
mkdir -p "$tree/kernels/cuda" && long_function device 400 >"$tree/kernels/cuda/k.cuh"
expect 0 "within 1000 and 150 lines"
for ((i = 0; i < 1001; ++i)); do echo "// line $i"; done >"$tree/db/big.h"
expect 1 "db/big.h: 1001 lines (at most 1000)"
exit $fail
