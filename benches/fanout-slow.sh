#!/usr/bin/env bash
# fanout-slow.sh: what a slow region costs a `backup --fanout`. Three
# directory regions: `home` (primary), `near` (unlimited) and `far`, whose
# `upload-limit` makes it a slow region. The same generated data set is
# backed up with `--fanout` into fresh repositories twice: once with `far`
# unlimited (the reference), once with `far` limited; each backup is timed,
# and the `--json` says what `far` received and why it was dropped.
#
# Usage:
#   benches/fanout-slow.sh [--gen MIB] [--limit RATE] [--lag SECONDS] [--keep]
#
#   --gen MIB      MiB of generated files backed up (default 64)
#   --limit RATE   the slow region's upload-limit (default 1MiB/s)
#   --lag SECONDS  FERRY_FANOUT_LAG (default: ferry's, 10)
#   --keep         keep the work directory
#
# Environment: FERRY_BIN (built with cargo --release when unset), TMPDIR.
set -euo pipefail

export LC_ALL=C
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"
GEN_MIB=64 LIMIT=1MiB/s KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --gen) GEN_MIB=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    --lag) export FERRY_FANOUT_LAG=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) die "unknown argument $1" ;;
  esac
done
if [ -z "${FERRY_BIN:-}" ]; then
  log "cargo build --release --bin ferry"
  (cd "$ROOT" && cargo build --release --bin ferry)
  FERRY_BIN=$ROOT/target/release/ferry
fi
bench_workdir fanout-slow
command -v jq >/dev/null || die "jq is needed"

DATA=$WORK/data; mkdir -p "$DATA"
for i in $(seq 1 "$GEN_MIB"); do head -c 1048576 /dev/urandom >"$DATA/f$i"; done

now() { date +%s.%N; }
run() { # NAME FAR_LIMIT
  local d=$WORK/$1 cfg=$WORK/$1.toml
  cat >"$cfg" <<TOML
[[region]]
name = "home"
url = "$d/home"
primary = true
[[region]]
name = "near"
url = "$d/near"
[[region]]
name = "far"
url = "$d/far"
upload-limit = "$2"
TOML
  "$FERRY_BIN" --config "$cfg" init >/dev/null
  local t0 t1 out
  t0=$(now)
  out=$("$FERRY_BIN" --config "$cfg" --quiet backup --fanout --json "$DATA")
  t1=$(now)
  printf '%-9s %8.2f s  far: %s\n' "$1" "$(echo "$t1 - $t0" | bc -l)" \
    "$(echo "$out" | jq -c '.fanout[] | select(.region == "far") | {ok, streamed: {objects: .streamed.objects, bytes: .streamed.bytes, reason: .streamed.reason}}')"
}
echo "$GEN_MIB MiB of random files; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run reference off
run slow "$LIMIT"
