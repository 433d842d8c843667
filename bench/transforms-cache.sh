#!/usr/bin/env bash
# "Transforms and cache" benchmark: requests/s of cache hits against the same
# route uncached (a `mock` and an `http` upstream), and the cost of rendering
# a response template (JSON → HTML with inheritance) per request.
#
# Pinning (2-core machine): lambdagate on CPU 0; wrk and the upstream (nginx
# returning a fixed JSON body) on CPU 1. Loopback only; every run is bounded
# by DURATION. Rounds are interleaved; medians are reported.
#
# Usage: bench/transforms-cache.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-8}
CONNS=${2:-32}
ROUNDS=${3:-3}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.out" 2>&1 & PIDS+=($!)

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; cat "$WORK/gw.out" >&2; exit 1; }
wait_port "$UP_PORT"; wait_port "$GW_PORT"

run() { # url -> "rps p50_ms"
    local out
    out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1")
    python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s|m)$", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"50%\s+(\S+)", text).group(1))
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

LABELS="mock mock_cached http http_cached page"
url_of() {
    case $1 in
        mock) echo "$G/mock/1" ;; mock_cached) echo "$G/mock-cached/1" ;;
        http) echo "$G/http/1" ;; http_cached) echo "$G/http-cached/1" ;;
        page) echo "$G/page/1" ;;
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
    "${P50[mock]}" "${P50[mock_cached]}" "${P50[http]}" "${P50[http_cached]}" "${P50[page]}" <<'PY'
import statistics, sys
rps = [statistics.median(map(float, a.split())) for a in sys.argv[1:6]]
p50 = [statistics.median(map(float, a.split())) for a in sys.argv[6:11]]
mock, mock_c, http, http_c, page = rps
print("| route | requests/s (median) | p50 ms |")
print("|---|---|---|")
for name, r, p in zip(["mock, uncached", "mock, cache hit", "http upstream, uncached", "http upstream, cache hit", "mock + HTML template"], rps, p50):
    print(f"| {name} | {r:.0f} | {p:.3f} |")
print()
print(f"- cache hit ÷ uncached, mock backend: **{mock_c / mock:.2f}×**")
print(f"- cache hit ÷ uncached, http upstream: **{http_c / http:.2f}×**")
print(f"- template rendering: {1e6 / page - 1e6 / mock:.1f} µs of gateway CPU per request "
      f"({page / mock:.2f}× the plain mock's requests/s)")
PY
