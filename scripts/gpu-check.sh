#!/usr/bin/env bash
# On a machine with a GPU: build (CUDA release), run every test including the gpu-labelled
# ones, then the benchmark suite, and print a short table last.
#
# On the lent GPU machine (no package registry there), first run scripts/fetch-gpu-deps.sh
# here and carry .gpu-deps; this script unpacks it into /opt/tessera-deps when the build's
# Debian dependencies are missing. Output: build/gpu (override with TESSERA_BUILD_DIR).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

if ! tessera_gpu_present; then
  echo "gpu-check: no GPU here (nvidia-smi finds none); run it on the lent GPU machine" >&2
  exit 1
fi

build="${TESSERA_BUILD_DIR:-build/gpu}"
start=$(date +%s)
tessera_gpu_build "$build" || exit 1
echo "gpu-check: built in $(( $(date +%s) - start )) s"

ctest --test-dir "$build" --output-on-failure -j 4 -LE gpu >"$build.cpu-tests.log" 2>&1
cpu_rc=$?
ctest --test-dir "$build" --output-on-failure -V -L gpu >"$build.gpu-tests.log" 2>&1
gpu_rc=$?
grep -E 'Failed|\*\*\*' "$build.cpu-tests.log" "$build.gpu-tests.log" | grep -v 'Test command' | head -n 40
# What failed, not only which test.
grep -h -A8 ': Failure' "$build.cpu-tests.log" "$build.gpu-tests.log" | head -n 80

echo
"$build/cli/tessera" devices
echo
echo "Kernel families on this GPU (correctness against the CPU reference):"
grep -o '\[ family   \].*' "$build.gpu-tests.log" | sed 's/^\[ family   \]/ /' || echo "  (none ran)"
echo
echo "Benchmarks (same-process ratios against cuBLAS; CUDA events until CUPTI timing lands):"
bench_rc=0
for spec in matmul:m=4096,n=4096,k=4096:f16 matmul:m=512,n=512,k=16384:f16; do
  "$build/tests/gemm_bench" "$spec" >"$build.gemm-bench.log" 2>&1 || bench_rc=1
  tail -n 8 "$build.gemm-bench.log"
  echo
done
# The Hopper GEMM (gemm_wgmma) on the issue's target shapes: 8192^3, 4096^3, 65536x4096x1024,
# BERT-base's projections (4096 tokens, B as nn.Linear stores it) and its FFN GEMM with the
# bias+GELU fused (against cuBLAS followed by a separate bias+GELU kernel).
hopper_ratios=()
if "$build/cli/tessera" devices 2>/dev/null | grep -q 'sm_90'; then
  echo "Hopper GEMM (gemm_wgmma) against cuBLAS, same process:"
  for spec in matmul:m=8192,n=8192,k=8192:f16 matmul:m=4096,n=4096,k=4096:f16 matmul:m=65536,n=4096,k=1024:f16 \
              matmul:m=4096,n=2304,k=768,tb=1:f16 matmul:m=4096,n=768,k=768,tb=1:f16 matmul:m=4096,n=3072,k=768,tb=1:f16 \
              matmul:m=4096,n=768,k=3072,tb=1:f16 matmul:m=4096,n=3072,k=768,tb=1:f16:epilogue=bias+gelu; do
    TESSERA_BENCH_FAMILY=gemm_wgmma "$build/tests/gemm_bench" "$spec" >"$build.wgmma-bench.log" 2>&1 || bench_rc=1
    line=$(grep '^gemm=' "$build.wgmma-bench.log" || echo "gemm=$spec ratio=failed")
    echo "  $line"
    hopper_ratios+=("$line")
  done
  echo
fi
# The Hopper convolutions (conv_wgmma) against cuDNN as the default job finds them: ResNet-50's
# layers (scripts/bench-conv.sh; the other sets are batch1-conv.json and batch32-conv.json).
conv_summary=()
if "$build/cli/tessera" devices 2>/dev/null | grep -q 'sm_90'; then
  echo "Hopper convolutions against cuDNN, construction's top 10 (scripts/bench-conv.sh):"
  TESSERA_TUNE_ARGS="--min-time-ms 20" scripts/bench-conv.sh "$build" configs/workloads/resnet50-conv.json \
    >"$build.conv-bench.log" 2>&1 || bench_rc=1
  grep -v '^Convolutions vs' "$build.conv-bench.log" | tail -n 32
  mapfile -t conv_summary < <(grep '^SUMMARY' "$build.conv-bench.log" | sed 's/^SUMMARY //')
  echo
fi
echo "tessera bench (CUPTI in a worker process, beside cuBLASLt in the same worker):"
gemm_schedule='{"family":"gemm_tc","knobs":{"block_m":256,"block_n":128,"block_k":64,"warps_m":4,"warps_n":2,"stages":3,"vec":8,"group_m":8,"split_k":1}}'
split_schedule='{"family":"gemm_tc","knobs":{"block_m":64,"block_n":128,"block_k":32,"warps_m":1,"warps_n":4,"stages":4,"vec":8,"group_m":8,"split_k":8}}'
conv_schedule='{"family":"conv_tc","knobs":{"block_m":128,"block_n":128,"block_k":64,"warps_m":2,"warps_n":2,"stages":3,"vec":8,"group_m":8,"split_k":1}}'
for args in "matmul:m=4096,n=4096,k=4096:f16|$gemm_schedule" "matmul:m=512,n=512,k=16384:f16|$split_schedule" \
            "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16|$conv_schedule"; do
  "$build/cli/tessera" bench "${args%%|*}" --schedule "${args#*|}" || bench_rc=1
done
echo
grep -o '\[ measure  \].*' "$build.gpu-tests.log" | sed 's/^\[ measure  \]/ /' || true
echo "Construction + measurement (scripts/bench-tune.sh; top 10 against an evenly spaced sample of ${TESSERA_TUNE_SAMPLE:-200} schedules per shape):"
scripts/bench-tune.sh "$build" "${TESSERA_TUNE_SAMPLE:-200}" || bench_rc=1
echo
echo "Model-guided evolution with 1/40 of the space against the whole space (scripts/bench-evolve.sh):"
scripts/bench-evolve.sh "$build" || bench_rc=1
echo
summary() { grep -Eo '[0-9]+% tests passed.* out of [0-9]+' "$1" || echo "no result"; }
skipped() { grep -c '(Skipped)' "$1" || true; }
if [ ${#hopper_ratios[@]} -gt 0 ]; then
  printf '%-66s %s\n' "gemm_wgmma workload" "vs cuBLAS"
  for line in "${hopper_ratios[@]}"; do
    printf '%-66s %s\n' "$(sed 's/^gemm=\([^ ]*\).*/\1/' <<<"$line")" "$(grep -o 'ratio=[^ ]*' <<<"$line" | cut -d= -f2)"
  done
fi
for line in "${conv_summary[@]}"; do echo "conv_wgmma: $line"; done
printf '%-12s %-55s %s\n' "suite" "result" "skipped"
printf '%-12s %-55s %s\n' "cpu tests" "$(summary "$build.cpu-tests.log")" "$(skipped "$build.cpu-tests.log")"
printf '%-12s %-55s %s\n' "gpu tests" "$(summary "$build.gpu-tests.log")" "$(skipped "$build.gpu-tests.log")"
[ $cpu_rc -eq 0 ] && [ $gpu_rc -eq 0 ] && [ $bench_rc -eq 0 ]
