//! `cargo +nightly fuzz run event_building`: see `lambdagate::fuzzing::event_building`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lambdagate::fuzzing::event_building(data);
});
