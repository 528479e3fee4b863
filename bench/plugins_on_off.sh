#!/usr/bin/env bash
# Heartbeat throughput with both example plugins on vs off, same generator, same run.
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release/tessera-bench; T=target/release/tessera
run() {
  local mode=$1 i=$2
  local dir; dir=$(mktemp -d)
  local port; port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  : > $dir/tessera.toml
  if [ "$mode" = on ]; then cat > $dir/tessera.toml <<TOML
[[plugins]]
name = "ip-reputation"
path = "$PWD/plugins/examples/dist/ip-reputation.wasm"
order = 0
config = { mode = "strict", allow = [], deny = ["203.0.113.0/24"] }

[[plugins]]
name = "ban-threshold"
path = "$PWD/plugins/examples/dist/ban-threshold.wasm"
order = 1
config = { warnings = 3, window_secs = 86400, ban_secs = 0 }
TOML
  fi
  local env=(TESSERA_CONFIG=$dir/tessera.toml TESSERA_SERVER_LISTEN_ADDR=127.0.0.1:$port
    TESSERA_STORE_DATA_DIR=$dir/data TESSERA_AUTH_API_KEY_FILE=$dir/key
    TESSERA_RATE_LIMIT_ENABLED=false TESSERA_LOG_LEVEL=warn)
  # Issuing licenses takes an admin key (the system API key reaches the client API only).
  local admin; admin=$(env "${env[@]}" $T admin-key create --name bench --scopes licenses:write | grep -o 'tsa_[^ ]*')
  env "${env[@]}" taskset -c 1 $T serve > $dir/log 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
  TESSERA_BENCH_ADMIN_KEY=$admin taskset -c 0 $B heartbeat --addr 127.0.0.1:$port --api-key-file $dir/key --server-pid $pid \
     --duration-secs 15 --warmup-secs 3 --json ${OUT:-/tmp}/plugins-$mode-$i.json > ${OUT:-/tmp}/plugins-$mode-$i.txt 2>&1
  kill $pid; wait $pid 2>/dev/null || true
  echo "plugins $mode run $i:"; grep "^heartbeat " ${OUT:-/tmp}/plugins-$mode-$i.txt
}
for i in 1 2; do run off $i; run on $i; done
