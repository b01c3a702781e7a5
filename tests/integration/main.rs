//! Integration tests: the `ferry` binary and the library, end to end on real
//! files and a real local repository.

mod support;

mod catalog;
mod config_files;
mod crash;
mod damage;
mod drill;
mod errors;
mod forge;
mod fuzz_smoke;
mod golden;
pub mod hostile;
mod hostile_walks;
mod json;
mod layers;
mod metrics;
mod names;
mod regions;
mod repair_index;
mod requests;
mod restore_stream;
mod retention;
mod retention_crash;
mod retention_regions;
mod roundtrip;
mod store_suite;
mod time;
mod traversal;
