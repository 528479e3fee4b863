#!/usr/bin/env bash
# The plugin's own test through the server's plugin runner: builds it, runs
# tests/events.jsonl through `tessera plugin run` (one instance, one KV, in order) and
# compares the decisions with tests/expected.jsonl.
# TESSERA names the tessera binary (default: `tessera` on PATH).
set -euo pipefail
cd "$(dirname "$0")"
bash build.sh >/dev/null
"${TESSERA:-tessera}" plugin run build/{{name}}.wasm --events tests/events.jsonl \
    --config tests/config.toml >build/actual.jsonl || true
if diff -u tests/expected.jsonl build/actual.jsonl; then
    echo "{{name}}: $(wc -l <tests/expected.jsonl) events decided as expected"
else
    echo "{{name}}: decisions differ from tests/expected.jsonl (diff above)" >&2
    exit 1
fi
