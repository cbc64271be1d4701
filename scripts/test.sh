#!/usr/bin/env bash
# Runs Vuoro's whole test suite on a fresh machine with a Rust toolchain: lints, builds and tests
# the workspace (release profile: the model-based and simulation tests are CPU-bound), checks
# that every benchmark compiles, and checks the Helm chart with real tools (installing them).
# The chat widget's browser test needs Debian's Chromium and playwright-core: installed here
# first, once (later runs skip what is there).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
if ! npm ls --prefix channels/tests/browser playwright-core >/dev/null 2>&1; then
    npm ci --prefix channels/tests/browser --no-audit --no-fund
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
cargo bench --workspace --no-run
scripts/check-helm.sh
