#!/usr/bin/env bash
# Runs every fuzz target briefly: first on its committed corpus (fuzz/corpus/<target>,
# read only), then for a few seconds of new inputs. About a minute in all once
# the targets are built (the first build compiles the workspace with coverage
# instrumentation: allow some minutes). Skipped, with a note, when nightly Rust or
# cargo-fuzz is absent.
#
# The targets are built without a sanitizer (`-s none`): ferry's code is safe Rust,
# so AddressSanitizer finds little a panic would not, and it doubles the build.
# A long campaign may add it (fuzz/README.md).
#
#   fuzz/run-brief.sh            every target, SECONDS_EACH=2
#   fuzz/run-brief.sh bundle_parse manifest
#
# Exits non-zero if any target crashes; the input is saved in fuzz/artifacts/<target>/
# (fuzz/README.md says how to reproduce it and turn it into a regression test).
set -euo pipefail

cd "$(dirname "$0")"
seconds_each="${SECONDS_EACH:-2}"

if ! command -v cargo >/dev/null || ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/run-brief.sh: SKIPPED: no nightly Rust toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run-brief.sh: SKIPPED: cargo-fuzz is not installed (cargo install cargo-fuzz)"
    exit 0
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    # Every fuzz target; `seeds` is the seed generator, not a target.
    mapfile -t targets < <(cargo +nightly fuzz list | grep -vx seeds)
fi

echo "fuzz/run-brief.sh: building ${#targets[@]} targets"
# One target at a time: building every binary would also build `seeds`, which has
# no fuzzer to link against without a sanitizer's runtime.
for target in "${targets[@]}"; do
    cargo +nightly fuzz build -s none "$target"
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "$scratch/$target"
    log="$scratch/$target.log"
    # New inputs go to the scratch directory: the committed corpus is only read.
    if cargo +nightly fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds_each" -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)"
        cov="$(grep -E '^#[0-9]+.*cov:' "$log" | tail -1 | grep -o 'cov: [0-9]* ft: [0-9]*' || true)"
        echo "fuzz/run-brief.sh: $target: ok (${runs:-?} runs, ${cov:-no coverage line})"
    else
        echo "fuzz/run-brief.sh: $target: FAILED"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written|deadly signal' "$log" | head -20 || tail -30 "$log"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz/run-brief.sh: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz/run-brief.sh: all ${#targets[@]} targets ok"
