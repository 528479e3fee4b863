#!/usr/bin/env bash
# Builds {{name}} to build/{{name}}.wasm with the AssemblyScript compiler pinned in
# package-lock.json (installed into node_modules/ by `npm ci`; needs Node.js 20 or newer).
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x node_modules/.bin/asc ]]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/asc assembly/index.ts --config asconfig.json
echo "built build/{{name}}.wasm"
