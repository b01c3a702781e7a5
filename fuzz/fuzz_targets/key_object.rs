//! Fuzzes key objects (keys/), decoded and checked against the limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::key_object(data));
