#!/usr/bin/env bash
# Regenerates fuzz/seeds/<target>/ with the evidence crate's own writers (fuzz/seedgen).
# Keys are fresh each run, so the signify seeds change; everything else is deterministic
# except the custody log's timestamps.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf fuzz/seeds
cargo run --quiet --manifest-path fuzz/seedgen/Cargo.toml --target-dir fuzz/target/seedgen -- fuzz/seeds
du -sh fuzz/seeds
