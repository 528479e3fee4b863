#!/usr/bin/env bash
# Builds the example plugins for wasm32-unknown-unknown and copies them to dist/,
# where the host crate's tests (plugins/host/tests/examples.rs) and `tessera serve` find them.
#   ./build.sh          build
#   ./build.sh --test   run the plugins' native unit tests first, then build
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
for name in ban_threshold ip_reputation; do
    cp "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/$name.wasm" "dist/${name//_/-}.wasm"
done
ls -l dist/*.wasm
