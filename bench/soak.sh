#!/usr/bin/env bash
# Soak: a mixed route set at 80% of its measured capacity for SOAK_SECONDS
# (600 by default), sampling the gateway's resident memory (VmRSS) and open
# file descriptors every SAMPLE seconds. The routes, taken in turn by every
# connection:
#   /fn          the `hello` example function on the local backend;
#   /http/soak   an `http` route to the nginx upstream of bench/lib.sh;
#   /keyed       a keyed `mock` route (API key + plan throttle);
#   /cached/{n}  an `http` route with a response cache (60 s TTL, 100 ids,
#                so mostly hits and a miss per id a minute).
# Capacity: wrk (1 thread, CONNECTIONS connections) unpaced for 10 s. The
# soak: the same wrk script paced to 80% of it: wrk's `delay()` hook holds
# each request until its slot on a fixed schedule (request i at
# start + i ÷ rate, read from CLOCK_MONOTONIC through LuaJIT's FFI), so the
# rate is held on average and requests that fall behind go out at once.
# (wrk2 is not packaged; this is its constant-rate idea without its latency
# correction, so latencies are not reported.) Errors: non-2xx answers and
# socket errors (connect, read, write, timeout after 2 s), as wrk counts
# them; the script fails on any.
#
# The gateway runs with its default logging (an access line per request, to
# /dev/null), pinned to CPU 0 with its function processes; wrk and nginx on
# CPU 1. SQLite store (a temp file).
#
# Usage: bench/soak.sh [CONNECTIONS]                  # e.g. 32
#        SOAK_SECONDS=60 bench/soak.sh                # a short try
#        LAMBDAGATE_BIN=path/to/lambdagate bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-32}
SOAK_SECONDS=${SOAK_SECONDS:-600}
SAMPLE=${SAMPLE:-30}
LOAD=${LOAD:-0.8}

. bench/lib.sh
if ! need nginx || ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
if [ -n "${LAMBDAGATE_BIN:-}" ]; then
    BIN=$LAMBDAGATE_BIN
else
    cargo build --release --quiet --bin lambdagate
    BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate
fi
hello_function
# Starts the nginx upstream (and a proxy this script does not use) and
# writes $WORK/routes.toml with the `up` backend and its routes.
proxy_fixture
cat >> "$WORK/routes.toml" <<TOML

[store]
kind = "sqlite"
path = "$WORK/keys.db"

$HELLO_TOML

[plans.soak]
throttle = { rate = 1000000000, burst = 1000000 }

[[routes]]
method = "GET"
path = "/fn"
function = "hello"

[[routes]]
method = "GET"
path = "/keyed"
api_key = true
mock = { status = 200, body = "ok" }

[[routes]]
method = "GET"
path = "/cached/{n}"
backend = "up"
cache = { ttl = "60s", key = ["path.n"] }
TOML
KEY=$("$BIN" keys create --config "$WORK/routes.toml" --name soak --plan soak --json 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')

cat > "$WORK/mix.lua" <<'LUA'
-- Request i goes to route i mod 4; the cached route's id cycles over 100.
-- With SOAK_RATE > 0, delay() paces the thread to SOAK_RATE requests/s.
local key = os.getenv("SOAK_KEY")
local rate = tonumber(os.getenv("SOAK_RATE") or "0")
local reqs, n = {}, 0
local fixed = { "/fn", "/http/soak", "/keyed" }
-- Built in init(), once wrk knows the Host header.
function init(args)
    for i = 0, 399 do
        local p = fixed[i % 4 + 1] or ("/cached/" .. math.floor(i / 4) % 100)
        reqs[i] = wrk.format("GET", p, { ["x-api-key"] = key })
    end
end
function request()
    local r = reqs[n % 400]
    n = n + 1
    return r
end
if rate > 0 then
    local ffi = require("ffi")
    ffi.cdef [[
        typedef struct { long tv_sec; long tv_nsec; } lg_timespec;
        int clock_gettime(int clock, lg_timespec *ts);
    ]]
    local ts = ffi.new("lg_timespec")
    local function now_ms()
        ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
        return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    end
    local start, slot = nil, 0
    -- Milliseconds until the next request's slot on the schedule.
    function delay()
        local now = now_ms()
        start = start or now
        slot = slot + 1
        local wait = start + slot * 1000 / rate - now
        return wait > 0 and math.floor(wait) or 0
    end
end
LUA

GW_PORT=$(free_port)
taskset -c 0 "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$GW_PORT" --no-watch \
    >/dev/null 2>"$WORK/gw.err" & PIDS+=($!)
GW_PID=${PIDS[-1]}
wait_port "$GW_PORT" "$WORK/gw.err"
for p in /fn /http/soak /keyed /cached/0; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $KEY" "http://127.0.0.1:$GW_PORT$p")
    [ "$code" = 200 ] || { echo "$p answered $code" >&2; cat "$WORK/gw.err" >&2; exit 1; }
done

mix() { # seconds rate out
    SOAK_KEY=$KEY SOAK_RATE=$2 taskset -c 1 wrk -t1 -c"$CONNS" -d"$1s" -s "$WORK/mix.lua" \
        "http://127.0.0.1:$GW_PORT" >"$3"
}
errors() { # wrk output -> "requests errors"
    awk '/requests in/ {n = $1}
         /Non-2xx/ {e += $NF}
         /Socket errors/ {gsub(",", ""); e += $4 + $6 + $8 + $10}
         END {print n, e + 0}' "$1"
}
mix 5 0 "$WORK/warm"
mix 10 0 "$WORK/capacity"
read -r n e < <(errors "$WORK/capacity")
CAPACITY=$(awk '/Requests\/sec/ {print $2}' "$WORK/capacity")
RATE=$(awk -v c="$CAPACITY" -v l="$LOAD" 'BEGIN {printf "%d", c * l}')
echo "capacity ${CAPACITY} req/s ($e errors of $n); soak at $RATE req/s for ${SOAK_SECONDS}s" >&2

sample() { # elapsed -> "elapsed rss_kb fds functions"
    echo "$1 $(awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status") $(ls "/proc/$GW_PID/fd" | wc -l) $(pgrep -P "$GW_PID" | wc -l)"
}
sample 0 >"$WORK/samples"
mix "$SOAK_SECONDS" "$RATE" "$WORK/soak" &
WRK=$!
t0=$(date +%s)
next=$SAMPLE
while kill -0 "$WRK" 2>/dev/null; do
    sleep 1
    now=$(($(date +%s) - t0))
    if [ "$now" -ge "$next" ] && [ "$now" -lt "$SOAK_SECONDS" ]; then
        next=$((next + SAMPLE))
        sample "$now" | tee -a "$WORK/samples" | awk '{printf "%4d s: RSS %.1f MB, %d fds, %d function processes\n", $1, $2 / 1024, $3, $4}' >&2
    fi
done
wait "$WRK"
sample "$(($(date +%s) - t0))" >>"$WORK/samples"
read -r n e < <(errors "$WORK/soak")
achieved=$(awk '/Requests\/sec/ {print $2}' "$WORK/soak")

python3 - "$WORK/samples" "$CAPACITY" "$RATE" "$achieved" "$n" "$e" "$SOAK_SECONDS" <<'PY'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
cap, rate, got, n, e, secs = sys.argv[2:8]
print(f"capacity {float(cap):,.0f} req/s; soak {secs} s at {int(rate):,} req/s asked, {float(got):,.0f} achieved")
print(f"requests {int(n):,}, errors (non-2xx + socket) {int(e)}: error rate {int(e) / max(int(n), 1):.6f}")
# The first sample is taken before the load, the last after it; the
# figures are over the samples taken under load.
load = rows[1:-1] or rows
rss = [r[1] / 1024 for r in load]
fds = [r[2] for r in load]
fns = [r[3] for r in load]
print(f"under load, first / last / max: RSS {rss[0]:.1f} / {rss[-1]:.1f} / {max(rss):.1f} MB; "
      f"open fds {fds[0]} / {fds[-1]} / {max(fds)}; function processes {fns[0]} / {fns[-1]} / {max(fns)}")
print(f"before / after the load: RSS {rows[0][1] / 1024:.1f} / {rows[-1][1] / 1024:.1f} MB, "
      f"open fds {rows[0][2]} / {rows[-1][2]}")
print("samples (s, RSS MB, fds): " + ", ".join(f"{r[0]} {r[1] / 1024:.1f} {r[2]}" for r in rows))
if int(e):
    sys.exit(1)
PY
