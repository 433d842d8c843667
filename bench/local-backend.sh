#!/usr/bin/env bash
# Local backend benchmark (BENCHMARKS.md, "Local backend"): cold start of the
# `hello` example function and the warm latency the local backend adds over
# driving the function's Runtime API loop directly. Release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
hello="$(cargo build --release -p hello --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hello" and m.get("executable"):
        print(m["executable"])')"
cargo bench --bench local_backend -- "$hello"
