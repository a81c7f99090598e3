#!/usr/bin/env bash
# Writes fresh seeds (valid encodings made by ferry's own encoders, see seeds.rs)
# into fuzz/corpus/<target>/ beside what is there, then minimises each corpus
# (cargo fuzz cmin: only inputs that add coverage stay). Run it after changing a
# target or an encoder, and commit fuzz/corpus/.
#
#   fuzz/seed-corpora.sh                 every target
#   fuzz/seed-corpora.sh manifest ticket only these
set -euo pipefail

cd "$(dirname "$0")"
# The seed writer is a plain program: built without the fuzzer's instrumentation.
cargo +nightly build --release --bin seeds
seeds="$(mktemp -d)"
trap 'rm -rf "$seeds"' EXIT
./target/release/seeds "$seeds"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list | grep -vx seeds)
fi
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    if [ -d "$seeds/$target" ]; then
        cp "$seeds/$target"/* "corpus/$target/"
    fi
    cargo +nightly fuzz cmin -s none "$target" "corpus/$target" -- -timeout=20 >/dev/null 2>&1
    echo "$target: $(ls "corpus/$target" | wc -l) inputs, $(du -sh "corpus/$target" | cut -f1)"
done
