//! `cargo +nightly fuzz run routes_toml`: see `lambdagate::fuzzing::routes_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambdagate::fuzzing::routes_toml(data);
});
