//! Delay-tolerant networking, sans-IO: RFC 9171 bundles, routing strategies and the
//! store's eviction policy.
//!
//! Nothing here reads a clock, a socket or a file. Time is DTN time in milliseconds
//! ([`DtnMillis`]: since 2000-01-01 00:00:00 UTC, as RFC 9171 counts it), passed in by
//! the caller: the daemon converts its wall clock with [`dtn_ms_from_unix_ms`], the
//! simulator passes virtual time. So the node and the simulator run the same routing
//! code, and every test is deterministic.
//!
//! - [`eid`]: endpoint ids (`dtn://PEER_ID/SERVICE`, `dtn://NAME/`, `ipn:N.S`) and node ids.
//! - [`bundle`]: ferry's bundle type over bp7: build, encode, parse hostile bytes.
//! - [`routing`]: the per-node [`Router`]: direct delivery, epidemic, binary
//!   spray-and-wait, PRoPHET; summaries exchanged on contact; delivery acknowledgements.
//! - [`evict`]: the storage quota and what to drop to make room.
//! - [`sign`]: ed25519 signatures of bundles (an RFC 9172 integrity block) and of
//!   delivery acknowledgements, by a ferry node's own key.
//! - [`wire`]: the messages of `/ferry/dtn/1`, the contact protocol between ferry nodes.

pub mod bundle;
pub mod eid;
pub mod evict;
pub mod routing;
pub mod sign;
pub mod wire;

pub use bundle::{
    Bundle, BundleError, BundleId, BundleMeta, CreationClock, CreationTimestamp, MAX_BUNDLE_BYTES,
    NewBundle, Origin, Priority,
};
pub use eid::{Eid, EidError, NodeId};
pub use evict::{Quota, Refusal, Room, make_room};
pub use routing::{
    Ack, Admission, Forward, ForwardReason, Held, ProphetConfig, ProphetTable, Removal, Removed,
    Router, RouterState, Strategy, Summary,
};

/// Milliseconds since the DTN epoch, 2000-01-01 00:00:00 UTC (RFC 9171 §4.2.6).
pub type DtnMillis = u64;

/// The DTN epoch in Unix milliseconds.
pub const DTN_EPOCH_UNIX_MS: u64 = 946_684_800_000;

/// DTN time from Unix time (both ms). Times before 2000 become 0, which RFC 9171 reads
/// as "no clock", the honest answer for a clock that far off.
pub fn dtn_ms_from_unix_ms(unix_ms: u64) -> DtnMillis {
    unix_ms.saturating_sub(DTN_EPOCH_UNIX_MS)
}

/// Unix time (ms) from DTN time.
pub fn unix_ms_from_dtn_ms(dtn_ms: DtnMillis) -> u64 {
    dtn_ms.saturating_add(DTN_EPOCH_UNIX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtn_epoch_is_2000() {
        // 2000-01-01T00:00:00Z is 946684800 s after the Unix epoch.
        assert_eq!(dtn_ms_from_unix_ms(946_684_800_000), 0);
        assert_eq!(dtn_ms_from_unix_ms(946_684_801_500), 1_500);
        assert_eq!(unix_ms_from_dtn_ms(1_500), 946_684_801_500);
        assert_eq!(dtn_ms_from_unix_ms(5), 0);
    }
}
