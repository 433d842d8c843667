#!/usr/bin/env bash
# Dependency direction (STYLE.md): a phase never imports the gateway
# assembly (`app`), and the pipeline's leaf (`pipeline/phase.rs`) imports
# nothing of the crate, so every phase can be built and unit-tested alone.
# Only `pipeline/mod.rs` names every phase.
set -euo pipefail
cd "$(dirname "$0")/.."

# Phase modules: files, or folders searched whole.
PHASES=(
    src/telemetry.rs src/telemetry
    src/limits.rs
    src/openapi
    src/routing
    src/cors.rs
    src/auth
    src/throttle
    src/validation.rs
    src/cache
    src/transform
)

status=0
for p in "${PHASES[@]}"; do
    if hits=$(grep -rnE 'crate::app\b' "$p"); then
        echo "check-deps: a phase imports the gateway assembly (crate::app):" >&2
        echo "$hits" >&2
        status=1
    fi
done
if hits=$(grep -nE 'crate::' src/pipeline/phase.rs); then
    echo "check-deps: src/pipeline/phase.rs is the pipeline's leaf and imports nothing of the crate:" >&2
    echo "$hits" >&2
    status=1
fi
exit $status
