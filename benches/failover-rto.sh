#!/usr/bin/env bash
# failover-rto.sh: the recovery time of a restore when the primary region is
# gone, measured end to end with two S3 servers on loopback (the s3s-fs
# server of examples/s3_server.rs) as regions `a` (primary) and `b`.
#
# Usage:
#   benches/failover-rto.sh [options] [DATASET_DIR]
#
#   DATASET_DIR   what is backed up (default: $DATASET or
#                 /work/bench-data/dataset, the shared benchmark dataset of
#                 ../shared/bench/make-dataset.sh)
#   --gen MIB     back up MIB of generated files instead (a quick run)
#   --keep        keep the work directory
#   -h, --help    this text
#
# Environment: FERRY_BIN, S3_SERVER_BIN (built with cargo --release when
# unset), PORT_A, PORT_B (default 19311, 19312), TMPDIR, SETTLE (default 61:
# seconds waited after a sync before each restore, as in drill.sh, so that
# ext4 has finished with the blocks the previous restore's removal freed).
#
# One run: init --config (both regions), backup, replicate; then three
# restores of `latest` into fresh directories, each timed and compared with
# the source (diff -r --no-dereference: the dataset has dangling symlinks):
#   1. plain: `restore --region b` (the reference);
#   2. refused: server a stopped (connections refused), `restore --config`;
#   3. black-holed: a listener on a's port that accepts connections and never
#      answers, `restore --config`.
# The RTO of 2 and 3 is their wall time; the failover's own cost is the
# difference with 1 (the probe: milliseconds when refused, up to the 4 s
# probe budget when black-holed).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

export LC_ALL=C
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"
DATASET=${DATASET:-/work/bench-data/dataset}
GEN= KEEP=0
PORT_A=${PORT_A:-19311} PORT_B=${PORT_B:-19312}
while [ $# -gt 0 ]; do
  case $1 in
    --gen) GEN=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) DATASET=$1; shift ;;
  esac
done

bench_binaries
command -v python3 >/dev/null || die "python3 is needed for the black-holed endpoint"
bench_workdir rto
start_server a "$PORT_A"; PID_A=$SERVER_PID
start_server b "$PORT_B"

CFG=$WORK/ferry.toml
cat >"$CFG" <<EOF
[[region]]
name = "a"
url = "s3://rto-a/repo"
endpoint = "http://127.0.0.1:$PORT_A"
provider = "minio"
primary = true
[[region]]
name = "b"
url = "s3://rto-b/repo"
endpoint = "http://127.0.0.1:$PORT_B"
provider = "minio"
EOF
export FERRY_CONFIG=$CFG

SRC=$DATASET
if [ -n "$GEN" ]; then
  SRC=$WORK/gen
  mkdir -p "$SRC"
  n=$(( (GEN + 3) / 4 ))
  for i in $(seq 1 "$n"); do head -c $((4 << 20)) /dev/urandom >"$SRC/f$i"; done
fi
[ -d "$SRC" ] || die "no dataset at $SRC (make it with ../shared/bench/make-dataset.sh, or pass --gen MIB)"
SIZE=$(du -sb "$SRC" | cut -f1)

log "init, backup and replicate of $SRC ($SIZE bytes)"
"$FERRY_BIN" init -q >/dev/null
"$FERRY_BIN" backup -q --no-progress "$SRC" >/dev/null
"$FERRY_BIN" replicate -q >/dev/null

SETTLE=${SETTLE:-61}
[[ $SETTLE =~ ^[0-9]+$ ]] || die "SETTLE: a number of seconds"

timed_restore() { # NAME ARGS...: restores latest, prints seconds
  local name=$1 out=$WORK/out-$1 t0 t1
  shift
  sync; sleep "$SETTLE"
  t0=$(date +%s.%N)
  "$FERRY_BIN" restore --no-progress --json "$@" latest --target "$out" >"$WORK/logs/restore-$name.json" 2>"$WORK/logs/restore-$name.log" \
    || die "restore ($name) failed; see $WORK/logs/restore-$name.log"
  t1=$(date +%s.%N)
  diff -r --no-dereference "$SRC" "$out${SRC}" >/dev/null || die "restore ($name) differs from the source"
  rm -rf "$out"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

log "plain restore from region b"
PLAIN=$(timed_restore plain --region b)
log "primary refused"
kill "$PID_A"; wait "$PID_A" 2>/dev/null || true
REFUSED=$(timed_restore refused)
log "primary black-holed"
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $PORT_A)); s.listen(128)
held = []
while True:
    c, _ = s.accept(); held.append(c)
" &
PIDS+=("$!")
wait_port "$PORT_A" "$!"
HOLED=$(timed_restore holed)

printf '\n%-28s %10s %12s\n' "restore of latest" "seconds" "vs plain"
printf '%-28s %10.2f %12s\n' "plain, from region b" "$PLAIN" "-"
printf '%-28s %10.2f %+12.2f\n' "primary refused" "$REFUSED" "$(awk -v a="$PLAIN" -v b="$REFUSED" 'BEGIN { print b - a }')"
printf '%-28s %10.2f %+12.2f\n' "primary black-holed" "$HOLED" "$(awk -v a="$PLAIN" -v b="$HOLED" 'BEGIN { print b - a }')"
for name in refused holed; do
  jq -r --arg n "$name" '"\($n): restored from \(.region); down: " + ([.down[] | "\(.region) (\(.error))"] | join(", "))' \
    "$WORK/logs/restore-$name.json"
done
echo "dataset: $SIZE bytes; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
