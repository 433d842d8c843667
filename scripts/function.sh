#!/bin/sh
# Runs one of the example functions (examples/functions/NAME) that
# `cargo build --workspace` built; scripts/run.sh builds them. The top-level
# routes.toml names this script as the functions' `command`.
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/debug/$1"
if [ ! -x "$bin" ]; then
    echo "example function '$1' is not built ($bin): run scripts/run.sh or cargo build --workspace" >&2
    exit 127
fi
exec "$bin"
