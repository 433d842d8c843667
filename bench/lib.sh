# Shared by the bench scripts; sourced after `cd` to the repository root.
# Defines need, free_port, wait_port, nginx_conf and hello_function, and makes $WORK
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

# nginx_conf NAME HTTP_BLOCK: writes $WORK/NAME/nginx.conf for an nginx run
# with `-p "$WORK/NAME"`: one worker, no access log, its files under
# $WORK/NAME, HTTP_BLOCK (servers, upstreams) inside `http { }`. Its worker's
# pid: `pgrep -P "$(cat "$WORK/NAME/nginx.pid")"`.
nginx_conf() {
    mkdir -p "$WORK/$1/logs"
    cat > "$WORK/$1/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/$1/nginx.pid;
error_log $WORK/$1/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/$1;
    proxy_temp_path $WORK/$1;
    fastcgi_temp_path $WORK/$1;
    uwsgi_temp_path $WORK/$1;
    scgi_temp_path $WORK/$1;
    $2
}
CONF
}

# proxy_fixture: the core benches' setup. Starts an upstream nginx on CPU 1
# answering `200 ok` on $UP_PORT and an nginx proxy on CPU 0 forwarding to
# it on $NGX_PORT (kept-alive upstream connections), and writes
# $WORK/routes.toml with a `mock` route (/mock) and an `http` route
# (/http/{proxy+}) to the same upstream.
proxy_fixture() {
    UP_PORT=$(free_port); NGX_PORT=$(free_port)
    nginx_conf upstream "server { listen 127.0.0.1:$UP_PORT; location / { default_type text/plain; return 200 'ok'; } }"
    nginx_conf proxy "upstream up { server 127.0.0.1:$UP_PORT; keepalive 128; }
    server { listen 127.0.0.1:$NGX_PORT; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
    taskset -c 1 nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" & PIDS+=($!)
    taskset -c 0 nginx -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" & PIDS+=($!)
    cat > "$WORK/routes.toml" <<TOML
[backends.up]
kind = "http"
url = "http://127.0.0.1:$UP_PORT"

[[routes]]
method = "GET"
path = "/mock"
mock = { status = 200, body = "ok", headers = { content-type = "text/plain" } }

[[routes]]
method = "GET"
path = "/http/{proxy+}"
backend = "up"
TOML
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
