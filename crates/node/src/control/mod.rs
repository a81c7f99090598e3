//! The control API: how the `ferry` CLI drives a running node.

mod dtn;
mod extract;
mod file;
pub mod server;
pub mod types;

pub use file::ControlFile;
