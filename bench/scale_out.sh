#!/usr/bin/env bash
# Scale-out benchmark (issue 18): 1, 2 and 3 Tessera nodes on one Redis and on a Redis
# Cluster of three primaries in one run, license loads with and without locality, Redis CPU
# and commands per heartbeat and per session start, a paced phase for Redis's cost at a real
# client's heartbeat rate, and what a replica's acknowledgement costs a write
# (min-replicas-to-write, WAIT). Builds the release binaries, then runs
# target/release/scale_out (bench/src/bin/scale_out.rs); wrk is installed with apt-get when
# missing. Writes bench/results/<date>-scale-out.json and prints the markdown tables.
#
#   bash bench/scale_out.sh                       # the defaults (~6 minutes on 2 CPUs)
#   bash bench/scale_out.sh --nodes 1,3 --secs 15 # extra options: target/release/scale_out --help
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is needed (apt-get install redis-server)" >&2; exit 1; }
done
bash bench/ensure-wrk.sh

cargo build --release -p tessera -p tessera-bench --bin tessera --bin scale_out
exec target/release/scale_out --tessera-bin target/release/tessera "$@"
