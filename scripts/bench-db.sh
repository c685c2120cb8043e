#!/usr/bin/env bash
# Database benchmark: builds, then fills a fresh database in /tmp with 1,000,000 synthetic
# records over 10,000 workloads (batches of 10,000) and times best() on it. Arguments go to
# db_bench (--records N --workloads W --batch B --path FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
tessera_build build/release >/dev/null
exec build/release/tests/db_bench "$@"
