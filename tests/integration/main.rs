//! Integration tests: the `ferry` binary and the library, end to end on real
//! files and a real local repository.

mod support;

mod catalog;
mod crash;
mod damage;
mod errors;
mod golden;
mod roundtrip;
mod store_suite;
mod time;
mod traversal;
