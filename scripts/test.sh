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
# The email channel's tests speak SMTP with real tools, installed once: swaks (Debian) sends
# mail in, aiosmtpd (PyPI, in a venv of its own) receives what goes out. Missing, they fail.
TOOLS=${HELM_CHECK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/vuoro-tools}
AIOSMTPD=aiosmtpd==1.4.6
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
apt_install() {
    $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
command -v swaks >/dev/null || apt_install swaks
export EMAIL_SINK_PYTHON=$TOOLS/email-python/bin/python
if [ "$("$EMAIL_SINK_PYTHON" -c 'import aiosmtpd; print(aiosmtpd.__version__)' 2>/dev/null)" != "${AIOSMTPD##*=}" ]; then
    rm -rf "$TOOLS/email-python"
    mkdir -p "$TOOLS"
    python3 -m venv "$TOOLS/email-python" 2>/dev/null ||
        { apt_install python3-venv && python3 -m venv "$TOOLS/email-python"; }
    "$TOOLS/email-python/bin/pip" install --quiet --disable-pip-version-check "$AIOSMTPD"
fi
cargo test --workspace --release
cargo bench --workspace --no-run
scripts/check-helm.sh
