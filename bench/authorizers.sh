#!/usr/bin/env bash
# Requests/s of authorized routes ÷ the same `mock` route without auth, in one
# run: JWT RS256 with the verified-token cache and without it
# (`token_cache = false`: a signature check per request), JWT HS256, SigV4,
# and a Lambda authorizer whose result is cached.
#
# Pinning (2-core machine): the gateway on CPU 0; wrk and the helper (JWKS,
# Lambda Invoke API, only hit on cache misses) on CPU 1. Loopback only; every
# run is bounded by DURATION.
#
# Usage: bench/authorizers.sh [DURATION_SECONDS] [CONNECTIONS] [ROUNDS]
#        AUTH_CALLGRIND=N bench/authorizers.sh
# With AUTH_CALLGRIND=N the gateway runs under valgrind's callgrind instead:
# for every route of the wrk run (each authorized route after a /open
# baseline with the same headers) it sends N requests on one keep-alive
# connection after a warm-up and prints the instructions per request (deterministic, unlike req/s on a shared machine;
# valgrind hides SHA-NI/ADX, so crypto counts are those of the portable code).
# The profiles stay in target/callgrind/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-32}
ROUNDS=${3:-3}
CALLGRIND=${AUTH_CALLGRIND:-}

[ -n "$CALLGRIND" ] || command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
scripts/setup-test-deps.sh
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
# A private copy: other checkouts may share the target folder.
cp "$BIN" "$WORK/lambdagate"; BIN=$WORK/lambdagate

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW_PORT=$(free_port); HELPER_PORT=$(free_port)

taskset -c 1 .venv/bin/python bench/auth_helper.py "$WORK" "$GW_PORT" "$HELPER_PORT" & PIDS+=($!)
for _ in $(seq 600); do [ -f "$WORK/helper.ready" ] && break; sleep 0.1; done
[ -f "$WORK/helper.ready" ] || { echo "helper did not start" >&2; exit 1; }

cat > "$WORK/routes.toml" <<TOML
[stages.dev]
backend = "aws"

[backends.aws]
kind = "lambda"
endpoint_url = "http://127.0.0.1:$HELPER_PORT"

[functions.authz]

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

[[routes]]
method = "GET"
path = "/open"
mock = { status = 200, body = "ok", headers = { content-type = "text/plain" } }

[[routes]]
method = "GET"
path = "/rs"
mock = { status = 200, body = "ok", headers = { content-type = "text/plain" } }
auth = "rs"

[[routes]]
method = "GET"
path = "/rsnc"
mock = { status = 200, body = "ok", headers = { content-type = "text/plain" } }
auth = "rsnc"

[[routes]]
method = "GET"
path = "/hs"
mock = { status = 200, body = "ok", headers = { content-type = "text/plain" } }
auth = "hs"

[[routes]]
method = "GET"
path = "/iam"
mock = { status = 200, body = "ok", headers = { content-type = "text/plain" } }
auth = "iam"

[[routes]]
method = "GET"
path = "/lam"
mock = { status = 200, body = "ok", headers = { content-type = "text/plain" } }
auth = "lam"
TOML
AWS_ACCESS_KEY_ID=AKIDBENCHBACKEND AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    RUST_LOG=warn taskset -c 0 ${CALLGRIND:+valgrind --tool=callgrind --callgrind-out-file=$WORK/cg.%p} "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.out" 2>&1 & PIDS+=($!)
GW_PID=$!
for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/$GW_PORT) 2>/dev/null && break; sleep 0.1; done

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
    for c in open:rs.headers rs:rs.headers rsnc:rs.headers open:hs.headers hs:hs.headers \
        open:iam.line iam:iam.line open:lambda.headers lam:lambda.headers; do
        send "/${c%%:*}" "$WORK/${c#*:}" 20
        callgrind_control -z "$GW_PID" >/dev/null
        send "/${c%%:*}" "$WORK/${c#*:}" "$CALLGRIND"
        callgrind_control -d "$GW_PID" >/dev/null
        sleep 1
        dump=$(ls -t "$WORK"/cg.* | head -1)
        ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
        mv "$dump" "target/callgrind/${c%%:*}.${c#*:}.out"
        echo "/${c%%:*} (${c#*:}): $((ir / CALLGRIND)) instructions per request"
    done
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

CONFIGS="open:rs.headers rs:rs.headers rsnc:rs.headers open:hs.headers hs:hs.headers open:iam.line iam:iam.line open:lambda.headers lam:lambda.headers"
for c in $CONFIGS; do run "/${c%%:*}" "$WORK/${c#*:}" >/dev/null; done  # warm up, fetch keys, fill caches
declare -A RPS
for r in $(seq "$ROUNDS"); do
    for c in $CONFIGS; do
        rps=$(run "/${c%%:*}" "$WORK/${c#*:}")
        RPS[$c]+="$rps "
        echo "round $r $c: $rps req/s" >&2
    done
done
python3 - "$(declare -p RPS)" <<'PY'
import re, statistics, sys
pairs = dict(re.findall(r'\[([^\]]+)\]="([^"]*)"', sys.argv[1]))
med = {k: statistics.median(map(float, v.split())) for k, v in pairs.items()}
rows = [
    ("JWT RS256, verified-token cache hit", "rs:rs.headers", "open:rs.headers"),
    ("JWT RS256, token_cache = false", "rsnc:rs.headers", "open:rs.headers"),
    ("JWT HS256", "hs:hs.headers", "open:hs.headers"),
    ("SigV4 (header form)", "iam:iam.line", "open:iam.line"),
    ("Lambda authorizer, cached result", "lam:lambda.headers", "open:lambda.headers"),
]
print("| route | auth req/s | no-auth req/s | ratio |")
print("|---|---|---|---|")
for name, a, b in rows:
    print(f"| {name} | {med[a]:.0f} | {med[b]:.0f} | {med[a] / med[b]:.2f} |")
PY
