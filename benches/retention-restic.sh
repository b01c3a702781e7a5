#!/usr/bin/env bash
# retention-restic.sh: `forget --keep-last 3 --prune` of ferry beside restic's
# on the shared dataset, after ROUNDS backups with mutate-dataset.sh between
# them (both tools back up the same state each round). Reports wall time,
# peak RSS, the repository's bytes before and after, and the bytes freed.
#
# Usage (as root: the dataset scripts need it):
#   benches/retention-restic.sh [--rounds N] [--no-fresh] [--keep] [DATASET_DIR]
#
#   --rounds N    backups per tool (default 10)
#   --no-fresh    start from the dataset as it is (default: make-dataset.sh first)
#   --keep        keep the work directory (repositories, logs), with a copy of
#                 ferry's repository and cache as they were before the forget
#                 (ferry-before, cache-before) to time it again
#
# Environment: FERRY_BIN (default: cargo build --release, target/release/ferry),
# RESTIC_BIN (default: restic on PATH), MAKE_DATASET, MUTATE_DATASET (default:
# <repo>/../shared/bench/{make,mutate}-dataset.sh), TMPDIR (work directory).
# ferry runs `forget --keep-last 3 --prune --keep-delete 0s`, which plans
# the deletion and carries it out in the same run (restic deletes at once
# too); both tools keep their default --max-unused of 5%.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=10 FRESH=1 KEEP=0 DATASET=""
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --no-fresh) FRESH=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *) DATASET=$1; shift ;;
  esac
done
DATASET=${DATASET:-${DATASET_DIR:-/work/bench-data/dataset}}
MAKE_DATASET=${MAKE_DATASET:-$ROOT/../shared/bench/make-dataset.sh}
MUTATE_DATASET=${MUTATE_DATASET:-$ROOT/../shared/bench/mutate-dataset.sh}
RESTIC_BIN=${RESTIC_BIN:-$(command -v restic || true)}
[ -n "$RESTIC_BIN" ] || { echo "restic is not installed (apt-get install restic)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "GNU time is missing (apt-get install time)" >&2; exit 2; }
if [ -z "${FERRY_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin ferry >&2)
  FERRY_BIN=$ROOT/target/release/ferry
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/ferry-retention.XXXXXX")
[ "$KEEP" = 1 ] || trap 'rm -rf "$W"' EXIT
mkdir -p "$W/logs"
export FERRY_PASSWORD=bench RESTIC_PASSWORD=bench FERRY_HOST=bench
export XDG_CACHE_HOME=$W/cache RESTIC_CACHE_DIR=$W/restic-cache
unset FERRY_REPO FERRY_CONFIG

if [ "$FRESH" = 1 ]; then
  echo "== resetting the dataset: $MAKE_DATASET $DATASET" >&2
  "$MAKE_DATASET" "$DATASET" >"$W/logs/make.log" 2>&1
fi
"$FERRY_BIN" init --repo "$W/ferry" >/dev/null
"$RESTIC_BIN" init --repo "$W/restic" --repository-version 2 >/dev/null
for i in $(seq 1 "$ROUNDS"); do
  if [ "$i" -gt 1 ]; then
    "$MUTATE_DATASET" "$DATASET" >"$W/logs/mutate-$i.log" 2>&1
  fi
  echo "== round $i of $ROUNDS: backups" >&2
  "$FERRY_BIN" backup --repo "$W/ferry" --host bench "$DATASET" >"$W/logs/ferry-backup-$i.log" 2>&1
  "$RESTIC_BIN" backup --repo "$W/restic" --host bench --compression auto "$DATASET" \
    >"$W/logs/restic-backup-$i.log" 2>&1
done

if [ "$KEEP" = 1 ]; then
  cp -a "$W/ferry" "$W/ferry-before" && cp -a "$W/cache" "$W/cache-before"
fi
bytes() { du -sb "$1" | cut -f1; }
# measure TOOL REPO CMD...: prints "TOOL seconds peakMiB before after freed".
measure() {
  local tool=$1 repo=$2 before after secs kib; shift 2
  before=$(bytes "$repo")
  sync
  /usr/bin/time -f "%e %M" -o "$W/time" "$@" >"$W/logs/$tool-forget.log" 2>&1 \
    || { echo "$tool forget --prune failed:" >&2; tail -5 "$W/logs/$tool-forget.log" >&2; exit 1; }
  read -r secs kib <"$W/time"
  after=$(bytes "$repo")
  echo "$tool $secs $((kib / 1024)) $before $after $((before - after))"
}
# With --keep-delete 0s ferry's forget --prune carries out the deletion
# plan it writes in the same run, as restic deletes at once.
F=$(measure ferry "$W/ferry" "$FERRY_BIN" forget --repo "$W/ferry" --keep-last 3 --prune --keep-delete 0s)
R=$(measure restic "$W/restic" "$RESTIC_BIN" forget --repo "$W/restic" --keep-last 3 --prune)
printf '\n%-7s %9s %9s %14s %14s %14s\n' tool seconds "peak MiB" "bytes before" "bytes after" "bytes freed"
for line in "$F" "$R"; do
  # shellcheck disable=SC2086
  printf '%-7s %9s %9s %14s %14s %14s\n' $line
done
read -r _ fs fm _ fa _ <<<"$F"
read -r _ rs _ _ ra _ <<<"$R"
echo
echo "time ratio (ferry / restic): $(echo "scale=3; $fs / $rs" | bc -l)   target <= 0.5"
echo "size after ratio:            $(echo "scale=3; $fa / $ra" | bc -l)   target <= 1.0"
echo "ferry peak RSS:              $fm MiB   target <= 256"
"$FERRY_BIN" check --repo "$W/ferry" >"$W/logs/ferry-check.log" 2>&1 \
  && echo "ferry check after the prune: ok" || { echo "ferry check after the prune FAILED" >&2; exit 1; }
