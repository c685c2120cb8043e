#!/usr/bin/env bash
# scripts/check-layering.sh on a made-up tree: it passes a tree that follows the module table
# and fails (naming the file) on an upward include, an upward link and an unknown module.
set -uo pipefail
check="$(cd "$(dirname "$0")/../.." && pwd)/scripts/check-layering.sh"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
for m in core kernels costmodel measure db search graph cli; do
  mkdir -p "$tree/$m"
  echo "#include \"core/a.h\"" >"$tree/$m/x.cc"
  echo "target_link_libraries(tessera_$m PUBLIC tessera::core)" >"$tree/$m/CMakeLists.txt"
done
echo '#include "measure/runner.h"' >"$tree/search/tuner.cc"
echo '#include "search/tile.h"' >"$tree/graph/y.cc"
fail=0
expect() {  # expect RC PATTERN: the check's exit status and a line of its output
  out=$("$check" "$tree" 2>&1)
  rc=$?
  if [ "$rc" -ne "$1" ] || ! grep -q -- "$2" <<<"$out"; then
    echo "FAILED: expected exit $1 and '$2', got exit $rc:"
    echo "$out"
    fail=1
  fi
}
expect 0 "follow the module table"
echo '#include "graph/ir.h"' >>"$tree/db/x.cc"
expect 1 "db/x.cc:2: db includes graph/ir.h"
sed -i '2d' "$tree/db/x.cc"
echo '#include "search/tuner.h"' >"$tree/graph/z.cc"
expect 1 "graph includes search/tuner.h (tuner"
rm "$tree/graph/z.cc"
echo 'target_link_libraries(tessera_search PUBLIC tessera::core
  tessera::measure)' >"$tree/search/CMakeLists.txt"
expect 1 "tessera_search links tessera::measure"
echo 'target_link_libraries(tessera_search PUBLIC tessera::core)' >"$tree/search/CMakeLists.txt"
echo '#include "frobnicate/x.h"' >>"$tree/core/x.cc"
expect 1 "in no module of the table"
exit $fail
