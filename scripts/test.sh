#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
cargo fmt --all --check
scripts/check-deps.sh
cargo clippy --workspace --all-targets -- -D warnings
cargo test --all-targets
