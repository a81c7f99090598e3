//! The hooks every protocol of the engine implements, and its timers.
//!
//! Each protocol (discovery, reach, channels, serving, downloads, DTN
//! contacts) is a struct that owns its own state, as each of libp2p's
//! behaviours does. The engine keeps only what they share ([`Shared`]:
//! the swarm, the store, the clock, the peer table, the work channel, the
//! jobs) and calls these hooks of every protocol from one list
//! (`Engine::protocols`). A protocol's own events (its behaviour's events,
//! its `Work` coming back from the blocking pool, the control API's
//! commands) are dispatched to it by the engine's `match`es.
//!
//! Hooks run on the engine task: they must not touch the disk or hash
//! (see [`Shared::blocking`]).

use std::time::Duration;

use ferry_core::channel::ChannelName;
use ferry_core::{Millis, PeerId};
use ferry_net::libp2p::core::ConnectedPoint;
use ferry_net::libp2p::swarm::ConnectionId;
use ferry_store::{BlobInfo, RememberedPeer, Store, StoreError};

use super::Shared;

/// What the engine tells every protocol. Each hook has an empty default, so a
/// protocol implements only those it needs.
pub(crate) trait Hooks {
    /// Once, before the engine's loop starts, with what the store held.
    fn on_start(&mut self, _cx: &mut Shared, _stored: &Stored) {}

    /// A connection to `peer` opened (one of possibly several).
    fn on_connection_opened(
        &mut self,
        _cx: &mut Shared,
        _peer: PeerId,
        _connection: ConnectionId,
        _endpoint: &ConnectedPoint,
    ) {
    }

    /// A connection to `peer` closed (others may remain).
    fn on_connection_closed(&mut self, _cx: &mut Shared, _peer: PeerId, _connection: ConnectionId) {
    }

    /// `peer`'s first connection opened: it is a new contact.
    fn on_connected(&mut self, _cx: &mut Shared, _peer: PeerId) {}

    /// `peer`'s last connection closed.
    fn on_disconnected(&mut self, _cx: &mut Shared, _peer: PeerId) {}

    /// Every engine tick ([`super::TICK`]), with the monotonic time. A
    /// protocol's periodic work is an [`Every`] checked here, never a count
    /// of ticks.
    fn on_tick(&mut self, _cx: &mut Shared, _now: Millis) {}
}

/// What the store held when the node started, for the protocols' `on_start`.
/// It is read on the blocking pool while the engine waits (commands queue
/// meanwhile), so the engine task reads no disk even at start.
pub(crate) struct Stored {
    /// Channels the user left.
    pub(super) left_channels: Result<Vec<ChannelName>, StoreError>,
    /// Channels with messages or joined, with their message counts.
    pub(super) channels: Result<Vec<(ChannelName, u64)>, StoreError>,
    /// Peers of an earlier run, to dial again.
    pub(super) remembered: Result<Vec<RememberedPeer>, StoreError>,
    /// The content held, to announce in the DHT.
    pub(super) blobs: Result<Vec<BlobInfo>, StoreError>,
}

impl Stored {
    /// Reads it (*blocking*).
    pub(super) fn read(store: &Store) -> Self {
        Self {
            left_channels: store.left_channels(),
            channels: store.channels(),
            remembered: store.remembered_peers(),
            blobs: store.blobs(),
        }
    }
}

/// A periodic timer checked against the monotonic clock: due once per
/// `period`, the first time at `first_due`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Every {
    period: Millis,
    next: Millis,
}

impl Every {
    /// Due first one period after `now`.
    pub(super) fn after(period: Duration, now: Millis) -> Self {
        let period = millis(period);
        Self {
            period,
            next: now.saturating_add(period),
        }
    }

    /// Due at once (at the first tick), then every `period`.
    pub(super) fn starting(period: Duration, now: Millis) -> Self {
        Self {
            period: millis(period),
            next: now,
        }
    }

    /// Whether the period has passed since it was last due; if so, it is
    /// next due one period from `now` (a late tick does not cause a burst).
    pub(super) fn due(&mut self, now: Millis) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now.saturating_add(self.period);
        true
    }
}

/// A duration in milliseconds, as the clock counts.
pub(super) fn millis(duration: Duration) -> Millis {
    Millis::try_from(duration.as_millis()).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_due_once_per_period() {
        let mut timer = Every::after(Duration::from_secs(30), 1_000);
        assert!(!timer.due(1_000));
        assert!(!timer.due(30_999));
        assert!(timer.due(31_000));
        assert!(!timer.due(31_500));
        // A late check is due once, and the next period counts from it.
        assert!(timer.due(70_000));
        assert!(!timer.due(99_999));
        assert!(timer.due(100_000));
    }

    #[test]
    fn starting_is_due_at_once() {
        let mut timer = Every::starting(Duration::from_secs(1), 5);
        assert!(timer.due(5));
        assert!(!timer.due(1_004));
        assert!(timer.due(1_005));
    }
}
