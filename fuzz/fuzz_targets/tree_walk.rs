//! Fuzzes the tree walk over a graph of trees from the input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferry::fuzzing::tree_walk(data));
