//! ferry-node: the daemon. It wires the core, the store and the network
//! together and serves the control API on loopback.

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
