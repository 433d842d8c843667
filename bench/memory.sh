#!/usr/bin/env bash
# The gateway's resident memory (VmRSS) serving the example API
# (routes.toml: function routes on the local backend, `mock` routes):
# idle after start-up and one request per route kind, then holding N idle
# keep-alive connections that each made one request.
#
# Usage: bench/memory.sh [CONNECTIONS]
#        LAMBDAGATE_BIN=path/to/lambdagate bench/memory.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-1000}

. bench/lib.sh
# The example functions run from the debug build (scripts/function.sh);
# only the gateway's own memory is measured.
cargo build --quiet --workspace
if [ -n "${LAMBDAGATE_BIN:-}" ]; then
    BIN=$LAMBDAGATE_BIN
else
    cargo build --release --quiet
    BIN=${CARGO_TARGET_DIR:-target}/release/lambdagate
fi
ulimit -n "$(ulimit -Hn)"
PORT=$(free_port)
RUST_LOG=warn "$BIN" serve --config routes.toml --listen "127.0.0.1:$PORT" >"$WORK/gw.out" 2>&1 & PIDS+=($!)
GW=$!
wait_port "$PORT" "$WORK/gw.out"
rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$GW/status"; }
echo "after start-up:            $(rss) MB"
python3 - "$PORT" "$CONNS" "$GW" <<'PY'
import asyncio, sys
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
async def one(path):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    await w.drain()
    head = await r.readuntil(b"\r\n\r\n")
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")]
    await r.readexactly(length[0] if length else 0)
    assert head.startswith(b"HTTP/1.1 200"), head
    return r, w
async def main():
    # One request of each kind the example serves, so every lazily built
    # part (function pool, caches) exists before the idle figure.
    for path in ["/ping", "/greet", "/hello/x"]:
        try:
            _, w = await one(path)
            w.close()
        except AssertionError:
            pass
    await asyncio.sleep(2)
    print(f"idle, after one request:   {rss():.1f} MB")
    held = []
    for i in range(0, n, 100):
        held += await asyncio.gather(*[one("/ping") for _ in range(min(100, n - i))])
    await asyncio.sleep(2)
    print(f"holding {len(held)} connections: {rss():.1f} MB")
    for _, w in held:
        w.close()
asyncio.run(main())
PY
