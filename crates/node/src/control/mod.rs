//! The control API: how the `ferry` CLI drives a running node.

mod dtn;
mod file;
pub mod server;
pub mod types;

pub use file::ControlFile;
