//! The process harness now lives in `ferry_testkit::harness`; test files import it
//! from there. This re-export keeps test files written against the old
//! `mod common;` compiling until they are moved over.

pub use ferry_testkit::harness::*;

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");
