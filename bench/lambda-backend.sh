#!/usr/bin/env bash
# The `lambda` backend against an `http` route, in one run, on the same
# fake: nginx answering Lambda's Invoke path with a fixed proxy response
# (and `200 ok` elsewhere), over plain HTTP and over TLS (a throwaway CA the
# gateway trusts through SSL_CERT_FILE). Rows: req/s of each route ÷ the
# `http` route's, p99 ÷ the `http` route's p99.
#
# Pinning (2-core machine): the gateway on CPU 0, nginx and wrk on CPU 1.
# Rounds alternate their order. Loopback only.
#
# Usage: bench/lambda-backend.sh [SECONDS] [ROUNDS]
#        LAMBDAGATE_BIN=path/to/lambdagate bench/lambda-backend.sh ...
#        BASELINE_BIN=path/to/other/lambdagate also measures that build's
#        lambda route in the same rounds (e.g. a build before a change).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-4}
ROUNDS=${2:-8}

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

# A throwaway CA and a certificate for localhost it signs.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=lambdagate-bench-ca -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
    -keyout "$WORK/key.pem" -out "$WORK/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n' > "$WORK/leaf.ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 1 -extfile "$WORK/leaf.ext" -out "$WORK/cert.pem" 2>/dev/null

FAKE=$(free_port); FAKE_TLS=$(free_port)
INVOKE='location ~ ^/2015-03-31/functions/[^/]+/invocations$ {
        default_type application/json;
        return 200 "{\"statusCode\":200,\"headers\":{\"content-type\":\"text/plain\"},\"body\":\"ok\"}";
    }
    location / { default_type text/plain; return 200 "ok"; }'
nginx_conf fake "server { listen 127.0.0.1:$FAKE; keepalive_requests 1000000; $INVOKE }
    server { listen 127.0.0.1:$FAKE_TLS ssl http2; keepalive_requests 1000000;
        ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem; $INVOKE }"
taskset -c 1 nginx -p "$WORK/fake" -c "$WORK/fake/nginx.conf" & PIDS+=($!)

cat > "$WORK/routes.toml" <<TOML
[backends.fake]
kind = "lambda"
region = "us-east-1"
endpoint_url = "http://127.0.0.1:$FAKE"

[backends.fake_tls]
kind = "lambda"
region = "us-east-1"
endpoint_url = "https://localhost:$FAKE_TLS"

[backends.up]
kind = "http"
url = "http://127.0.0.1:$FAKE"

[functions.plain]
name = "hello"
backend = "fake"

[functions.tls]
name = "hello"
backend = "fake_tls"

[[routes]]
method = "GET"
path = "/lambda"
function = "plain"

[[routes]]
method = "GET"
path = "/lambda-tls"
function = "tls"

[[routes]]
method = "GET"
path = "/http/{proxy+}"
backend = "up"
TOML

export AWS_ACCESS_KEY_ID=AKIDBENCH0000000000 AWS_SECRET_ACCESS_KEY=bench-secret AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=$WORK/none AWS_SHARED_CREDENTIALS_FILE=$WORK/none SSL_CERT_FILE=$WORK/ca.pem
GW=$(free_port)
RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$GW" >"$WORK/gw.out" 2>&1 & PIDS+=($!)
wait_port "$GW" "$WORK/gw.out"
wait_port "$FAKE"
LABELS="http lambda lambda-tls"
if [ -n "${BASELINE_BIN:-}" ]; then
    BASE=$(free_port)
    RUST_LOG=warn taskset -c 0 "$BASELINE_BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$BASE" >"$WORK/base.out" 2>&1 & PIDS+=($!)
    wait_port "$BASE" "$WORK/base.out"
    LABELS="$LABELS baseline"
fi

url() {
    case $1 in
        http) echo "http://127.0.0.1:$GW/http/x" ;;
        lambda) echo "http://127.0.0.1:$GW/lambda" ;;
        lambda-tls) echo "http://127.0.0.1:$GW/lambda-tls" ;;
        baseline) echo "http://127.0.0.1:$BASE/lambda" ;;
    esac
}
run() { # label -> "req/s p99_ms"
    local out
    out=$(taskset -c 1 wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" --latency "$(url "$1")")
    if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
        echo "errors on $1:" >&2; echo "$out" >&2; tail -5 "$WORK/gw.out" >&2; [ -f "$WORK/base.out" ] && tail -5 "$WORK/base.out" >&2; exit 1
    fi
    echo "$out" | awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        /Requests\/sec/ {r = $2} / 99%/ {p = ms($2)} END {print r, p}'
}
for label in $LABELS; do run "$label" >/dev/null; done
: > "$WORK/rows"
for r in $(seq "$ROUNDS"); do
    order=$LABELS
    if [ $((r % 2)) = 0 ]; then order=$(echo "$LABELS" | tr ' ' '\n' | tac | tr '\n' ' '); fi
    line="round $r:"
    declare -A got=()
    for label in $order; do got[$label]=$(run "$label"); line="$line $label ${got[$label]}"; done
    echo "$line" >&2
    row=""
    for label in $LABELS; do row="$row ${got[$label]}"; done
    echo "$row" >> "$WORK/rows"
done
python3 - "$LABELS" "$WORK/rows" <<'PY'
import statistics as st, sys
labels = sys.argv[1].split()
rows = [list(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
col = lambda r, name, i: r[2 * labels.index(name) + i]
med = lambda xs: st.median(list(xs))
print(f"rounds: {len(rows)} (median of per-round ratios; req/s and p99 of wrk -c32)")
for name in labels:
    rps = med(col(r, name, 0) for r in rows)
    p99 = med(col(r, name, 1) for r in rows)
    print(f"{name:>11}: {rps:9.0f} req/s  p99 {p99:6.2f} ms")
for name in labels[1:]:
    print(f"{name} ÷ http: req/s {med(col(r, name, 0) / col(r, 'http', 0) for r in rows):.3f}"
          f"  p99 {med(col(r, name, 1) / col(r, 'http', 1) for r in rows):.3f}")
PY
