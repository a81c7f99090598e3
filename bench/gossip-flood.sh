#!/usr/bin/env bash
# bench/gossip-flood.sh — a node under a gossip flood (issue 10): `ferry id` latency
# (median, max) and a 64 MiB download's throughput while one hostile peer publishes
# 5,000 valid channel messages a second for 8 s, against the same without the flood.
# Not a test: it prints figures.
#
# Usage: bench/gossip-flood.sh [--debug]
#
# It runs the test `a_gossip_flood_leaves_the_node_answering_and_downloading` of
# crates/cli/tests/gossip_hostile.rs with --nocapture, in a release build by default:
# in a debug build every ed25519 check (gossipsub verifies each message's signature
# on the node's engine task) is some 50 times slower, so a debug node cannot keep up
# with 5,000 messages a second whatever ferry does, and the figures would measure the
# build rather than the node. Everything runs on 127.0.0.1: real `ferry` processes
# with mDNS, beacons and UPnP off, and `examples/hostile_peer gossip-flood`.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=(--release)
if [[ "${1:-}" == "--debug" ]]; then
    profile=()
fi
cargo test --locked "${profile[@]}" -p ferry --test gossip_hostile -- \
    --nocapture --test-threads=1 a_gossip_flood 2>&1 |
    grep -E 'flood: |^ferry id|^download of|test result|panicked'
