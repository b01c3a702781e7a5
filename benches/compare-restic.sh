#!/usr/bin/env bash
# compare-restic.sh: end-to-end benchmark of ferry against restic on the shared
# dataset (../shared/bench/make-dataset.sh), both tools in one run.
#
# Usage (as root: it mounts loop filesystems and mutates the dataset):
#   benches/compare-restic.sh [options] [DATASET_DIR]
#
#   DATASET_DIR      dataset to back up (default: $DATASET or /work/bench-data/dataset);
#                    built with make-dataset.sh when missing
#   --fresh          reset the dataset to its base state (make-dataset.sh) first
#   --only TOOL      run one tool only: ferry or restic (no ratios, no targets)
#   --drop-caches    sync and drop the page cache before every measured phase
#                    (default: warm cache; the dataset is read once first)
#   --settle-memory MIB
#                    before every measured phase, fill and free this much memory
#                    (default 6144, capped at a third of MemAvailable; 0: off),
#                    so that every phase of both tools starts from the same state
#                    of free memory (see "Free memory" below)
#   --workdir DIR    where repositories, logs and results go
#                    (default: $WORKDIR or /work/bench-data/runs)
#   --no-reference   skip the `tar -c | zstd -3 -T2` reference timing
#   -h, --help       this text
#
# Environment:
#   FERRY_BIN        ferry binary to use; when unset, `cargo build --release` runs
#                    in the repository root and target/release/ferry is used
#   RESTIC_BIN       restic binary (default: restic on PATH; Debian package `restic`)
#   MAKE_DATASET, MUTATE_DATASET   the dataset scripts
#                    (default: <repo>/../shared/bench/{make,mutate}-dataset.sh)
#   IMG_DIR          where the restore ext4 images are created (default: the run dir)
#
# What one run does, for each tool side by side:
#   phase 1 (per tool): init a fresh repository, first backup, unchanged re-backup
#   mutate the dataset once (mutate-dataset.sh), so both tools see the same change
#   phase 2 (per tool): backup of the mutated dataset, restore of the latest
#   snapshot into a freshly made loop-mounted ext4 image (verified against the
#   dataset, then unmounted and deleted), check --read-data, repository size.
# Each phase is timed with `/usr/bin/time -f '%e %M'` (wall seconds, peak RSS).
# Each tool gets its own local cache directory, empty at init and kept across its
# phases (ferry: XDG_CACHE_HOME, restic: RESTIC_CACHE_DIR).
# Results: a table on stdout, and RUN_DIR/results.json plus per-phase logs under
# WORKDIR/<timestamp>/ (WORKDIR/latest points at the newest run).
# Free memory: on virtual machines whose balloon device reports free pages to
# the host (virtio-balloon free page reporting, as on these Firecracker VMs),
# memory freed a while ago is handed back to the host, and the guest pays a
# host page fault for every such page it touches again. A phase that runs
# after a quiet spell then pays seconds of system time that the same phase
# right after another does not: in phase 2 the tool that goes first paid for
# the one after it (ferry's restore measured 3.3 s with a settled memory,
# 4.4-7.6 s without, on the same repository). Filling and freeing the same
# amount of memory before every measured phase (a tmpfs file, outside the
# timing) puts both tools in the same state; results.json records the amount.
# Exit status: 0 when every phase ran and every restore matched the dataset,
# 1 otherwise (targets missed do not change the exit status; they print FAIL).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "compare-restic.sh: $*" >&2; exit 1; }
log() { printf '\n== %s\n' "$*" >&2; }

ORIG_CMD="$0${*:+ $*}"
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

DATASET=${DATASET:-/work/bench-data/dataset}
WORKDIR=${WORKDIR:-/work/bench-data/runs}
MAKE_DATASET=${MAKE_DATASET:-$ROOT/../shared/bench/make-dataset.sh}
MUTATE_DATASET=${MUTATE_DATASET:-$ROOT/../shared/bench/mutate-dataset.sh}
RESTIC_BIN=${RESTIC_BIN:-restic}
FRESH=0 DROP_CACHES=0 REFERENCE=1 SETTLE_MIB=6144
TOOLS=(ferry restic)
PASSWORD=ferry-bench-password

while [ $# -gt 0 ]; do
  case $1 in
    --fresh) FRESH=1 ;;
    --only) [ $# -ge 2 ] || die "--only needs ferry or restic"
            case $2 in ferry|restic) TOOLS=("$2") ;; *) die "--only: ferry or restic, not '$2'" ;; esac
            shift ;;
    --drop-caches) DROP_CACHES=1 ;;
    --settle-memory) [ $# -ge 2 ] && [[ $2 =~ ^[0-9]+$ ]] || die "--settle-memory needs a size in MiB"
                     SETTLE_MIB=$2; shift ;;
    --workdir) [ $# -ge 2 ] || die "--workdir needs a directory"; WORKDIR=$2; shift ;;
    --no-reference) REFERENCE=0 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) DATASET=$1 ;;
  esac
  shift
done

has_tool() { local t; for t in "${TOOLS[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

# --- prerequisites --------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "run as root (loop mounts, dataset scripts)"
export LC_ALL=C
for c in mkfs.ext4 mount umount truncate du diff find; do
  command -v "$c" >/dev/null || die "$c not found"
done
if [ ! -x /usr/bin/time ]; then
  log "installing GNU time"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
fi
if has_tool restic; then
  if ! command -v "$RESTIC_BIN" >/dev/null; then
    [ "$RESTIC_BIN" = restic ] || die "RESTIC_BIN=$RESTIC_BIN not found"
    log "installing restic (Debian package)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q restic >/dev/null
  fi
  RESTIC_BIN=$(command -v "$RESTIC_BIN")
  RESTIC_VERSION=$("$RESTIC_BIN" version | head -n1)
fi
if has_tool ferry; then
  if [ -z "${FERRY_BIN:-}" ]; then
    log "cargo build --release in $ROOT"
    (cd "$ROOT" && cargo build --release --bin ferry)
    FERRY_BIN=$ROOT/target/release/ferry
  fi
  [ -x "$FERRY_BIN" ] || die "ferry binary $FERRY_BIN not found"
  FERRY_BIN=$(cd "$(dirname "$FERRY_BIN")" && pwd)/$(basename "$FERRY_BIN")
  FERRY_VERSION=$("$FERRY_BIN" --version 2>/dev/null | head -n1 || true)
  FERRY_VERSION=${FERRY_VERSION:-unknown}
fi

# --- dataset ---------------------------------------------------------------------
if [ "$FRESH" = 1 ] || [ ! -d "$DATASET/src" ] || [ ! -d "$DATASET/pgdata" ]; then
  [ -x "$MAKE_DATASET" ] || die "$MAKE_DATASET not found"
  log "building the dataset: $MAKE_DATASET $DATASET"
  "$MAKE_DATASET" "$DATASET" >&2
fi
DATASET=$(cd "$DATASET" && pwd)
mutation_gen() { # number of mutate-dataset.sh runs since make-dataset.sh
  if [ -d "$DATASET/new" ]; then find "$DATASET/new" -maxdepth 1 -name 'random-gen*.bin' | wc -l; else echo 0; fi
}
PRIOR_GENS=$(mutation_gen)
if [ "$PRIOR_GENS" -gt 0 ]; then
  echo "WARNING: the dataset was already mutated $PRIOR_GENS time(s); figures are not" \
       "comparable with a base-state run (use --fresh)" >&2
fi

# --- run directory ---------------------------------------------------------------
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
RUN=$WORKDIR/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN/logs"
ln -sfn "$(basename "$RUN")" "$WORKDIR/latest"
IMG_DIR=${IMG_DIR:-$RUN}
echo "run directory: $RUN" >&2

MOUNTED=()
cleanup() {
  local m
  for m in "${MOUNTED[@]+"${MOUNTED[@]}"}"; do
    mountpoint -q "$m" && umount "$m" || true
  done
  rm -f "$IMG_DIR"/*-restore.img
  [ -z "$SETTLE_FILE" ] || rm -f "$SETTLE_FILE"
}
trap cleanup EXIT

SETTLE_FILE=
if [ "$SETTLE_MIB" -gt 0 ]; then
  if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
    avail_mib=$(awk '/^MemAvailable:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
    [ "$SETTLE_MIB" -le $((avail_mib / 3)) ] || SETTLE_MIB=$((avail_mib / 3))
    SETTLE_FILE=/dev/shm/compare-restic-settle.$$
  else
    echo "WARNING: /dev/shm is not a tmpfs; memory not settled between phases" >&2
    SETTLE_MIB=0
  fi
fi

declare -A R=()      # R[tool.phase.secs|kib|rc], R[tool.repo_bytes], ...
declare -A FAILED=() # tool -> first failed phase

settle() {
  sync
  if [ "$DROP_CACHES" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
  if [ "$SETTLE_MIB" -gt 0 ]; then
    head -c "${SETTLE_MIB}M" /dev/zero >"$SETTLE_FILE" || true
    rm -f "$SETTLE_FILE"
  fi
}

# run_timed KEY PHASE CMD...: time CMD, record seconds/peak KiB/exit code
run_timed() {
  local key=$1 phase=$2; shift 2
  local tf=$RUN/logs/$key-$phase.time lf=$RUN/logs/$key-$phase.log rc=0 secs kib
  settle
  echo "-- $key $phase: $*" >&2
  R[$key.$phase.load]=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" >"$lf" 2>&1 || rc=$?
  read -r secs kib usr sys < <(tail -n1 "$tf")
  R[$key.$phase.secs]=$secs R[$key.$phase.kib]=$kib R[$key.$phase.rc]=$rc
  R[$key.$phase.cpu]=$(awk -v u="$usr" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  printf '   %s s, peak %s MiB, cpu %s s, exit %s (load before: %s)\n' "$secs" "$(mib "$kib")" \
    "${R[$key.$phase.cpu]}" "$rc" "${R[$key.$phase.load]}" >&2
  return "$rc"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

# tool_run TOOL PHASE [ARGS...]: the tool's command line for a phase
tool_cmd() {
  local tool=$1 phase=$2; shift 2
  local repo=$RUN/$tool/repo
  case $tool in
    ferry)
      local base=(env FERRY_PASSWORD="$PASSWORD" XDG_CACHE_HOME="$RUN/ferry/cache" "$FERRY_BIN")
      case $phase in
        init) CMD=("${base[@]}" init --repo "$repo") ;;
        backup*) CMD=("${base[@]}" backup --repo "$repo" "$DATASET") ;;
        restore) CMD=("${base[@]}" restore --repo "$repo" latest --target "$1") ;;
        check) CMD=("${base[@]}" check --repo "$repo" --read-data) ;;
        snapshots) CMD=("${base[@]}" snapshots --repo "$repo" --json) ;;
      esac ;;
    restic)
      local base=(env RESTIC_PASSWORD="$PASSWORD" RESTIC_CACHE_DIR="$RUN/restic/cache" "$RESTIC_BIN")
      case $phase in
        init) CMD=("${base[@]}" init --repo "$repo" --repository-version 2) ;;
        backup*) CMD=("${base[@]}" backup --repo "$repo" --compression auto "$DATASET") ;;
        restore) CMD=("${base[@]}" restore --repo "$repo" latest --target "$1") ;;
        check) CMD=("${base[@]}" check --repo "$repo" --read-data) ;;
        snapshots) CMD=("${base[@]}" snapshots --repo "$repo" --json) ;;
      esac ;;
  esac
}

# phase TOOL PHASE [ARGS]: run one measured phase unless the tool already failed
phase() {
  local tool=$1 ph=$2 rc=0; shift 2
  [ -z "${FAILED[$tool]:-}" ] || return 1
  tool_cmd "$tool" "$ph" "$@"
  run_timed "$tool" "$ph" "${CMD[@]}" || rc=$?
  if [ "$rc" = 3 ] && [[ $ph == backup* ]]; then
    echo "   WARNING: $tool $ph: exit 3, snapshot made but some files unreadable" >&2
    R[$tool.warnings]+="$ph exit 3; "
  elif [ "$rc" != 0 ]; then
    FAILED[$tool]=$ph R[$tool.$ph.failed]=1
    echo "   ERROR: $tool $ph failed (exit $rc), see $RUN/logs/$tool-$ph.log; skipping its other phases" >&2
    tail -n 5 "$RUN/logs/$tool-$ph.log" | sed 's/^/   | /' >&2
    return 1
  fi
}

# restored_root TARGET: where the dataset landed inside a restore target
restored_root() {
  local t=$1 c
  for c in "$t$DATASET" "$t/$(basename "$DATASET")" "$t"; do
    if [ -d "$c/src" ] && [ -d "$c/pgdata" ]; then echo "$c"; return 0; fi
  done
  return 1
}

# meta_listing DIR: type, mode, owner, size, mtime, link count, path, link target
meta_listing() {
  (cd "$1" && find . \( -type d -printf 'd %m %U:%G - %T@ - %p\n' \) \
                  -o \( -type l -printf 'l - %U:%G - - - %p -> %l\n' \) \
                  -o -printf '%y %m %U:%G %s %T@ %n %p\n' | sort)
}

verify_restore() {
  local tool=$1 target=$2 root n_content n_meta
  if ! root=$(restored_root "$target"); then
    echo "   ERROR: $tool restore: dataset not found under $target" >&2
    R[$tool.verify]="dataset not found in restore target"; R[$tool.verify_ok]=false
    return
  fi
  echo "-- verify $tool restore ($root) against $DATASET" >&2
  diff -rq --no-dereference "$DATASET" "$root" >"$RUN/logs/$tool-verify-content.txt" 2>&1 || true
  n_content=$(wc -l <"$RUN/logs/$tool-verify-content.txt")
  diff <(meta_listing "$DATASET") <(meta_listing "$root") | grep '^[<>]' \
    >"$RUN/logs/$tool-verify-meta.txt" || true
  n_meta=$(wc -l <"$RUN/logs/$tool-verify-meta.txt")
  R[$tool.verify_content]=$n_content R[$tool.verify_meta]=$n_meta
  if [ "$n_content" = 0 ]; then R[$tool.verify_ok]=true; else R[$tool.verify_ok]=false; fi
  R[$tool.verify]="$n_content content differences, $n_meta metadata lines differing"
  echo "   ${R[$tool.verify]} (logs/$tool-verify-*.txt)" >&2
}

phase1() {
  local tool=$1
  log "$tool: phase 1 (init, first backup, unchanged re-backup)"
  mkdir -p "$RUN/$tool/cache"
  phase "$tool" init || return 0
  phase "$tool" backup-first || return 0
  R[$tool.repo_bytes_first]=$(du -sb "$RUN/$tool/repo" | cut -f1)
  phase "$tool" backup-unchanged || return 0
}

phase2() {
  local tool=$1 img mnt rc=0 secs
  [ -z "${FAILED[$tool]:-}" ] || return 0
  log "$tool: phase 2 (mutated backup, restore, check, size)"
  phase "$tool" backup-mutated || return 0
  tool_cmd "$tool" snapshots
  if "${CMD[@]}" >"$RUN/logs/$tool-snapshots.json" 2>"$RUN/logs/$tool-snapshots.err"; then
    R[$tool.snapshots]=$(jq 'if type == "array" then length
                              elif (type == "object" and has("snapshots")) then (.snapshots | length)
                              else "unknown" end' "$RUN/logs/$tool-snapshots.json" 2>/dev/null || echo '"unknown"')
  fi

  img=$IMG_DIR/$tool-restore.img mnt=$RUN/$tool/mnt
  rm -f "$img"; mkdir -p "$mnt"
  truncate -s 8G "$img"
  # inode tables and journal initialised now, so no background ext4lazyinit
  # competes with the restore
  mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$img"
  mount -o loop "$img" "$mnt"
  MOUNTED+=("$mnt")
  if phase "$tool" restore "$mnt/out"; then
    secs=$( { /usr/bin/time -f '%e' sync; } 2>&1 | tail -n1 )
    R[$tool.restore-sync.secs]=$secs
    echo "   sync after restore: $secs s (not part of the restore figure)" >&2
    verify_restore "$tool" "$mnt/out"
  fi
  umount "$mnt"; rm -f "$img"; rmdir "$mnt"
  [ -z "${FAILED[$tool]:-}" ] || return 0

  phase "$tool" check || true
  R[$tool.repo_bytes]=$(du -sb "$RUN/$tool/repo" | cut -f1)
  R[$tool.cache_bytes]=$(du -sb "$RUN/$tool/cache" | cut -f1)
}

# --- the run ---------------------------------------------------------------------
DS_BYTES=$(du -sb "$DATASET" | cut -f1)
DS_FILES=$(find "$DATASET" -type f | wc -l)
LOAD_START=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD_START" 'BEGIN { exit !(l > 0.5) }'; then
  echo "WARNING: load average $LOAD_START before the run: other work on this machine" \
       "inflates the wall times (cpu seconds are in results.json)" >&2
fi
echo "dataset: $DATASET, $DS_BYTES bytes, $DS_FILES files; page cache: $([ "$DROP_CACHES" = 1 ] && echo dropped before each phase || echo warm)" >&2

if [ "$DROP_CACHES" = 0 ]; then
  log "warming the page cache (reading the dataset once)"
  tar -cf - -C "$DATASET" . | cat >/dev/null
fi
if [ "$REFERENCE" = 1 ]; then
  log "reference: tar -c | zstd -3 -T2"
  run_timed reference tar-zstd bash -c 'tar -cf - -C "$1" . | zstd -3 -T2 -q -c >/dev/null' _ "$DATASET" || true
fi

for t in "${TOOLS[@]}"; do phase1 "$t"; done

log "mutating the dataset once for all tools: $MUTATE_DATASET $DATASET"
/usr/bin/time -f '%e' -o "$RUN/logs/mutate.time" "$MUTATE_DATASET" "$DATASET" >"$RUN/logs/mutate.log" 2>&1 \
  || die "mutate-dataset.sh failed, see $RUN/logs/mutate.log"
MUTATE_SECS=$(tail -n1 "$RUN/logs/mutate.time")
MUTATE_GEN=$(mutation_gen)
sed 's/^/   /' "$RUN/logs/mutate.log" >&2
echo "   mutate-dataset.sh: $MUTATE_SECS s (generation $MUTATE_GEN)" >&2
for t in "${TOOLS[@]}"; do phase2 "$t"; done

# --- report ----------------------------------------------------------------------
PHASES=(init backup-first backup-unchanged backup-mutated restore check)
declare -A LIMIT=([backup-first]=0.5 [backup-unchanged]=0.25 [backup-mutated]=0.5 [restore]=0.5 [check]=0.5)
RSS_LIMIT_MIB=256 SIZE_LIMIT=1.0
BOTH=0; has_tool ferry && has_tool restic && BOTH=1

val() { echo "${R[$1]:--}"; }
secs() { # secs TOOL PHASE: wall seconds of a phase that succeeded, else -
  if [ -n "${R[$1.$2.failed]:-}" ]; then echo -; else val "$1.$2.secs"; fi
}
cell() { if [ -n "${R[$1.$2.failed]:-}" ]; then echo FAILED; else val "$1.$2.secs"; fi; }
ratio() { # ratio A B [DECIMALS] -> A/B, or -
  if [ "$1" = - ] || [ "$2" = - ] || [ "$BOTH" = 0 ]; then echo -; return; fi
  awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf "%.*f", d, a / b; else print "-" }'
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
mibv() { [ "$1" = - ] && echo - || mib "$1"; }

echo
echo "ferry vs restic on $DATASET ($(awk -v b="$DS_BYTES" 'BEGIN{printf "%.2f GiB", b/2^30}'), $DS_FILES files)"
echo "page cache: $([ "$DROP_CACHES" = 1 ] && echo 'dropped before each phase' || echo 'warm (dataset read once before the first phase)'); memory settled before each phase: $SETTLE_MIB MiB"
echo "command: $ORIG_CMD"
echo "restic: ${RESTIC_VERSION:-not run}   ferry: ${FERRY_BIN:-not run} (${FERRY_VERSION:-})"
echo
printf '%-18s | %9s | %9s | %6s | %14s | %15s\n' phase "ferry s" "restic s" ratio "ferry peak MiB" "restic peak MiB"
printf '%s\n' "-------------------+-----------+-----------+--------+----------------+----------------"
for p in "${PHASES[@]}"; do
  fs=$(secs ferry $p) rs=$(secs restic $p)
  printf '%-18s | %9s | %9s | %6s | %14s | %15s\n' "$p" \
    "$(cell ferry $p)" "$(cell restic $p)" "$(ratio "$fs" "$rs")" \
    "$(mibv "$(val ferry.$p.kib)")" "$(mibv "$(val restic.$p.kib)")"
done
fsz=$(val ferry.repo_bytes) rsz=$(val restic.repo_bytes)
bmib() { [ "$1" = - ] && echo - || awk -v b="$1" 'BEGIN { printf "%.1f", b / 2^20 }'; }
printf '%-18s | %9s | %9s | %6s |\n' "repo size MiB" "$(bmib "$fsz")" "$(bmib "$rsz")" "$(ratio "$fsz" "$rsz")"
f1=$(val ferry.repo_bytes_first) r1=$(val restic.repo_bytes_first)
printf '%-18s | %9s | %9s | %6s |\n' "  after 1st backup" "$(bmib "$f1")" "$(bmib "$r1")" "$(ratio "$f1" "$r1")"
for t in "${TOOLS[@]}"; do
  line="$t cpu s (user+sys):"
  for p in "${PHASES[@]}"; do line+=" $p $(val $t.$p.cpu),"; done
  echo "${line%,}"
done
echo
echo "repository size at the end: ferry $fsz bytes, restic $rsz bytes;" \
     "after the first backup: ferry $(val ferry.repo_bytes_first), restic $(val restic.repo_bytes_first) bytes"
echo "local cache: ferry $(val ferry.cache_bytes), restic $(val restic.cache_bytes) bytes"
echo "sync after restore (not in the restore figure): ferry $(val ferry.restore-sync.secs) s, restic $(val restic.restore-sync.secs) s"
[ "$REFERENCE" = 1 ] && echo "reference tar -c | zstd -3 -T2: $(val reference.tar-zstd.secs) s"
echo "mutate-dataset.sh: $MUTATE_SECS s (generation $MUTATE_GEN)"
for t in "${TOOLS[@]}"; do
  echo "$t restore check: $(val $t.verify)${FAILED[$t]:+; FAILED at ${FAILED[$t]}}${R[$t.warnings]:+; ${R[$t.warnings]}}"
done

TARGETS_JSON=()
echo
if [ "$BOTH" = 1 ]; then
  echo "targets (ferry / restic):"
  target_line() { # name value limit [why it fails whatever the value]
    local verdict=FAIL
    [ "$2" != - ] && [ -z "${4:-}" ] && le "$2" "$3" && verdict=PASS
    printf '  %-24s %8s  <= %-5s %s%s\n' "$1" "$2" "$3" "$verdict" "${4:+ ($4)}"
    TARGETS_JSON+=("{\"name\": \"$1\", \"value\": $([ "$2" = - ] && echo null || echo "$2"), \"limit\": $3, \"pass\": $([ "$verdict" = PASS ] && echo true || echo false)}")
  }
  for p in backup-first backup-unchanged backup-mutated restore check; do
    why=
    [ "$p" = restore ] && [ "$(val ferry.verify_ok)" = false ] && why="ferry's restore does not match the dataset"
    target_line "$p ratio" "$(ratio "$(secs ferry $p)" "$(secs restic $p)" 3)" "${LIMIT[$p]}" "$why"
  done
  target_line "repo size ratio" "$(ratio "$fsz" "$rsz" 3)" "$SIZE_LIMIT"
  peak=-
  for p in "${PHASES[@]}"; do
    k=$(val ferry.$p.kib); [ "$k" = - ] && { peak=-; break; }
    if [ "$peak" = - ] || [ "$k" -gt "$peak" ]; then peak=$k; fi
  done
  target_line "ferry peak RSS MiB" "$(mibv "$peak")" "$RSS_LIMIT_MIB"
else
  echo "targets: not evaluated (only ${TOOLS[*]} ran; they need both tools in one run)"
fi

# --- JSON --------------------------------------------------------------------------
jnum() { [ "${1:--}" = - ] && echo null || echo "$1"; }
jstr() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
{
  echo "{"
  echo "  \"date\": $(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),"
  echo "  \"host\": $(jstr "$(hostname)"), \"cores\": $(nproc), \"loadavg_at_start\": $LOAD_START,"
  echo "  \"command\": $(jstr "$ORIG_CMD"),"
  echo "  \"page_cache\": $(jstr "$([ "$DROP_CACHES" = 1 ] && echo dropped || echo warm)"), \"memory_settled_mib\": $SETTLE_MIB,"
  echo "  \"dataset\": {\"path\": $(jstr "$DATASET"), \"bytes\": $DS_BYTES, \"files\": $DS_FILES,"
  echo "              \"mutated_before_run\": $PRIOR_GENS, \"mutation_generation\": $MUTATE_GEN, \"mutate_seconds\": $MUTATE_SECS},"
  echo "  \"reference_tar_zstd\": {\"seconds\": $(jnum "$(val reference.tar-zstd.secs)"), \"peak_kib\": $(jnum "$(val reference.tar-zstd.kib)"), \"cpu_seconds\": $(jnum "$(val reference.tar-zstd.cpu)")},"
  echo "  \"tools\": {"
  first=1
  for t in "${TOOLS[@]}"; do
    [ $first = 1 ] || echo ","; first=0
    if [ "$t" = ferry ]; then ver=$FERRY_VERSION bin=$FERRY_BIN; else ver=$RESTIC_VERSION bin=$RESTIC_BIN; fi
    echo "    \"$t\": {\"version\": $(jstr "$ver"), \"binary\": $(jstr "$bin"),"
    echo "      \"failed_phase\": $([ -n "${FAILED[$t]:-}" ] && jstr "${FAILED[$t]}" || echo null),"
    echo "      \"phases\": {"
    pf=1
    for p in "${PHASES[@]}"; do
      [ -n "${R[$t.$p.secs]:-}" ] || continue
      [ $pf = 1 ] || echo ","; pf=0
      printf '        "%s": {"seconds": %s, "peak_kib": %s, "cpu_seconds": %s, "exit": %s, "loadavg_before": %s}' "$p" \
        "$(jnum "${R[$t.$p.secs]}")" "$(jnum "${R[$t.$p.kib]}")" "$(jnum "${R[$t.$p.cpu]}")" \
        "${R[$t.$p.rc]}" "$(jnum "${R[$t.$p.load]}")"
    done
    echo
    echo "      },"
    echo "      \"restore_sync_seconds\": $(jnum "$(val $t.restore-sync.secs)"),"
    echo "      \"repo_bytes\": $(jnum "$(val $t.repo_bytes)"), \"repo_bytes_after_first_backup\": $(jnum "$(val $t.repo_bytes_first)"), \"cache_bytes\": $(jnum "$(val $t.cache_bytes)"),"
    echo "      \"snapshots\": $(jnum "$(val $t.snapshots)"),"
    echo "      \"restore_verify\": {\"ok\": $(jnum "$(val $t.verify_ok)"), \"content_differences\": $(jnum "$(val $t.verify_content)"), \"metadata_differences\": $(jnum "$(val $t.verify_meta)")}"
    printf '    }'
  done
  echo
  echo "  },"
  echo "  \"targets\": ["
  for i in "${!TARGETS_JSON[@]}"; do
    printf '    %s%s\n' "${TARGETS_JSON[$i]}" "$([ "$i" -lt $((${#TARGETS_JSON[@]} - 1)) ] && echo ,)"
  done
  echo "  ]"
  echo "}"
} >"$RUN/results.json"
jq -e . "$RUN/results.json" >/dev/null 2>&1 || echo "WARNING: $RUN/results.json is not valid JSON" >&2
echo
echo "results: $RUN/results.json (logs in $RUN/logs)"

status=0
for t in "${TOOLS[@]}"; do
  [ -z "${FAILED[$t]:-}" ] || status=1
  [ "$(val $t.verify_ok)" = true ] || status=1
done
exit $status
