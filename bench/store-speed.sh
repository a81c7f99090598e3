#!/usr/bin/env bash
# bench/store-speed.sh — the store's own throughput: hashing, importing, encoding,
# verifying and writing, exporting 256 MiB, and recovering 64 MiB written but not
# committed after a crash. Not a test: it prints figures.
#
# Usage: bench/store-speed.sh [--debug]
#
# It runs the `#[ignore]`d measurements in crates/store/src/blobs/tests/speed.rs
# with --nocapture, in a release build by default (a debug build measures the
# build, not the store). Everything stays in a temporary directory on this disk;
# MB = 10^6 bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=(--release)
if [[ "${1:-}" == "--debug" ]]; then
    profile=()
fi
cargo test --locked "${profile[@]}" -p ferry-store --lib -- \
    --ignored --nocapture --test-threads=1 blobs::tests::speed 2>&1 |
    grep -E 'MB/s|progress calls|test result|panicked'
