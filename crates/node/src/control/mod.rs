//! The control API: how the `ferry` CLI drives a running node.

mod dtn;
mod extract;
mod file;
pub mod server;

/// The API's request and answer types, where clients have always found them.
pub use crate::types;
pub use file::ControlFile;
