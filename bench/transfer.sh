#!/usr/bin/env bash
# bench/transfer.sh — ferry's transfer benchmark, side by side with the tools a user
# would otherwise pick (issue 4, item 5). Not a test: it prints figures.
#
# Usage (as root: it makes network namespaces):
#   bench/transfer.sh --install            # once: apt-get and cargo install the peer tools
#   bench/transfer.sh                      # 1 GiB, every tool, one run each
#   bench/transfer.sh --size 256M --runs 3 --tools socat,bt,sendme,hash
#
# What it runs, on one file of random bytes (--size, default 1G):
#   hash     b3sum --num-threads 1 and b3sum on all cores (the file is in the page cache)
#   socat    socat -u FILE TCP-LISTEN  ->  socat -u TCP:127.0.0.1:PORT CREATE:OUT (the ceiling)
#   bt       BitTorrent: transmission-create makes the torrent, aria2c seeds, aria2c
#            leeches; bench/tracker.py is the tracker on 127.0.0.1. DHT, LPD, PEX off.
#   sendme   iroh's sendme: `sendme send FILE` -> `sendme receive TICKET`
#   ferry1   ferry: one provider -> one downloader (`ferry share FILE --json`, then
#            `ferry get TICKET -o OUT --json`); the share's time is ferry's hashing figure
#   ferry4   ferry: the file shared on four nodes; the downloader `ferry connect`s to all
#            four, then `ferry get`s the ticket; each provider's upload is counted
#
# Every run gets a fresh network namespace that has only `lo` (ip netns add + lo up), and
# every process of a tool runs inside it: nothing leaves loopback, no DHT, no relay, no
# public tracker. The namespaces and every process in them are removed on exit (trap).
#
# Figures: MB/s = file size / wall time of the receiving command, MB = 10^6 bytes.
# CPU s = user+sys. A receiver that exits by itself is measured by /usr/bin/time (its
# whole life); a long-running sender or node by /proc/PID/stat sampled just before and
# after the receive (CPU spent during the transfer). Peak RSS = the process's high-water
# mark (time's %M, or VmHWM). For ferry the receiving side is the downloader's node plus
# the `ferry get` command. Every received file is checked with b3sum against the source
# (cmp when b3sum is missing); a run whose output differs is FAILED, not a speed. With
# --runs N the table shows the run with the median wall time, and every run's MB/s.
#
# Options:
#   --size SIZE      file size, with K/M/G suffix (powers of 1024); default 1G
#   --runs N         runs of each tool; default 1
#   --tools LIST     comma-separated from hash,socat,bt,sendme,ferry1,ferry4 (ferry = both);
#                    default all
#   --install        apt-get update; apt-get install transmission-cli aria2 socat time
#                    iproute2 nftables python3; cargo install --locked sendme and b3sum into
#                    the tools dir (sendme takes ~10 min on 2 cores). Then benchmark, unless
#                    --install-only.
#   --install-only   install and exit
#   --tools-dir DIR  where cargo installs sendme and b3sum (DIR/bin); default
#                    $HOME/.cache/ferry-bench
#   --no-build       do not run `cargo build --release -p ferry` before the ferry runs
#   --ferry PATH     the ferry binary; default target/release/ferry of this repository
#   --workdir DIR    where the file and the copies go (needs ~7x the size free);
#                    default /var/tmp
#   --timeout SECS   limit for each receive; default 600 (waits for set-up are shorter)
#   --socat-block N  socat's -b block size; default 131072
#   --out FILE       also write the final markdown tables to FILE
#   --keep           keep the work directory (logs, data dirs) for inspection
#   -h, --help       this text
#
# Needs: root, iproute2 (ip netns), python3, /usr/bin/time, and per tool: socat; aria2c and
# transmission-create; sendme; b3sum; nft (optional: per-provider upload counts).

set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR="$REPO/bench"

SIZE_ARG=1G
RUNS=1
TOOLS_ARG=hash,socat,bt,sendme,ferry1,ferry4
INSTALL=0
INSTALL_ONLY=0
TOOLS_DIR=${HOME:-/root}/.cache/ferry-bench
BUILD=1
FERRY=""
WORK_PARENT=/var/tmp
TIMEOUT=600
SETUP_TIMEOUT=120
SOCAT_BLOCK=131072
OUT=""
KEEP=0

usage() { sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while (($#)); do
    case "$1" in
        --size) SIZE_ARG=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --tools) TOOLS_ARG=$2; shift 2 ;;
        --install) INSTALL=1; shift ;;
        --install-only) INSTALL=1; INSTALL_ONLY=1; shift ;;
        --tools-dir) TOOLS_DIR=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --ferry) FERRY=$2; shift 2 ;;
        --workdir) WORK_PARENT=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --socat-block) SOCAT_BLOCK=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (network namespaces need it)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs wants a positive number"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout wants seconds"

parse_size() {
    local s=${1^^} n mult=1
    s=${s%IB}; s=${s%B}
    case "$s" in
        *K) mult=1024; n=${s%K} ;;
        *M) mult=$((1024 ** 2)); n=${s%M} ;;
        *G) mult=$((1024 ** 3)); n=${s%G} ;;
        *) n=$s ;;
    esac
    [[ $n =~ ^[0-9]+$ ]] || return 1
    echo $((n * mult))
}
SIZE=$(parse_size "$SIZE_ARG") || die "bad --size $SIZE_ARG"
((SIZE > 0)) || die "--size must be more than 0"

# Which tools, in the order they run.
declare -A WANT=()
IFS=, read -ra _tools <<<"$TOOLS_ARG"
for t in "${_tools[@]}"; do
    case "$t" in
        ferry) WANT[ferry1]=1; WANT[ferry4]=1 ;;
        hash|socat|bt|sendme|ferry1|ferry4) WANT[$t]=1 ;;
        *) die "unknown tool '$t' (hash,socat,bt,sendme,ferry1,ferry4,ferry)" ;;
    esac
done
ORDER=(hash socat bt sendme ferry1 ferry4)

# No proxy may divert loopback traffic; no colour codes in logs.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
export NO_COLOR=1 RUST_LOG=${RUST_LOG:-warn}
export PATH="$TOOLS_DIR/bin:$PATH"

# ---------------------------------------------------------------------------- install

do_install() {
    log "installing the peer tools (apt-get: transmission-cli aria2 socat time iproute2 nftables python3)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update || die "apt-get update failed"
    apt-get install -y --no-install-recommends \
        transmission-cli aria2 socat time iproute2 nftables python3 procps \
        || die "apt-get install failed"
    command -v cargo >/dev/null || die "cargo is needed to install sendme and b3sum"
    mkdir -p "$TOOLS_DIR"
    local crate
    for crate in b3sum sendme; do
        if [[ -x $TOOLS_DIR/bin/$crate ]]; then
            log "$crate already in $TOOLS_DIR/bin ($("$TOOLS_DIR/bin/$crate" --version 2>&1 | head -1))"
            continue
        fi
        log "cargo install $crate --locked --root $TOOLS_DIR (slow on 2 cores)"
        cargo install "$crate" --locked --root "$TOOLS_DIR" || die "cargo install $crate failed"
    done
}
if ((INSTALL)); then
    do_install
    ((INSTALL_ONLY)) && exit 0
fi

command -v ip >/dev/null || die "ip (iproute2) is missing; run with --install"
command -v python3 >/dev/null || die "python3 is missing; run with --install"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing; run with --install"

# ---------------------------------------------------------------------------- state, cleanup

STAMP=$(date +%Y%m%d-%H%M%S)
WORK=$(mktemp -d "$WORK_PARENT/ferry-bench.$STAMP.XXXXXX") || die "cannot make a work dir in $WORK_PARENT"
NS_PREFIX="fbench$$x"
NS_COUNT=0
NSES=()
RESULTS="$WORK/results.tsv"
HASHES="$WORK/hashes.tsv"
VERSIONS="$WORK/versions.tsv"
: >"$RESULTS"; : >"$HASHES"; : >"$VERSIONS"

kill_pids() { # kill_pids PID... : TERM, then KILL what is left after 2 s
    local p alive=()
    for p in "$@"; do kill -TERM "$p" 2>/dev/null && alive+=("$p"); done
    ((${#alive[@]})) || return 0
    local end=$((SECONDS + 2))
    while ((SECONDS < end)); do
        local any=0
        for p in "${alive[@]}"; do kill -0 "$p" 2>/dev/null && any=1; done
        ((any)) || return 0
        sleep 0.1
    done
    for p in "${alive[@]}"; do kill -KILL "$p" 2>/dev/null; done
    return 0
}

ns_kill_all() { # every process inside one of our namespaces, and the namespace
    local ns=$1
    # shellcheck disable=SC2046
    kill_pids $(ip netns pids "$ns" 2>/dev/null)
    ip netns del "$ns" 2>/dev/null
}

cleanup() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM # a second Ctrl-C must not cut the cleanup short
    # Every process this script starts runs inside one of its namespaces: killing what
    # is in them ends exactly those (no stale PID can hit a stranger's process).
    local ns
    for ns in "${NSES[@]}"; do ns_kill_all "$ns"; done
    if ((KEEP)); then
        log "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

mkns() { # mkns TAG : a fresh namespace with only lo, up; its name in NS (not in $(...):
    # the name must reach NSES in this shell for the cleanup)
    NS_COUNT=$((NS_COUNT + 1))
    NS="${NS_PREFIX}${NS_COUNT}$1"
    NS=${NS:0:30}
    ip netns add "$NS" || return 1
    NSES+=("$NS")
    ip -n "$NS" link set lo up || return 1
    local links
    links=$(ip -n "$NS" -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
    [[ $links == "lo " ]] || { log "namespace $NS has links other than lo: $links"; return 1; }
}

bg_in() { # bg_in NS DIR LOG CMD... : start CMD in NS with cwd DIR; sets BG_PID
    local ns=$1 dir=$2 logf=$3; shift 3
    (cd "$dir" && exec ip netns exec "$ns" "$@") >"$logf" 2>&1 </dev/null &
    BG_PID=$!
}

wait_until() { # wait_until SECS CMD... : poll CMD until it succeeds
    local end=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS >= end)) && return 1
        sleep 0.1
    done
}

alive() { kill -0 "$1" 2>/dev/null; }

tcp_listening() { ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q .; }

cpu_of() { # user+sys seconds of a live process, from /proc/PID/stat
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    # after "pid (comm) ": field 3 is state; utime and stime are fields 14 and 15
    awk -v tck="$(getconf CLK_TCK)" '{printf "%.2f", ($12 + $13) / tck}' <<<"$stat"
}

rss_of() { # peak RSS of a live process, MiB
    awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0
}

fsub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a - b}'; }
fadd() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a + b}'; }

# timed NS DIR LOG TIMEFILE CMD... : run CMD in NS under /usr/bin/time and timeout
# TIMEFILE gets "wall user sys maxrss_kb"; returns CMD's status (124 on timeout)
timed() {
    local ns=$1 dir=$2 logf=$3 tf=$4; shift 4
    (cd "$dir" && exec timeout -k 5 "$TIMEOUT" ip netns exec "$ns" \
        /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@") >"$logf" 2>&1 </dev/null
}

read_time() { # read_time TIMEFILE -> sets T_WALL T_CPU T_RSS (MiB)
    local line
    line=$(tail -n 1 "$1" 2>/dev/null)
    read -r T_WALL T_U T_S T_KB <<<"$line"
    if [[ ! $T_WALL =~ ^[0-9.]+$ ]]; then T_WALL=""; T_CPU=""; T_RSS=""; return 1; fi
    T_CPU=$(fadd "$T_U" "$T_S")
    T_RSS=$(awk -v k="$T_KB" 'BEGIN {printf "%.0f", k / 1024}')
}

SRC_HASH=""
verify() { # verify FILE -> 0 when FILE is the source, byte for byte
    local f=$1
    [[ -f $f ]] || { VERIFY_MSG="no output file"; return 1; }
    local sz
    sz=$(stat -c %s "$f")
    [[ $sz == "$SIZE" ]] || { VERIFY_MSG="size $sz, expected $SIZE"; return 1; }
    if [[ -n $SRC_HASH ]]; then
        local h
        h=$(b3sum --no-names "$f") || { VERIFY_MSG="b3sum failed"; return 1; }
        [[ $h == "$SRC_HASH" ]] || { VERIFY_MSG="b3sum differs"; return 1; }
    else
        cmp -s "$f" "$SRC" || { VERIFY_MSG="cmp: contents differ"; return 1; }
    fi
    VERIFY_MSG=ok
}

jget() { # jget FILE KEY : a top-level key of the last JSON object in FILE
    python3 - "$1" "$2" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
dec = json.JSONDecoder()
obj = None
i = 0
while True:
    j = text.find("{", i)
    if j < 0:
        break
    try:
        cand, end = dec.raw_decode(text, j)
        obj, i = cand, end
    except ValueError:
        i = j + 1
if not isinstance(obj, dict) or sys.argv[2] not in obj:
    sys.exit(1)
v = obj[sys.argv[2]]
print(json.dumps(v) if isinstance(v, (list, dict)) else v)
EOF
}

# record TOOL RUN STATUS WALL RECV_CPU RECV_RSS SEND_CPU SEND_RSS NOTE
record() {
    local tool=$1 run=$2 status=$3 wall=${4:-} rc=${5:-} rr=${6:-} sc=${7:-} sr=${8:-} note=${9:-}
    local mbps=""
    [[ $status == OK && -n $wall ]] &&
        mbps=$(awk -v s="$SIZE" -v w="$wall" 'BEGIN {if (w > 0) printf "%.0f", s / w / 1e6; else print "inf"}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$tool" "$run" "$status" "$wall" "$mbps" "$rc" "$rr" "$sc" "$sr" "$note" >>"$RESULTS"
    if [[ $status == OK ]]; then
        log "RESULT $tool run $run: $mbps MB/s, receive ${wall}s; receiver CPU ${rc}s RSS ${rr}MiB; sender CPU ${sc}s RSS ${sr}MiB${note:+; $note}"
    else
        log "RESULT $tool run $run: $status${note:+; $note}"
    fi
}

version_of() { printf '%s\t%s\n' "$1" "$2" >>"$VERSIONS"; }

# ---------------------------------------------------------------------------- the file

log "work dir $WORK; file size $SIZE bytes ($SIZE_ARG); runs $RUNS; tools: $(for t in "${ORDER[@]}"; do [[ -n ${WANT[$t]:-} ]] && printf '%s ' "$t"; done)"
free_kb=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
need_kb=$((SIZE / 1024 * 7))
((free_kb > need_kb)) || die "$WORK has $((free_kb / 1024)) MiB free; about $((need_kb / 1024)) MiB are needed"

mkdir -p "$WORK/src"
SRC="$WORK/src/payload.bin"
log "writing $SIZE random bytes to $SRC"
head -c "$SIZE" /dev/urandom >"$SRC" || die "cannot write $SRC"
if command -v b3sum >/dev/null; then
    SRC_HASH=$(b3sum --no-names "$SRC")
    version_of b3sum "$(b3sum --version)"
    log "source b3sum $SRC_HASH"
else
    log "b3sum not found: outputs are checked with cmp (run --install for b3sum)"
fi
warm() { cat "$SRC" >/dev/null; } # keep the source in the page cache before each run

# ---------------------------------------------------------------------------- hash

hash_row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$HASHES"; } # what run wall cpu rss

hash_once() { # hash_once LABEL RUN CMD... : wall from EPOCHREALTIME (time's %e is too coarse)
    local label=$1 run=$2; shift 2
    local tf="$WORK/hash.time" t0 t1
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%e %U %S %M' -o "$tf" "$@" >"$WORK/hash.out" 2>&1 || return 1
    t1=$EPOCHREALTIME
    read_time "$tf" || return 1
    hash_row "$label" "$run" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" "$T_CPU" "$T_RSS"
}

bench_hash() { # three samples of each per run: a 1 GiB hash takes a fraction of a second
    local run=$1 i
    command -v b3sum >/dev/null || { log "hash: b3sum not installed (--install)"; return 1; }
    warm
    for i in 1 2 3; do
        hash_once "b3sum --num-threads 1" "$run" b3sum --num-threads 1 "$SRC"
        hash_once "b3sum --num-threads 1 --no-mmap" "$run" b3sum --num-threads 1 --no-mmap "$SRC"
        hash_once "b3sum ($(nproc) threads)" "$run" b3sum "$SRC"
    done
    log "hash run $run: $(tail -n 3 "$HASHES" | awk -F'\t' -v s="$SIZE" '{printf "%s %.0f MB/s; ", $1, s / $3 / 1e6}')"
}

# ---------------------------------------------------------------------------- socat

bench_socat() {
    local run=$1 ns d port=5001
    command -v socat >/dev/null || { record socat "$run" "FAILED" "" "" "" "" "" "socat not installed"; return; }
    mkns socat && ns=$NS || { record socat "$run" FAILED "" "" "" "" "" "no namespace"; return; }
    d="$WORK/socat$run"; mkdir -p "$d/recv"
    warm
    bg_in "$ns" "$d" "$d/send.log" /usr/bin/time -f '%e %U %S %M' -o "$d/send.time" \
        socat -u -b "$SOCAT_BLOCK" "FILE:$SRC" "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr"
    local spid=$BG_PID
    if ! wait_until "$SETUP_TIMEOUT" tcp_listening "$ns" "$port"; then
        record socat "$run" FAILED "" "" "" "" "" "sender never listened: $(tail -c 300 "$d/send.log")"
        ns_kill_all "$ns"; return
    fi
    timed "$ns" "$d/recv" "$d/recv.log" "$d/recv.time" \
        socat -u -b "$SOCAT_BLOCK" "TCP:127.0.0.1:$port" "CREATE:$d/recv/payload.bin"
    local rc=$?
    wait_until 30 bash -c "! kill -0 $spid" || true
    wait "$spid" 2>/dev/null
    read_time "$d/send.time"; local sc=$T_CPU sr=$T_RSS
    if ((rc != 0)) || ! read_time "$d/recv.time"; then
        record socat "$run" FAILED "" "" "" "" "" "receiver exit $rc: $(tail -c 300 "$d/recv.log")"
    elif ! verify "$d/recv/payload.bin"; then
        record socat "$run" FAILED "$T_WALL" "" "" "" "" "$VERIFY_MSG"
    else
        record socat "$run" OK "$T_WALL" "$T_CPU" "$T_RSS" "$sc" "$sr" "socat -b $SOCAT_BLOCK"
    fi
    ns_kill_all "$ns"
    rm -rf "$d/recv"
}

# ---------------------------------------------------------------------------- BitTorrent

ARIA_COMMON=(
    --enable-dht=false --enable-dht6=false --bt-enable-lpd=false
    --enable-peer-exchange=false --disable-ipv6=true --bt-require-crypto=false
    --file-allocation=none --summary-interval=0 --console-log-level=warn
    --max-upload-limit=0 --max-overall-upload-limit=0 --bt-max-peers=55
    --bt-tracker-connect-timeout=10 --bt-tracker-timeout=10
    --auto-save-interval=0 --enable-rpc=false --follow-torrent=false
    --bt-save-metadata=false --bt-remove-unselected-file=false
)

bench_bt() {
    local run=$1 ns d tport=6969
    local missing=()
    for c in aria2c transmission-create; do command -v "$c" >/dev/null || missing+=("$c"); done
    ((${#missing[@]})) && { record bt "$run" FAILED "" "" "" "" "" "not installed: ${missing[*]}"; return; }
    mkns bt && ns=$NS || { record bt "$run" FAILED "" "" "" "" "" "no namespace"; return; }
    d="$WORK/bt$run"; mkdir -p "$d/leech"
    local announce="http://127.0.0.1:$tport/announce"
    # The torrent: made outside the timed part (transmission-create touches no network).
    if ! transmission-create -o "$d/payload.torrent" -t "$announce" "$SRC" >"$d/create.log" 2>&1; then
        record bt "$run" FAILED "" "" "" "" "" "transmission-create: $(tail -c 300 "$d/create.log")"
        ns_kill_all "$ns"; return
    fi
    bg_in "$ns" "$d" "$d/tracker.log" python3 "$BENCH_DIR/tracker.py" --host 127.0.0.1 --port "$tport" --interval 5
    wait_until 20 tcp_listening "$ns" "$tport" ||
        { record bt "$run" FAILED "" "" "" "" "" "tracker: $(tail -c 300 "$d/tracker.log")"; ns_kill_all "$ns"; return; }
    warm
    # The seeder seeds the source file in place, after checking its pieces.
    bg_in "$ns" "$d" "$d/seed.log" aria2c "${ARIA_COMMON[@]}" --dir="$(dirname "$SRC")" \
        --check-integrity=true --bt-hash-check-seed=true --seed-ratio=0.0 \
        --listen-port=6881 --log="$d/seed.aria.log" --log-level=notice "$d/payload.torrent"
    local spid=$BG_PID
    seeded() { ip netns exec "$ns" python3 -c '
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:'"$tport"'/status", timeout=2))
sys.exit(0 if any(v["seeders"] > 0 for v in s.values()) else 1)'; }
    if ! wait_until "$SETUP_TIMEOUT" seeded; then
        record bt "$run" FAILED "" "" "" "" "" "seeder never announced: $(tail -c 400 "$d/seed.log")"
        ns_kill_all "$ns"; return
    fi
    local sc0; sc0=$(cpu_of "$spid")
    timed "$ns" "$d/leech" "$d/leech.log" "$d/leech.time" aria2c "${ARIA_COMMON[@]}" \
        --dir="$d/leech" --seed-time=0 --listen-port=6882 --log="$d/leech.aria.log" \
        --log-level=notice "$d/payload.torrent"
    local rc=$?
    local sc sr
    sc=$(fsub "$(cpu_of "$spid")" "$sc0"); sr=$(rss_of "$spid")
    local pieces
    pieces=$(awk '/Piece Size/ {print $3 $4}' <(transmission-show "$d/payload.torrent" 2>/dev/null) 2>/dev/null)
    if ((rc != 0)) || ! read_time "$d/leech.time"; then
        record bt "$run" FAILED "" "" "" "" "" "leecher exit $rc: $(tail -c 400 "$d/leech.log")"
    elif ! verify "$d/leech/payload.bin"; then
        record bt "$run" FAILED "$T_WALL" "" "" "" "" "$VERIFY_MSG"
    else
        local arate
        arate=$(grep -aoE '\|OK +\| *[0-9.]+[KMG]iB/s' "$d/leech.log" | grep -oE '[0-9.]+[KMG]iB/s' | tail -n 1)
        record bt "$run" OK "$T_WALL" "$T_CPU" "$T_RSS" "$sc" "$sr" "aria2c -> aria2c${pieces:+, pieces $pieces}${arate:+; aria2c reports an average of $arate}"
    fi
    ns_kill_all "$ns"
    rm -rf "$d/leech"
}

# ---------------------------------------------------------------------------- sendme

bench_sendme() {
    local run=$1 ns d
    command -v sendme >/dev/null || { record sendme "$run" FAILED "" "" "" "" "" "sendme not installed (--install)"; return; }
    mkns sendme && ns=$NS || { record sendme "$run" FAILED "" "" "" "" "" "no namespace"; return; }
    d="$WORK/sendme$run"; mkdir -p "$d/send" "$d/recv"
    warm
    # No relay (it would look one up on the internet); the ticket carries the addresses.
    bg_in "$ns" "$d/send" "$d/send.log" sendme send --relay disabled --ticket-type addresses --no-progress "$SRC"
    local spid=$BG_PID ticket=""
    got_ticket() { ticket=$(grep -aoE 'blob[a-z0-9]{40,}' "$d/send.log" | head -n 1); [[ -n $ticket ]]; }
    if ! wait_until "$SETUP_TIMEOUT" got_ticket; then
        record sendme "$run" FAILED "" "" "" "" "" "no ticket: $(tail -c 400 "$d/send.log")"
        ns_kill_all "$ns"; return
    fi
    local sc0; sc0=$(cpu_of "$spid")
    timed "$ns" "$d/recv" "$d/recv.log" "$d/recv.time" sendme receive --relay disabled --no-progress "$ticket"
    local rc=$?
    local sc sr
    sc=$(fsub "$(cpu_of "$spid")" "$sc0"); sr=$(rss_of "$spid")
    if ((rc != 0)) || ! read_time "$d/recv.time"; then
        record sendme "$run" FAILED "" "" "" "" "" "receiver exit $rc: $(tail -c 400 "$d/recv.log" | tr '\r' '\n' | tail -n 3)"
    elif ! verify "$d/recv/payload.bin"; then
        record sendme "$run" FAILED "$T_WALL" "" "" "" "" "$VERIFY_MSG"
    else
        record sendme "$run" OK "$T_WALL" "$T_CPU" "$T_RSS" "$sc" "$sr" "$(sendme --version 2>/dev/null | head -n 1)"
    fi
    ns_kill_all "$ns"
    rm -rf "$d/send" "$d/recv"
}

# ---------------------------------------------------------------------------- ferry

FERRY_READY=""
ferry_prepare() { # build once; check that the binary has the commands the benchmark needs
    [[ -n $FERRY_READY ]] && { [[ $FERRY_READY == ok ]]; return; }
    FERRY_READY=fail
    [[ -n $FERRY ]] || FERRY="$REPO/target/release/ferry"
    if ((BUILD)); then
        log "cargo build --release -p ferry"
        if ! (cd "$REPO" && timeout 1800 cargo build --release -p ferry) >"$WORK/ferry-build.log" 2>&1; then
            FERRY_WHY="cargo build failed: $(grep -m 3 -E '^error' "$WORK/ferry-build.log" | tr '\n' ' ')"
            log "$FERRY_WHY (log: $WORK/ferry-build.log)"
            return 1
        fi
    fi
    [[ -x $FERRY ]] || { FERRY_WHY="no binary at $FERRY"; return 1; }
    local c
    for c in share get connect id; do
        "$FERRY" "$c" --help >/dev/null 2>&1 || { FERRY_WHY="ferry has no '$c' command"; log "$FERRY_WHY"; return 1; }
    done
    version_of ferry "$("$FERRY" --version 2>&1 | head -n 1) ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet 2>/dev/null || echo +dirty))"
    FERRY_READY=ok
}

# ferry_node NS DATADIR LOG : start a node on loopback only; sets NODE_PID, waits for its API
ferry_node() {
    local ns=$1 dd=$2 logf=$3
    mkdir -p "$dd"
    bg_in "$ns" "$dd" "$logf" "$FERRY" --data-dir "$dd" start --no-mdns --no-beacon \
        --listen /ip4/127.0.0.1/tcp/0 --listen /ip4/127.0.0.1/udp/0/quic-v1
    NODE_PID=$BG_PID
    local end=$((SECONDS + SETUP_TIMEOUT))
    while ((SECONDS < end)); do
        alive "$NODE_PID" || return 1
        if ip netns exec "$ns" "$FERRY" --data-dir "$dd" id --json >"$dd/id.json" 2>/dev/null &&
            jget "$dd/id.json" listen_addrs 2>/dev/null | grep -q 127.0.0.1; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# ferry_share NS DATADIR LABEL NODE_PID [FLAG...] : share the source; sets SHARE_ID
# SHARE_TICKET; records a hash row (wall of the command, CPU of node + command)
ferry_share() {
    local ns=$1 dd=$2 label=$3 npid=$4; shift 4
    local c0; c0=$(cpu_of "$npid")
    local t0=$EPOCHREALTIME
    if ! timeout -k 5 "$TIMEOUT" ip netns exec "$ns" /usr/bin/time -f '%e %U %S %M' -o "$dd/share.time" \
        "$FERRY" --data-dir "$dd" share "$@" "$SRC" --json >"$dd/share.json" 2>"$dd/share.err"; then
        FERRY_WHY="ferry share failed: $(tail -c 400 "$dd/share.err")"
        return 1
    fi
    local wall; wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f", b - a}')
    local ncpu; ncpu=$(fsub "$(cpu_of "$npid")" "$c0")
    read_time "$dd/share.time"
    hash_row "$label" "$RUN_NO" "$wall" "$(fadd "$ncpu" "${T_CPU:-0}")" "$(rss_of "$npid")"
    SHARE_ID=$(jget "$dd/share.json" id) || { FERRY_WHY="share --json has no id: $(head -c 300 "$dd/share.json")"; return 1; }
    SHARE_TICKET=$(jget "$dd/share.json" ticket) || { FERRY_WHY="share --json has no ticket: $(head -c 300 "$dd/share.json")"; return 1; }
    if [[ -n $SRC_HASH && $SHARE_ID != "$SRC_HASH" ]]; then
        log "note: ferry's id $SHARE_ID is not b3sum's $SRC_HASH"
    fi
}

# upload counters: bytes each provider sends from its listening ports (nft, optional)
nft_setup() { # nft_setup NS PORT_SPEC... (tcp:N or udp:N)
    command -v nft >/dev/null || return 1
    local ns=$1; shift
    ip netns exec "$ns" nft add table inet fbench || return 1
    ip netns exec "$ns" nft add chain inet fbench out '{ type filter hook output priority 0; policy accept; }' || return 1
    local spec
    for spec in "$@"; do
        ip netns exec "$ns" nft add rule inet fbench out "${spec%%:*}" sport "${spec#*:}" counter comment "\"$spec\"" || return 1
    done
}
nft_bytes() { # nft_bytes NS SPEC -> bytes counted for that rule
    ip netns exec "$1" nft list chain inet fbench out 2>/dev/null |
        awk -v c="\"$2\"" '$0 ~ c {for (i = 1; i <= NF; i++) if ($i == "bytes") print $(i + 1)}'
}
ports_of() { # ports_of ID_JSON -> tcp:N udp:N for its 127.0.0.1 listen addresses
    jget "$1" listen_addrs | python3 -c '
import json, re, sys
for a in json.load(sys.stdin):
    m = re.match(r"/ip4/127\.0\.0\.1/(tcp|udp)/(\d+)", a)
    if m:
        print(f"{m.group(1)}:{m.group(2)}")'
}

bench_ferry() { # bench_ferry TOOL NPROVIDERS RUN
    local tool=$1 np=$2 run=$3 ns d i
    RUN_NO=$run
    ferry_prepare || { record "$tool" "$run" FAILED "" "" "" "" "" "$FERRY_WHY"; return; }
    mkns "$tool" && ns=$NS || { record "$tool" "$run" FAILED "" "" "" "" "" "no namespace"; return; }
    d="$WORK/$tool-$run"; mkdir -p "$d"
    local ppids=()
    for ((i = 1; i <= np; i++)); do
        if ! ferry_node "$ns" "$d/p$i" "$d/p$i.log"; then
            record "$tool" "$run" FAILED "" "" "" "" "" "provider $i did not come up: $(tail -c 400 "$d/p$i.log")"
            ns_kill_all "$ns"; return
        fi
        ppids+=("$NODE_PID")
    done
    if ! ferry_node "$ns" "$d/dl" "$d/dl.log"; then
        record "$tool" "$run" FAILED "" "" "" "" "" "downloader did not come up: $(tail -c 400 "$d/dl.log")"
        ns_kill_all "$ns"; return
    fi
    local dpid=$NODE_PID
    warm
    local ticket=""
    for ((i = 1; i <= np; i++)); do
        if ! ferry_share "$ns" "$d/p$i" "ferry share (copies into the store)" "${ppids[i - 1]}"; then
            record "$tool" "$run" FAILED "" "" "" "" "" "provider $i: $FERRY_WHY"
            ns_kill_all "$ns"; return
        fi
        [[ -z $ticket ]] && ticket=$SHARE_TICKET
    done
    # The downloader connects to every provider first (with one provider the ticket does it).
    if ((np > 1)); then
        for ((i = 1; i <= np; i++)); do
            local addr ok=0
            for addr in $(jget "$d/p$i/id.json" listen_addrs | python3 -c 'import json, sys; print("\n".join(json.load(sys.stdin)))'); do
                if timeout 30 ip netns exec "$ns" "$FERRY" --data-dir "$d/dl" connect "$addr" --json >>"$d/connect.log" 2>&1; then
                    ok=1; break
                fi
            done
            ((ok)) || { record "$tool" "$run" FAILED "" "" "" "" "" "connect to provider $i failed: $(tail -c 300 "$d/connect.log")"; ns_kill_all "$ns"; return; }
        done
    fi
    local specs=() s
    for ((i = 1; i <= np; i++)); do
        for s in $(ports_of "$d/p$i/id.json"); do specs+=("$s"); done
    done
    local counting=0
    nft_setup "$ns" "${specs[@]}" 2>>"$d/nft.log" && counting=1
    local pc0=() dc0
    for ((i = 0; i < np; i++)); do pc0+=("$(cpu_of "${ppids[i]}")"); done
    dc0=$(cpu_of "$dpid")
    timed "$ns" "$d" "$d/get.log" "$d/get.time" "$FERRY" --data-dir "$d/dl" get "$ticket" -o "$d/out.bin" --json
    local rc=$?
    local dcpu; dcpu=$(fsub "$(cpu_of "$dpid")" "$dc0")
    local drss; drss=$(rss_of "$dpid")
    local scpu=() srss=() up=()
    for ((i = 0; i < np; i++)); do
        scpu+=("$(fsub "$(cpu_of "${ppids[i]}")" "${pc0[i]}")")
        srss+=("$(rss_of "${ppids[i]}")")
        if ((counting)); then
            local b=0 spec
            for spec in $(ports_of "$d/p$((i + 1))/id.json"); do
                b=$((b + $(nft_bytes "$ns" "$spec" || echo 0)))
            done
            up+=("$(awk -v b="$b" 'BEGIN {printf "%.0f", b / 1e6}')")
        fi
    done
    local join_cpu join_rss note=""
    join_cpu=$(IFS=/; echo "${scpu[*]}"); join_rss=$(IFS=/; echo "${srss[*]}")
    ((counting)) && note="upload MB per provider (from its listen ports): $(IFS=/; echo "${up[*]}")"
    if ((rc != 0)) || ! read_time "$d/get.time"; then
        local after=""
        read_time "$d/get.time" && after=" after ${T_WALL}s"
        record "$tool" "$run" FAILED "" "" "" "" "" "ferry get exit $rc$after: $(tail -c 600 "$d/get.log" | tr '\r' '\n' | grep -v '^Command exited' | tail -n 5)"
    elif ! verify "$d/out.bin"; then
        record "$tool" "$run" FAILED "$T_WALL" "" "" "" "" "$VERIFY_MSG"
    else
        # receiving side = the downloader node during the get + the get command itself
        record "$tool" "$run" OK "$T_WALL" "$(fadd "$dcpu" "$T_CPU")" "$drss+$T_RSS" "$join_cpu" "$join_rss" "$note"
    fi
    # Hashing alone, without the copy: `share --in-place` on a fresh node (ferry1 only).
    if [[ $tool == ferry1 ]] && ferry_node "$ns" "$d/h" "$d/h.log"; then
        ferry_share "$ns" "$d/h" "ferry share --in-place (hash only)" "$NODE_PID" --in-place ||
            log "ferry share --in-place failed: $FERRY_WHY"
    fi
    ns_kill_all "$ns"
    if ((KEEP)); then
        rm -f "$d/out.bin"
    else
        rm -rf "$d"
    fi
}

# ---------------------------------------------------------------------------- versions

command -v socat >/dev/null && version_of socat "$(socat -V 2>/dev/null | awk '/socat version/ {print $3; exit}')"
command -v aria2c >/dev/null && version_of aria2c "$(aria2c --version | head -n 1)"
command -v transmission-create >/dev/null && version_of transmission-create "$(transmission-create -V 2>&1 | head -n 1)"
command -v sendme >/dev/null && version_of sendme "$(sendme --version 2>&1 | head -n 1)"
version_of kernel "$(uname -sr), $(nproc) cores"
version_of "load average at start" "$(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"

# ---------------------------------------------------------------------------- run

for tool in "${ORDER[@]}"; do
    [[ -n ${WANT[$tool]:-} ]] || continue
    for ((run = 1; run <= RUNS; run++)); do
        log "== $tool, run $run of $RUNS"
        case "$tool" in
            hash) bench_hash "$run" ;;
            socat) bench_socat "$run" ;;
            bt) bench_bt "$run" ;;
            sendme) bench_sendme "$run" ;;
            ferry1) bench_ferry ferry1 1 "$run" ;;
            ferry4) bench_ferry ferry4 4 "$run" ;;
        esac
    done
done

# ---------------------------------------------------------------------------- report

version_of "load average at end" "$(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$RESULTS" "$HASHES" "$VERSIONS" "$SIZE" "$RUNS" >"$WORK/report.md" <<'EOF'
import sys
results, hashes, versions, size, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])

def rows(path, n):
    out = []
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        out.append(f + [""] * (n - len(f)))
    return out

names = {
    "socat": "raw TCP: socat → socat",
    "bt": "BitTorrent: aria2c seeder → aria2c leecher, local tracker",
    "sendme": "iroh sendme send → receive",
    "ferry1": "ferry: 1 provider → 1 downloader",
    "ferry4": "ferry: 4 providers → 1 downloader",
}
order = ["socat", "bt", "sendme", "ferry1", "ferry4"]
res = rows(results, 10)
gib = size / 2**30
print(f"## Transfers: {size:,} bytes ({gib:g} GiB) of random bytes over loopback, lo-only namespaces\n")
print(f"MB/s = size / receive wall time (MB = 10^6 B); {'median of ' + str(runs) + ' runs' if runs > 1 else 'one run'}. "
      "CPU = user+sys seconds; senders: during the receive. RSS = peak, MiB. "
      "Several providers: values per provider, separated by /; ferry's receiver RSS = node+cli.\n")
print("| tool | MB/s | receive s | receiver CPU s | sender CPU s | receiver peak RSS | sender peak RSS | verified | runs (MB/s) | notes |")
print("|---|---:|---:|---:|---:|---:|---:|---|---|---|")
for tool in order:
    rs = [r for r in res if r[0] == tool]
    if not rs:
        continue
    ok = [r for r in rs if r[2] == "OK"]
    failed = [r for r in rs if r[2] != "OK"]
    runs_txt = ", ".join(r[4] if r[2] == "OK" else "FAILED" for r in rs)
    if not ok:
        why = failed[-1][9].replace("|", "\\|").replace("\n", " ")[:300]
        print(f"| {names[tool]} | FAILED | | | | | | no | {runs_txt} | {why} |")
        continue
    ok.sort(key=lambda r: float(r[3]))
    m = ok[(len(ok) - 1) // 2]
    verified = "yes" if not failed else f"{len(ok)}/{len(rs)} ok"
    note = m[9].replace("|", "\\|")
    print(f"| {names[tool]} | **{m[4]}** | {m[3]} | {m[5]} | {m[7]} | {m[6]} | {m[8]} | {verified} | {runs_txt} | {note} |")

hs = rows(hashes, 5)
if hs:
    print(f"\n## Hashing {size:,} bytes (from the page cache)\n")
    print("| what | MB/s | s | CPU s | peak RSS MiB | runs (MB/s) |")
    print("|---|---:|---:|---:|---:|---|")
    seen = []
    for h in hs:
        if h[0] not in seen:
            seen.append(h[0])
    for key in seen:
        group = [h for h in hs if h[0] == key]
        label = key + ("; CPU = node + command" if key.startswith("ferry") else "")
        group.sort(key=lambda h: float(h[2]))
        m = group[(len(group) - 1) // 2]
        mbps = lambda h: f"{size / float(h[2]) / 1e6:.0f}" if float(h[2]) > 0 else "inf"
        print(f"| {label} | **{mbps(m)}** | {m[2]} | {m[3]} | {m[4]} | {', '.join(mbps(h) for h in group)} |")

vs = rows(versions, 2)
if vs:
    print("\n## Versions\n")
    for v in vs:
        print(f"- {v[0]}: {v[1]}")
EOF
echo
cat "$WORK/report.md"
if [[ -n $OUT ]]; then
    cp "$WORK/report.md" "$OUT" && log "report written to $OUT"
fi
