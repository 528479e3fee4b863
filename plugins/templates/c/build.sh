#!/usr/bin/env bash
# Builds {{name}} to build/{{name}}.wasm with clang and lld (Debian packages `clang` and
# `lld`; no libc, no WASI).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
"${CC:-clang}" --target=wasm32-unknown-unknown -O2 -nostdlib -ffreestanding \
    -Wall -Wextra -Werror -Wno-unused-function \
    -Wl,--no-entry -Wl,--strip-all \
    -o build/{{name}}.wasm plugin.c
echo "built build/{{name}}.wasm"
