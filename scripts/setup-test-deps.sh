#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain (Python
# packages for real-client tests, system packages). Idempotent; run by
# .ci/run and by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python test clients, in a project-local virtualenv.
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
PIP_PACKAGES=(
    # OpenAPI proofs (tests/it/openapi.rs)
    openapi-spec-validator
    schemathesis
    openapi-python-client
)
if [ ${#PIP_PACKAGES[@]} -gt 0 ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi
