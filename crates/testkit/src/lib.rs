//! What ferry's integration tests share (a dev-dependency, never published).
//!
//! - [`harness`]: real `ferry start` processes on 127.0.0.1 ([`harness::Node`]),
//!   CLI runs with deadlines, the control API ([`harness::Api`]).
//! - [`lab`]: network namespaces, bridges and NAT routers (root), nodes in them
//!   ([`lab::node::Node`]) and a small disk in a mount namespace ([`lab::mountns`]).
//! - [`hostile`]: the hostile peer example, started in a mode.
//! - [`dtnd`]: dtn7-rs's `dtnd`, `dtnsend` and `dtnrecv` on loopback.
//! - [`skip`]: a test whose precondition is missing (not root, dtnd not installed)
//!   says so in a way the test command counts, and fails under CI, where every
//!   precondition must be met.
//! - [`wait`]: waiting on observable state, never sleeping for synchronisation.
//! - [`binary`]: where the `ferry` binary under test is ([`ferry_binary`]).

pub mod binary;
pub mod dtnd;
pub mod harness;
pub mod hostile;
pub mod lab;
pub mod skip;
pub mod wait;

pub use binary::ferry_binary;
pub use skip::{is_ci, skip};
