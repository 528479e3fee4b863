#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine, installing what it needs first:
#   - redis-server (tests start private servers on free ports; they never use 6379),
#   - chromium and playwright-core (npm), which drive the operator panel in a real browser,
#   - clang, lld, node and npm, the wasm32-unknown-unknown target and the example plugins
#     (plugins/examples: Rust, AssemblyScript and C),
#   - curl and jq, which README.md's walkthrough uses (runtime/tests/readme.rs runs it),
#   - promtool (Debian's prometheus package), which checks ops/prometheus/alerts.yml,
#   - schemathesis (PyPI), which tests/tests/contract.rs runs against /openapi.json,
#   - cargo-deb (crates.io), xz and Python's yaml, with which runtime/tests/packaging.rs
#     builds and inspects the .deb and parses compose.yaml,
# then checks formatting and clippy, runs `cargo test --workspace` and a seconds-long smoke
# run of the load generator against the real server. Extra arguments go to cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust 1.95 or newer (https://rustup.rs)" >&2
    exit 1
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "==> installing redis-server"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq redis-server
fi

# The example plugins in C and AssemblyScript: Debian's clang and lld (wasm-ld), node and npm.
# README.md's walkthrough (run verbatim by runtime/tests/readme.rs): curl and jq.
missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v wasm-ld >/dev/null 2>&1 || missing+=(lld)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# tests/tests/panel_browser.rs drives Debian's chromium (headless) with playwright-core.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# tests/tests/scale_out.rs runs Debian's nginx in front of three servers.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
# runtime/tests/packaging.rs: dpkg-deb inspects the .deb, xz compresses it (cargo-deb is built
# without its own liblzma, below).
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}"
fi

# tests/tests/observability.rs runs `promtool check rules` and `promtool test rules` on
# ops/prometheus/: Debian's prometheus package (about 20 MB to download, 100 MB installed),
# without the node exporter it recommends. Only promtool is used; like redis-server's, the
# package's service starts on a machine that runs systemd (stop it if you do not want it).
if ! command -v promtool >/dev/null 2>&1; then
    echo "==> installing prometheus (for promtool)"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends prometheus
fi

# runtime/tests/packaging.rs builds the .deb with cargo-deb from the binary the tests built.
# --no-default-features leaves out its bundled liblzma (it runs the system's xz instead): about
# 2 minutes to build on 2 cores; the version is pinned so CI does not move with new releases.
if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> installing cargo-deb"
    cargo install cargo-deb --version 3.8.0 --locked --no-default-features
fi

if command -v rustup >/dev/null 2>&1 \
    && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "==> adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown \
        || echo "warning: could not add wasm32-unknown-unknown; the example plugins will not build" >&2
fi

if [ -f plugins/examples/build.sh ]; then
    echo "==> building the example plugins"
    bash plugins/examples/build.sh --test
fi

# tests/tests/panel_browser.rs: playwright-core from npm, the version tests/browser pins. It
# needs node 20 or later (its package's `engines`); Debian 12's own nodejs is 18, so say so
# plainly instead of letting the browser test fail on a syntax error.
node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ]; then
    echo "tests/run.sh: node $(node --version 2>/dev/null || echo missing) is too old for playwright-core" \
        "(the panel's browser tests need node 20 or later: Debian 13's nodejs, or NodeSource's)" >&2
    exit 1
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "==> installing playwright-core (npm)"
    npm ci --prefix tests/browser --no-audit --no-fund
fi

# client/tests: the C and Python examples need gcc and python3; the WebSocket protocol test
# needs Python's `websockets` (PyPI).
if ! python3 -c "import websockets" >/dev/null 2>&1; then
    echo "==> installing Python websockets"
    python3 -m pip install --quiet websockets 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages websockets
fi
# tests/python/operator_login.py (seed 001's encrypted login): Python's `cryptography` (PyPI).
if ! python3 -c "import cryptography" >/dev/null 2>&1; then
    echo "==> installing Python cryptography"
    python3 -m pip install --quiet cryptography 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages cryptography
fi

# tests/python/verify_webhook.py (webhook signatures, checked by a verifier no one here wrote):
# Python's `standardwebhooks` (PyPI).
if ! python3 -c "import standardwebhooks" >/dev/null 2>&1; then
    echo "==> installing Python standardwebhooks"
    python3 -m pip install --quiet standardwebhooks 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages standardwebhooks
fi

# tests/tests/contract.rs (the API contract, checked against /openapi.json): `schemathesis`
# (PyPI), its command line.
if ! command -v schemathesis >/dev/null 2>&1; then
    echo "==> installing Python schemathesis"
    python3 -m pip install --quiet schemathesis 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages schemathesis
fi

# runtime/tests/packaging.rs parses compose.yaml with Python's yaml (PyPI's PyYAML).
if ! python3 -c "import yaml" >/dev/null 2>&1; then
    echo "==> installing Python PyYAML"
    python3 -m pip install --quiet pyyaml 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages pyyaml
fi

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo test --workspace"
cargo test --workspace "$@"

echo "==> load generator smoke run against the real server (a few seconds)"
cargo build -p tessera -p tessera-bench
"${CARGO_TARGET_DIR:-target}/debug/tessera-bench" smoke --duration-secs 3
