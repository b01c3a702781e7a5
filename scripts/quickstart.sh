#!/usr/bin/env bash
# Builds ferry and runs its main job on the embedded default, a local
# directory repository: init, back up a directory, change it, back up again,
# list, diff, check, and restore the first state. No cloud account needed.
#
#   scripts/quickstart.sh [DIR_TO_BACK_UP]     (default: this checkout's src/)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$(realpath "${1:-src}")
WORK=$(mktemp -d /tmp/ferry-quickstart.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cargo build --quiet   # dev profile: dependencies optimised, shares the test build
ferry() { ./target/debug/ferry "$@"; }
export FERRY_REPO="$WORK/repo" FERRY_PASSWORD="quickstart" XDG_CACHE_HOME="$WORK/cache"

mkdir -p "$WORK/data"
cp -a "$SRC" "$WORK/data/volume"
ferry init
ferry backup "$WORK/data" --tag first
echo "one more line" >> "$(find "$WORK/data/volume" -type f | sort | head -n1)"
ferry backup "$WORK/data" --tag second
ferry snapshots
FIRST=$(ferry snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
ferry diff "$FIRST" latest
ferry check --read-data
ferry restore "$FIRST" --target "$WORK/restore"
diff -r "$SRC" "$WORK/restore$WORK/data/volume"
echo "quickstart: backup, restore and check round trip OK (restored tree identical to $SRC)"
