#!/usr/bin/env bash
# Two gateway builds side by side against nginx proxying to the same
# upstream, in one sitting: the way to tell whether a change moved the
# `http` ÷ nginx row when single runs swing more than the change.
#
# Pinning (2-core machine): both gateways and the nginx proxy run on CPU 0;
# wrk and the upstream (nginx returning a fixed body) on CPU 1. All three
# stay up for the whole run; each round measures nginx, build A and build B
# once, in alternating order (n a b, then b a n) so drift falls on both
# sides. Printed per round: CPU µs per request (from /proc) and req/s.
# Loopback only; every run is bounded by SECONDS.
#
# Usage: bench/builds-vs-nginx.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]
#   PATH: /http/x (default, the proxied route) or /mock
set -euo pipefail
cd "$(dirname "$0")/.."
A_BIN=${1:?usage: bench/builds-vs-nginx.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]}
B_BIN=${2:?usage: bench/builds-vs-nginx.sh BIN_A BIN_B [ROUNDS] [SECONDS] [PATH]}
ROUNDS=${3:-16}
SECONDS_PER_RUN=${4:-5}
ROUTE=${5:-/http/x}

. bench/lib.sh
if ! need nginx || ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi

proxy_fixture
UP=$UP_PORT; NGX=$NGX_PORT; A=$(free_port); B=$(free_port)
RUST_LOG=warn taskset -c 0 "$A_BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$A" >"$WORK/a.out" 2>&1 & PIDS+=($!); A_PID=$!
RUST_LOG=warn taskset -c 0 "$B_BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$B" >"$WORK/b.out" 2>&1 & PIDS+=($!); B_PID=$!
wait_port "$UP"; wait_port "$NGX"; wait_port "$A" "$WORK/a.out"; wait_port "$B" "$WORK/b.out"
NGX_MASTER=$(pgrep -f "nginx -p $WORK/proxy" | head -1)
NGX_PIDS="$NGX_MASTER $(pgrep -P "$NGX_MASTER" | tr '\n' ' ')"

ticks() { # pid...: CPU clock ticks used so far, all threads
    local t=0
    for p in "$@"; do
        for s in /proc/"$p"/task/*/stat; do
            [ -r "$s" ] && t=$((t + $(awk '{print $14 + $15}' "$s")))
        done
    done
    echo "$t"
}
measure() { # url pids... -> "cpu_us_per_request req_per_s"
    local url=$1 before after out n
    shift
    before=$(ticks "$@")
    out=$(taskset -c 1 wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" "$url")
    after=$(ticks "$@")
    if echo "$out" | grep -q "Non-2xx"; then
        echo "non-2xx answers from $url" >&2
        exit 1
    fi
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    python3 -c "print(f'{($after - $before) / $(getconf CLK_TCK) * 1e6 / $n:.2f} {$n / $SECONDS_PER_RUN:.0f}')"
}

for u in "http://127.0.0.1:$NGX/x" "http://127.0.0.1:$A$ROUTE" "http://127.0.0.1:$B$ROUTE"; do
    taskset -c 1 wrk -t1 -c32 -d2s "$u" >/dev/null
done
ROWS=()
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="n a b"; else order="b a n"; fi
    declare -A got=()
    for x in $order; do
        case $x in
            n) got[n]=$(measure "http://127.0.0.1:$NGX/x" $NGX_PIDS) ;;
            a) got[a]=$(measure "http://127.0.0.1:$A$ROUTE" "$A_PID") ;;
            b) got[b]=$(measure "http://127.0.0.1:$B$ROUTE" "$B_PID") ;;
        esac
    done
    echo "round $r: nginx ${got[n]} | A ${got[a]} | B ${got[b]}  (CPU µs/request, req/s)" >&2
    ROWS+=("${got[n]} ${got[a]} ${got[b]}")
done
printf '%s\n' "${ROWS[@]}" | python3 -c '
import statistics as st, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
nc, nr, ac, ar, bc, br = zip(*rows)
med = st.median
print(f"rounds: {len(rows)}")
print("| build | CPU µs/request | req/s ÷ nginx (median of per-round ratios) |")
print("|---|---|---|")
print(f"| nginx | {med(nc):.2f} | 1.00 |")
print(f"| A | {med(ac):.2f} | {med(a / n for a, n in zip(ar, nr)):.3f} |")
print(f"| B | {med(bc):.2f} | {med(b / n for b, n in zip(br, nr)):.3f} |")
print(f"B ÷ A CPU per request, median of per-round ratios: {med(b / a for a, b in zip(ac, bc)):.3f}")
'
