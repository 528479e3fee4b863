#!/usr/bin/env bash
# Builds activation-guard-c to build/activation-guard-c.wasm with Debian's clang and lld
# (packages `clang` and `lld`; no libc, no WASI).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p build
"${CC:-clang}" --target=wasm32-unknown-unknown -O2 -nostdlib -ffreestanding \
    -Wall -Wextra -Werror -Wno-unused-function \
    -Wl,--no-entry -Wl,--strip-all \
    -o build/activation-guard-c.wasm activation_guard.c
