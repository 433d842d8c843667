#!/usr/bin/env bash
# API keys and throttling, as ratios measured in one run (loopback only,
# every step bounded):
#  1. req/s of a mock route with api_key = true + a plan throttle (local)
#     ÷ the same mock route without either;
#  2. the same with [cluster] Redis throttling ÷ the route without;
#  3. gateway CPU time per refused (429) request ÷ per accepted request;
#  4. accepted rate when clients send 2× a route's limit, ÷ the limit.
# Needs PostgreSQL-free SQLite (a temp file) and Redis on 127.0.0.1:6379.
#
# Usage: bench/keys-throttle.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNS=${2:-32}
BIN=${LAMBDAGATE_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate
fi
command -v wrk >/dev/null || { echo "needs wrk" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cp "$BIN" "$WORK/lambdagate"; BIN=$WORK/lambdagate
PREFIX="lgbench_$$"

write_routes() { # $1 = file, $2 = extra top-level tables
    cat > "$1" <<TOML
$2
[store]
kind = "sqlite"
path = "keys.db"

[plans.bench]
throttle = { rate = 1000000000, burst = 1000000 }

[[routes]]
method = "GET"
path = "/open"
mock = { status = 200, body = "ok" }

[[routes]]
method = "GET"
path = "/keyed"
api_key = true
mock = { status = 200, body = "ok" }

[[routes]]
method = "GET"
path = "/tight"
throttle = { rate = 1, burst = 1 }
mock = { status = 200, body = "ok" }

[[routes]]
method = "GET"
path = "/limited"
throttle = { rate = 200, burst = 20 }
mock = { status = 200, body = "ok" }
TOML
}
write_routes "$WORK/local.toml" ""
write_routes "$WORK/cluster.toml" "[cluster]
redis_url = \"redis://127.0.0.1:6379\"
key_prefix = \"$PREFIX\""
KEY=$("$BIN" --config "$WORK/local.toml" keys create --name bench --plan bench --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')

start() { # $1 = config; prints "pid port"
    local out="$WORK/out.$RANDOM"
    taskset -c 0 "$BIN" serve --config "$1" --listen 127.0.0.1:0 --no-watch >"$out" 2>/dev/null &
    local pid=$!
    for _ in $(seq 300); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
    local port; port=$(sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$out" | head -1)
    echo "$pid $port"
}
rps() { # $1 = url, extra args
    local url=$1; shift
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "$url" | awk '/Requests\/sec/ {print $2}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

read -r LPID LPORT < <(start "$WORK/local.toml"); PIDS+=("$LPID")
read -r CPID CPORT < <(start "$WORK/cluster.toml"); PIDS+=("$CPID")
L="http://127.0.0.1:$LPORT"; C="http://127.0.0.1:$CPORT"

open=$(rps "$L/open")
keyed=$(rps "$L/keyed" -H "x-api-key: $KEY")
kill -STOP "$LPID"  # keep the idle node off the CPU
copen=$(rps "$C/open")
ckeyed=$(rps "$C/keyed" -H "x-api-key: $KEY")
kill -CONT "$LPID"

# CPU per request: accepted (/open) vs refused (/tight: all but ~1/s are 429).
kill -STOP "$CPID"
t0=$(cpu_ticks "$LPID"); n_ok=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$L/open" | awk '/requests in/ {print $1}'); t1=$(cpu_ticks "$LPID")
n_429=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$L/tight" | awk '/requests in/ {print $1}'); t2=$(cpu_ticks "$LPID")
kill -CONT "$CPID"

# 2× the limit: 400 req/s offered to a 200 req/s route for DURATION seconds.
accepted=$(python3 - "$LPORT" "$DURATION" <<'PY'
import http.client, sys, threading, time
port, dur = int(sys.argv[1]), float(sys.argv[2])
offered, threads = 400.0, 8
ok = [0] * threads
start = time.monotonic() + 0.2
def run(i):
    c = http.client.HTTPConnection("127.0.0.1", port)
    n = 0
    while True:
        t = start + (n * threads + i) / offered
        if t - start >= dur:
            break
        d = t - time.monotonic()
        if d > 0:
            time.sleep(d)
        c.request("GET", "/limited"); r = c.getresponse(); r.read()
        if r.status == 200:
            ok[i] += 1
        n += 1
ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(ok))
PY
)
redis-cli --scan --pattern "$PREFIX:*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true

python3 - "$open" "$keyed" "$copen" "$ckeyed" "$n_ok" "$t0" "$t1" "$n_429" "$t2" "$accepted" "$DURATION" <<'PY'
import sys
o, k, co, ck = map(float, sys.argv[1:5])
n_ok, t0, t1, n_429, t2 = map(float, sys.argv[5:10])
acc, dur = float(sys.argv[10]), float(sys.argv[11])
print(f"open {o:.0f} req/s, key+plan throttle {k:.0f} req/s -> ratio {k/o:.3f} (target >= 0.90)")
print(f"cluster: open {co:.0f} req/s, key+plan throttle via Redis {ck:.0f} req/s -> ratio {ck/co:.3f} (target >= 0.75)")
cpu_ok = (t1 - t0) / n_ok; cpu_429 = (t2 - t1) / n_429
print(f"CPU per accepted {cpu_ok*1e4:.2f} us, per 429 {cpu_429*1e4:.2f} us -> ratio {cpu_429/cpu_ok:.3f} (target <= 0.5)")
limit = 20 + 200 * dur
print(f"2x the limit: {acc:.0f} accepted of {400*dur:.0f} offered, limit allows {limit:.0f} -> {acc/limit:.3f} (target 1 +- 0.02)")
PY
