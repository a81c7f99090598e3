//! What ferry's integration tests share.
//!
//! - [`skip`]: a test whose precondition is missing (not root, dtnd not installed)
//!   says so in a way the test command counts, and fails under CI, where every
//!   precondition must be met.
//! - [`wait`]: waiting on observable state, never sleeping for synchronisation.

pub mod skip;
pub mod wait;

pub use skip::{is_ci, skip};
