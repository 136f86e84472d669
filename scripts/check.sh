#!/usr/bin/env bash
# The local gate: what CI runs (via .ci/run) and what to run before pushing.
#   scripts/check.sh          formatting, lints, docs, every test, benchmark and fuzz smoke runs
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "benchmark smoke (each benchmark runs once, as a test)"
cargo bench -p campanile-benches --locked -- --test

if [ -x scripts/fuzz-smoke.sh ]; then
  step "fuzz smoke (replay the committed corpus)"
  scripts/fuzz-smoke.sh
fi
echo
echo "check: all green"
