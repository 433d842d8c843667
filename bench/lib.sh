# Shared by the bench scripts; sourced after `cd` to the repository root.
# Defines need, free_port, wait_port and hello_function, and makes $WORK
# (a temporary folder) and $PIDS (processes to stop), both cleaned up on
# exit.

need() { command -v "$1" >/dev/null 2>&1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT [LOG]: waits up to 60 s for PORT to accept; on failure
# prints LOG (if given) and exits.
wait_port() {
    for _ in $(seq 600); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    if [ -n "${2:-}" ]; then cat "$2" >&2; fi
    exit 1
}

# hello_function: builds the `hello` example function (release) into
# $WORK/hello and sets HELLO_TOML to the routes.toml tables that run it on
# the local backend (routes use it with `function = "hello"`). Its processes
# inherit the gateway's CPU pinning.
hello_function() {
    cargo build --release --quiet -p hello
    cp "${CARGO_TARGET_DIR:-target}/release/hello" "$WORK/hello"
    HELLO_TOML="[backends.local]
kind = \"local\"

[functions.hello]
backend = \"local\"
command = [\"$WORK/hello\"]
concurrency = 4"
}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    # A stopped process (SIGSTOP in a test) cannot act on SIGTERM: resume it.
    for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
