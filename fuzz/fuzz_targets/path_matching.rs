//! `cargo +nightly fuzz run path_matching`: see `lambdagate::fuzzing::path_matching`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambdagate::fuzzing::path_matching(data);
});
