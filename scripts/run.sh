#!/usr/bin/env bash
# Builds lambdagate and the example functions, then serves the top-level
# routes.toml (the example API) on the built-in local backend:
#   scripts/run.sh                 # http://127.0.0.1:8080
#   scripts/run.sh --listen 127.0.0.1:9000
# Extra arguments go to `lambdagate serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --quiet
exec "${CARGO_TARGET_DIR:-target}/debug/lambdagate" serve --config routes.toml "$@"
