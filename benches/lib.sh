# lib.sh: what the S3 benchmarks share, sourced by them (not run): the
# release binaries, a work directory and child processes cleaned up on exit,
# s3_server instances on loopback, and the test servers' credentials.
#
# Before sourcing, a script sets ROOT (the repository) and KEEP (1 keeps the
# work directory); it may set PIDS_EXTRA_CLEANUP to a function run first on
# exit. After it, it calls bench_binaries, bench_workdir NAME and
# start_server NAME PORT (which sets SERVER_PID).

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

# FERRY_BIN and S3_SERVER_BIN, built with cargo --release when unset.
bench_binaries() {
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
  [ -x "$FERRY_BIN" ] || die "ferry binary $FERRY_BIN not found"
  [ -x "$S3_SERVER_BIN" ] || die "s3_server binary $S3_SERVER_BIN not found"
}

# WORK (with WORK/logs) under TMPDIR; every pid in PIDS is stopped on exit,
# and WORK removed unless KEEP=1.
bench_workdir() { # NAME
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-$1-bench.XXXXXX")
  mkdir -p "$WORK/logs"
  PIDS=()
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  export AWS_ACCESS_KEY_ID=ferry-test-access
  export AWS_SECRET_ACCESS_KEY=ferry-test-secret-key-0123456789
  export AWS_DEFAULT_REGION=local AWS_EC2_METADATA_DISABLED=true
  export FERRY_PASSWORD=ferry-bench-password XDG_CACHE_HOME=$WORK/cache
  unset FERRY_REPO FERRY_CONFIG FERRY_LIMIT_UPLOAD FERRY_LIMIT_DOWNLOAD
}

bench_cleanup() {
  local p
  if [ -n "${PIDS_EXTRA_CLEANUP:-}" ]; then "$PIDS_EXTRA_CLEANUP"; fi
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}

# Waits until something listens on PORT, while PID lives.
wait_port() { # PORT PID
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  die "nothing listens on port $1; see $WORK/logs"
}

# An s3_server on 127.0.0.1:PORT keeping its buckets in WORK/server-NAME.
start_server() { # NAME PORT: sets SERVER_PID
  if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then die "port $2 is in use (set PORT_A/PORT_B)"; fi
  "$S3_SERVER_BIN" "127.0.0.1:$2" "$WORK/server-$1" 2>"$WORK/logs/server-$1.log" &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port "$2" "$SERVER_PID"
}
