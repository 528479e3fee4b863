#!/usr/bin/env bash
# Heartbeat throughput with a plugin that burns its whole timeout on 1% of heartbeats vs no
# plugin (issue 21, item 4), same generator, same run, alternating, ROUNDS rounds each.
# While wrk saturates the heartbeats, a probe on the generator's CPU polls GET /health (a
# route no hook runs on) and samples the CPU of the server, of the generator (tessera-bench
# + wrk) and of the whole machine, to show whether the request workers stay free.
#
#   bash bench/slow_plugin.sh                  # 2 rounds, 20 s measured per run
#   ROUNDS=3 SECS=30 bash bench/slow_plugin.sh
#   OUT=/tmp/x bash bench/slow_plugin.sh       # raw files elsewhere (default bench/results)
#   HOOK_THREADS=8 NAME=slow-plugin-8-hook-threads bash bench/slow_plugin.sh
# Also: WARMUP (s, default 3), TIMEOUT_MS (the plugin's, default 20), WAIT_QUIET (s to wait
# before each run for other cargo builds to end, default 600). Writes $OUT/$NAME-*: each
# run's wrk report (.json) and log with probe, metrics and config (.txt), all runs
# (-runs.json) and the table (-summary.txt).
#
# Tessera is pinned to CPU 1 (so `policy.hook_threads = 0` gives 2 hook threads), the
# generator and the probe to CPU 0; embedded store, rate limits off.
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release/tessera-bench; T=target/release/tessera
PLUGIN=$PWD/bench/plugins/slow_1pct.wat
ROUNDS=${ROUNDS:-2}; SECS=${SECS:-20}; WARMUP=${WARMUP:-3}; TIMEOUT_MS=${TIMEOUT_MS:-20}
HOOK_THREADS=${HOOK_THREADS:-0}; NAME=${NAME:-slow-plugin}   # raw files: $OUT/$NAME-*
OUT=${OUT:-$PWD/bench/results}; mkdir -p "$OUT"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (the saturation generator)" >&2
  if [ "$(id -u)" = 0 ]; then sudo=(); else sudo=(sudo); fi
  "${sudo[@]}" apt-get install -y wrk >/dev/null || {
    "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y wrk >/dev/null
  }
fi
if [ ! -x $B ] || [ ! -x $T ]; then
  # Two cores, shared with other builds: never start a second cargo build.
  while pgrep -f "cargo (build|test|clippy)" >/dev/null; do
    echo "waiting for another cargo build to finish" >&2; sleep 15
  done
  cargo build --release -p tessera -p tessera-bench
fi
$T plugin check "$PLUGIN" > "$OUT/${NAME}-check.txt"

# The probe: runs during the measured wrk window, on CPU 0.
PROBE=$(mktemp --suffix .py)
trap 'rm -f "$PROBE"' EXIT
cat > "$PROBE" <<'PY'
import http.client, json, os, sys, time
port, server, bench, n, every, out = sys.argv[1:7]
server, bench, n, every = int(server), int(bench), int(n), float(every)
tck = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tck   # utime, stime
    except OSError:
        return None
def machine():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)        # busy (minus idle, iowait), total
def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            comm, rest = s[s.index("(") + 1:s.rindex(")")], s.rsplit(")", 1)[1].split()
            if int(rest[1]) == pid and comm == "wrk":
                kids.append(int(d))
    return kids
wrk = children(bench)
def gen():
    return (cpu(bench) or 0) + sum(cpu(p) or 0 for p in wrk)
t0, s0, g0, m0, p0 = time.monotonic(), cpu(server), gen(), machine(), cpu(os.getpid())
lat, errors, conn = [], 0, None
deadline = t0 + n * every + 5
for i in range(n):
    due = t0 + i * every
    now = time.monotonic()
    if now < due:
        time.sleep(due - now)
    if time.monotonic() > deadline:
        break
    a = time.perf_counter()
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
        conn.request("GET", "/health")
        r = conn.getresponse(); r.read()
        if r.status != 200:
            errors += 1
    except Exception:
        errors += 1; conn = None
        continue
    lat.append((time.perf_counter() - a) * 1e6)
t1, s1, g1, m1, p1 = time.monotonic(), cpu(server), gen(), machine(), cpu(os.getpid())
wrk_alive = all(cpu(p) is not None for p in wrk) and len(wrk) > 0
dt = t1 - t0
ncpu = os.cpu_count()
busy = (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * ncpu   # cores busy, whole machine
srv, gen_c, probe = (s1 - s0) / dt, (g1 - g0) / dt, (p1 - p0) / dt
lat.sort()
pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else None
json.dump({"window_secs": round(dt, 2), "wrk_pids": wrk, "wrk_alive_at_end": wrk_alive,
           "server_cores": round(srv, 3), "generator_cores": round(gen_c, 3),
           "probe_cores": round(probe, 3),
           "other_cores": round(max(0.0, busy - srv - gen_c - probe), 3),
           "health": {"requests": len(lat), "errors": errors, "p50_us": pct(0.50),
                      "p90_us": pct(0.90), "p99_us": pct(0.99), "max_us": pct(1.0)}},
          open(out, "w"), indent=1)
PY

metrics() {  # the plugin's counters (only tessera_plugin_failures_total shows up on this build)
  curl -sf http://127.0.0.1:$1/metrics | grep -E '^tessera_plugin_' || true
}

run() {
  local mode=$1 i=$2
  # other builds on the 2 cores disturb the run: wait (at most WAIT_QUIET s) for them
  local waited=0
  while pgrep -f "cargo (build|test|clippy)" >/dev/null && [ $waited -lt ${WAIT_QUIET:-600} ]; do
    sleep 10; waited=$((waited + 10))
  done
  local dir; dir=$(mktemp -d)
  local port; port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  local name="$OUT/${NAME}-$mode-$i"
  cat > $dir/tessera.toml <<TOML
[policy]
hook_threads = $HOOK_THREADS
TOML
  if [ "$mode" = slow ]; then cat >> $dir/tessera.toml <<TOML

[[plugins]]
name = "slow-1pct"
path = "$PLUGIN"
timeout_ms = $TIMEOUT_MS
fail_mode = "open"
TOML
  fi
  local env=(TESSERA_CONFIG=$dir/tessera.toml TESSERA_SERVER_LISTEN_ADDR=127.0.0.1:$port
    TESSERA_STORE_DATA_DIR=$dir/data TESSERA_AUTH_API_KEY_FILE=$dir/key
    TESSERA_RATE_LIMIT_ENABLED=false TESSERA_LOG_LEVEL=warn)
  # issuing licenses takes an admin key (the system API key reaches the client API only)
  local admin; admin=$(env "${env[@]}" $T admin-key create --name bench --scopes licenses:write | grep -o 'tsa_[^ ]*')
  env "${env[@]}" taskset -c 1 $T serve > $dir/log 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
  local threads; threads=$(cat /proc/$pid/task/*/comm | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')
  # /health with the server idle, for reference
  taskset -c 0 python3 "$PROBE" $port $pid $$ 100 0.01 $dir/idle.json
  TESSERA_BENCH_ADMIN_KEY=$admin \
  taskset -c 0 $B heartbeat --addr 127.0.0.1:$port --api-key-file $dir/key --server-pid $pid --wrk \
     --duration-secs $SECS --warmup-secs $WARMUP --json $name.json > $name.txt 2>&1 &
  local gen=$!
  # the measured wrk run starts when its command line is printed; probe from 2 s in
  until grep -q "^wrk " $name.txt 2>/dev/null; do
    kill -0 $gen 2>/dev/null || { cat $name.txt; echo "tessera-bench failed" >&2; kill $pid; exit 1; }
    sleep 0.2
  done
  metrics $port > $dir/metrics0
  sleep 2
  taskset -c 0 python3 "$PROBE" $port $pid $gen 400 0.025 $dir/probe.json
  wait $gen
  metrics $port > $dir/metrics
  kill $pid; wait $pid 2>/dev/null || true
  { echo "--- server log (warn and above; the one-time API key banner left out)"
    grep -E " (WARN|ERROR) " $dir/log || true
    echo "--- plugin metrics when the measured wrk run started"; cat $dir/metrics0
    echo "--- plugin metrics at its end"; cat $dir/metrics
    echo "--- probe, /health with the server idle"; cat $dir/idle.json; echo
    echo "--- probe, during the measured wrk run"; cat $dir/probe.json; echo
    echo "--- server threads"; echo "$threads"
    echo "--- tessera.toml"; cat $dir/tessera.toml; } >> $name.txt
  python3 - "$mode" "$i" "$name.json" $dir/probe.json $dir/idle.json $dir/metrics0 $dir/metrics "$threads" >> "$RUNS" <<'PY'
import json, re, sys
mode, i, rep, probe, idle, before, after, threads = sys.argv[1:9]
r = json.load(open(rep)); o = r["ops"][0]
def read(path):
    m = {}
    for l in open(path):
        k, v = l.rsplit(" ", 1)
        name = re.sub(r'\{.*', '', k); kind = re.search(r'kind="([^"]*)"', k)
        key = name + (":" + kind.group(1) if kind else "")
        m[key] = m.get(key, 0) + float(v)
    return m
m0, m1 = read(before), read(after)
m = {k: v - m0.get(k, 0) for k, v in m1.items()}   # during the measured run
print(json.dumps({"mode": mode, "round": int(i), "heartbeats_per_sec": round(o["per_sec"]),
                  "count": o["count"], "unexpected": o["unexpected"],
                  "wrk_p50_us": o["latency_us"]["p50"], "wrk_p99_us": o["latency_us"]["p99"],
                  "probe": json.load(open(probe)), "idle_health": json.load(open(idle))["health"],
                  "plugin_metrics": m, "server_threads": threads}))
PY
  echo "$mode run $i: $(grep '^heartbeat ' $name.txt)"
  rm -rf $dir
}

rev=$(git rev-parse --short HEAD); dirty=$(git status --porcelain | wc -l)
RUNS=$(mktemp); trap 'rm -f "$PROBE" "$RUNS"' EXIT
echo "started $(date -u +%FT%TZ) at $rev + $dirty uncommitted files; binaries $(date -u -r $T +%FT%TZ)" \
  > "$OUT/${NAME}-summary.txt"
for i in $(seq $ROUNDS); do run none $i; run slow $i; done

python3 - "$RUNS" "$TIMEOUT_MS" "$HOOK_THREADS" "$OUT/${NAME}-runs.json" >> "$OUT/${NAME}-summary.txt" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
json.dump(runs, open(sys.argv[4], "w"), indent=1)
base = {r["round"]: r["heartbeats_per_sec"] for r in runs if r["mode"] == "none"}
print(f"slow plugin: bench/plugins/slow_1pct.wat, timeout_ms = {sys.argv[2]}, fail_mode open; "
      f"policy.hook_threads = {sys.argv[3]} (0: CPUs of the pinned process, at least 2)")
print("| mode | round | heartbeats/s | × none (same round) | generator / server / other cores | valid | /health p50 | /health p99 | /health max | idle /health p99 | plugin timeouts (per heartbeat) |")
print("|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|")
ms = lambda us: "–" if us is None else (f"{us/1000:.2f} ms" if us >= 1000 else f"{us} µs")
for r in runs:
    p = r["probe"]; h = p["health"]
    valid = p["generator_cores"] <= p["server_cores"] and p["wrk_alive_at_end"]
    ratio = r["heartbeats_per_sec"] / base[r["round"]] if r["round"] in base else None
    to = r["plugin_metrics"].get("tessera_plugin_failures_total:timeout", 0)
    plug = f"{to:.0f} ({to / r['count']:.2%})" if r["mode"] != "none" else "–"
    bad = sum(r["unexpected"].values()) + h["errors"]
    print(f"| {r['mode']} | {r['round']} | {r['heartbeats_per_sec']} | "
          f"{'–' if ratio is None else f'{ratio:.3f}'} | "
          f"{p['generator_cores']:.2f} / {p['server_cores']:.2f} / {p['other_cores']:.2f} | "
          f"{'yes' if valid else 'INVALID'} | {ms(h['p50_us'])} | {ms(h['p99_us'])} | "
          f"{ms(h['max_us'])} | {ms(r['idle_health']['p99_us'])} | {plug} |"
          + (f" unexpected answers: {r['unexpected']}, /health errors {h['errors']}" if bad else ""))
PY
cat "$OUT/${NAME}-summary.txt"
