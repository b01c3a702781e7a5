#!/usr/bin/env bash
# Memory and time against the size of the work: a repository of many blobs
# and a tree of many small files, each at 10 % and 100 % of the size, with
# time and peak RSS of every step (see benches/README.md, "Scale").
#
#   benches/scale.sh [--blobs N] [--files N] [--no-restic] [--only blobs|files]
#                    [--workdir DIR] [--keep]
#
# Defaults: --blobs 1000000 --files 200000 (the issue's sizes: 10000000 and
# 2000000). Needs GNU time (/usr/bin/time) and, for the side-by-side, restic.
# Builds target/release/ferry and the synth_repo example unless FERRY and
# SYNTH name binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
BLOBS=1000000 FILES=200000 RESTIC=1 ONLY="" WORKDIR="" KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --blobs) BLOBS=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --no-restic) RESTIC=0; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "${FERRY:-}" ] || [ -z "${SYNTH:-}" ]; then
  cargo build --release --bin ferry --example synth_repo >&2
fi
FERRY=${FERRY:-target/release/ferry}
SYNTH=${SYNTH:-target/release/examples/synth_repo}
if [ "$RESTIC" = 1 ] && ! command -v restic >/dev/null; then
  echo "restic is not installed: apt-get install restic, or --no-restic" >&2; exit 2
fi
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install time" >&2; exit 2; }
W=${WORKDIR:-$(mktemp -d)}
mkdir -p "$W"
[ "$KEEP" = 1 ] || trap 'rm -rf "$W"' EXIT
export FERRY_PASSWORD=bench RESTIC_PASSWORD=bench FERRY_HOST=bench
export XDG_CACHE_HOME="$W/cache" RESTIC_CACHE_DIR="$W/restic-cache"

printf '%-7s %-30s %10s %9s %9s %12s\n' tool step size seconds "peak MiB" "us per unit"
# measure TOOL STEP SIZE CMD...: one line of the table.
measure() {
  local tool=$1 step=$2 size=$3; shift 3
  sync
  if ! /usr/bin/time -f "%e %M" -o "$W/time" "$@" >"$W/out" 2>"$W/err"; then
    echo "$tool $step failed:" >&2; tail -5 "$W/err" >&2; exit 1
  fi
  read -r secs kib <"$W/time"
  printf '%-7s %-30s %10s %9.2f %9.1f %12.2f\n' "$tool" "$step" "$size" "$secs" \
    "$(echo "$kib / 1024" | bc -l)" "$(echo "$secs * 1000000 / $size" | bc -l)"
}

blobs_case() {
  local n=$1 r="$W/repo-$1" src="$W/small-$1"
  measure synth "build repository" "$n" "$SYNTH" repo "$r" "$n"
  local snap files dirs half
  snap=$(grep '^snapshot' "$W/out" | tail -1 | cut -d' ' -f2 | tr -d :)
  files=$(( (n + 63) / 64 )); dirs=$(( (files + 255) / 256 )); half=$(( dirs / 2 ))
  mkdir -p "$src"
  for i in $(seq 1 100); do head -c 4096 /dev/urandom >"$src/f$i"; done
  measure ferry "open + incremental backup" "$n" "$FERRY" backup --repo "$r" "$src"
  measure ferry "restore one file" "$n" "$FERRY" restore --repo "$r" "$snap" \
    --target "$W/one-$n" --include "/d$(printf %06d "$half")/f$(printf %08d $((half * 256)))"
  [ -n "$(find "$W/one-$n" -type f | head -1)" ] || { echo "restore of one file wrote nothing" >&2; exit 1; }
  measure ferry "ls (synthetic snapshot)" "$n" "$FERRY" ls --repo "$r" "$snap"
  measure ferry "forget --keep-last 1 --prune" "$n" "$FERRY" forget --repo "$r" \
    --keep-last 1 --prune --keep-delete 1s
  sleep 1
  measure ferry "prune (deletes the plan)" "$n" "$FERRY" prune --repo "$r" --keep-delete 1s
  measure ferry "check" "$n" "$FERRY" check --repo "$r"
  rm -rf "$r" "$src" "$W/one-$n" "$W/cache"
}

files_case() {
  local n=$1 t="$W/tree-$1"
  measure gen "generate tree" "$n" "$SYNTH" tree "$t" "$n"
  local r="$W/ferry-$n"
  "$FERRY" init --repo "$r" --kdf-memory 8MiB --kdf-iterations 1 >/dev/null
  measure ferry "backup (first)" "$n" "$FERRY" backup --repo "$r" "$t"
  measure ferry "backup (unchanged)" "$n" "$FERRY" backup --repo "$r" "$t"
  measure ferry "restore" "$n" "$FERRY" restore --repo "$r" latest --target "$W/restore-$n"
  measure ferry "ls" "$n" "$FERRY" ls --repo "$r" latest
  # One snapshot of the whole tree and one of half of it, as restic's below:
  # forget the first and prune (two-phase, carried out in one run).
  local half
  half=$(find "$t" -mindepth 1 -maxdepth 1 -type d | sort | head -n 8 | tr '\n' ' ')
  # shellcheck disable=SC2086
  "$FERRY" backup --repo "$r" $half >/dev/null
  measure ferry "forget --keep-last 1 --prune" "$n" "$FERRY" forget --repo "$r" \
    --keep-last 1 --group-by host --prune --keep-delete 0s
  measure ferry "check" "$n" "$FERRY" check --repo "$r"
  rm -rf "$W/restore-$n" "$r" "$W/cache"
  if [ "$RESTIC" = 1 ]; then
    r="$W/restic-$n"
    restic init --repo "$r" >/dev/null
    measure restic "backup (first)" "$n" restic --repo "$r" backup "$t"
    measure restic "backup (unchanged)" "$n" restic --repo "$r" backup "$t"
    measure restic "restore" "$n" restic --repo "$r" restore latest --target "$W/restore-$n"
    measure restic "ls" "$n" restic --repo "$r" ls latest
    # The same two snapshots: forget the first and prune, restic's way (an
    # exclusive lock, blobs in memory).
    # shellcheck disable=SC2086
    restic --repo "$r" backup $half >/dev/null
    measure restic "forget --keep-last 1 --prune" "$n" restic --repo "$r" forget \
      --keep-last 1 --group-by host --prune
    measure restic "check" "$n" restic --repo "$r" check
    rm -rf "$W/restore-$n" "$r" "$W/restic-cache"
  fi
  rm -rf "$t"
}

if [ "$ONLY" != files ]; then
  for n in $((BLOBS / 10)) "$BLOBS"; do blobs_case "$n"; done
fi
if [ "$ONLY" != blobs ]; then
  for n in $((FILES / 10)) "$FILES"; do files_case "$n"; done
fi
