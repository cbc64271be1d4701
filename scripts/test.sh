#!/usr/bin/env bash
# Runs Vuoro's whole test suite on a fresh Debian machine with a Rust toolchain:
# installs the system packages the tests need, then lints, builds and tests the workspace
# (release profile: the model-based and simulation tests are CPU-bound) and checks that every
# benchmark compiles.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use: a TrueType font for the simulator's PNG charts.
need=()
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
cargo bench --workspace --no-run
