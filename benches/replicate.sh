#!/usr/bin/env bash
# replicate.sh: end-to-end benchmark of `ferry replicate` between two S3
# servers on loopback (the s3s-fs server of examples/s3_server.rs): its
# throughput next to `rclone copy` of the same bucket, and how closely
# `--limit` and a region's `upload-limit` are held.
#
# Usage:
#   benches/replicate.sh [options] [DATASET_DIR]
#
#   DATASET_DIR        what ferry backs up into server A (default: $DATASET or
#                      /work/bench-data/dataset, the shared benchmark dataset of
#                      ../shared/bench/make-dataset.sh)
#   --gen MIB          back up MIB of generated incompressible files instead
#                      (a quick run; the repository is then about MIB in size)
#   --limit RATE       rate of the bandwidth-limit runs (default 20MiB/s); the
#                      repository should take at least 10 s at that rate
#   --concurrency N    the higher `replicate --concurrency` also measured, with
#                      rclone `--transfers N` beside it (default 16; 0: skip)
#   --runs N           run each throughput measurement N times and report the
#                      median (default 1)
#   --no-region-limit  skip the run limited by a region's `upload-limit`
#   --keep             keep the work directory (servers' data, logs, samples)
#   -h, --help         this text
#
# Environment:
#   FERRY_BIN        ferry binary; when unset, `cargo build --release --bin ferry`
#                    runs and target/release/ferry is used
#   S3_SERVER_BIN    the s3_server example; when unset, `cargo build --release
#                    --example s3_server` runs
#   PORT_A, PORT_B   ports of the two servers (default 19301 and 19302)
#   TMPDIR           where the work directory is made (default /tmp)
#
# One run:
#   1. starts server A and server B, `ferry init` + `ferry backup` of the
#      dataset into bucket repo-a of A (region `a`, the primary);
#   2. throughput: `ferry replicate --to REGION` into a fresh bucket of B, with
#      the default --concurrency and with --concurrency N; `rclone copy` of
#      bucket repo-a into a fresh bucket of B, with --transfers 4 (rclone's
#      default) and --transfers N. Every copy is checked against A: same
#      object names and sizes (count and bytes), and `ferry check --region`
#      (`--read-data` for the first ferry copy);
#   3. bandwidth: `ferry replicate --limit RATE` into a fresh bucket, and a
#      replicate to a region whose config has `upload-limit = RATE`. While
#      they run, the bytes server B has written (wchar of /proc/PID/io) are
#      sampled every 0.1 s; the report gives the average rate (bytes copied /
#      wall time of the command) and the rate over every 1-second window of
#      the transfer (mean deviation from the limit, busiest and slowest).
# Exit status: 1 when a command fails or a copy does not match the source;
# a limit that is not held prints FAIL but does not change the exit status.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

export LC_ALL=C
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
# shellcheck source=lib.sh
. "$SCRIPT_DIR/lib.sh"

DATASET=${DATASET:-/work/bench-data/dataset}
GEN_MIB=0 LIMIT=20MiB/s HIGH=16 RUNS=1 REGION_LIMIT=1 KEEP=0
PORT_A=${PORT_A:-19301} PORT_B=${PORT_B:-19302}

while [ $# -gt 0 ]; do
  case $1 in
    --gen) [ $# -ge 2 ] || die "--gen needs a size in MiB"; GEN_MIB=$2; shift ;;
    --limit) [ $# -ge 2 ] || die "--limit needs a rate"; LIMIT=$2; shift ;;
    --concurrency) [ $# -ge 2 ] || die "--concurrency needs a number"; HIGH=$2; shift ;;
    --runs) [ $# -ge 2 ] || die "--runs needs a number"; RUNS=$2; shift ;;
    --no-region-limit) REGION_LIMIT=0 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) DATASET=$1 ;;
  esac
  shift
done
[[ $GEN_MIB =~ ^[0-9]+$ ]] || die "--gen: a number of MiB, not '$GEN_MIB'"
[[ $HIGH =~ ^[0-9]+$ ]] || die "--concurrency: a number, not '$HIGH'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs: a number from 1, not '$RUNS'"

# Bytes per second of a constant rate, parsed as ferry parses it
# (src/store/throttle/schedule.rs: a bare number is KiB, MB is 10^6).
rate_bytes() {
  awk -v s="$1" 'BEGIN {
    sub(/(\/s|ps)$/, "", s)
    if (!match(s, /^[0-9.]+/)) exit 1
    v = substr(s, 1, RLENGTH); u = tolower(substr(s, RLENGTH + 1))
    m["b"] = 1; m[""] = m["k"] = m["ki"] = m["kib"] = 1024
    m["m"] = m["mi"] = m["mib"] = 1048576; m["g"] = m["gi"] = m["gib"] = 1073741824
    m["kb"] = 1e3; m["mb"] = 1e6; m["gb"] = 1e9
    if (!(u in m) || v * m[u] <= 0) exit 1
    printf "%.0f\n", v * m[u] }'
}
LIMIT_BPS=$(rate_bytes "$LIMIT") || die "--limit: a constant rate such as 20MiB/s, not '$LIMIT'"

# --- tools -----------------------------------------------------------------------
for c in rclone jq awk sort cmp; do
  command -v "$c" >/dev/null || die "$c not found (apt-get install rclone jq)"
done
bench_binaries
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -f '%e %M %U %S' -o)

# --- work directory, servers -------------------------------------------------------
SAMPLER=
stop_sampler() { if [ -n "$SAMPLER" ]; then kill "$SAMPLER" 2>/dev/null || true; fi; }
PIDS_EXTRA_CLEANUP=stop_sampler
bench_workdir replicate
# rclone's S3 client refuses a CA bundle for plain-HTTP endpoints.
unset AWS_CA_BUNDLE
export RCLONE_CONFIG=/dev/null
for s in A:$PORT_A B:$PORT_B; do
  n=${s%%:*} p=${s#*:}
  export "RCLONE_CONFIG_${n}_TYPE=s3" "RCLONE_CONFIG_${n}_PROVIDER=Other" \
    "RCLONE_CONFIG_${n}_ENDPOINT=http://127.0.0.1:$p" "RCLONE_CONFIG_${n}_FORCE_PATH_STYLE=true" \
    "RCLONE_CONFIG_${n}_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID" \
    "RCLONE_CONFIG_${n}_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY" "RCLONE_CONFIG_${n}_REGION=local"
done
# s3s-fs answers a listing with an empty delimiter (rclone's recursive
# ListR) wrongly, so listings here go directory by directory.
RCLONE_LIST=(--disable ListR)

start_server a "$PORT_A"; PID_A=$SERVER_PID
start_server b "$PORT_B"; PID_B=$SERVER_PID

load() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD0=$(load)
echo "ferry: $FERRY_BIN ($("$FERRY_BIN" --version 2>/dev/null || echo unknown version))" >&2
echo "rclone: $(rclone version 2>/dev/null | head -n1)" >&2
echo "work directory: $WORK; $(nproc) cores; load average $LOAD0" >&2
if awk -v l="${LOAD0%% *}" 'BEGIN { exit !(l >= 1) }'; then
  echo "WARNING: the machine is not idle (load average $LOAD0): the servers, ferry and rclone" \
       "share its cores, so throughput figures move with whatever else runs" >&2
fi

# --- regions -------------------------------------------------------------------------
# Region a (server A) is the primary; each measured ferry copy goes to a
# region of its own, a fresh bucket on server B.
CFG=$WORK/ferry.toml
region() { # NAME BUCKET PORT [EXTRA LINE]
  printf '[[region]]\nname = "%s"\nurl = "s3://%s/ferry"\nendpoint = "http://127.0.0.1:%s"\nprovider = "minio"\n%s\n' \
    "$1" "$2" "$3" "${4:-}" >>"$CFG"
}
region a repo-a "$PORT_A" 'primary = true'
for r in $(seq 1 "$RUNS"); do
  region "b-default-$r" "ferry-default-$r" "$PORT_B"
  [ "$HIGH" = 0 ] || region "b-c$HIGH-$r" "ferry-c$HIGH-$r" "$PORT_B"
done
region b-limit ferry-limit "$PORT_B"
region b-upload-limit ferry-upload-limit "$PORT_B" "upload-limit = \"$LIMIT\""
ferry() { "$FERRY_BIN" --config "$CFG" "$@"; }

# --- dataset into server A -------------------------------------------------------------
if [ "$GEN_MIB" -gt 0 ]; then
  DATASET=$WORK/gen
  log "generating $GEN_MIB MiB of random files in $DATASET"
  mkdir -p "$DATASET"
  for i in $(seq 1 $(((GEN_MIB + 7) / 8))); do
    head -c $((8 << 20)) /dev/urandom >"$DATASET/f$i"
  done
fi
[ -d "$DATASET" ] || die "dataset $DATASET not found (build it with ../shared/bench/make-dataset.sh, or use --gen MIB)"

log "ferry init + backup of $DATASET into server A"
ferry init >"$WORK/logs/init.log" 2>&1 || { cat "$WORK/logs/init.log" >&2; die "ferry init failed"; }
t0=$EPOCHREALTIME
ferry backup --no-progress "$DATASET" >"$WORK/logs/backup.log" 2>&1 ||
  { tail -n 20 "$WORK/logs/backup.log" >&2; die "ferry backup failed"; }
t1=$EPOCHREALTIME
tail -n 3 "$WORK/logs/backup.log" >&2
echo "backup: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s" >&2

# listing BUCKET_REMOTE FILE: "size path" of every object, sorted
listing() { rclone lsf -R --files-only --format sp --separator ' ' "${RCLONE_LIST[@]}" "$1" | sort -k2 >"$2"; }
listing A:repo-a "$WORK/source.list"
SRC_OBJECTS=$(wc -l <"$WORK/source.list")
SRC_BYTES=$(awk '{ s += $1 } END { printf "%.0f", s }' "$WORK/source.list")
[ "$SRC_OBJECTS" -gt 0 ] || die "bucket repo-a of server A lists no objects"
SRC_MIB=$(awk -v b="$SRC_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "server A, bucket repo-a: $SRC_OBJECTS objects, $SRC_BYTES bytes ($SRC_MIB MiB)" >&2
LIMIT_SECS=$(awk -v b="$SRC_BYTES" -v l="$LIMIT_BPS" 'BEGIN { printf "%.1f", b / l }')
if awk -v s="$LIMIT_SECS" 'BEGIN { exit !(s < 10) }'; then
  echo "WARNING: the repository takes only $LIMIT_SECS s at $LIMIT; the limit target asks for" \
       "a transfer of at least 10 s (a larger dataset or --gen, or a lower --limit)" >&2
fi

# --- measuring ---------------------------------------------------------------------------
FAILURES=0
fail() { echo "FAILED: $*" >&2; FAILURES=$((FAILURES + 1)); }

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# timed NAME CMD...: runs CMD (stdout to logs/NAME.out, stderr to logs/NAME.err),
# sets SECS (wall), CPU (user+sys s), RSS (peak MiB), SRV (CPU s of both
# servers meanwhile), LOAD (before), RC.
timed() {
  local name=$1 t0 t1 e m u s c0; shift
  sync
  LOAD=$(load) RC=0 CPU=- RSS=-
  c0=$(($(ticks "$PID_A") + $(ticks "$PID_B")))
  echo "-- $name: $*" >&2
  t0=$EPOCHREALTIME
  if [ ${#TIME[@]} -gt 0 ]; then
    "${TIME[@]}" "$WORK/logs/$name.time" "$@" >"$WORK/logs/$name.out" 2>"$WORK/logs/$name.err" || RC=$?
  else
    "$@" >"$WORK/logs/$name.out" 2>"$WORK/logs/$name.err" || RC=$?
  fi
  t1=$EPOCHREALTIME
  SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  SRV=$(awk -v t=$(($(ticks "$PID_A") + $(ticks "$PID_B") - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }')
  if [ ${#TIME[@]} -gt 0 ] && read -r e m u s < <(tail -n1 "$WORK/logs/$name.time") 2>/dev/null; then
    CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.1f", u + s }' 2>/dev/null || echo -)
    RSS=$(awk -v k="$m" 'BEGIN { printf "%.0f", k / 1024 }' 2>/dev/null || echo -)
  fi
  printf '   %s s, exit %s, cpu %s s, peak %s MiB; servers cpu %s s (load before: %s)\n' \
    "$SECS" "$RC" "$CPU" "$RSS" "$SRV" "$LOAD" >&2
  if [ "$RC" != 0 ]; then tail -n 5 "$WORK/logs/$name.err" >&2; fi
}

# verify NAME BUCKET [REGION [CHECK_ARGS...]]: the copy in BUCKET of server B
# lists the same objects and sizes as repo-a of A; with REGION, `ferry check`.
verify() {
  local name=$1 bucket=$2 region=${3:-} n b
  shift 3 2>/dev/null || shift $#
  listing "B:$bucket" "$WORK/$name.list"
  n=$(wc -l <"$WORK/$name.list")
  b=$(awk '{ s += $1 } END { printf "%.0f", s }' "$WORK/$name.list")
  if [ "$n" != "$SRC_OBJECTS" ] || [ "$b" != "$SRC_BYTES" ] || ! cmp -s "$WORK/source.list" "$WORK/$name.list"; then
    fail "$name: bucket $bucket holds $n objects, $b bytes; server A $SRC_OBJECTS, $SRC_BYTES (diff of the listings: $WORK/$name.list)"
    KEEP=1
    return 1
  fi
  echo "   verified: $n objects, $b bytes, as on server A" >&2
  if [ -n "$region" ]; then
    if ferry check --region "$region" "$@" >"$WORK/logs/$name-check.log" 2>&1; then
      echo "   ferry check --region $region $*: $(tail -n1 "$WORK/logs/$name-check.log")" >&2
    else
      fail "$name: ferry check --region $region $* (see $WORK/logs/$name-check.log)"
      KEEP=1
      return 1
    fi
  fi
}

# drop BUCKET: empties and removes a bucket of server B once it is verified.
drop() { rclone purge "${RCLONE_LIST[@]}" "B:$1" >/dev/null 2>&1 || true; }

# report_bytes NAME: bytes the `replicate --json` report says were copied.
report_bytes() {
  jq '[.regions[].report.copied // {} | .[].bytes] | add // 0' "$WORK/logs/$1.out" 2>/dev/null || echo 0
}

declare -A SECS_OF=() CPU_OF=() RSS_OF=() SRV_OF=() LOAD_OF=()
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mibs() { awk -v b="$SRC_BYTES" -v s="$1" 'BEGIN { printf "%.1f", b / 1048576 / s }'; }

# ferry_copy KEY CONCURRENCY(or "") RUN
ferry_copy() {
  local key=$1 conc=$2 r=$3 region bucket name args=()
  region=b-$key-$r bucket=ferry-$key-$r name=ferry-$key-$r
  [ -z "$conc" ] || args=(--concurrency "$conc")
  rclone mkdir "B:$bucket"
  timed "$name" "$FERRY_BIN" --config "$CFG" replicate --to "$region" --json --no-progress "${args[@]}"
  if [ "$RC" != 0 ]; then fail "$name: ferry replicate exited $RC (see $WORK/logs/$name.err)"; return; fi
  local copied; copied=$(report_bytes "$name")
  [ "$copied" = "$SRC_BYTES" ] || fail "$name: the report says $copied bytes copied, server A holds $SRC_BYTES"
  if [ "$key" = default ] && [ "$r" = 1 ]; then
    verify "$name" "$bucket" "$region" --read-data || true
  else
    verify "$name" "$bucket" "$region" || true
  fi
  drop "$bucket"
  SECS_OF[$key]+=" $SECS" CPU_OF[$key]+=" $CPU" RSS_OF[$key]+=" $RSS" SRV_OF[$key]+=" $SRV"
  LOAD_OF[$key]+=" ${LOAD%% *}"
}

# rclone_copy KEY TRANSFERS RUN
rclone_copy() {
  local key=$1 transfers=$2 r=$3 bucket name
  bucket=rclone-$key-$r name=rclone-$key-$r
  rclone mkdir "B:$bucket"
  timed "$name" rclone copy --transfers "$transfers" -q A:repo-a "B:$bucket"
  if [ "$RC" != 0 ]; then fail "$name: rclone copy exited $RC (see $WORK/logs/$name.err)"; return; fi
  verify "$name" "$bucket" || true
  drop "$bucket"
  SECS_OF[$key]+=" $SECS" CPU_OF[$key]+=" $CPU" RSS_OF[$key]+=" $RSS" SRV_OF[$key]+=" $SRV"
  LOAD_OF[$key]+=" ${LOAD%% *}"
}

log "throughput: $SRC_MIB MiB from server A to server B, $RUNS run(s) each"
for r in $(seq 1 "$RUNS"); do
  ferry_copy default "" "$r"
  rclone_copy t4 4 "$r"
  if [ "$HIGH" != 0 ]; then
    ferry_copy "c$HIGH" "$HIGH" "$r"
    rclone_copy "t$HIGH" "$HIGH" "$r"
  fi
done

# --- bandwidth limit -----------------------------------------------------------------------
# sampler PID OUT: "epoch-seconds bytes-written" of process PID every 0.1 s.
# wchar counts every byte the server writes (the objects' files, a little
# metadata), at the moment it writes it; it never goes back, unlike the size
# of a directory whose temporary files are being renamed.
sampler() {
  local pid=$1 k v
  while :; do
    while read -r k v; do
      if [ "$k" = wchar: ]; then printf '%s %s\n' "$EPOCHREALTIME" "$v"; break; fi
    done <"/proc/$pid/io"
    sleep 0.1
  done >"$2"
}
[ -r "/proc/$PID_B/io" ] || die "/proc/$PID_B/io is not readable: cannot sample server B"

# analyse SAMPLES LIMIT_BPS: the 1-second windows of the transfer (from the
# sample before server B's first write to the first sample at its final
# count; the value at each window's end is interpolated between samples).
# Prints: span_s sampled_bytes mean_dev_pct busiest_mibs slowest_mibs windows over10
analyse() {
  awk -v L="$2" '
    BEGIN { n = 0 }
    { t[n] = $1; s[n] = $2; n++ }
    END {
      if (n < 3) { print "0 0 0 0 0 0 0"; exit }
      base = s[0]; fin = s[n - 1]; i0 = 0; i1 = n - 1
      for (i = 0; i < n - 1; i++) if (s[i + 1] > base) { i0 = i; break }
      for (i = 0; i < n; i++) if (s[i] == fin) { i1 = i; break }
      j = i0; cnt = 0; dev = 0; max = 0; min = -1; over = 0
      for (i = i0; i < i1; i++) {
        te = t[i] + 1; if (te > t[i1]) break
        while (j < i1 && t[j + 1] < te) j++
        se = s[j] + (s[j + 1] - s[j]) * (te - t[j]) / (t[j + 1] - t[j])
        r = se - s[i]; cnt++
        dev += (r > L ? r - L : L - r) / L
        if (r > max) max = r
        if (min < 0 || r < min) min = r
        if (r > 1.1 * L) over++
      }
      printf "%.2f %.0f %.1f %.1f %.1f %d %d\n", t[i1] - t[i0], fin - base,
        cnt ? 100 * dev / cnt : 0, max / 1048576, (min < 0 ? 0 : min) / 1048576, cnt, over
    }' "$1"
}

declare -A LIM=()
# limited NAME REGION [ARGS...]: a sampled, limited replicate into REGION.
limited() {
  local name=$1 region=$2 bucket copied span sampled dev max min cnt over avg; shift 2
  bucket=ferry-${region#b-}
  rclone mkdir "B:$bucket"
  sampler "$PID_B" "$WORK/$name.samples" &
  SAMPLER=$!
  sleep 0.3
  timed "$name" "$FERRY_BIN" --config "$CFG" replicate --to "$region" --json --no-progress "$@"
  sleep 0.3
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  SAMPLER=
  if [ "$RC" != 0 ]; then fail "$name: ferry replicate exited $RC (see $WORK/logs/$name.err)"; return; fi
  copied=$(report_bytes "$name")
  [ "$copied" = "$SRC_BYTES" ] || fail "$name: the report says $copied bytes copied, server A holds $SRC_BYTES"
  verify "$name" "$bucket" "$region" || true
  drop "$bucket"
  read -r span sampled dev max min cnt over < <(analyse "$WORK/$name.samples" "$LIMIT_BPS")
  avg=$(awk -v b="$copied" -v s="$SECS" 'BEGIN { printf "%.2f", b / 1048576 / s }')
  LIM[$name]="$SECS $avg $span $sampled $dev $max $min $cnt $over $LOAD"
  printf '   average %s MiB/s over %s s; server B wrote %s bytes in %s s; %s one-second windows: mean deviation %s%%, busiest %s MiB/s, slowest %s MiB/s, %s above the limit by more than 10%%\n' \
    "$avg" "$SECS" "$sampled" "$span" "$cnt" "$dev" "$max" "$min" "$over" >&2
}

log "bandwidth: replicate --limit $LIMIT ($LIMIT_SECS s expected)"
limited limit b-limit --limit "$LIMIT"
if [ "$REGION_LIMIT" = 1 ]; then
  log "bandwidth: replicate to a region with upload-limit = \"$LIMIT\""
  limited upload-limit b-upload-limit
fi

# --- summary ------------------------------------------------------------------------------
row() { # LABEL KEY
  local key=$2 s; [ -n "${SECS_OF[$key]:-}" ] || return 0
  # shellcheck disable=SC2086
  s=$(median ${SECS_OF[$key]})
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$s" "$(mibs "$s")" "${SECS_OF[$key]# }" \
    "$(median ${CPU_OF[$key]//-/0})" "$(median ${RSS_OF[$key]//-/0})" "$(median ${SRV_OF[$key]})" \
    "$(median ${LOAD_OF[$key]})"
}
ratio() { # KEY_FERRY KEY_RCLONE
  [ -n "${SECS_OF[$1]:-}" ] && [ -n "${SECS_OF[$2]:-}" ] || return 0
  # shellcheck disable=SC2086
  awk -v f="$(median ${SECS_OF[$1]})" -v r="$(median ${SECS_OF[$2]})" 'BEGIN { printf "%.2f", r / f }'
}

echo
echo "== ferry replicate, server A -> server B on loopback: $SRC_OBJECTS objects, $SRC_MIB MiB"
echo "   ($(nproc) cores; load average $LOAD0 at the start, $(load) at the end; median of $RUNS run(s))"
echo
echo "| copy | s | MiB/s | every run, s | cpu s | peak MiB | servers cpu s | load |"
echo "|---|---|---|---|---|---|---|---|"
row "ferry replicate (--concurrency default, 4)" default
row "rclone copy --transfers 4 (its default)" t4
if [ "$HIGH" != 0 ]; then
  row "ferry replicate --concurrency $HIGH" "c$HIGH"
  row "rclone copy --transfers $HIGH" "t$HIGH"
fi
echo
echo "ferry/rclone throughput: $(ratio default t4) at 4 in parallel${SECS_OF[c$HIGH]:+, $(ratio "c$HIGH" "t$HIGH") at $HIGH}"
echo
echo "== bandwidth limit $LIMIT ($(awk -v l="$LIMIT_BPS" 'BEGIN { printf "%.2f", l / 1048576 }') MiB/s)"
echo
echo "| run | s | average MiB/s | vs limit | 1-s windows | mean deviation | busiest MiB/s | slowest MiB/s | windows > +10% | verdict |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for name in limit upload-limit; do
  [ -n "${LIM[$name]:-}" ] || continue
  read -r secs avg span sampled dev max min cnt over _ <<<"${LIM[$name]}"
  label="--limit $LIMIT"; [ "$name" = limit ] || label="upload-limit = \"$LIMIT\""
  verdict=$(awk -v a="$avg" -v m="$max" -v l="$LIMIT_BPS" -v s="$secs" 'BEGIN {
    L = l / 1048576; v = (a >= 0.9 * L && a <= 1.1 * L && m <= 1.1 * L) ? "PASS" : "FAIL"
    if (s < 10) v = v " (< 10 s)"
    print v }')
  vs=$(awk -v a="$avg" -v l="$LIMIT_BPS" 'BEGIN { printf "%+.1f%%", 100 * (a / (l / 1048576) - 1) }')
  echo "| $label | $secs | $avg | $vs | $cnt | $dev% | $max | $min | $over | $verdict |"
done
echo
echo "target: average within 10% of the limit over at least 10 s, and no 1-s window above it by more than 10%"
if [ "$FAILURES" -gt 0 ]; then
  echo "$FAILURES verification(s) FAILED (see above); work directory kept: $WORK"
  exit 1
fi
echo "every copy verified against server A"
