#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, build, then every test.
# The network-lab tests need root (they build Linux network namespaces); run as
# root (`sudo bash tests/run-all.sh`) to include them, otherwise they skip
# themselves and say so.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" -eq 0 ]; then
    # sudo drops the invoking user's PATH; find their Rust toolchain again.
    if ! command -v cargo >/dev/null 2>&1 && [ -n "${SUDO_USER:-}" ]; then
        user_home="$(getent passwd "$SUDO_USER" | cut -d: -f6)"
        export CARGO_HOME="${CARGO_HOME:-$user_home/.cargo}"
        export RUSTUP_HOME="${RUSTUP_HOME:-$user_home/.rustup}"
        export PATH="$CARGO_HOME/bin:$PATH"
    fi
    if ! command -v ip >/dev/null 2>&1 || ! command -v nft >/dev/null 2>&1 \
        || ! command -v ping >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1; then
        step "installing iproute2, nftables, iputils-ping and jq for the network lab"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq iproute2 nftables iputils-ping jq >/dev/null
    fi
else
    echo "note: not root, so the network-lab tests will be skipped (run with sudo to include them)"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install a Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi

# dtn7-rs's dtnd for the TCPCL interop tests (crates/net/tests/tcpcl_dtnd.rs,
# crates/cli/tests/dtn_tcpcl.rs).
dtn7_root="$HOME/.cache/ferry-dtn7"
if [ ! -x "$dtn7_root/bin/dtnd" ] && ! command -v dtnd >/dev/null 2>&1; then
    step "installing dtn7 0.21.0 (dtnd) into $dtn7_root for the TCPCL interop tests"
    cargo install dtn7 --version 0.21.0 --locked --root "$dtn7_root" \
        || echo "warning: dtn7 install failed; the TCPCL interop tests will skip"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo build"
cargo build --locked --workspace --all-targets

step "cargo test"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --locked --workspace 2>&1 | tee "$log"

# One closing line for the whole run: cargo prints a result per test binary,
# the last of which (doc-tests) is often empty.
summary="$(grep -E '^test result: ' "$log" | awk '{p += $4; f += $6; i += $8} END {printf "%d passed, %d failed, %d skipped", p, f, i}')"
step "all tests passed"
echo "tests: $summary"
