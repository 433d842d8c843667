#!/usr/bin/env bash
# Requests/s of authorized routes ÷ the same route without auth, in one run,
# for three route kinds: a `mock` route (the cheapest request the gateway
# serves, so a fixed auth cost weighs as much as it can), an `http` route
# forwarding to an upstream (nginx returning a fixed small JSON body), and a
# function route (the `hello` example function on the local backend, the
# gateway's embedded default: what a route of a Lambda gateway does), each
# against its own no-auth baseline carrying the same headers. Authorizers:
# JWT RS256 with the verified-token cache and without it
# (`token_cache = false`: a signature check per request), JWT HS256, SigV4,
# and a Lambda authorizer whose result is cached.
#
# Pinning (2-core machine): the gateway and its function processes on CPU 0;
# wrk, the upstream nginx and the helper (JWKS, Lambda Invoke API, only hit
# on cache misses) on CPU 1. Loopback only; every run is bounded by DURATION.
#
# Usage: bench/authorizers.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
#        AUTH_CALLGRIND=N bench/authorizers.sh
# LAMBDAGATE_BIN=path measures that binary instead of building one.
# With AUTH_CALLGRIND=N the gateway runs under valgrind's callgrind instead:
# for every `mock` and `http` route of the wrk run (each authorized route
# after a no-auth baseline of the same kind with the same headers) it sends
# N requests on one keep-alive connection after a warm-up and prints the
# instructions per request (deterministic, unlike req/s on a shared machine;
# valgrind hides SHA-NI/ADX, so crypto counts are those of the portable
# code), then a table of both kinds. The profiles stay in target/callgrind/
# for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
CALLGRIND=${AUTH_CALLGRIND:-}

. bench/lib.sh
if ! need nginx || { [ -z "$CALLGRIND" ] && ! need wrk; }; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null
fi
scripts/setup-test-deps.sh
BIN=${LAMBDAGATE_BIN:-}
if [ -z "$BIN" ]; then
    cargo build --release --quiet --bin lambdagate
    BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate
fi

# A private copy: other checkouts may share the target folder.
cp "$BIN" "$WORK/lambdagate"; BIN=$WORK/lambdagate
hello_function

GW_PORT=$(free_port); HELPER_PORT=$(free_port); UP_PORT=$(free_port)

# The `http` routes' upstream: a fixed small JSON body, access log off.
nginx_conf nginx "server { listen 127.0.0.1:$UP_PORT; location / { default_type application/json; return 200 '{\"ok\":true}'; } }"
taskset -c 1 nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" & PIDS+=($!)

taskset -c 1 .venv/bin/python bench/auth_helper.py "$WORK" "$GW_PORT" "$HELPER_PORT" & PIDS+=($!)
for _ in $(seq 600); do [ -f "$WORK/helper.ready" ] && break; sleep 0.1; done
[ -f "$WORK/helper.ready" ] || { echo "helper did not start" >&2; exit 1; }

# Every route three times: `mock` at /NAME, `http` (to the nginx upstream)
# at /up/NAME, the `hello` function at /fn/NAME.
routes() {
    local name auth
    for name in open rs rsnc hs iam lam; do
        auth=""; [ "$name" = open ] || auth="auth = \"$name\""
        printf '[[routes]]\nmethod = "GET"\npath = "/%s"\nmock = { status = 200, body = "ok", headers = { content-type = "text/plain" } }\n%s\n\n' "$name" "$auth"
        printf '[[routes]]\nmethod = "GET"\npath = "/up/%s"\nbackend = "up"\n%s\n\n' "$name" "$auth"
        printf '[[routes]]\nmethod = "GET"\npath = "/fn/%s"\nfunction = "hello"\n%s\n\n' "$name" "$auth"
    done
}
cat > "$WORK/routes.toml" <<TOML
[stages.dev]
backend = "aws"

[backends.aws]
kind = "lambda"
endpoint_url = "http://127.0.0.1:$HELPER_PORT"

[backends.up]
kind = "http"
url = "http://127.0.0.1:$UP_PORT"

[functions.authz]

$HELLO_TOML

[auth.rs]
kind = "jwt"
issuer = "http://127.0.0.1:$HELPER_PORT"
jwks_url = "http://127.0.0.1:$HELPER_PORT/keys"
audience = ["api"]

[auth.rsnc]
kind = "jwt"
issuer = "http://127.0.0.1:$HELPER_PORT"
jwks_url = "http://127.0.0.1:$HELPER_PORT/keys"
audience = ["api"]
token_cache = false

[auth.hs]
kind = "jwt"
secret_file = "secret"
issuer = "http://127.0.0.1:$HELPER_PORT"
audience = ["api"]
algorithms = ["HS256"]

[auth.iam]
kind = "sigv4"
credentials_file = "credentials.toml"

[auth.lam]
kind = "lambda"
function = "authz"
type = "token"
ttl = "300s"

$(routes)
TOML
AWS_ACCESS_KEY_ID=AKIDBENCHBACKEND AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    RUST_LOG=warn taskset -c 0 ${CALLGRIND:+valgrind --tool=callgrind --callgrind-out-file=$WORK/cg.%p} "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.out" 2>&1 & PIDS+=($!)
GW_PID=$!
wait_port "$UP_PORT"; wait_port "$GW_PORT"

# path:headers_file, each authorized route after the no-auth baseline of its
# kind with the same headers; `mock` routes first, then the same for `http`.
CONFIGS="open:rs.headers rs:rs.headers rsnc:rs.headers open:hs.headers hs:hs.headers open:iam.line iam:iam.line open:lambda.headers lam:lambda.headers
up/open:rs.headers up/rs:rs.headers up/rsnc:rs.headers up/open:hs.headers up/hs:hs.headers up/open:iam_up.line up/iam:iam_up.line up/open:lambda.headers up/lam:lambda.headers"
# The same for the function routes (wrk runs only).
FN_CONFIGS="fn/open:rs.headers fn/rs:rs.headers fn/rsnc:rs.headers fn/open:hs.headers fn/hs:hs.headers fn/open:iam_fn.line fn/iam:iam_fn.line fn/open:lambda.headers fn/lam:lambda.headers"
# The report's rows: name, route, its baseline (for the mock kind; the http
# kind's are the same under /up/ with the http route's signed headers).
ROWS='[
 ["JWT RS256, verified-token cache hit", "rs:rs.headers", "open:rs.headers", ">= 0.90"],
 ["JWT RS256, token_cache = false", "rsnc:rs.headers", "open:rs.headers", ">= 0.55"],
 ["JWT HS256", "hs:hs.headers", "open:hs.headers", ">= 0.90"],
 ["SigV4 (header form)", "iam:iam.line", "open:iam.line", ">= 0.80"],
 ["Lambda authorizer, cached result", "lam:lambda.headers", "open:lambda.headers", ">= 0.90"]
]'

if [ -n "$CALLGRIND" ]; then
    send() { # path headers_file count: sequential keep-alive GETs, all 200
        .venv/bin/python - "$GW_PORT" "$1" "$2" "$3" <<'PY'
import http.client, sys
port, path, hfile, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
h = dict(p.split(":", 1) for p in open(hfile).read().strip().splitlines()[0].split("|"))
h = {k.strip(): v.strip() for k, v in h.items()}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
for _ in range(n):
    c.request("GET", path, headers=h)
    r = c.getresponse()
    body = r.read()
    assert r.status == 200, (r.status, body)
PY
    }
    mkdir -p target/callgrind
    declare -A IR
    for c in $CONFIGS; do
        send "/${c%%:*}" "$WORK/${c#*:}" 20
        callgrind_control -z "$GW_PID" >/dev/null
        send "/${c%%:*}" "$WORK/${c#*:}" "$CALLGRIND"
        callgrind_control -d "$GW_PID" >/dev/null
        sleep 1
        dump=$(ls -t "$WORK"/cg.* | head -1)
        ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
        mv "$dump" "target/callgrind/$(echo "${c%%:*}" | tr / _).${c#*:}.out"
        IR[$c]=$((ir / CALLGRIND))
        echo "/${c%%:*} (${c#*:}): ${IR[$c]} instructions per request"
    done
    python3 - "$(declare -p IR)" "$ROWS" <<'PY'
import json, re, sys
ir = {k: int(v) for k, v in re.findall(r'\[([^\]]+)\]="([^"]*)"', sys.argv[1])}
up = lambda c: "up/" + c.replace("iam.line", "iam_up.line")
print()
print("| route | mock: instructions | auth work | http: instructions | auth work |")
print("|---|---|---|---|---|")
for name, a, b, _ in json.loads(sys.argv[2]):
    print(f"| {name} | {ir[a]:,} | {ir[a] - ir[b]:,} | {ir[up(a)]:,} | {ir[up(a)] - ir[up(b)]:,} |")
print(f"| no auth (rs / hs / SigV4 / lambda headers) | "
      + " / ".join(f"{ir['open:' + h]:,}" for h in ("rs.headers", "hs.headers", "iam.line", "lambda.headers"))
      + " | — | "
      + " / ".join(f"{ir['up/open:' + h]:,}" for h in ("rs.headers", "hs.headers", "iam_up.line", "lambda.headers"))
      + " | — |")
PY
    exit 0
fi

# Every request carries headers from a file, cycling through its lines, so
# all configurations (baselines included) pay the same driver cost.
cat > "$WORK/headers.lua" <<'LUA'
local reqs = {}
init = function(args)
  local path = os.getenv("BENCH_PATH")
  for line in io.lines(os.getenv("HEADERS_FILE")) do
    local h = { Host = wrk.headers["Host"] }
    for pair in string.gmatch(line, "[^|]+") do
      local k, v = string.match(pair, "^([^:]+):%s*(.*)$")
      h[k] = v
    end
    reqs[#reqs + 1] = wrk.format("GET", path, h)
  end
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
LUA

run() { # path headers_file -> rps
    local out
    out=$(BENCH_PATH=$1 HEADERS_FILE=$2 taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/headers.lua" "http://127.0.0.1:$GW_PORT")
    python3 - "$out" <<'PY'
import re, sys
text = sys.argv[1]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
if errors:
    sys.exit(f"non-2xx responses: {errors.group(1)}\n{text}")
print(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
PY
}

CONFIGS="$CONFIGS $FN_CONFIGS"
for c in $CONFIGS; do run "/${c%%:*}" "$WORK/${c#*:}" >/dev/null; done  # warm up, fetch keys, fill caches
declare -A RPS
for r in $(seq "$ROUNDS"); do
    for c in $CONFIGS; do
        rps=$(run "/${c%%:*}" "$WORK/${c#*:}")
        RPS[$c]+="$rps "
        echo "round $r $c: $rps req/s" >&2
    done
done
# Ratios are taken per round (an authorized route against the baseline run
# just before it) and the median of those is reported: the VM's speed moves
# between rounds more than within one.
python3 - "$(declare -p RPS)" "$ROWS" <<'PY'
import json, re, statistics, sys
runs = {k: [float(x) for x in v.split()] for k, v in re.findall(r'\[([^\]]+)\]="([^"]*)"', sys.argv[1])}
med = {k: statistics.median(v) for k, v in runs.items()}
ratio = lambda a, b: statistics.median(x / y for x, y in zip(runs[a], runs[b]))
up = lambda c: "up/" + c.replace("iam.line", "iam_up.line")
fn = lambda c: "fn/" + c.replace("iam.line", "iam_fn.line")
print("| route | mock: auth req/s | no-auth | ratio | http: auth req/s | no-auth | ratio | function: auth req/s | no-auth | ratio | target |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name, a, b, target in json.loads(sys.argv[2]):
    print(f"| {name} | {med[a]:.0f} | {med[b]:.0f} | {ratio(a, b):.2f} "
          f"| {med[up(a)]:.0f} | {med[up(b)]:.0f} | {ratio(up(a), up(b)):.2f} "
          f"| {med[fn(a)]:.0f} | {med[fn(b)]:.0f} | {ratio(fn(a), fn(b)):.2f} | {target} |")
print()
print("Per-round ratios (mock; http; function):")
for name, a, b, _ in json.loads(sys.argv[2]):
    r = lambda a, b: " ".join(f"{x / y:.2f}" for x, y in zip(runs[a], runs[b]))
    print(f"  {name}: {r(a, b)}; {r(up(a), up(b))}; {r(fn(a), fn(b))}")
PY
