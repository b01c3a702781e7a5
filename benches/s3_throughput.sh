#!/usr/bin/env bash
# Throughput of ferry's S3 store next to `aws s3 cp` and `rclone copy`, all
# against one local s3s-fs server, and a check of the upload limit.
#
#   benches/s3_throughput.sh [TOTAL_MIB] [LIMIT_SECONDS]
#
# Needs awscli (aws) and/or rclone on PATH; skips a tool that is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL_MIB=${1:-1024}
LIMIT_SECONDS=${2:-30}
OBJECT_MIB=64
PORT=${PORT:-19000}
WORK=$(mktemp -d /tmp/ferry-s3-bench.XXXXXX)
ENDPOINT=http://127.0.0.1:$PORT
export RCLONE_CONFIG=/dev/null

cargo build --release --example s3_server --example s3_bench -q
./target/release/examples/s3_server 127.0.0.1:$PORT "$WORK/server" 2>"$WORK/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
sleep 1

export AWS_ACCESS_KEY_ID=ferry-test-access
export AWS_SECRET_ACCESS_KEY=ferry-test-secret-key-0123456789
export AWS_DEFAULT_REGION=local AWS_EC2_METADATA_DISABLED=true

echo "== ferry ($TOTAL_MIB MiB in $OBJECT_MIB MiB objects, 4 at a time)"
./target/release/examples/s3_bench "$ENDPOINT" ferry up "$TOTAL_MIB" "$OBJECT_MIB"
./target/release/examples/s3_bench "$ENDPOINT" ferry down "$TOTAL_MIB" "$OBJECT_MIB"

# The same bytes for the other tools: files of the same sizes.
mkdir -p "$WORK/src"
for i in $(seq 1 $((TOTAL_MIB / OBJECT_MIB))); do
  head -c $((OBJECT_MIB << 20)) /dev/urandom >"$WORK/src/pack$i"
done

rate() { awk -v mib="$TOTAL_MIB" -v s="$1" 'BEGIN { printf "%.1f MiB/s", mib / s }'; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }'; }

if command -v aws >/dev/null; then
  aws --endpoint-url "$ENDPOINT" s3 mb s3://awscli >/dev/null
  s=$(timed aws --endpoint-url "$ENDPOINT" s3 cp --recursive "$WORK/src" s3://awscli/bench/)
  echo "aws s3 cp upload: $TOTAL_MIB MiB in ${s} s = $(rate "$s")"
  s=$(timed aws --endpoint-url "$ENDPOINT" s3 cp --recursive s3://awscli/bench/ "$WORK/aws-down")
  echo "aws s3 cp download: $TOTAL_MIB MiB in ${s} s = $(rate "$s")"
  rm -rf "$WORK/aws-down"
fi

if command -v rclone >/dev/null; then
  export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
    RCLONE_CONFIG_BENCH_ENDPOINT=$ENDPOINT RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true \
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
    RCLONE_CONFIG_BENCH_REGION=local
  # rclone's S3 client refuses a CA bundle for plain-HTTP endpoints. The
  # copies use the bucket root: for a path inside it, rclone first asks
  # whether the path is a file, which s3s-fs answers only after ~45 s.
  unset AWS_CA_BUNDLE
  rclone mkdir bench:rclone
  s=$(timed rclone copy --transfers 4 "$WORK/src" bench:rclone)
  echo "rclone copy upload: $TOTAL_MIB MiB in ${s} s = $(rate "$s")"
  s=$(timed rclone copy --transfers 4 bench:rclone "$WORK/rclone-down")
  echo "rclone copy download: $TOTAL_MIB MiB in ${s} s = $(rate "$s")"
fi

echo "== upload limit 20MiB/s for $LIMIT_SECONDS s"
./target/release/examples/s3_bench "$ENDPOINT" ferry limit 20MiB/s "$LIMIT_SECONDS"
