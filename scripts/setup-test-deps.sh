#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain (Python
# packages for real-client tests, npm packages, system packages).
# Idempotent; run by .ci/run and by scripts/test.sh.
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
    # auth: tokens signed by an independent JWT implementation
    pyjwt
    cryptography
    # auth: SigV4 requests signed by the AWS SDK's signer
    boto3
    # Dockerfile checks without a Docker daemon (scripts/check-dockerfile.py)
    dockerfile-parse
    # local backend: the Python Lambda runtime client (tests/it/local.rs)
    awslambdaric
    # HTTP/1.1 differential test: llhttp as an independent request parser
    # (tests/it/differential.rs)
    httptools
)
if [ ${#PIP_PACKAGES[@]} -gt 0 ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"
fi

# npm test clients, in a project-local folder (.npm-test/node_modules).
NPM_PACKAGES=(
    # auth: SigV4 requests signed by the `aws4` package
    aws4
)
if [ ${#NPM_PACKAGES[@]} -gt 0 ] && command -v npm >/dev/null; then
    missing=()
    for p in "${NPM_PACKAGES[@]}"; do
        [ -d ".npm-test/node_modules/$p" ] || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        npm install --silent --no-audit --no-fund --prefix .npm-test "${missing[@]}"
    fi
fi
