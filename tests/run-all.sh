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
        || ! command -v ping >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1 \
        || ! command -v systemd-analyze >/dev/null 2>&1; then
        step "installing iproute2, nftables, iputils-ping and jq for the network lab, systemd to verify the service units"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq iproute2 nftables iputils-ping jq systemd >/dev/null
    fi
elif [ "${CI:-}" = true ]; then
    echo "error: CI must run as root: the network-lab tests build network namespaces" >&2
    exit 1
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
have_dtn7() {
    local tool
    for tool in dtnd dtnsend dtnrecv; do
        [ -x "$dtn7_root/bin/$tool" ] || command -v "$tool" >/dev/null 2>&1 || return 1
    done
}
if ! have_dtn7; then
    step "installing dtn7 0.21.0 (dtnd, dtnsend, dtnrecv) into $dtn7_root for the TCPCL interop tests"
    if ! cargo install dtn7 --version 0.21.0 --locked --root "$dtn7_root"; then
        if [ "${CI:-}" = true ]; then
            echo "error: installing dtn7 failed; CI needs it for the TCPCL interop tests" >&2
            exit 1
        fi
        echo "warning: dtn7 install failed; the TCPCL interop tests will be skipped"
    fi
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo deny check (advisories, licences, crates built twice: deny.toml)"
if ! command -v cargo-deny >/dev/null 2>&1; then
    cargo install cargo-deny --version 0.20.2 --locked
fi
# The advisories come from the RustSec database on GitHub. Where it cannot be
# fetched, the copy fetched last time serves; with none, the other checks run and
# the run says so.
advisory_dbs="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if timeout 300 cargo deny --locked fetch db; then
    cargo deny --locked --offline check
elif [ -n "$(ls -A "$advisory_dbs" 2>/dev/null)" ]; then
    echo "warning: cannot fetch the advisory database; checking against the copy in $advisory_dbs"
    cargo deny --locked --offline check
else
    echo "warning: cannot fetch the advisory database and none is stored: advisories NOT checked"
    cargo deny --locked --offline check bans licenses sources
fi

step "cargo build"
cargo build --locked --workspace --all-targets

step "cargo test"
log="$(mktemp)"
# Tests whose precondition is missing record themselves here (crates/testkit);
# under CI they fail instead.
export FERRY_TEST_SKIPS="$(mktemp)"
trap 'rm -f "$log" "$FERRY_TEST_SKIPS"' EXIT
cargo test --locked --workspace 2>&1 | tee "$log"

step "fuzz targets, briefly (fuzz/run-brief.sh)"
# cargo-fuzz for the nightly toolchain; without nightly the script says it skips.
if cargo +nightly --version >/dev/null 2>&1 && ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2 --locked
fi
fuzz/run-brief.sh

# One closing line for the whole run: cargo prints a result per test binary,
# the last of which (doc-tests) is often empty. A test that skipped itself
# returned early, so cargo counted it as passed: it is counted as skipped here,
# and named.
skipped_names="$(cut -f1 "$FERRY_TEST_SKIPS" | sort -u | paste -sd, - | sed 's/,/, /g')"
recorded="$(cut -f1 "$FERRY_TEST_SKIPS" | sort -u | grep -c . || true)"
summary="$(grep -E '^test result: ' "$log" | awk -v r="$recorded" \
    '{p += $4; f += $6; i += $8} END {printf "%d passed, %d failed, %d skipped", p - r, f, i + r}')"
step "all tests passed"
if [ -n "$skipped_names" ]; then
    echo "skipped at run time (precondition missing): $skipped_names"
fi
echo "tests: $summary"
