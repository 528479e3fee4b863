#!/usr/bin/env bash
# CPU profile of the heartbeat path: Tessera (release build, default config with rate limits,
# embedded store, 100k live sessions) saturated by wrk, sampled with `perf record -g`, drawn
# as a flamegraph with inferno (`cargo install inferno`).
#
#   bash bench/profile.sh [NAME]     # writes bench/profiles/NAME.svg (default: heartbeat)
#
# Needs perf, wrk and inferno-collapse-perf / inferno-flamegraph on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:-heartbeat}"
work="$(mktemp -d)"
trap 'kill "$bench" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -p tessera -p tessera-bench
taskset -c 0 target/release/tessera-bench heartbeat --tessera-bin target/release/tessera \
  --server-cpus 1 --suite-config --wrk --sessions 100000 --conns 64 \
  --duration-secs 25 --warmup-secs 3 >"$work/bench.log" 2>&1 &
bench=$!
# The server pid comes first; the wrk command line once the sessions are up and warm.
for _ in $(seq 1 300); do grep -q '^wrk -t' "$work/bench.log" && break; sleep 1; done
pid="$(sed -n 's/^server pid //p' "$work/bench.log")"
sleep 2
perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep 12
wait "$bench" || true
cat "$work/bench.log"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
mkdir -p bench/profiles
inferno-flamegraph --minwidth 0.3 \
  --title "Tessera heartbeat under wrk ($(git rev-parse --short HEAD))" \
  "$work/folded" >"bench/profiles/$name.svg"
echo "wrote bench/profiles/$name.svg"
