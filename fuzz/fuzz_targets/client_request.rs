//! `cargo +nightly fuzz run client_request`: see `lambdagate::fuzzing::client_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambdagate::fuzzing::client_request(data);
});
