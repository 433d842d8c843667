#!/usr/bin/env bash
# A keyed route on a quota plan counted in PostgreSQL, against the same
# `mock` route open and keyed without a quota, in one run: what leasing
# quota blocks leaves of the store's cost.
#
# Pinning (2-core machine): the gateway on CPU 0, wrk on CPU 1; PostgreSQL
# (the machine's, 127.0.0.1:5432, database `test`, trust auth) wherever the
# kernel puts it. Rounds alternate their order. The store's tables live in a
# schema made for the run and dropped after it. Loopback only; every run is
# bounded by SECONDS.
#
# Usage: bench/quota-postgres.sh [SECONDS] [ROUNDS]
#        LAMBDAGATE_BIN=path/to/lambdagate bench/quota-postgres.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-4}
ROUNDS=${2:-10}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}

. bench/lib.sh
if ! need wrk; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ -n "${LAMBDAGATE_BIN:-}" ]; then
    BIN=$LAMBDAGATE_BIN
else
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate
fi

SCHEMA="lgbench_$$_$(date +%s)"
GW_PORT=$(free_port)
cat > "$WORK/routes.toml" <<TOML
[store]
kind = "postgres"
url = "$PG_URL"
schema = "$SCHEMA"

# A quota too large to run out: every request is counted.
[plans.quota]
quota = { limit = 100000000, period = "day" }

[plans.none]

[[routes]]
method = "GET"
path = "/open"
mock = { status = 200, body = "ok" }

[[routes]]
method = "GET"
path = "/keyed"
api_key = true
mock = { status = 200, body = "ok" }
TOML
drop_schema() {
    PGOPTIONS='--client-min-messages=warning' psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS \"$SCHEMA\" CASCADE" || true
}
# After lib.sh's own clean-up (the gateway stopped first).
trap 'cleanup; drop_schema' EXIT
key() { # plan -> the new key
    "$BIN" keys create --config "$WORK/routes.toml" --name "$1" --plan "$1" --json 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])'
}
for plan in quota none; do
    printf 'wrk.headers["x-api-key"] = "%s"\n' "$(key "$plan")" > "$WORK/$plan.lua"
done

RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.out" 2>&1 & PIDS+=($!)
wait_port "$GW_PORT" "$WORK/gw.out"

run() { # label -> req/s
    local out
    case $1 in
        open) out=$(taskset -c 1 wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" "http://127.0.0.1:$GW_PORT/open") ;;
        *) out=$(taskset -c 1 wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" -s "$WORK/$1.lua" "http://127.0.0.1:$GW_PORT/keyed") ;;
    esac
    if echo "$out" | grep -q "Non-2xx"; then
        echo "non-2xx answers on $1" >&2
        exit 1
    fi
    echo "$out" | awk '/Requests\/sec/ {print $2}'
}
for label in open none quota; do run "$label" >/dev/null; done
ROWS=()
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="open none quota"; else order="quota none open"; fi
    declare -A got=()
    for label in $order; do got[$label]=$(run "$label"); done
    echo "round $r: open ${got[open]} | keyed ${got[none]} | keyed + quota ${got[quota]} req/s" >&2
    ROWS+=("${got[open]} ${got[none]} ${got[quota]}")
done
printf '%s\n' "${ROWS[@]}" | python3 -c '
import statistics as st, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda xs: st.median(list(xs))
print(f"rounds: {len(rows)} (median of per-round ratios)")
print(f"keyed ÷ open:               {med(k / o for o, k, q in rows):.3f}")
print(f"keyed + quota ÷ open:       {med(q / o for o, k, q in rows):.3f}")
print(f"keyed + quota ÷ keyed:      {med(q / k for o, k, q in rows):.3f}")
'
