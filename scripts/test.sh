#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (Debian packages, when run as root and missing), then cargo test.
#
#   scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for tool in setpriv:util-linux unshare:util-linux losetup:mount mkfs.ext4:e2fsprogs pgrep:procps restic:restic promtool:prometheus prometheus-pushgateway:prometheus-pushgateway; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool##*:}")
done
# PostgreSQL for the volume hook test (binaries under /usr/lib/postgresql/*/bin).
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || need+=(postgresql)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# moto's S3 server (object lock tests), from PyPI.
if ! python3 -c 'import sys, moto.server; sys.exit(moto.__version__ != "5.2.5")' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    python3 -m pip install -q 'moto[server]==5.2.5'
  else
    python3 -m pip install -q --user 'moto[server]==5.2.5'
  fi
fi
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo test --locked --all-targets "$@"
# Documentation examples and doc links.
cargo test --locked --doc "$@"
