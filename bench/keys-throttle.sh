#!/usr/bin/env bash
# API keys and throttling, as ratios measured in the same run (loopback only,
# every step bounded by DURATION; ROUNDS interleaved rounds, each in the
# reverse order of the one before; medians; a ratio is the median of the
# rounds' own ratios):
#  1. req/s of a route with api_key = true + a plan throttle (local limits)
#     ÷ the same route without either, for a `mock` route, an `http` route
#     (nginx upstream) and a function route (the `hello` example function on
#     the local backend, the gateway's embedded default);
#  2. the same with [cluster] Redis throttling (mock and http routes);
#  3. gateway CPU time per refused (429) request ÷ per accepted request:
#     refusals by a route throttle and by a key's plan throttle, against an
#     accepted `mock` request (the cheapest possible), an accepted `http`
#     request (a proxied request to nginx) and an accepted function request
#     (an invocation; the gateway process's CPU only, not the function's),
#     each split into user and kernel time; and, as a reference measured
#     the same way on the same CPUs, nginx's own CPU per `return 429` ÷ per
#     request it proxies to the same upstream, without and with an access
#     log;
#  4. requests accepted when clients send 2× a route's limit, ÷ what the limit
#     allows over the same window (burst + rate × the seconds from the first
#     request sent to the last).
# Every request carries the same x-api-key header, so baselines parse the
# same bytes and only the key check and throttling differ.
# The gateway runs with its default logging (one access-log line per
# request, to /dev/null), pinned to CPU 0 with its function processes; wrk,
# nginx and Python clients run on CPU 1. SQLite store (a temp file); Redis on 127.0.0.1:6379 for step 2.
#
# Usage: bench/keys-throttle.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
#        KEYS_CALLGRIND=N bench/keys-throttle.sh
# With KEYS_CALLGRIND=N the local-limits gateway runs under valgrind's
# callgrind instead (RUST_LOG=warn unless RUST_LOG is set: RUST_LOG=info
# includes the access-log line; warn is the proxy bench's mode) and the
# script prints instructions per request for an open `mock` request, a keyed
# `mock` request (key + plan throttle), a 429 from a route throttle, a 429
# from a key's plan throttle and an accepted `http` request: N sequential
# keep-alive GETs each, after a warm-up (deterministic, unlike req/s on a
# shared machine). Profiles stay in target/callgrind/.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
CONNS=${2:-32}
ROUNDS=${3:-3}
CALLGRIND=${KEYS_CALLGRIND:-}
. bench/lib.sh
if ! need nginx || ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
BIN=${LAMBDAGATE_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin lambdagate
    BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate
fi

cp "$BIN" "$WORK/lambdagate"; BIN=$WORK/lambdagate
hello_function
PREFIX="lgbench_$$"
UP_PORT=$(free_port)

nginx_conf nginx "server { listen 127.0.0.1:$UP_PORT; location / { default_type text/plain; return 200 'ok'; } }"
taskset -c 1 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & PIDS+=($!)

# The reference for step 3: nginx on the gateway's CPU answering `return 429`
# itself and proxying to the upstream above over kept-alive connections, so
# the run also measures what a refusal costs against a proxied request in a
# server with no pipeline, without an access log and with one (buffered, to
# /dev/null, as the gateway's): the kernel's share of both (one socket
# exchange against two) is the same for any server.
REF_PORT=$(free_port)
nginx_conf ref "upstream up { server 127.0.0.1:$UP_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$REF_PORT;
        location /refuse { default_type application/json; return 429 '{\"message\":\"Too Many Requests\"}'; }
        location /proxy { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
        location /logged/refuse { access_log /dev/null combined buffer=64k flush=1s; default_type application/json; return 429 '{\"message\":\"Too Many Requests\"}'; }
        location /logged/proxy { access_log /dev/null combined buffer=64k flush=1s; proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"

write_routes() { # $1 = file, $2 = extra top-level tables
    cat > "$1" <<TOML
$2
[store]
kind = "sqlite"
path = "keys.db"

[backends.up]
kind = "http"
url = "http://127.0.0.1:$UP_PORT"

$HELLO_TOML

[plans.bench]
throttle = { rate = 1000000000, burst = 1000000 }

[plans.tight]
throttle = { rate = 1, burst = 1 }

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
path = "/up/open"
backend = "up"

[[routes]]
method = "GET"
path = "/up/keyed"
api_key = true
backend = "up"

[[routes]]
method = "GET"
path = "/fn/open"
function = "hello"

[[routes]]
method = "GET"
path = "/fn/keyed"
api_key = true
function = "hello"

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
new_key() { # $1 = name, $2 = plan
    "$BIN" --config "$WORK/local.toml" keys create --name "$1" --plan "$2" --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'
}
KEY=$(new_key bench bench)
TIGHT_KEY=$(new_key tight tight)

start() { # $1 = config; prints "pid port"
    local out="$WORK/out.$RANDOM"
    taskset -c 0 "$BIN" serve --config "$1" --listen 127.0.0.1:0 --no-watch >"$out" 2>/dev/null &
    local pid=$!
    for _ in $(seq 300); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
    local port; port=$(sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$out" | head -1)
    echo "$pid $port"
}
wrk_run() { # $1 = url, extra args; prints "requests req/s"
    local url=$1; shift
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" "$url" |
        awk '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {print n, r}'
}
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; } # user, system

if [ -n "$CALLGRIND" ]; then
    need valgrind || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
    GW_PORT=$(free_port)
    RUST_LOG=${RUST_LOG:-warn} taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" \
        "$BIN" serve --config "$WORK/local.toml" --listen "127.0.0.1:$GW_PORT" --no-watch >"$WORK/gw.out" 2>&1 & PIDS+=($!)
    GW_PID=${PIDS[-1]}
    for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$GW_PORT) 2>/dev/null && break; sleep 0.1; done
    send() { # path key expected_status count: sequential keep-alive GETs
        taskset -c 1 python3 - "$GW_PORT" "$@" <<'PY'
import http.client, sys
port, path, key, want, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
other = 0
for _ in range(n):
    c.request("GET", path, headers={"x-api-key": key})
    r = c.getresponse()
    r.read()
    if r.status != want:
        other += 1
# A 1/s throttle refills while valgrind runs: a few 200s among the 429s.
assert other <= max(n // 100, 5), f"{path}: {other} of {n} not {want}"
PY
    }
    mkdir -p target/callgrind
    # name path key status
    while read -r name path key status; do
        send "$path" "$key" "$status" 200
        callgrind_control -z "$GW_PID" >/dev/null 2>&1
        send "$path" "$key" "$status" "$CALLGRIND"
        rm -f "$WORK"/cg.*.*
        callgrind_control -d "$GW_PID" >/dev/null 2>&1
        dump=
        for _ in $(seq 100); do
            dump=$(ls "$WORK"/cg.*.* 2>/dev/null | head -1)
            [ -n "$dump" ] && grep -q '^totals:' "$dump" && break
            sleep 0.2
        done
        ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
        mv "$dump" "target/callgrind/keys_$name.out"
        echo "$name: $((ir / CALLGRIND)) instructions per request"
    done <<ROUTES
open_mock /open $KEY 200
keyed_mock /keyed $KEY 200
429_route /tight $KEY 429
429_key /keyed $TIGHT_KEY 429
ok_http /up/open $KEY 200
ROUTES
    exit 0
fi

taskset -c 0 nginx -p "$WORK/ref" -c "$WORK/ref/nginx.conf" & PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/ref/nginx.pid" ] && pgrep -P "$(cat "$WORK/ref/nginx.pid")" >/dev/null && break; sleep 0.1; done
REF_PID=$(pgrep -P "$(cat "$WORK/ref/nginx.pid")" | head -1)
read -r LPID LPORT < <(start "$WORK/local.toml"); PIDS+=("$LPID")
read -r CPID CPORT < <(start "$WORK/cluster.toml"); PIDS+=("$CPID")
L="http://127.0.0.1:$LPORT"; C="http://127.0.0.1:$CPORT"

# One line per measurement: "name value" (req/s, or µs of gateway CPU per
# request), collected over the rounds.
RESULTS=$WORK/results
rate() { # name url [wrk args]: req/s
    local name=$1; shift
    read -r _ r < <(wrk_run "$@")
    echo "$name $r" >>"$RESULTS"
}
cpu() { # name pid url [wrk args]: CPU µs per request (all statuses), and its user and kernel parts
    local name=$1 pid=$2; shift 2
    local u0 s0 u1 s1 n
    read -r u0 s0 < <(cpu_ticks "$pid"); read -r n _ < <(wrk_run "$@"); read -r u1 s1 < <(cpu_ticks "$pid")
    python3 - >>"$RESULTS" <<PY
per = 1e6 / $(getconf CLK_TCK) / $n
print("$name", ($u1 - $u0 + $s1 - $s0) * per)
print("${name}_user", ($u1 - $u0) * per)
print("${name}_sys", ($s1 - $s0) * per)
PY
}
# Each round runs its measurements in order and the next round in reverse
# (A B … B A): whatever drifts over a round (the VM's neighbours, caches
# warmed by the step before) falls on both sides of every pair alike.
LOCAL_STEPS=(
    "rate open $L/open $KEY"
    "rate keyed $L/keyed $KEY"
    "rate up_open $L/up/open $KEY"
    "rate up_keyed $L/up/keyed $KEY"
    "rate fn_open $L/fn/open $KEY"
    "rate fn_keyed $L/fn/keyed $KEY"
    "cpu cpu_ok_fn $LPID $L/fn/open $KEY"
    "cpu cpu_ok_mock $LPID $L/open $KEY"
    "cpu cpu_ok_http $LPID $L/up/open $KEY"
    "cpu cpu_429_route $LPID $L/tight $KEY"
    "cpu cpu_429_key $LPID $L/keyed $TIGHT_KEY"
    "cpu ref_ok_http $REF_PID http://127.0.0.1:$REF_PORT/proxy $KEY"
    "cpu ref_429 $REF_PID http://127.0.0.1:$REF_PORT/refuse $KEY"
    "cpu ref_log_ok_http $REF_PID http://127.0.0.1:$REF_PORT/logged/proxy $KEY"
    "cpu ref_log_429 $REF_PID http://127.0.0.1:$REF_PORT/logged/refuse $KEY"
)
CLUSTER_STEPS=(
    "rate c_open $C/open $KEY"
    "rate c_keyed $C/keyed $KEY"
    "rate c_up_open $C/up/open $KEY"
    "rate c_up_keyed $C/up/keyed $KEY"
)
steps() { # round, steps…: runs them, reversed on even rounds; a step's
    # last word is the API key it sends
    local round=$1; shift
    local list=("$@") i step
    for i in "${!list[@]}"; do
        [ $((round % 2)) -eq 0 ] && step=${list[$((${#list[@]} - 1 - i))]} || step=${list[$i]}
        set -- $step
        "${@:1:$(($# - 1))}" -H "x-api-key: ${!#}"
    done
}
for round in $(seq "$ROUNDS"); do
    kill -STOP "$CPID"  # keep the idle node off the CPU
    steps "$round" "${LOCAL_STEPS[@]}"
    kill -CONT "$CPID"; kill -STOP "$LPID"
    steps "$round" "${CLUSTER_STEPS[@]}"
    kill -CONT "$LPID"
    echo "round $round done" >&2
done

# 2× the limit: 400 req/s offered to a 200 req/s route for DURATION seconds.
kill -STOP "$CPID"
accepted=$(python3 - "$LPORT" "$DURATION" <<'PY'
import http.client, sys, threading, time
port, dur = int(sys.argv[1]), float(sys.argv[2])
offered, threads = 400.0, 8
ok = [0] * threads
sent = [0] * threads
last = [0.0] * threads
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
        last[i] = max(time.monotonic(), start)
        c.request("GET", "/limited"); r = c.getresponse(); r.read()
        if r.status == 200:
            ok[i] += 1
        n += 1
    sent[i] = n
ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
# Accepted, sent, and the seconds from the first request sent to the last
# (clients that fall behind send late: the limit is over the real window).
print(sum(ok), sum(sent), max(last) - start)
PY
)
kill -CONT "$CPID"
redis-cli --scan --pattern "$PREFIX:*" 2>/dev/null | xargs -r redis-cli del >/dev/null 2>&1 || true

python3 - "$RESULTS" "$accepted" "$ROUNDS" <<'PY'
import statistics, sys
vals = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    vals.setdefault(k, []).append(float(v))
m = {k: statistics.median(v) for k, v in vals.items()}
acc, sent, window = (float(x) for x in sys.argv[2].split())
rounds = sys.argv[3]
print(f"medians of {rounds} rounds; a ratio is the median of the rounds' own ratios")
print("(each round measures both sides within seconds of each other), [lowest–highest]")
def per_round(num, den):
    r = sorted(a / b for a, b in zip(vals[num], vals[den]))
    return statistics.median(r), r[0], r[-1]
def ratio(label, num, den, target, unit="req/s"):
    q, lo, hi = per_round(num, den)
    print(f"{label}: {m[num]:.1f} / {m[den]:.1f} {unit} = {q:.3f} [{lo:.3f}–{hi:.3f}] ({target})")
ratio("mock route, key + plan throttle ÷ without", "keyed", "open", "target >= 0.90")
ratio("http route, key + plan throttle ÷ without", "up_keyed", "up_open", "target >= 0.90")
ratio("function route, key + plan throttle ÷ without", "fn_keyed", "fn_open", "target >= 0.90")
ratio("cluster (Redis), mock route, key + plan throttle ÷ without", "c_keyed", "c_open", "target >= 0.75")
ratio("cluster (Redis), http route, key + plan throttle ÷ without", "c_up_keyed", "c_up_open", "target >= 0.75")
for refused, what in (("cpu_429_route", "route throttle"), ("cpu_429_key", "key plan throttle")):
    for ok, kind in (("cpu_ok_mock", "accepted mock request"), ("cpu_ok_http", "accepted http request"), ("cpu_ok_fn", "accepted function request")):
        ratio(f"CPU per 429 ({what}) ÷ per {kind}", refused, ok, "target <= 0.5", "us")
ratio("reference: nginx's own CPU per `return 429` ÷ per request it proxies to the same upstream", "ref_429", "ref_ok_http", "the same target, for comparison", "us")
ratio("reference: the same with nginx's access log on (buffered, to /dev/null)", "ref_log_429", "ref_log_ok_http", "the same target, for comparison", "us")
for name, label in (("cpu_429_route", "gateway, 429 (route throttle)"), ("cpu_ok_mock", "gateway, accepted mock"),
                    ("cpu_ok_http", "gateway, accepted http"), ("cpu_ok_fn", "gateway, accepted function request"),
                    ("ref_429", "nginx, return 429"), ("ref_ok_http", "nginx, proxied"),
                    ("ref_log_429", "nginx with access log, return 429"), ("ref_log_ok_http", "nginx with access log, proxied")):
    print(f"  CPU split, {label}: user {m[name + '_user']:.2f} + kernel {m[name + '_sys']:.2f} us per request")
limit = 20 + 200 * window
print(f"2x the limit: {acc:.0f} accepted of {sent:.0f} sent in {window:.2f} s ({sent / window:.0f} req/s offered), "
      f"burst + rate x window allows {limit:.0f} -> {acc/limit:.3f} (target 1 +- 0.02)")
PY
