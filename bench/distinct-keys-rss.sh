#!/usr/bin/env bash
# Bounded state: the gateway's resident memory while KEYS distinct, valid API
# keys (1,000,000 by default) each send one request, sampled from
# /proc/PID/status (VmRSS) before the first key and after every STEP keys.
#
# Every key is in a plan with a throttle, so each one gets a bucket in the
# plan's keyed limiter, an entry in the key cache and a daily usage cell;
# all of these must be dropped when idle, so RSS levels off however many
# keys were ever seen. Two passes, each on a fresh gateway:
#   keyed   GET /keyed with the key (a `mock` route);
#   cached  GET /cached/{n} with key n: the same, plus one response-cache
#           entry per key (the cache is bounded by `[cache] max_size`, so
#           this pass levels off once the cache is full).
# The keys go straight into the SQLite store (the schema the gateway
# creates, each key's SHA-256 as `lambdagate keys create` writes it), far
# faster than the admin API. wrk (1 thread, a Lua script naming key i in
# request i) sends each step's keys and stops after STEP answers; the script
# fails on any non-200 answer or socket error.
#
# Pinning (2-core machine): the gateway on CPU 0, wrk on CPU 1.
#
# Usage: bench/distinct-keys-rss.sh [KEYS] [STEP] [PASSES]
#        e.g. bench/distinct-keys-rss.sh 1000000 100000 "keyed cached"
#        LAMBDAGATE_BIN=path/to/lambdagate bench/distinct-keys-rss.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
STEP=${2:-100000}
PASSES=${3:-keyed cached}
CONNS=${CONNS:-32}

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

cat > "$WORK/routes.toml" <<TOML
[store]
kind = "sqlite"
path = "$WORK/keys.db"

# A throttle every key stays well within (one request per key per step),
# so that each key gets a bucket of its own.
[plans.perkey]
throttle = { rate = 100, burst = 10 }

[[routes]]
method = "GET"
path = "/keyed"
api_key = true
mock = { status = 200, body = "ok" }

[[routes]]
method = "GET"
path = "/cached/{n}"
api_key = true
cache = { ttl = "3600s", key = ["path.n"] }
mock = { status = 200, body = "ok" }
TOML

# The gateway creates and migrates the store; one key made the ordinary way
# checks that the keys written below have the same shape.
"$BIN" keys create --config "$WORK/routes.toml" --name seed --plan perkey --json >"$WORK/seed.json" 2>/dev/null
echo "writing $KEYS keys to the store..." >&2
python3 - "$WORK/keys.db" "$KEYS" "$WORK/seed.json" <<'PY'
import hashlib, json, sqlite3, sys, time
db, n, seed = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))
con = sqlite3.connect(db)
# The stored form of a key: hex SHA-256 of the whole key.
row = con.execute("SELECT key_hash FROM api_keys WHERE id = ?", (seed["id"],)).fetchone()
assert row and row[0] == hashlib.sha256(seed["key"].encode()).hexdigest(), "key hashing differs"
now = int(time.time())
# Key i: lg_<id, 10 digits>_<43 digits>, the shape `lambdagate keys` makes
# (the id and secret alphabets include digits).
rows = ((f"{i:010d}", f"k{i}", hashlib.sha256(f"lg_{i:010d}_{i:043d}".encode()).hexdigest(), "perkey", 1, now, now)
        for i in range(n))
with con:
    con.executemany("INSERT INTO api_keys (id, name, key_hash, plan, enabled, created_at, updated_at, expires_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, NULL)", rows)
con.close()
PY

cat > "$WORK/keys.lua" <<'LUA'
-- Request i of this step carries key KEY_FIRST + i (cycling within the step
-- for the few requests sent after the last answer), on KEY_PATH, with the
-- key's number appended when KEY_NUMBERED is set.
local first = tonumber(os.getenv("KEY_FIRST"))
local count = tonumber(os.getenv("KEY_COUNT"))
local path = os.getenv("KEY_PATH")
local numbered = os.getenv("KEY_NUMBERED") == "1"
local sent, answered = 0, 0
function request()
    local i = first + sent % count
    sent = sent + 1
    local p = numbered and (path .. i) or path
    return wrk.format("GET", p, { ["x-api-key"] = string.format("lg_%010d_%043d", i, i) })
end
-- After the step's last answer: stop this thread, and interrupt wrk's main
-- thread (which otherwise sleeps for the whole -d) once this one has ended.
function response(status, headers, body)
    answered = answered + 1
    if answered == count then
        wrk.thread:stop()
        os.execute("(sleep 0.2; kill -INT $PPID) &")
    end
end
LUA

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# The anonymous part of RSS (the heap) and the file-backed part (the
# binary's pages, SQLite's shared-memory index).
rss_split() { awk '/^RssAnon/ {a = $2} /^RssFile/ {f = $2} /^RssShmem/ {s = $2} END {printf "anon %d MB, file %d MB, shmem %d MB", a / 1024, f / 1024, s / 1024}' "/proc/$1/status"; }

for pass in $PASSES; do
    case $pass in
        keyed) path=/keyed; numbered=0; warm=/keyed ;;
        cached) path=/cached/; numbered=1; warm=/cached/seed ;;
        *) echo "unknown pass $pass" >&2; exit 1 ;;
    esac
    port=$(free_port)
    RUST_LOG=warn taskset -c 0 "$BIN" serve --config "$WORK/routes.toml" --listen "127.0.0.1:$port" --no-watch \
        >"$WORK/gw.$pass.out" 2>&1 & PIDS+=($!)
    pid=${PIDS[-1]}
    wait_port "$port" "$WORK/gw.$pass.out"
    # Warm-up on the seed key: the runtime's threads, pools and buffers.
    seed_key=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$WORK/seed.json")
    taskset -c 1 wrk -t1 -c"$CONNS" -d2s -H "x-api-key: $seed_key" "http://127.0.0.1:$port$warm" >/dev/null
    echo "$pass 0 $(rss_kb "$pid") 0" >>"$WORK/samples"
    echo "$pass: 0 keys, RSS $(($(rss_kb "$pid") / 1024)) MB" >&2
    first=0
    while [ "$first" -lt "$KEYS" ]; do
        count=$((KEYS - first < STEP ? KEYS - first : STEP))
        start=$(date +%s%N)
        out=$(KEY_FIRST=$first KEY_COUNT=$count KEY_PATH=$path KEY_NUMBERED=$numbered \
            taskset -c 1 wrk -t1 -c"$CONNS" -d600s -s "$WORK/keys.lua" "http://127.0.0.1:$port")
        secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
        if echo "$out" | grep -q "Non-2xx\|Socket errors"; then
            echo "$out" >&2
            echo "$pass: errors or non-200 answers at keys $first.." >&2
            exit 1
        fi
        first=$((first + count))
        rss=$(rss_kb "$pid")
        echo "$pass $first $rss $secs" >>"$WORK/samples"
        echo "$pass: $first keys, RSS $((rss / 1024)) MB: $(rss_split "$pid") ($(awk -v n="$count" -v t="$secs" 'BEGIN {printf "%.0f", n / t}') keys/s)" >&2
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
done

python3 - "$WORK/samples" "$STEP" <<'PY'
import sys
step = int(sys.argv[2])
passes = {}
for line in open(sys.argv[1]):
    p, n, kb, secs = line.split()
    passes.setdefault(p, []).append((int(n), int(kb) / 1024, float(secs)))
for p, s in passes.items():
    print(f"{p}: RSS (MB) after N distinct keys")
    for n, mb, _ in s:
        print(f"  {n:>9,}  {mb:7.1f}")
    (n0, a, _), (n2, c, _) = s[-3], s[-1]
    slope = (c - a) / ((n2 - n0) / step)
    peak = max(mb for _, mb, _ in s)
    rate = s[-1][0] / sum(t for _, _, t in s)
    print(f"  last three samples: {slope:+.2f} MB per {step:,} keys; max {peak:.1f} MB; {rate:,.0f} keys/s")
PY
