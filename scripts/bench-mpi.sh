#!/usr/bin/env bash
# Throughput of `mpirun -n R tessera tune` against ranks, without a GPU (issue 29): every rank
# replays the bundled H100 measurements (tests/data/h100-dataset.jsonl) with --replay-pace, so
# that each recorded answer takes PACE x its kernel time x repeats, as measuring it did (about
# 10 ms of GPU time each at pace 1). The job: a seeded random sample of 128 schedules of each of
# the dataset's row-operator workloads, one batch per workload; about 60 % of them are recorded,
# the rest are answered `unmeasured` at once by rank 0 and not counted. For each rank count it
# prints the candidates measured per second of the tuning job (construction + measurement, from
# `tune --json`, which add up to the job's time with overlapping batches too; MPI start-up and the
# replay's loading excluded), the speed-up over one rank and
# the efficiency (speed-up / ranks), and checks that the database holds the same records as the
# one-rank run's. Under mpirun rank 0 submits each workload's batch while the one before is still
# measured (random proposes without looking at results), so the ranks that finish early in a
# batch's last round start on the next workload's instead of idling, and rank 0's search and
# commits run while they measure: what is left is the job's first dispatch and last round, and
# efficiency stays near 99 % at 8 ranks and pace 1 (0.85-0.88 when each batch waited for its
# last candidate). One rank is one process without MPI, which searches and measures in turn.
#
#   scripts/bench-mpi.sh [BUILD_DIR] [PACE] [RANKS...]   (default build/release, 1, 1 2 4 8)
#
# More ranks than cores is fine here: paced ranks sleep. Needs mpirun (Debian: openmpi-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
build="${1:-build/release}"
pace="${2:-1}"
ranks=("${@:3}")
[ ${#ranks[@]} -gt 0 ] || ranks=(1 2 4 8)
if [ ! -x "$build/cli/tessera" ]; then
  tessera_build "$build" >"$build.log" 2>&1 || { tail -30 "$build.log"; exit 1; }
fi
tessera="$build/cli/tessera"
dataset="$build/tests/data/h100-dataset.jsonl"
[ -f "$dataset" ] || { echo "bench-mpi: no $dataset (configure the build with tests)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "bench-mpi: no mpirun (apt-get install openmpi-bin)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

workloads=()
for w in softmax:rows=4096,cols=1024:f16 softmax:rows=2048,cols=8192:f16 softmax:rows=16384,cols=512:f32 \
         softmax:rows=49152,cols=128:f16 layernorm:rows=4096,cols=768:f16 layernorm:rows=2048,cols=4096:f16 \
         layernorm:rows=16384,cols=1024:f16 layernorm:rows=8192,cols=512:f32 reduce:op=max,rows=4096,cols=4096:f16 \
         reduce:op=sum,rows=65536,cols=1024:f32; do
  workloads+=(--workload "$w")
done
batch="${TESSERA_BENCH_BATCH:-128}"
job=(tune --replay "$dataset" --replay-pace "$pace" "${workloads[@]}" --strategy random --trials 128 --seed 1
     --batch "$batch" --json)

echo "bench-mpi: replay pace $pace, $(( ${#workloads[@]} / 2 )) workloads, 128 random schedules each, batches of $batch" \
  "($(nproc) cores)"
printf '%-6s %10s %12s %10s %9s %11s %9s\n' ranks measured "job s" "per s" speed-up efficiency "wall s"
base=""
for n in "${ranks[@]}"; do
  db="$work/ranks$n.db"
  start=$(date +%s.%N)
  if [ "$n" -eq 1 ]; then
    "$tessera" "${job[@]}" --db "$db" >"$work/out$n.json" 2>"$work/err$n.txt"
  else
    mpirun --oversubscribe --enable-recovery --mca btl_vader_single_copy_mechanism none -n "$n" \
      "$tessera" "${job[@]}" --db "$db" >"$work/out$n.json" 2>"$work/err$n.txt"
  fi
  wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  read -r measured seconds < <(python3 -c '
import json, sys
outcomes = json.load(open(sys.argv[1]))
print(sum(o["measured"] - o["failed"] for o in outcomes), sum(o["construct_s"] + o["measure_s"] for o in outcomes))
' "$work/out$n.json")
  rate=$(python3 -c "print(f'{$measured / $seconds:.1f}')")
  [ -n "$base" ] || base="$rate"
  python3 -c "
r, b, n = $rate, $base, $n
print(f'{n:<6d} {$measured:>10d} {$seconds:>12.2f} {r:>10.1f} {r / b:>8.2f}x {r / b / n:>10.0%} {$wall:>9.1f}')"
  "$tessera" db export --db "$db" --format jsonl 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line); r.pop("timestamp_s"); print(json.dumps(r, sort_keys=True))' >"$work/records$n.jsonl"
  if ! cmp -s "$work/records${ranks[0]}.jsonl" "$work/records$n.jsonl"; then
    echo "bench-mpi: $n ranks recorded something else than ${ranks[0]}" >&2
    exit 1
  fi
  grep -h "is lost\|is refused\|serves nothing" "$work/err$n.txt" >&2 || true
done
echo "bench-mpi: every run recorded the same $(wc -l <"$work/records${ranks[0]}.jsonl") records"
