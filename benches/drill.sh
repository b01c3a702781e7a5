#!/usr/bin/env bash
# drill.sh: benchmark of `ferry drill` from a local region and from an S3
# region on loopback (the s3s-fs server of examples/s3_server.rs), beside a
# plain `ferry restore` of the same snapshot from the same region: the
# drill's RTO (restore + verification) against the restore alone, and the
# cost of the verification (target: at most 15% over the restore).
#
# Usage:
#   benches/drill.sh [--gen MIB] [--runs N] [--verify MODE] [--keep] [DATASET_DIR]
#
#   DATASET_DIR   what is backed up (default: $DATASET or /work/bench-data/dataset,
#                 the shared dataset of ../shared/bench/make-dataset.sh)
#   --gen MIB     back up MIB of generated files instead (half random, half
#                 text-like, in files of 64 KiB to 8 MiB): a quick run
#   --runs N      measure each N times, report the median (default 1)
#   --verify MODE the drill's --verify (default full)
#   --keep        keep the work directory
#
# Environment: FERRY_BIN, S3_SERVER_BIN (default: cargo build --release of
# each), PORT (default 19311), TMPDIR, SETTLE (default 61: seconds waited
# after each removal of a restored tree, see below).
#
# Each restore and drill starts SETTLE seconds after the last removal of a
# restored tree (and a sync): ext4 passes over inodes freed in the last
# minute when it allocates new ones, so that creating 80,000 files right
# after removing 80,000 others costs twice the time. The wait gives the
# restore and the drill the same file system.
# Exit status: 1 when a command fails or a drill does not verify. An
# RTO over 15% above the restore prints FAIL but does not change the exit
# status. Needs jq and /usr/bin/time (Debian packages jq, time).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "drill.sh: $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }
export LC_ALL=C
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATASET=${DATASET:-/work/bench-data/dataset}
GEN_MIB=0 RUNS=1 VERIFY=full KEEP=0 PORT=${PORT:-19311}
while [ $# -gt 0 ]; do
  case $1 in
    --gen) GEN_MIB=${2:?--gen needs MiB}; shift ;;
    --runs) RUNS=${2:?--runs needs a number}; shift ;;
    --verify) VERIFY=${2:?--verify needs full or sample:N%}; shift ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) DATASET=$1 ;;
  esac
  shift
done
[[ $GEN_MIB =~ ^[0-9]+$ ]] || die "--gen: a number of MiB"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: a number from 1"
command -v jq >/dev/null || die "jq not found (apt-get install jq)"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
if [ -z "${FERRY_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin ferry); FERRY_BIN=$ROOT/target/release/ferry
fi
if [ -z "${S3_SERVER_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --example s3_server)
  S3_SERVER_BIN=$ROOT/target/release/examples/s3_server
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-drill-bench.XXXXXX")
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export AWS_ACCESS_KEY_ID=ferry-test-access AWS_SECRET_ACCESS_KEY=ferry-test-secret-key-0123456789
export AWS_DEFAULT_REGION=local AWS_EC2_METADATA_DISABLED=true
export FERRY_PASSWORD=ferry-bench-password XDG_CACHE_HOME=$WORK/cache
unset FERRY_REPO FERRY_CONFIG FERRY_METRICS_FILE FERRY_METRICS_PUSH

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "port $PORT is in use (set PORT)"; fi
"$S3_SERVER_BIN" "127.0.0.1:$PORT" "$WORK/s3" 2>"$WORK/s3.log" & SERVER=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
# The server keeps its buckets in a directory it makes under $WORK/s3.
S3_ROOT=$(find "$WORK/s3" -mindepth 1 -maxdepth 1 -type d | head -n1)
[ -n "$S3_ROOT" ] || die "the S3 server did not start; see $WORK/s3.log"
mkdir -p "$S3_ROOT/drill-bench"

CFG=$WORK/ferry.toml
cat >"$CFG" <<TOML
[[region]]
name = "local"
url = "$WORK/local"
primary = true

[[region]]
name = "s3"
url = "s3://drill-bench/ferry"
endpoint = "http://127.0.0.1:$PORT"
provider = "minio"
TOML
ferry() { "$FERRY_BIN" --config "$CFG" "$@"; }

if [ "$GEN_MIB" -gt 0 ]; then
  DATASET=$WORK/gen; mkdir -p "$DATASET"
  left=$((GEN_MIB << 20)) i=0
  while [ "$left" -gt 0 ]; do
    size=$(( (65536 << (i % 8)) < left ? (65536 << (i % 8)) : left ))
    if [ $((i % 2)) = 0 ]; then head -c "$size" /dev/urandom >"$DATASET/f$i"
    else { yes "line $i of a text-like file for the drill benchmark" || true; } | head -c "$size" >"$DATASET/f$i.txt"; fi
    left=$((left - size)) i=$((i + 1))
  done
fi
[ -d "$DATASET" ] || die "no dataset at $DATASET (run ../shared/bench/make-dataset.sh or pass --gen MIB)"

log "init, backup of $DATASET, replicate to s3"
ferry init >/dev/null
ferry backup --quiet "$DATASET" >/dev/null
ferry replicate --quiet >/dev/null
SIZE=$(du -sb "$DATASET" | cut -f1)
echo "dataset: $DATASET, $SIZE bytes; $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

SETTLE=${SETTLE:-61}
[[ $SETTLE =~ ^[0-9]+$ ]] || die "SETTLE: a number of seconds"
settle() { sync; sleep "$SETTLE"; }

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
now() { date +%s.%N; }

# cpu FILE: user+sys seconds that /usr/bin/time wrote to FILE.
cpu() { awk '{ print $2 + $3 }' "$1"; }
timed() { /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@"; }

printf '\n%-7s %10s %10s %10s %10s %10s %10s %10s %10s\n' region restore_s drill_s rto_s verify_s rto_over verify_of cpu_rest cpu_drill
for region in local s3; do
  restores=() rtos=() drills=() verifies=() cpu_r=() cpu_d=()
  for r in $(seq 1 "$RUNS"); do
    t=$WORK/restore-$region-$r
    settle
    t0=$(now)
    timed "$FERRY_BIN" --config "$CFG" --region "$region" --quiet restore latest --target "$t" >/dev/null
    t1=$(now)
    restores+=("$(echo "$t1 - $t0" | bc -l)") cpu_r+=("$(cpu "$WORK/time")")
    rm -rf "$t"
    mkdir -p "$WORK/sandbox"
    settle
    t0=$(now)
    out=$(timed "$FERRY_BIN" --config "$CFG" --region "$region" drill --target "$WORK/sandbox" --verify "$VERIFY" --json) \
      || die "drill of $region failed: $out"
    t1=$(now)
    drills+=("$(echo "$t1 - $t0" | bc -l)") cpu_d+=("$(cpu "$WORK/time")")
    [ "$(echo "$out" | jq -r '.regions[0].verified')" = true ] || die "drill of $region did not verify"
    rtos+=("$(echo "$out" | jq -r '.regions[0].rto_seconds')")
    verifies+=("$(echo "$out" | jq -r '.regions[0].verification.seconds')")
    printf '  run %d of %s: restore %.2f s, drill RTO %.2f s (verification %.2f s), drill wall %.2f s\n' \
      "$r" "$region" "${restores[-1]}" "${rtos[-1]}" "${verifies[-1]}" "${drills[-1]}" >&2
  done
  rs=$(printf '%s\n' "${restores[@]}" | median)
  rt=$(printf '%s\n' "${rtos[@]}" | median)
  dw=$(printf '%s\n' "${drills[@]}" | median)
  vs=$(printf '%s\n' "${verifies[@]}" | median)
  cr=$(printf '%s\n' "${cpu_r[@]}" | median)
  cd=$(printf '%s\n' "${cpu_d[@]}" | median)
  over=$(echo "($rt - $rs) / $rs * 100" | bc -l)
  share=$(echo "$vs / $rs * 100" | bc -l)
  printf '%-7s %10.2f %10.2f %10.2f %10.2f %9.1f%% %9.1f%% %10.2f %10.2f' "$region" "$rs" "$dw" "$rt" "$vs" "$over" "$share" "$cr" "$cd"
  if [ "$(echo "$over > 15" | bc -l)" = 1 ]; then echo "  FAIL (over 15%)"; else echo; fi
done
echo "(restore_s, drill_s: wall time of the whole ferry restore / drill process; rto_s: the"
echo " drill's RTO, restore start to verified; verify_s: the verification's share of it;"
echo " rto_over: RTO over restore_s, the target is at most 15%; verify_of: verify_s as a share"
echo " of restore_s, what the verification itself costs; cpu_rest, cpu_drill: user+sys"
echo " seconds of each process, which the load of other processes changes less than wall time)"
