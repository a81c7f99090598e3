//! ferry-core: the sans-IO heart of ferry.
//!
//! Nothing in this crate touches a socket, a file or the wall clock. Every state
//! machine here is fed inputs and the current time (milliseconds, supplied by the
//! caller), so the daemon and a simulator run exactly the same code, and tests are
//! fast and deterministic.

pub mod beacon;
pub mod channel;
pub mod content;
pub mod dtn;
pub mod history;
mod named;
pub mod peers;
pub mod ratelimit;
pub mod retry;
pub mod sources;
pub mod sync;
pub mod transfer;

pub use libp2p_identity::{Keypair, PeerId, PublicKey};
pub use multiaddr::Multiaddr;

/// Milliseconds, either since the Unix epoch (timestamps carried in messages) or
/// since an arbitrary origin (liveness timers); each API says which.
pub type Millis = u64;
