//! Integration tests: the `ferry` binary and the library, end to end on real
//! files and a real local repository.

mod support;

mod catalog;
mod config_files;
mod crash;
mod damage;
mod drill;
mod errors;
mod fuzz_smoke;
mod golden;
mod json;
mod layers;
mod hostile;
mod names;
mod metrics;
mod regions;
mod requests;
mod retention;
mod retention_crash;
mod retention_regions;
mod roundtrip;
mod store_suite;
mod time;
mod traversal;
