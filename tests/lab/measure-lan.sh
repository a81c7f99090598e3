#!/usr/bin/env bash
# measure-lan.sh: ferry's LAN figures in a three-host network-namespace lab.
#
# Usage (as root, from anywhere in the repository):
#   tests/lab/measure-lan.sh [--no-build] [--idle SECONDS] [--posts N] [--keep]
#
#   --no-build      use the existing release binary (default: cargo build --release -p ferry)
#   --idle SECONDS  how long to sample idle CPU (default 30)
#   --posts N       how many posts to time for gossip delivery (default 10)
#   --keep          leave the namespaces and data directories for a look
#   FERRY=PATH      use this binary instead of target/release/ferry
#
# What it builds: a bridge in its own namespace (PREFIX-lan) and three hosts
# (PREFIX-h1..h3) on 10.77.1.0/24, no default route; PREFIX is "fl" + 6 random
# hex digits, so runs never collide. Each host runs `ferry start --name hN` with
# no addresses (default listen, mDNS and beacons on). Nothing touches the root
# namespace; everything is removed on exit (also on Ctrl-C or error).
#
# What it prints:
#   discovery  time from starting the three nodes until each lists both others
#              (and until each is connected to both), polled every 50 ms
#   idle RSS   VmRSS of each node after discovery (/proc/PID/status)
#   idle CPU   CPU % of each node over the idle window (utime+stime from /proc/PID/stat)
#   gossip     for each post on h1 (unique text), how long until it shows on h2 and
#              h3 (`ferry read --follow --json` running there, each line stamped
#              on arrival); median, min and max over the posts, two ways:
#                delivery    arrival - the message's own timestamp (h1's node
#                            stamps it when signing; all namespaces share a clock)
#                end to end  arrival - launch of `ferry post` on h1 (adds the
#                            CLI's start-up and HTTP round trip)
#
# Needs: bash, iproute2, jq, coreutils, cargo (unless --no-build).
set -euo pipefail

BUILD=1
IDLE=30
POSTS=10
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --idle) IDLE="$2"; shift ;;
        --posts) POSTS="$2"; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

[ "$(id -u)" = 0 ] || { echo "measure-lan.sh: the network lab needs root" >&2; exit 1; }
for tool in ip jq; do
    command -v "$tool" >/dev/null || { echo "measure-lan.sh: needs $tool" >&2; exit 1; }
done

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -z "${FERRY:-}" ]; then
    if [ "$BUILD" = 1 ]; then
        (cd "$ROOT" && cargo build --release -p ferry)
    fi
    FERRY="${CARGO_TARGET_DIR:-$ROOT/target}/release/ferry"
fi
[ -x "$FERRY" ] || { echo "measure-lan.sh: no binary at $FERRY" >&2; exit 1; }

PREFIX="fl$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
WORK="$(mktemp -d "/tmp/$PREFIX-XXXXXX")"
SEG="$PREFIX-lan"
HOSTS=(h1 h2 h3)
NAMESPACES=()
declare -A PID ID

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$KEEP" = 1 ]; then
        echo "kept: namespaces ${NAMESPACES[*]}, files in $WORK (delete with: ip netns del NS)"
        exit $rc
    fi
    local ns pid
    for ns in "${NAMESPACES[@]}"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    sleep 0.1
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        for h in "${HOSTS[@]}"; do
            [ -f "$WORK/$h.log" ] && { echo "----- $h log (tail) -----"; tail -n 40 "$WORK/$h.log"; }
        done
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

newns() {
    NAMESPACES+=("$1")
    ip netns add "$1"
    ip -n "$1" link set lo up
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
ms() { awk -v m="$1" 'BEGIN { printf "%.0f ms", m }'; }
ms1() { awk -v m="$1" 'BEGIN { printf "%.1f ms", m }'; }

# ferry CLI inside host $1's namespace, on its data dir.
cli() {
    local h="$1"; shift
    ip netns exec "$PREFIX-$h" "$FERRY" --data-dir "$WORK/$h" "$@"
}

# --- the lab ---
newns "$SEG"
ip -n "$SEG" link add br0 type bridge forward_delay 0 stp_state 0 mcast_snooping 0
ip -n "$SEG" link set br0 up
n=0
for h in "${HOSTS[@]}"; do
    n=$((n + 1))
    newns "$PREFIX-$h"
    ip -n "$SEG" link add "p$n" type veth peer name eth0 netns "$PREFIX-$h"
    ip -n "$SEG" link set "p$n" master br0 up
    ip -n "$PREFIX-$h" addr add "10.77.1.$n/24" brd + dev eth0
    ip -n "$PREFIX-$h" link set eth0 up
    mkdir -p "$WORK/$h"
done
echo "lab $PREFIX: ${HOSTS[*]} on 10.77.1.0/24; binary $FERRY"

# --- discovery ---
T0=$(now_ms)
for h in "${HOSTS[@]}"; do
    RUST_LOG="${RUST_LOG:-info}" ip netns exec "$PREFIX-$h" "$FERRY" start \
        --data-dir "$WORK/$h" --name "$h" </dev/null >"$WORK/$h.log" 2>&1 &
    PID[$h]=$!   # `ip netns exec` execs ferry: same pid
    disown "${PID[$h]}"   # no "Killed" notice at cleanup
done

alive() { kill -0 "${PID[$1]}" 2>/dev/null || { echo "ferry on $1 exited" >&2; exit 1; }; }

# Each node's id (the control API is up), then one poller per node, side by side.
deadline=$((T0 + 20000))
for h in "${HOSTS[@]}"; do
    until ID[$h]="$(cli "$h" id --json 2>/dev/null | jq -er .peer_id 2>/dev/null)"; do
        alive "$h"
        [ "$(now_ms)" -gt "$deadline" ] && { echo "ferry on $h does not answer \`id\`" >&2; exit 1; }
        sleep 0.05
    done
done
# Prints "LISTED_MS CONNECTED_MS" once host $1 is connected to both others.
discovery_poller() {
    local h="$1" o others=() peers listed connected listed_at=""
    for o in "${HOSTS[@]}"; do [ "$o" != "$h" ] && others+=("${ID[$o]}"); done
    while :; do
        peers="$(cli "$h" peers --json 2>/dev/null || echo '[]')"
        listed=$(jq --arg a "${others[0]}" --arg b "${others[1]}" \
            '[.[] | select(.peer_id == $a or .peer_id == $b)] | length' <<<"$peers" 2>/dev/null || echo 0)
        connected=$(jq --arg a "${others[0]}" --arg b "${others[1]}" \
            '[.[] | select((.peer_id == $a or .peer_id == $b) and .connected)] | length' <<<"$peers" 2>/dev/null || echo 0)
        t=$(( $(now_ms) - T0 ))
        if [ -z "$listed_at" ] && [ "$listed" = 2 ]; then listed_at=$t; fi
        if [ "$connected" = 2 ]; then echo "$listed_at $t"; return 0; fi
        if [ "$t" -gt 20000 ]; then return 1; fi
        sleep 0.05
    done
}
declare -A LISTED CONNECTED DPOLLER
for h in "${HOSTS[@]}"; do
    discovery_poller "$h" >"$WORK/disc-$h" &
    DPOLLER[$h]=$!
done
for h in "${HOSTS[@]}"; do
    if ! wait "${DPOLLER[$h]}"; then
        echo "discovery did not finish within 20 s on $h" >&2
        for o in "${HOSTS[@]}"; do echo "$o peers:"; cli "$o" peers --json || true; done
        exit 1
    fi
    read -r LISTED[$h] CONNECTED[$h] <"$WORK/disc-$h"
done

# --- idle RSS and CPU ---
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
declare -A TICKS0 RSS CPU
sleep 2   # let start-up work settle before sampling
for h in "${HOSTS[@]}"; do alive "$h"; TICKS0[$h]=$(cpu_ticks "${PID[$h]}"); done
echo "sampling idle CPU for $IDLE s..."
sleep "$IDLE"
for h in "${HOSTS[@]}"; do
    alive "$h"
    ticks=$(( $(cpu_ticks "${PID[$h]}") - ${TICKS0[$h]} ))
    CPU[$h]=$(awk -v t="$ticks" -v hz="$HZ" -v s="$IDLE" 'BEGIN { printf "%.2f", 100 * t / hz / s }')
    RSS[$h]=$(rss_kb "${PID[$h]}")
done

# --- gossip delivery ---
# A follower per receiver (`ferry read --follow --json`) stamps each line as it
# arrives, so no polling granularity gets into the figures. Two figures per post:
#   delivery    arrival stamp - the message's timestamp_ms (set by h1's node when
#               it signs the post; one machine, one clock)
#   end to end  arrival stamp - the moment `ferry post` was launched on h1
#               (adds the CLI's start-up and its HTTP round trip)
now_us() { echo "${EPOCHREALTIME/./}"; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for h in h2 h3; do
    cli "$h" read general --follow --json 2>>"$WORK/follow-$h.err" | while IFS= read -r line; do
        printf '%s %s\n' "${EPOCHREALTIME/./}" "$line"
    done >"$WORK/follow-$h" &
done
sleep 1
for f in d-h2 d-h3 d-both e-h2 e-h3 e-both; do : >"$WORK/$f"; done
for i in $(seq 1 "$POSTS"); do
    text="measure $PREFIX $i $(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
    t0=$(now_us)
    cli h1 post general "$text" >/dev/null
    declare -A D=() E=()
    while [ -z "${D[h2]:-}" ] || [ -z "${D[h3]:-}" ]; do
        for h in h2 h3; do
            [ -n "${D[$h]:-}" ] && continue
            hit=$(grep -F -m1 "\"$text\"" "$WORK/follow-$h" || true)
            [ -n "$hit" ] || continue
            stamp=${hit%% *}
            sent_ms=$(jq -r .timestamp_ms <<<"${hit#* }")
            D[$h]=$(awk -v a="$stamp" -v s="$sent_ms" 'BEGIN { printf "%.1f", a / 1000 - s }')
            E[$h]=$(awk -v a="$stamp" -v t="$t0" 'BEGIN { printf "%.1f", (a - t) / 1000 }')
        done
        if [ $(( $(now_us) - t0 )) -gt 10000000 ]; then
            echo "post $i did not reach h2 and h3 within 10 s" >&2
            for h in h2 h3; do echo "$h follower:"; tail -n 3 "$WORK/follow-$h" "$WORK/follow-$h.err"; done
            exit 1
        fi
        sleep 0.005
    done
    for h in h2 h3; do echo "${D[$h]}" >>"$WORK/d-$h"; echo "${E[$h]}" >>"$WORK/e-$h"; done
    awk -v a="${D[h2]}" -v b="${D[h3]}" 'BEGIN { print (a > b ? a : b) }' >>"$WORK/d-both"
    awk -v a="${E[h2]}" -v b="${E[h3]}" 'BEGIN { print (a > b ? a : b) }' >>"$WORK/e-both"
    unset D E
    sleep 0.2
done

# --- report ---
echo
echo "ferry LAN figures ($(uname -r), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ))"
printf '%-34s %12s %12s %12s\n' "" h1 h2 h3
printf '%-34s %12s %12s %12s\n' "discovery: lists both others" "$(ms "${LISTED[h1]}")" "$(ms "${LISTED[h2]}")" "$(ms "${LISTED[h3]}")"
printf '%-34s %12s %12s %12s\n' "discovery: connected to both" "$(ms "${CONNECTED[h1]}")" "$(ms "${CONNECTED[h2]}")" "$(ms "${CONNECTED[h3]}")"
printf '%-34s %12s %12s %12s\n' "idle RSS" "$((RSS[h1] / 1024)) MiB" "$((RSS[h2] / 1024)) MiB" "$((RSS[h3] / 1024)) MiB"
printf '%-34s %12s %12s %12s\n' "idle CPU over ${IDLE} s" "${CPU[h1]} %" "${CPU[h2]} %" "${CPU[h3]} %"
echo
for h in h2 h3 both; do
    for kind in d e; do
        [ "$kind" = d ] && label="delivery" || label="end to end"
        f="$WORK/$kind-$h"
        printf 'gossip h1 -> %-5s %-11s median %8s   min %8s   max %8s   (%s posts)\n' "$h" "$label" \
            "$(ms1 "$(median <"$f")")" "$(ms1 "$(sort -n "$f" | head -1)")" "$(ms1 "$(sort -n "$f" | tail -1)")" "$POSTS"
    done
done
