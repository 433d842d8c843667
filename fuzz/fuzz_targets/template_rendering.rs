//! `cargo +nightly fuzz run template_rendering`: see `lambdagate::fuzzing::template_rendering`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambdagate::fuzzing::template_rendering(data);
});
