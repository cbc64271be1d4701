#!/usr/bin/env bash
# Runs Vuoro's whole test suite on a fresh machine with a Rust toolchain: lints, builds and tests
# the workspace (release profile: the model-based and simulation tests are CPU-bound) and checks
# that every benchmark compiles.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
cargo bench --workspace --no-run
