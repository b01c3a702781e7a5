#!/usr/bin/env bash
# Time and peak RSS of `forget --prune`, `check` and an incremental backup
# on a repository of many blobs, built cheaply: random data cut into small
# chunks (min 256 B, avg 512 B), so that BLOBS blobs take BLOBS * 512 bytes.
#
#   benches/prune.sh [BLOBS]        # default 1000000; the issue's sizes: 1000000, 10000000
#
# Needs a release build (cargo build --release) and GNU time (/usr/bin/time).
# Prints one line per step: step, seconds, peak RSS in MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
BLOBS=${1:-1000000}
FERRY=${FERRY:-target/release/ferry}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export FERRY_PASSWORD=bench XDG_CACHE_HOME="$WORK/cache" FERRY_HOST=bench
REPO="$WORK/repo"
SRC="$WORK/src"
mkdir -p "$SRC"
measure() {
  local step=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null
  read -r secs kib <"$WORK/time"
  printf '%-22s %8.2f s %8.1f MiB\n' "$step" "$secs" "$(echo "$kib / 1024" | bc -l)"
}
"$FERRY" init --repo "$REPO" --chunk-min 256B --chunk-avg 512B --chunk-max 2KiB \
  --pack-size 4MiB --kdf-memory 8MiB --kdf-iterations 1 >/dev/null
# Two halves: the first snapshot holds both, the second only the second half,
# so that forgetting the first frees half the blobs.
half=$((BLOBS * 512 / 2))
head -c "$half" /dev/urandom >"$SRC/a"
head -c "$half" /dev/urandom >"$SRC/b"
measure "backup (first)" "$FERRY" backup --repo "$REPO" --time 2025-01-01T00:00:00Z "$SRC"
rm "$SRC/a"
measure "backup (incremental)" "$FERRY" backup --repo "$REPO" --time 2025-01-02T00:00:00Z "$SRC"
measure "forget --prune (plan)" "$FERRY" forget --repo "$REPO" --keep-last 1 --prune --keep-delete 1s
sleep 1
measure "prune (delete)" "$FERRY" prune --repo "$REPO" --keep-delete 1s
measure "check" "$FERRY" check --repo "$REPO"
echo "blobs: $BLOBS; repository: $(du -sh "$REPO" | cut -f1)"
