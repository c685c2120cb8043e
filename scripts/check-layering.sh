#!/usr/bin/env bash
# The module table of docs/ARCHITECTURE.md, checked against the code: every `#include "m/..."`
# in a module's sources and every `tessera::m` its CMake target links must name a module it may
# use (itself, or one below it). Exit 0 if they all do, 1 (listing each violation) if not.
#
#   scripts/check-layering.sh [ROOT]     (default: the repository this script is in)
#
# Units: a folder is a module, except search/tuner.*, search/job.* and search/cluster.* (the tuning
# job, its planning and its MPI ranks, which measure: the unit `tuner`, library tessera_tuner), so that search's
# construction, evolution and workload sets stay usable by graph/ without the measurement
# runtime. Device headers ("tessera/...", the
# kernels' embedded CUDA headers) belong to kernels.
set -euo pipefail
root="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"

declare -A may_use=(
  [core]=""
  [kernels]="core"
  [costmodel]="core kernels"
  [measure]="core kernels"
  [db]="core"
  [search]="core kernels costmodel db"
  [tuner]="core kernels costmodel measure db search"
  [graph]="core kernels costmodel measure db search"
  [cli]="core kernels costmodel measure db search tuner graph"
)
modules=(core kernels costmodel measure db search graph cli)

# unit_of PATH: sets `unit` to the unit a repository path ("search/tuner.h",
# "kernels/cuda/x.cuh") belongs to.
unit_of() {
  case "$1" in
    search/tuner.* | search/job.* | search/cluster.*) unit=tuner ;;
    tessera/*) unit=kernels ;;
    *) unit="${1%%/*}" ;;
  esac
}

allowed() {  # allowed FROM TO
  [ "$1" = "$2" ] && return 0
  local u
  for u in ${may_use[$1]}; do [ "$u" = "$2" ] && return 0; done
  return 1
}

violations=0
includes=0
links=0
for m in "${modules[@]}"; do
  [ -d "$m" ] || { echo "check-layering: no module folder $m/ under $root" >&2; exit 1; }
  while IFS= read -r file; do
    unit_of "$file"
    from=$unit
    while IFS= read -r line; do
      target=${line#*\"}
      target=${target%%\"*}
      unit_of "$target"
      to=$unit
      includes=$((includes + 1))
      if [ -z "${may_use[$to]+x}" ]; then
        echo "$file:${line%%:*}: includes $target, which is in no module of the table"
        violations=$((violations + 1))
      elif ! allowed "$from" "$to"; then
        echo "$file:${line%%:*}: $from includes $target ($to, not below it)"
        violations=$((violations + 1))
      fi
    done < <(grep -nE '^#include "[a-z_]+/' "$file" || true)
  done < <(find "$m" -type f \( -name '*.h' -o -name '*.cc' -o -name '*.cuh' \) | sort)

  # Each library's link lines: target_link_libraries(tessera_X ...) up to its closing parenthesis.
  [ -f "$m/CMakeLists.txt" ] || continue
  while IFS=' ' read -r lib deps; do
    from=${lib#tessera_}
    for dep in $deps; do
      to=${dep#tessera::}
      links=$((links + 1))
      if [ -z "${may_use[$to]+x}" ]; then
        echo "$m/CMakeLists.txt: $lib links $dep, which is in no module of the table"
        violations=$((violations + 1))
      elif ! allowed "$from" "$to"; then
        echo "$m/CMakeLists.txt: $lib links $dep ($to, not below $from)"
        violations=$((violations + 1))
      fi
    done
  done < <(awk '
    /target_link_libraries\(tessera_[a-z_]+/ { on = 1; text = "" }
    on { text = text " " $0; if (index($0, ")")) { on = 0
           match(text, /tessera_[a-z_]+/); lib = substr(text, RSTART, RLENGTH); deps = ""
           rest = text
           while (match(rest, /tessera::[a-z_]+/)) { deps = deps " " substr(rest, RSTART, RLENGTH); rest = substr(rest, RSTART + RLENGTH) }
           print lib deps } }' "$m/CMakeLists.txt")
done

if [ "$includes" -eq 0 ] || [ "$links" -eq 0 ]; then
  echo "check-layering: found $includes includes and $links links: nothing was checked" >&2
  exit 1
fi
if [ "$violations" -gt 0 ]; then
  echo "check-layering: $violations include(s) or link(s) point up the module table (docs/ARCHITECTURE.md)"
  exit 1
fi
echo "check-layering: $includes includes and $links links follow the module table"
