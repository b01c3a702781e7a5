//! Real servers and faults for the integration tests: s3s-fs S3 servers in
//! the test process and a fault-injecting HTTP proxy.

#![allow(dead_code)]

pub mod proxy;
pub mod server;
