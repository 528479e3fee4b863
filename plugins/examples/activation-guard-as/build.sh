#!/usr/bin/env bash
# Builds activation-guard-as to build/activation-guard-as.wasm with the AssemblyScript
# compiler pinned in package-lock.json (installed into node_modules/ by `npm ci`).
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x node_modules/.bin/asc ]]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/asc assembly/index.ts --config asconfig.json
