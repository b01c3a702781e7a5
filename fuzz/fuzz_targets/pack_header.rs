//! Fuzzes the pack_header decoder with arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::pack_header(data));
