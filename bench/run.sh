#!/usr/bin/env bash
# The performance suite in one command: build the release binaries, then run
# `tessera-bench suite` (baseline, Tessera on the embedded store, Tessera on a private
# redis-server, memory step). Saturation runs use wrk (installed with apt-get when missing).
# Results go to bench/results/<date>.json (and <date>-latency.svg) and the table in
# bench/README.md is rewritten.
#
#   bash bench/run.sh            # quick: memory step with 100k live sessions
#   bash bench/run.sh --full     # memory step with 1M live sessions
#   bash bench/run.sh -- --backends embedded --duration-secs 30   # extra suite options
set -euo pipefail
cd "$(dirname "$0")/.."

memory=100000
extra=()
for a in "$@"; do
  case "$a" in
    --full) memory=1000000 ;;
    --) ;;
    *) extra+=("$a") ;;
  esac
done

bash bench/ensure-wrk.sh

cargo build --release -p tessera -p tessera-bench
exec target/release/tessera-bench suite \
  --tessera-bin target/release/tessera \
  --memory-sessions "$memory" \
  --command-line "bash bench/run.sh $*" \
  "${extra[@]}"
