//! ferry-node: the daemon. It wires the core, the store and the network
//! together and serves the control API on loopback.
//!
//! # Modules
//!
//! Each module calls only the ones below it in this table.
//!
//! | module | what it does |
//! |---|---|
//! | [`daemon`] | `ferry start`: opens the data directory, builds everything below, runs until a signal |
//! | [`control`] | the control API (axum, bearer token, `control.json`): routes and extractors |
//! | `engine` | the one task that owns the swarm; each protocol (discovery, reach, channels, serving, downloads, DTN contacts) is a struct with the same hooks |
//! | [`dtn`] | the bundle agent over the store (routing, folders for drives, TCPCL sessions) |
//! | `share`, `export` | hashing files into the store; writing a downloaded collection out |
//! | `jobs` | long jobs and their progress, shared by workers and the API |
//! | [`config`] | every setting, defined once: flags, `FERRY_*` variables, `config.toml`, defaults |
//! | [`types`] | what the control API's requests and answers carry (also `control::types`) |
//! | [`error`] | what the node's operations fail with, one enum with a kind |
//! | `clock` | the monotonic and wall clocks the core is fed |

mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod dtn;
mod engine;
pub mod error;
mod export;
mod jobs;
mod share;
pub mod types;
