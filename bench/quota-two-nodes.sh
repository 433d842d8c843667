#!/usr/bin/env bash
# Two gateway nodes sharing one PostgreSQL store and one key's quota:
#  1. throughput: a keyed `mock` route on a quota plan (a quota too large to
#     run out, so every request is counted, on one key both nodes share),
#     one node alone against both nodes loaded at once, rounds in
#     alternating order; each node's req/s and the two nodes' sum ÷ the
#     node alone, and the gateways' CPU time per request (user + system,
#     from /proc) with two nodes ÷ alone. Both nodes are pinned to the CPU
#     the lone node had; on a machine where other processes share that CPU
#     two nodes get a larger share of it than one, so the CPU per request
#     is the steadier measure of what sharing the quota costs;
#  2. spending: a second key on a plan with a quota of LIMIT a day, both
#     nodes loaded until each answers 429; the requests admitted (2xx
#     answers, counted by wrk) against the documented bound
#     (docs/routes.md, "How quotas are counted"): at most LIMIT, at least
#     LIMIT − (N − 1) × 1¼ × block with N = 2 and
#     block = clamp(LIMIT / 100, 1, 1000). After both nodes stop (SIGTERM,
#     which gives unspent blocks back) the store's count of the key's
#     requests must equal the requests admitted.
#
# Pinning (2-core machine): the gateways on CPU 0, wrk on CPU 1; PostgreSQL
# (the machine's, 127.0.0.1:5432, database `test`, trust auth) wherever the
# kernel puts it. The store's tables live in a schema made for the run and
# dropped after it. Loopback only. Fails on a socket error, on a non-2xx
# answer in step 1, or on an admitted count outside the bound.
#
# Usage: bench/quota-two-nodes.sh [SECONDS] [ROUNDS] [LIMIT]   # e.g. 4 6 200000
#        LAMBDAGATE_BIN=path/to/lambdagate bench/quota-two-nodes.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-4}
ROUNDS=${2:-6}
LIMIT=${3:-200000}
CONNS=${CONNS:-32}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}

. bench/lib.sh
if ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ -n "${LAMBDAGATE_BIN:-}" ]; then
    BIN=$LAMBDAGATE_BIN
else
    cargo build --release --quiet --bin lambdagate
    BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate
fi

SCHEMA="lgbench_$$_$(date +%s)"
cat > "$WORK/routes.toml" <<TOML
[store]
kind = "postgres"
url = "$PG_URL"
schema = "$SCHEMA"

# Step 1: a quota too large to run out: every request is counted.
[plans.big]
quota = { limit = 1000000000, period = "day" }

# Step 2: the quota the two nodes spend.
[plans.shared]
quota = { limit = $LIMIT, period = "day" }

[[routes]]
method = "GET"
path = "/keyed"
api_key = true
mock = { status = 200, body = "ok" }
TOML
psql_q() { PGOPTIONS="--client-min-messages=warning -c search_path=$SCHEMA" psql "$PG_URL" -qAtc "$1"; }
drop_schema() { psql_q "DROP SCHEMA IF EXISTS \"$SCHEMA\" CASCADE" || true; }
# After lib.sh's own clean-up (the gateways stopped first).
trap 'cleanup; drop_schema' EXIT
key() { # plan -> "id key"
    "$BIN" keys create --config "$WORK/routes.toml" --name "$1" --plan "$1" --json 2>/dev/null |
        python3 -c 'import json, sys; k = json.load(sys.stdin); print(k["id"], k["key"])'
}
read -r _ BIG_KEY < <(key big)
read -r SHARED_ID SHARED_KEY < <(key shared)

start() { # name -> pid in $PID_<name>, port in $PORT_<name>
    local port; port=$(free_port)
    RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$port" --no-watch \
        >"$WORK/gw.$1.out" 2>&1 & PIDS+=($!)
    wait_port "$port" "$WORK/gw.$1.out"
    printf -v "PID_$1" '%s' "${PIDS[-1]}"
    printf -v "PORT_$1" '%s' "$port"
}
start a
start b

# wrk_to PORT KEY CONNS SECONDS OUT: one wrk run, its output in OUT.
wrk_to() {
    taskset -c 1 wrk -t1 -c"$3" -d"$4s" -H "x-api-key: $2" "http://127.0.0.1:$1/keyed" >"$5"
}
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
clean() { # OUT: fails on socket errors or non-2xx answers
    if grep -q "Socket errors\|Non-2xx" "$1"; then cat "$1" >&2; echo "errors in a throughput run" >&2; exit 1; fi
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system
reqs() { awk '/requests in/ {print $1}' "$1"; }
# µs of gateway CPU per request: ticks, requests
per_req() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t * 1e6 / hz / n}'; }

alone() { # -> "req/s cpu" of node a alone (node b stopped, off the CPU)
    local t0 t1
    kill -STOP "$PID_b"
    t0=$(ticks "$PID_a")
    wrk_to "$PORT_a" "$BIG_KEY" "$CONNS" "$SECONDS_PER_RUN" "$WORK/alone"
    t1=$(ticks "$PID_a")
    kill -CONT "$PID_b"
    clean "$WORK/alone"
    echo "$(rps "$WORK/alone") $(per_req $((t1 - t0)) "$(reqs "$WORK/alone")")"
}
both() { # -> "a b cpu": req/s of each node with both loaded (half the
    # connections each) and the two nodes' CPU per request
    local t0 t1 w
    t0=$(($(ticks "$PID_a") + $(ticks "$PID_b")))
    wrk_to "$PORT_a" "$BIG_KEY" $((CONNS / 2)) "$SECONDS_PER_RUN" "$WORK/both.a" &
    w=$!
    wrk_to "$PORT_b" "$BIG_KEY" $((CONNS / 2)) "$SECONDS_PER_RUN" "$WORK/both.b"
    wait "$w"
    t1=$(($(ticks "$PID_a") + $(ticks "$PID_b")))
    clean "$WORK/both.a"; clean "$WORK/both.b"
    echo "$(rps "$WORK/both.a") $(rps "$WORK/both.b") $(per_req $((t1 - t0)) $(($(reqs "$WORK/both.a") + $(reqs "$WORK/both.b"))))"
}
alone >/dev/null; both >/dev/null # warm-up: connections, quota blocks
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        one=$(alone); two=$(both)
    else
        two=$(both); one=$(alone)
    fi
    echo "round $r: alone $one | both $two req/s" >&2
    echo "$one $two" >>"$WORK/rounds"
done

# Step 2: long enough to spend the quota at the rate just measured, with
# room to spare; each node must end up refusing.
SPEND=$(python3 - "$WORK/rounds" "$LIMIT" <<'PY'
import statistics, sys
rate = statistics.median(float(r[2]) + float(r[3]) for r in (l.split() for l in open(sys.argv[1])))
print(int(int(sys.argv[2]) / rate * 1.5) + 5)
PY
)
echo "spending a quota of $LIMIT on both nodes for ${SPEND}s..." >&2
wrk_to "$PORT_a" "$SHARED_KEY" $((CONNS / 2)) "$SPEND" "$WORK/spend.a" &
w=$!
wrk_to "$PORT_b" "$SHARED_KEY" $((CONNS / 2)) "$SPEND" "$WORK/spend.b"
wait "$w"
for n in a b; do
    if grep -q "Socket errors" "$WORK/spend.$n"; then cat "$WORK/spend.$n" >&2; exit 1; fi
done
# Graceful stop: each node gives back the block it holds unspent.
kill "$PID_a" "$PID_b"; wait "$PID_a" "$PID_b" 2>/dev/null || true
STORED=$(psql_q "SELECT COALESCE(SUM(used), 0) FROM quota_usage WHERE key_id = '$SHARED_ID'")

python3 - "$WORK/rounds" "$WORK/spend.a" "$WORK/spend.b" "$LIMIT" "$STORED" <<'PY'
import re, statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
med = lambda xs: statistics.median(list(xs))
# Per round: alone req/s, alone CPU µs/request, node a req/s, node b req/s,
# both nodes' CPU µs/request.
print(f"throughput, {len(rows)} rounds (medians of per-round ratios; both nodes on the lone node's CPU)")
print(f"  one node alone:          {med(r[0] for r in rows):,.0f} req/s, {med(r[1] for r in rows):.2f} µs CPU per request")
print(f"  two nodes, each:         {med(r[2] for r in rows):,.0f} / {med(r[3] for r in rows):,.0f} req/s "
      f"(÷ alone {med(r[2] / r[0] for r in rows):.3f} / {med(r[3] / r[0] for r in rows):.3f})")
print(f"  two nodes, sum ÷ alone:  {med((r[2] + r[3]) / r[0] for r in rows):.3f} "
      f"[{min((r[2] + r[3]) / r[0] for r in rows):.3f}–{max((r[2] + r[3]) / r[0] for r in rows):.3f}]")
print(f"  CPU per request, two nodes ÷ alone: {med(r[4] / r[1] for r in rows):.3f} "
      f"({med(r[4] for r in rows):.2f} µs; rounds {min(r[4] / r[1] for r in rows):.3f}–{max(r[4] / r[1] for r in rows):.3f})")
admitted = refused = 0
for path in sys.argv[2:4]:
    text = open(path).read()
    total = int(re.search(r"(\d+) requests in", text).group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    non2xx = int(m.group(1)) if m else 0
    if non2xx == 0:
        sys.exit(f"a node never refused: the quota was not spent ({path})")
    admitted += total - non2xx
    refused += non2xx
limit, stored = int(sys.argv[4]), int(sys.argv[5])
block = min(max(limit // 100, 1), 1000)
low = limit - (2 - 1) * 1.25 * block
print(f"spending: {admitted:,} admitted, {refused:,} refused; limit {limit:,}, block {block:,}, "
      f"bound {low:,.0f} ≤ admitted ≤ {limit:,} -> {'within' if low <= admitted <= limit else 'OUTSIDE'}")
print(f"  under-admitted {limit - admitted:,} (the bound allows {limit - low:,.0f}); "
      f"the store counts {stored:,} after both nodes stopped ({'= admitted' if stored == admitted else 'differs'})")
if not low <= admitted <= limit or stored != admitted:
    sys.exit(1)
PY
