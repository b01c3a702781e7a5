#!/usr/bin/env bash
# Restore memory against the number of entries: three synthetic snapshots of
# FILES files each (examples/synth_entries.rs: `flat`, small files 1000 a
# directory; `deep`, empty files 50 a directory 6 levels down; `links`, as
# flat with every two files hard links of one inode) restored with time and
# peak RSS, optionally under an address-space limit, and optionally with a
# second ferry binary beside it (see benches/README.md, "Restore of many
# entries").
#
#   benches/restore-entries.sh [--files N] [--limit-mib M] [--shapes "flat deep links"]
#                              [--workdir DIR] [--keep]
#
# Defaults: --files 1000000, no limit. FERRY (default target/release/ferry)
# is measured; FERRY_BEFORE, when set, is measured first on the same
# repository. Builds target/release/ferry and the synth_entries example
# unless FERRY and SYNTH name binaries. Needs GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=1000000 LIMIT_MIB="" SHAPES="flat deep links" WORKDIR="" KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --files) FILES=$2; shift 2 ;;
    --limit-mib) LIMIT_MIB=$2; shift 2 ;;
    --shapes) SHAPES=$2; shift 2 ;;
    --workdir) WORKDIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "${FERRY:-}" ] || [ -z "${SYNTH:-}" ]; then
  cargo build --release --bin ferry --example synth_entries >&2
fi
FERRY=${FERRY:-target/release/ferry}
SYNTH=${SYNTH:-target/release/examples/synth_entries}
[ -x /usr/bin/time ] || { echo "GNU time is missing: apt-get install time" >&2; exit 2; }
W=${WORKDIR:-$(mktemp -d)}
mkdir -p "$W"
[ "$KEEP" = 1 ] || trap 'rm -rf "$W"' EXIT
export FERRY_PASSWORD=bench XDG_CACHE_HOME=$W/cache

if [ ! -f "$W/snapshots.txt" ]; then
  /usr/bin/time -f '%e %M' -o "$W/synth.time" "$SYNTH" "$W/repo" "$FILES" > "$W/snapshots.txt"
  echo "made in $(cut -d' ' -f1 "$W/synth.time") s:" >&2
  cat "$W/snapshots.txt" >&2
  # Warm the catalog (snapshots and trees) outside the timing.
  for id in $(awk '{ print $2 }' "$W/snapshots.txt"); do
    "$FERRY" --repo "$W/repo" ls "$id" > /dev/null
  done
fi

# One restore: prints "shape binary seconds peak-MiB exit entries".
measure() {
  local shape=$1 name=$2 bin=$3 id out code
  id=$(awk -v t="$shape:" '$3 == t { print $2 }' "$W/snapshots.txt")
  out=$W/out-$shape
  rm -rf "$out"
  sync
  set +e
  (
    [ -z "$LIMIT_MIB" ] || ulimit -v $((LIMIT_MIB * 1024))
    exec /usr/bin/time -f '%e %M' -o "$W/restore.time" \
      "$bin" --repo "$W/repo" restore "$id" --target "$out" --json > "$W/restore-$shape-$name.json" 2> "$W/restore-$shape-$name.err"
  )
  code=$?
  set -e
  local n
  n=$(find "$out" 2>/dev/null | wc -l)
  read -r secs kib < <(tail -n1 "$W/restore.time")
  printf '%-6s %-7s %8s s %8d MiB  exit %-3s %9d entries written\n' \
    "$shape" "$name" "$secs" $((kib / 1024)) "$code" "$n"
  rm -rf "$out"
}

echo "restore of $FILES files per shape${LIMIT_MIB:+, address space limited to $LIMIT_MIB MiB}; load $(cut -d' ' -f1-3 /proc/loadavg)"
for shape in $SHAPES; do
  [ -z "${FERRY_BEFORE:-}" ] || measure "$shape" before "$FERRY_BEFORE"
  measure "$shape" ferry "$FERRY"
done
