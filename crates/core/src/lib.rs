//! ferry-core: the sans-IO heart of ferry.
//!
//! Nothing in this crate touches a socket, a file or the wall clock. Every state
//! machine here is fed inputs and the current time (milliseconds, supplied by the
//! caller), so the daemon and a simulator run exactly the same code, and tests are
//! fast and deterministic.
//!
//! # Modules
//!
//! | module | what it decides |
//! |---|---|
//! | [`peers`] | the peer table: who is around, how each was found, when one is gone |
//! | [`beacon`] | the signed LAN beacon datagram: encode, decode, replay check |
//! | [`channel`] | channel names and signed channel messages (canonical encoding, ids) |
//! | [`history`] | which messages are a channel's recent history, what a peer lacks |
//! | [`sync`] | `/ferry/sync/1` wire messages (hello, history) |
//! | [`retry`] | failed requests asked again later, further apart each time |
//! | [`content`] | content ids, tickets, collection manifests, bitfields, the multi-source fetch scheduler |
//! | [`transfer`] | `/ferry/blob/1` wire messages and the checks on what a provider says |
//! | [`sources`] | a download's providers: which claims to believe, whom to probe, whom to drop |
//! | [`dtn`] | RFC 9171 bundles, endpoint ids, signatures and acks, the router and its strategies, `/ferry/dtn/1` wire messages |
//! | [`ratelimit`] | token buckets per key and rate-limited log lines |
//!
//! Everything a peer sends is decoded here with its limits checked; the
//! `fuzz/` crate feeds these decoders and state machines arbitrary input.

#![warn(missing_docs)]

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
