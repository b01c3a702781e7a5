#!/usr/bin/env bash
# Volumes move in parallel: N PVCs of M MiB each backed up through the fake
# kubelet's data-mover Jobs (real `ferry mover` processes in private mount
# namespaces; needs root and unshare) with --parallel-volumes 1 and N.
# Prints wall and CPU seconds per run (CPU: every ferry process, summed),
# then the same for a second backup of the unchanged volumes
# ("unchanged": true, with the file data the movers read).
#
#   benches/volumes.sh            # 8 PVCs of 256 MiB (the benchmark)
#   benches/volumes.sh 8 4        # 8 PVCs of 4 MiB (a quick look)
#   FERRY_BENCH_PROFILE=test benches/volumes.sh 8 4   # without a release build
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY_BENCH_VOLUMES=${1:-8} FERRY_BENCH_PVC_MIB=${2:-256} \
  cargo test --profile "${FERRY_BENCH_PROFILE:-release}" --test k8s bench_parallel_volumes -- --ignored --nocapture --test-threads 1 \
  2>&1 | grep -o '{"cpu_seconds.*}'
