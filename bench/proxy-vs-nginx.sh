#!/usr/bin/env bash
# Requests/s and p50/p99 latency through lambdagate (a `mock` route and an
# `http` route) against nginx proxying to the same upstream, in one run.
#
# Pinning (2-core machine): the proxy under test (lambdagate or nginx) runs on
# CPU 0; the load generator (wrk) and the upstream (nginx returning a fixed
# body) share CPU 1. Access logs are off on both sides. Loopback only; every
# run is bounded by DURATION.
#
# Usage: bench/proxy-vs-nginx.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
#        PROXY_CALLGRIND=N bench/proxy-vs-nginx.sh
#        LAMBDAGATE_BIN=path/to/lambdagate bench/proxy-vs-nginx.sh ...
# LAMBDAGATE_BIN measures that binary instead of building this checkout (to
# compare two builds in one sitting, alternating runs).
# With PROXY_CALLGRIND=N the gateway runs under valgrind's callgrind instead
# and the script prints instructions per request for the `mock` and `http`
# routes (N sequential keep-alive GETs each, after a warm-up): repeatable on
# a busy machine, unlike req/s. Profiles stay in target/callgrind/.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}

. bench/lib.sh
if ! need nginx || ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
if [ -n "${LAMBDAGATE_BIN:-}" ]; then
    BIN=$LAMBDAGATE_BIN
else
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate
fi

GW_PORT=$(free_port)
proxy_fixture
CALLGRIND=${PROXY_CALLGRIND:-}
RUST_LOG=warn taskset -c 0 ${CALLGRIND:+valgrind --tool=callgrind --callgrind-out-file=$WORK/cg.%p} "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.out" 2>&1 & PIDS+=($!)

wait_port "$UP_PORT"; wait_port "$NGX_PORT"; wait_port "$GW_PORT"

if [ -n "$CALLGRIND" ]; then
    GW_PID=${PIDS[-1]}
    send() { # path count: sequential keep-alive GETs, all 200
        python3 - "$GW_PORT" "$1" "$2" <<'PY'
import http.client, sys
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(n):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
    }
    mkdir -p target/callgrind
    for p in /mock /http/x; do
        send "$p" 50
        callgrind_control -z "$GW_PID" >/dev/null
        send "$p" "$CALLGRIND"
        callgrind_control -d "$GW_PID" >/dev/null
        sleep 1
        dump=$(ls -t "$WORK"/cg.* | head -1)
        ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
        mv "$dump" "target/callgrind/proxy$(echo "$p" | tr '/' '_').out"
        echo "$p: $((ir / CALLGRIND)) instructions per request"
    done
    exit 0
fi

# CPU time (clock ticks) used so far by a process and its threads/children.
cpu_ticks() { # pid...
    local total=0
    for p in "$@"; do
        for t in /proc/"$p"/task/*/stat; do
            [ -r "$t" ] || continue
            total=$((total + $(awk '{print $14 + $15}' "$t")))
        done
    done
    echo "$total"
}

run() { # label url pids -> "rps p50_ms p99_ms cpu_us_per_request"
    local out before after
    before=$(cpu_ticks $3)
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$2")
    after=$(cpu_ticks $3)
    python3 - "$out" "$((after - before))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
text = sys.argv[1]
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    if not m:
        sys.exit(f"unreadable latency {v!r} in wrk output:\n{text}")
    n, unit = m.groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
p99 = ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit(f"non-2xx responses: {errors.group(1)}")
requests = int(re.search(r"(\d+) requests in", text).group(1))
cpu_us = ticks / hz * 1e6 / max(requests, 1)
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {cpu_us:.1f}")
PY
}

# Warm up every path once.
for u in "http://127.0.0.1:$NGX_PORT/x" "http://127.0.0.1:$GW_PORT/http/x" "http://127.0.0.1:$GW_PORT/mock"; do
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s "$u" >/dev/null
done

NGX_PIDS="$(pgrep -f "nginx -p $WORK/proxy" | tr '\n' ' ')$(pgrep -P "$(pgrep -f "nginx -p $WORK/proxy" | head -1)" | tr '\n' ' ')"
GW_PID=$(pgrep -f "listen 127.0.0.1:$GW_PORT")
declare -A RPS P50 P99 CPU
for r in $(seq "$ROUNDS"); do
    for label in nginx gateway_http gateway_mock; do
        case $label in
            nginx) url="http://127.0.0.1:$NGX_PORT/x"; pids=$NGX_PIDS ;;
            gateway_http) url="http://127.0.0.1:$GW_PORT/http/x"; pids=$GW_PID ;;
            gateway_mock) url="http://127.0.0.1:$GW_PORT/mock"; pids=$GW_PID ;;
        esac
        read -r rps p50 p99 cpu < <(run "$label" "$url" "$pids")
        RPS[$label]+="$rps "; P50[$label]+="$p50 "; P99[$label]+="$p99 "; CPU[$label]+="$cpu "
        echo "round $r $label: $rps req/s, p50 ${p50} ms, p99 ${p99} ms, ${cpu} µs CPU/request" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
NGX=$(echo "${RPS[nginx]}" | median)
echo
NGX_CPU=$(echo "${CPU[nginx]}" | median)
echo "| path | req/s (median of $ROUNDS) | p50 ms | p99 ms | req/s ÷ nginx | proxy CPU µs/request | nginx CPU ÷ this |"
echo "|---|---|---|---|---|---|---|"
for label in nginx gateway_http gateway_mock; do
    rps=$(echo "${RPS[$label]}" | median)
    p50=$(echo "${P50[$label]}" | median)
    p99=$(echo "${P99[$label]}" | median)
    cpu=$(echo "${CPU[$label]}" | median)
    ratio=$(python3 -c "print(f'{$rps/$NGX:.2f}')")
    cratio=$(python3 -c "print(f'{$NGX_CPU/$cpu:.2f}')")
    echo "| $label | $rps | $p50 | $p99 | $ratio | $cpu | $cratio |"
done
echo
echo "wrk: 1 thread, $CONNS connections, ${DURATION}s per run; proxy on CPU 0, wrk + upstream on CPU 1; $(nproc) CPUs"
