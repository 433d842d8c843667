//! `cargo +nightly fuzz run upstream_response`: see `lambdagate::fuzzing::upstream_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambdagate::fuzzing::upstream_response(data);
});
