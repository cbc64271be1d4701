#!/usr/bin/env bash
# Runs Vuoro's whole test suite on a fresh machine with a Rust toolchain: lints, builds and tests
# the workspace (release profile: the model-based and simulation tests are CPU-bound), checks
# that every benchmark compiles, and checks the Helm chart with real tools (installing them).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
cargo bench --workspace --no-run
scripts/fuzz.sh
scripts/check-helm.sh
