#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default: 60 seconds, every target
#
# Needs a nightly toolchain (`cargo +nightly`); installs cargo-fuzz if it is
# missing. Exits 3 (and says why) without nightly, 1 on the first crash: the
# input is in fuzz/artifacts/TARGET/ — add it to `regressions` in
# tests/it/fuzz.rs and fix the bug. Corpora grow in fuzz/corpus/TARGET/
# (not committed), seeded from fuzz/seeds/TARGET/ (committed). The build
# uses fuzz/target/, never the main target folder.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly); not fuzzing" >&2
    exit 3
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi

# One optimised, instrumented build of every target first.
(cd fuzz && cargo +nightly fuzz build -O)

for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    echo "== $t: ${seconds}s" >&2
    # -max_total_time bounds the run; libFuzzer prints `Done N runs` and the
    # coverage (cov:/ft:) at the end. A crash makes cargo fuzz exit non-zero.
    (cd fuzz && cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1)
done
