#!/usr/bin/env bash
# "Transforms and cache" benchmark: requests/s of cache hits against the same
# route uncached (a `mock`, an `http` upstream and a function: the `hello`
# example on the local backend), and the cost of rendering a response
# template (JSON → HTML with inheritance) per request. One more row is the
# ceiling for the `mock` comparison: nginx answering the same body with a
# static `return 200` on CPU 0 (no cache, no logging), the cheapest answer a
# tuned server gives on this machine, which no cache hit can beat.
#
# Pinning (2-core machine): lambdagate (and its function processes) or the
# static nginx on CPU 0; wrk and the upstream (nginx returning a fixed JSON
# body) on CPU 1. Loopback only; every run is bounded
# by DURATION. Rounds are interleaved; medians are reported.
#
# Usage: bench/transforms-cache.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
#        bench/transforms-cache.sh phases [REQUESTS]
#
# `phases` counts instructions instead (valgrind's callgrind, deterministic
# enough for a shared machine): the gateway runs under callgrind, REQUESTS
# sequential keep-alive requests go to each route after a warm-up, and the
# script prints instructions per request for each route and per pipeline
# phase (a phase's own share: its inclusive count minus the next phase's).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=wrk
if [ "${1:-}" = phases ]; then
    MODE=phases
    REQUESTS=${2:-2000}
fi
DURATION=${1:-8}
CONNS=${2:-32}
ROUNDS=${3:-3}

. bench/lib.sh
if ! need nginx || ! need wrk || { [ "$MODE" = phases ] && ! need valgrind; }; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk valgrind >/dev/null
fi
if [ "$MODE" = phases ]; then
    # Symbols with line tables, so phases can be told apart.
    export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
fi
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate


UP_PORT=$(free_port); GW_PORT=$(free_port)
BODY='{"name":"Desk lamp <LED>","price":39.5,"tags":["home","light","led"],"stock":12}'

mkdir -p "$WORK/up/logs"
cat > "$WORK/up/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/up/nginx.pid;
error_log $WORK/up/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/up;
    proxy_temp_path $WORK/up;
    fastcgi_temp_path $WORK/up;
    uwsgi_temp_path $WORK/up;
    scgi_temp_path $WORK/up;
    server { listen 127.0.0.1:$UP_PORT; location / { default_type application/json; return 200 '$BODY'; } }
}
CONF
taskset -c 1 nginx -p "$WORK/up" -c "$WORK/up/nginx.conf" & PIDS+=($!)
# The ceiling: the same fixed answer from nginx on the gateway's CPU.
STATIC_PORT=$(free_port)
mkdir -p "$WORK/static/logs"
sed -e "s#$WORK/up#$WORK/static#g" -e "s/listen 127.0.0.1:$UP_PORT;/listen 127.0.0.1:$STATIC_PORT;/" \
    "$WORK/up/nginx.conf" >"$WORK/static/nginx.conf"
if [ "$MODE" = wrk ]; then
    taskset -c 0 nginx -p "$WORK/static" -c "$WORK/static/nginx.conf" & PIDS+=($!)
fi
hello_function

mkdir -p "$WORK/templates"
cat > "$WORK/templates/base.html" <<'HTML'
<!doctype html><html><head><title>{% block title %}{% endblock %}</title></head>
<body>{% block content %}{% endblock %}</body></html>
HTML
cat > "$WORK/templates/item.html" <<'HTML'
{% extends "base.html" %}
{% block title %}{{ body.name }}{% endblock %}
{% block content %}<h1>{{ body.name }}</h1><p>{{ body.price }} EUR, {{ body.stock }} in stock</p>
<ul>{% for t in body.tags %}<li>{{ t }}</li>{% endfor %}</ul>{% endblock %}
HTML

cat > "$WORK/routes.toml" <<TOML
[backends.up]
kind = "http"
url = "http://127.0.0.1:$UP_PORT"

[[routes]]
method = "GET"
path = "/mock/{id}"
mock = { status = 200, body = '$BODY', headers = { content-type = "application/json" } }

[[routes]]
method = "GET"
path = "/mock-cached/{id}"
mock = { status = 200, body = '$BODY', headers = { content-type = "application/json" } }
cache = { ttl = "3600s", key = ["path.id"] }

$HELLO_TOML

[[routes]]
method = "GET"
path = "/fn/{id}"
function = "hello"

[[routes]]
method = "GET"
path = "/fn-cached/{id}"
function = "hello"
cache = { ttl = "3600s", key = ["path.id"] }

[[routes]]
method = "GET"
path = "/http/{id}"
backend = "up"

[[routes]]
method = "GET"
path = "/http-cached/{id}"
backend = "up"
cache = { ttl = "3600s", key = ["path.id"] }

[[routes]]
method = "GET"
path = "/page/{id}"
mock = { status = 200, body = '$BODY', headers = { content-type = "application/json" } }
response = { template = "templates/item.html" }
TOML

if [ "$MODE" = phases ]; then
    RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$WORK/cg.out" "$BIN" serve --config "$WORK/routes.toml" \
        --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.out" 2>&1 & VG=$!; PIDS+=($VG)
    wait_port "$GW_PORT" "$WORK/gw.out"
    drive() { # path count: sequential requests on one keep-alive connection
        python3 - "$GW_PORT" "$1" "$2" <<'PY'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for _ in range(int(sys.argv[3])):
    c.request("GET", sys.argv[2])
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
    }
    ROUTES="/mock/1 /mock-cached/1 /page/1"
    for r in $ROUTES; do drive "$r" 200; done
    for r in $ROUTES; do
        callgrind_control -z "$VG" >/dev/null 2>&1
        callgrind_control -i on "$VG" >/dev/null 2>&1
        drive "$r" "$REQUESTS"
        callgrind_control -i off "$VG" >/dev/null 2>&1
        callgrind_control --dump="$r" "$VG" >/dev/null 2>&1
    done
    kill "$VG"; wait "$VG" 2>/dev/null || true
    python3 - "$REQUESTS" "$WORK"/cg.out.[0-9] <<'PY'
import re, subprocess, sys
n, files = int(sys.argv[1]), sys.argv[2:]
# Each phase's async fn, outermost first; its future's inclusive count.
PHASES = [
    ("hyper, tokio, server (around the stack)", None),
    ("request id & access log, metrics", "telemetry::request_id_and_log"),
    ("limits", "limits::enforce"),
    ("OpenAPI path check", "openapi::serve_spec"),
    ("route match", "routing::route_match"),
    ("CORS", "cors::cors"),
    ("auth", "auth::authenticate"),
    ("API key", "auth::api_key::require_key"),
    ("identity for the log", "telemetry::note_identity"),
    ("throttle", "throttle::enforce"),
    ("validation", "validation::validate"),
    ("cache", "cache::lookup"),
    ("response mapping", "transform::render"),
    ("integration", "integration::integrate"),
]
def phases(f):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", f],
                         capture_output=True, text=True).stdout
    route = re.search(r"^Trigger: dump (\S+)", out, re.M).group(1)
    total = int(re.search(r"^\s*([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", out, re.M).group(1).replace(",", ""))
    rows = [(int(m.group(1).replace(",", "")), m.group(2)) for m in
            re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+(\S.*?)(?: \[[^\]]*\])?$", out, re.M)]
    def inclusive(name):
        pat = re.compile(r":lambdagate::" + re.escape(name) + r"::\{\{closure\}\}(?:'\d+)?$")
        return max([c for c, fn in rows if pat.search(fn)] or [0])
    incl = [total if p is None else inclusive(p) for _, p in PHASES]
    own = []
    for i, v in enumerate(incl):
        inner = next((w for w in incl[i + 1:] if w), 0)
        own.append(v - inner if v else None)
    return route, total, own
cols = [phases(f) for f in sorted(files)]
print("Instructions per request (thousands):\n")
print("| phase | " + " | ".join(c[0] for c in cols) + " |")
print("|---|" + "---|" * len(cols))
for i, (name, _) in enumerate(PHASES):
    print(f"| {name} | " + " | ".join("—" if c[2][i] is None else f"{c[2][i] / n / 1000:.1f}" for c in cols) + " |")
print("| **total** | " + " | ".join(f"**{c[1] / n / 1000:.1f}**" for c in cols) + " |")
t = {c[0]: c[1] for c in cols}
if "/mock/1" in t and "/mock-cached/1" in t:
    print(f"\n- uncached mock ÷ cache hit, instructions: **{t['/mock/1'] / t['/mock-cached/1']:.2f}×**")
if "/mock/1" in t and "/page/1" in t:
    print(f"- template rendering: {(t['/page/1'] - t['/mock/1']) / n / 1000:.1f}k instructions per request over the plain mock")
PY
    exit 0
fi

RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.out" 2>&1 & PIDS+=($!)
wait_port "$UP_PORT"; wait_port "$GW_PORT" "$WORK/gw.out"

run() { # url -> "rps p50_ms"
    local out
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1")
    python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    if not m:
        sys.exit(f"unreadable latency {v!r} in wrk output:\n{text}")
    n, unit = m.groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"^\s*50%\s+(\S+)", text, re.M).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit(f"non-2xx responses: {errors.group(1)}")
print(f"{rps:.0f} {p50:.3f}")
PY
}

G="http://127.0.0.1:$GW_PORT"
# The page must render, and cached routes must hit.
curl -sf "$G/page/1" | grep -q "<li>led</li>" || { echo "template did not render" >&2; exit 1; }
curl -sf -o /dev/null "$G/mock-cached/1"; curl -sf -o /dev/null "$G/http-cached/1"
curl -sf -D - -o /dev/null "$G/http-cached/1" | grep -qi "x-cache: Hit" || { echo "no cache hit" >&2; exit 1; }
curl -sf -o /dev/null "$G/fn-cached/1"
curl -sf -D - -o /dev/null "$G/fn-cached/1" | grep -qi "x-cache: Hit" || { echo "no function cache hit" >&2; exit 1; }
wait_port "$STATIC_PORT"

LABELS="mock mock_cached http http_cached page fn fn_cached static"
url_of() {
    case $1 in
        mock) echo "$G/mock/1" ;; mock_cached) echo "$G/mock-cached/1" ;;
        http) echo "$G/http/1" ;; http_cached) echo "$G/http-cached/1" ;;
        page) echo "$G/page/1" ;;
        fn) echo "$G/fn/1" ;; fn_cached) echo "$G/fn-cached/1" ;;
        static) echo "http://127.0.0.1:$STATIC_PORT/mock/1" ;;
    esac
}
for l in $LABELS; do taskset -c 1 wrk -t1 -c"$CONNS" -d2s "$(url_of "$l")" >/dev/null; done

declare -A RPS P50
for r in $(seq "$ROUNDS"); do
    for l in $LABELS; do
        read -r rps p50 < <(run "$(url_of "$l")")
        RPS[$l]+="$rps "; P50[$l]+="$p50 "
        echo "round $r $l: $rps req/s, p50 $p50 ms" >&2
    done
done

python3 - "${RPS[mock]}" "${RPS[mock_cached]}" "${RPS[http]}" "${RPS[http_cached]}" "${RPS[page]}" \
    "${RPS[fn]}" "${RPS[fn_cached]}" "${RPS[static]}" \
    "${P50[mock]}" "${P50[mock_cached]}" "${P50[http]}" "${P50[http_cached]}" "${P50[page]}" \
    "${P50[fn]}" "${P50[fn_cached]}" "${P50[static]}" <<'PY'
import statistics, sys
rps = [statistics.median(map(float, a.split())) for a in sys.argv[1:9]]
p50 = [statistics.median(map(float, a.split())) for a in sys.argv[9:17]]
mock, mock_c, http, http_c, page, fn, fn_c, static = rps
print("| route | requests/s (median) | p50 ms |")
print("|---|---|---|")
for name, r, p in zip(["mock, uncached", "mock, cache hit", "http upstream, uncached", "http upstream, cache hit",
                       "mock + HTML template", "function (local backend), uncached", "function, cache hit",
                       "ceiling: nginx static `return 200` on CPU 0"], rps, p50):
    print(f"| {name} | {r:.0f} | {p:.3f} |")
print()
print(f"- cache hit ÷ uncached, mock backend: **{mock_c / mock:.2f}×** "
      f"(ceiling: nginx's static answer ÷ the gateway's mock = {static / mock:.2f}×)")
print(f"- cache hit ÷ uncached, http upstream: **{http_c / http:.2f}×**")
print(f"- cache hit ÷ uncached, function: **{fn_c / fn:.2f}×**")
print(f"- template rendering: {1e6 / page - 1e6 / mock:.1f} µs of gateway CPU per request "
      f"({page / mock:.2f}× the plain mock's requests/s)")
PY
