//! `cargo +nightly fuzz run proxy_response`: see `lambdagate::fuzzing::proxy_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambdagate::fuzzing::proxy_response(data);
});
