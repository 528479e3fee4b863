#!/usr/bin/env bash
# Builds {{name}} for wasm32-unknown-unknown (release) and copies it to build/{{name}}.wasm.
set -euo pipefail
cd "$(dirname "$0")"
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
cargo build --release --target wasm32-unknown-unknown
# Where cargo put it (CARGO_TARGET_DIR and build.target-dir move it).
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
mkdir -p build
cp "$target_dir/wasm32-unknown-unknown/release/{{crate_name}}.wasm" build/{{name}}.wasm
echo "built build/{{name}}.wasm"
