#!/usr/bin/env bash
# Builds the example plugins and copies them to dist/, where the host crate's tests
# (plugins/host/tests/examples.rs), the server's end-to-end tests and `tessera serve` find them:
#   - ban-threshold, ip-reputation: Rust, for wasm32-unknown-unknown (this Cargo workspace);
#   - activation-guard-as: AssemblyScript (needs node and npm; its build.sh runs `npm ci`);
#   - activation-guard-c: C (needs Debian's clang and lld).
#   ./build.sh          build
#   ./build.sh --test   run the Rust plugins' native unit tests first, then build
set -euo pipefail
cd "$(dirname "$0")"
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
# This is a workspace of its own; keep its artifacts apart from the root workspace's.
export CARGO_TARGET_DIR="${TESSERA_EXAMPLES_TARGET_DIR:-$PWD/target}"
if [[ "${1:-}" == "--test" ]]; then
    cargo test
fi
cargo build --release --target wasm32-unknown-unknown
mkdir -p dist
for name in ban_threshold ip_reputation machine_rules; do
    cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/$name.wasm" "dist/${name//_/-}.wasm"
done
for tool in clang wasm-ld node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is missing; install Debian's clang, lld, nodejs and npm (tests/run.sh does)" >&2
        exit 1
    fi
done
for name in activation-guard-as activation-guard-c; do
    bash "$name/build.sh"
    cp "$name/build/$name.wasm" "dist/$name.wasm"
done
ls -l dist/*.wasm
