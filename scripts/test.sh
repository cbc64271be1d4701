#!/usr/bin/env bash
# Runs Vuoro's whole test suite on a fresh machine with a Rust toolchain: installs the tools the
# channels' tests speak to (once; later runs skip what is there), lints, builds and tests the
# workspace (release profile: the model-based and simulation tests are CPU-bound), checks that
# every benchmark compiles, and checks the Helm chart with real tools (installing them).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=${HELM_CHECK_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/vuoro-tools}
AIOSMTPD=aiosmtpd==1.4.6
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
apt_install() {
    $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
# The chat widget's browser test: Debian's Chromium driven by playwright-core.
[ -x /usr/bin/chromium ] || apt_install chromium
if ! npm ls --prefix channels/tests/browser playwright-core >/dev/null 2>&1; then
    npm ci --prefix channels/tests/browser --no-audit --no-fund
fi
# The email channel's tests: swaks (Debian) sends mail in, aiosmtpd (PyPI, in a venv of its
# own) receives what goes out.
command -v swaks >/dev/null || apt_install swaks
export EMAIL_SINK_PYTHON=$TOOLS/email-python/bin/python
if [ "$("$EMAIL_SINK_PYTHON" -c 'import aiosmtpd; print(aiosmtpd.__version__)' 2>/dev/null)" != "${AIOSMTPD##*=}" ]; then
    rm -rf "$TOOLS/email-python"
    mkdir -p "$TOOLS"
    python3 -m venv "$TOOLS/email-python" 2>/dev/null ||
        { apt_install python3-venv && python3 -m venv "$TOOLS/email-python"; }
    "$TOOLS/email-python/bin/pip" install --quiet --disable-pip-version-check "$AIOSMTPD"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo test --workspace --release
cargo bench --workspace --no-run
scripts/fuzz.sh
scripts/check-helm.sh
