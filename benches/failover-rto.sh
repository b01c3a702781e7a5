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
# unset), PORT_A, PORT_B (default 19311, 19312), TMPDIR.
#
# One run: init --config (both regions), backup, replicate; then three
# restores of `latest` into fresh directories, each timed and compared with
# the source (diff -r):
#   1. plain: `restore --region b` (the reference);
#   2. refused: server a stopped (connections refused), `restore --config`;
#   3. black-holed: a listener on a's port that accepts connections and never
#      answers, `restore --config`.
# The RTO of 2 and 3 is their wall time; the failover's own cost is the
# difference with 1 (the probe: milliseconds when refused, up to the 4 s
# probe budget when black-holed).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "failover-rto.sh: $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

export LC_ALL=C
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
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

if [ -z "${FERRY_BIN:-}" ]; then
  log "cargo build --release --bin ferry"
  (cd "$ROOT" && cargo build --release --bin ferry)
  FERRY_BIN=$ROOT/target/release/ferry
fi
if [ -z "${S3_SERVER_BIN:-}" ]; then
  log "cargo build --release --example s3_server"
  (cd "$ROOT" && cargo build --release --example s3_server)
  S3_SERVER_BIN=$ROOT/target/release/examples/s3_server
fi
command -v python3 >/dev/null || die "python3 is needed for the black-holed endpoint"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-rto-bench.XXXXXX")
mkdir -p "$WORK/logs"
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export AWS_ACCESS_KEY_ID=ferry-test-access
export AWS_SECRET_ACCESS_KEY=ferry-test-secret-key-0123456789
export AWS_EC2_METADATA_DISABLED=true
export FERRY_PASSWORD=ferry-bench-password XDG_CACHE_HOME=$WORK/cache
unset FERRY_REPO FERRY_CONFIG FERRY_LIMIT_UPLOAD FERRY_LIMIT_DOWNLOAD

wait_port() { # PORT PID
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  die "nothing listens on port $1; see $WORK/logs"
}
start_server() { # NAME PORT: sets SERVER_PID
  if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then die "port $2 is in use (set PORT_A/PORT_B)"; fi
  "$S3_SERVER_BIN" "127.0.0.1:$2" "$WORK/server-$1" 2>"$WORK/logs/server-$1.log" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port "$2" "$SERVER_PID"
}
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

timed_restore() { # NAME ARGS...: restores latest, prints seconds
  local name=$1 out=$WORK/out-$1 t0 t1
  shift
  t0=$(date +%s.%N)
  "$FERRY_BIN" restore --no-progress --json "$@" latest --target "$out" >"$WORK/logs/restore-$name.json" 2>"$WORK/logs/restore-$name.log" \
    || die "restore ($name) failed; see $WORK/logs/restore-$name.log"
  t1=$(date +%s.%N)
  diff -r "$SRC" "$out${SRC}" >/dev/null || die "restore ($name) differs from the source"
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
echo "dataset: $SIZE bytes; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
