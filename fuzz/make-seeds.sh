#!/usr/bin/env bash
# Regenerates fuzz/seeds/<target>/ with the evidence crate's own writers (fuzz/seedgen).
# Keys are fresh each run, so the signify seeds change; everything else is deterministic
# except the custody log's timestamps.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only the generated targets' seeds are replaced; hand-made seeds of other targets stay.
for t in seek_table seekable_roundtrip signify checksum_list manifest custody; do
    rm -rf "fuzz/seeds/$t"
done
cargo run --quiet --manifest-path fuzz/seedgen/Cargo.toml --target-dir fuzz/target/seedgen -- fuzz/seeds
du -sh fuzz/seeds
