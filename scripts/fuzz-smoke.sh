#!/usr/bin/env bash
# Fuzz smoke run on stable Rust: replays the committed seeds and corpus of every fuzz target, then a few
# thousand seeded random edits of them (fuzz/src/bin/replay.rs). The real fuzzing (cargo fuzz, nightly) is
# described in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
# Share the workspace's target dir: the engine and its dependencies are built once for both.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target}"
cargo run --quiet --bin replay -- --mutations "${FUZZ_MUTATIONS:-5000}"
