//! The peer table: who is around, how each peer was found, whether it is
//! connected, and when a peer that stopped answering counts as gone.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Millis, Multiaddr, PeerId};

/// A peer that is neither connected nor heard from for this long has left.
pub const DEPART_AFTER_MS: Millis = 20_000;
/// Wait at least this long between two dial attempts to the same peer.
pub const REDIAL_AFTER_MS: Millis = 3_000;
/// Addresses kept per peer; later ones replace the oldest.
pub const MAX_ADDRS_PER_PEER: usize = 16;
/// The most peers the table holds, past which a newly discovered one is not
/// taken in (a connected one always is). Anyone can mint identities, so
/// without a cap a flood of beacons or mDNS answers from made-up peers
/// would grow the table, and the dials it leads to, without bound; real
/// neighbours number far fewer.
pub const MAX_PEERS: usize = 4096;

/// How a peer came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Multicast DNS on the local network.
    Mdns,
    /// ferry's signed UDP broadcast beacon.
    Broadcast,
    /// `ferry connect` or a configured address.
    Manual,
    /// It connected to us.
    Inbound,
    /// Remembered from an earlier run.
    Remembered,
    /// Found by id in the DHT (`ferry find`).
    Dht,
}

crate::named_enum!(Source {
    Mdns => "mdns",
    Broadcast => "broadcast",
    Manual => "manual",
    Inbound => "inbound",
    Remembered => "remembered",
    Dht => "dht",
});

/// What the table knows about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    /// The peer's id.
    pub peer: PeerId,
    /// The nickname it gave in a beacon or a sync hello, if any (its own choice: not
    /// unique, not proof of anything).
    pub name: Option<String>,
    /// Addresses it may be dialled at, at most [`MAX_ADDRS_PER_PEER`], oldest first.
    pub addrs: Vec<Multiaddr>,
    /// Every way it has been found (see [`Source`]).
    pub sources: BTreeSet<Source>,
    /// Open connections; the peer is connected while this is above zero.
    pub connections: u32,
    /// The remote address of the most recent connection.
    pub connected_via: Option<Multiaddr>,
    /// The last measured round trip (ms) on a connection; `None` while not connected.
    pub rtt_ms: Option<u32>,
    /// When it was last heard from (a beacon, a connection, a ping), on the caller's
    /// clock; departure counts from here.
    pub last_seen: Millis,
    last_beacon_seq: Option<u64>,
    last_dial: Option<Millis>,
}

impl PeerEntry {
    fn new(peer: PeerId, now: Millis) -> Self {
        Self {
            peer,
            name: None,
            addrs: Vec::new(),
            sources: BTreeSet::new(),
            connections: 0,
            connected_via: None,
            rtt_ms: None,
            last_seen: now,
            last_beacon_seq: None,
            last_dial: None,
        }
    }

    /// Whether at least one connection to it is open.
    pub fn is_connected(&self) -> bool {
        self.connections > 0
    }

    fn add_addrs(&mut self, addrs: impl IntoIterator<Item = Multiaddr>) {
        for addr in addrs {
            if !self.addrs.contains(&addr) {
                if self.addrs.len() == MAX_ADDRS_PER_PEER {
                    self.addrs.remove(0);
                }
                self.addrs.push(addr);
            }
        }
    }
}

/// What a beacon means to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeaconVerdict {
    /// First sign of this peer (or first since it left).
    New,
    /// A known peer, still here.
    Refreshed,
    /// Not newer than a beacon already seen: a replay or a reordering; ignored.
    Stale,
}

/// The set of peers a node knows about, keyed by peer id.
#[derive(Debug)]
pub struct PeerTable {
    local: PeerId,
    peers: BTreeMap<PeerId, PeerEntry>,
}

impl PeerTable {
    /// An empty table for the node `local`, which is never entered into its own table.
    pub fn new(local: PeerId) -> Self {
        Self {
            local,
            peers: BTreeMap::new(),
        }
    }

    fn entry(&mut self, peer: PeerId, now: Millis) -> Option<&mut PeerEntry> {
        if peer == self.local {
            return None;
        }
        Some(
            self.peers
                .entry(peer)
                .or_insert_with(|| PeerEntry::new(peer, now)),
        )
    }

    /// A discovery mechanism reported `peer` at `addrs`. Returns true if the peer
    /// was not known before.
    pub fn discovered(
        &mut self,
        peer: PeerId,
        source: Source,
        addrs: impl IntoIterator<Item = Multiaddr>,
        now: Millis,
    ) -> bool {
        let is_new = peer != self.local && !self.peers.contains_key(&peer);
        if is_new && self.peers.len() >= MAX_PEERS {
            return false;
        }
        if let Some(entry) = self.entry(peer, now) {
            entry.sources.insert(source);
            entry.add_addrs(addrs);
            entry.last_seen = entry.last_seen.max(now);
        }
        is_new
    }

    /// A verified beacon arrived from `peer`.
    pub fn beacon(
        &mut self,
        peer: PeerId,
        seq: u64,
        name: &str,
        addrs: impl IntoIterator<Item = Multiaddr>,
        now: Millis,
    ) -> BeaconVerdict {
        if peer == self.local {
            return BeaconVerdict::Stale;
        }
        if let Some(entry) = self.peers.get(&peer)
            && entry.last_beacon_seq.is_some_and(|last| seq <= last)
        {
            return BeaconVerdict::Stale;
        }
        let is_new = self.discovered(peer, Source::Broadcast, addrs, now);
        let Some(entry) = self.peers.get_mut(&peer) else {
            // The table is full: a beacon from a peer it lacks is not taken.
            return BeaconVerdict::Stale;
        };
        entry.last_beacon_seq = Some(seq);
        entry.name = Some(name.to_owned());
        if is_new {
            BeaconVerdict::New
        } else {
            BeaconVerdict::Refreshed
        }
    }

    /// A connection to `peer` opened from `remote`; `inbound` when the peer dialled us.
    /// Adds the peer if unknown, even past [`MAX_PEERS`]: a connected peer is always
    /// taken in.
    pub fn connected(&mut self, peer: PeerId, remote: Multiaddr, inbound: bool, now: Millis) {
        if let Some(entry) = self.entry(peer, now) {
            if inbound && entry.sources.is_empty() {
                entry.sources.insert(Source::Inbound);
            }
            entry.connections += 1;
            entry.connected_via = Some(remote);
            entry.last_seen = entry.last_seen.max(now);
        }
    }

    /// A connection closed, leaving `remaining` open. It does not count as
    /// hearing from the peer: a connection to a vanished peer may take a while
    /// to time out, and the departure clock runs from when it was last heard.
    pub fn disconnected(&mut self, peer: PeerId, remaining: u32) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.connections = remaining;
            if remaining == 0 {
                entry.rtt_ms = None;
                entry.connected_via = None;
            }
        }
    }

    /// A ping to `peer` took `rtt_ms` ms; that counts as hearing from it.
    pub fn rtt(&mut self, peer: PeerId, rtt_ms: u32, now: Millis) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.rtt_ms = Some(rtt_ms);
            entry.last_seen = entry.last_seen.max(now);
        }
    }

    /// `peer`'s nickname is `name` (from its sync hello, or remembered from an earlier
    /// run); an unknown peer is ignored.
    pub fn named(&mut self, peer: PeerId, name: String) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            entry.name = Some(name);
        }
    }

    /// Whether to dial `peer` now; if so, records the attempt. A connected peer, or
    /// one dialled less than [`REDIAL_AFTER_MS`] ago, is not dialled.
    pub fn should_dial(&mut self, peer: &PeerId, now: Millis) -> bool {
        match self.peers.get_mut(peer) {
            Some(entry)
                if !entry.is_connected()
                    && !entry.addrs.is_empty()
                    && entry
                        .last_dial
                        .is_none_or(|at| now.saturating_sub(at) >= REDIAL_AFTER_MS) =>
            {
                entry.last_dial = Some(now);
                true
            }
            _ => false,
        }
    }

    /// Peers that are not connected and have not been heard from for
    /// [`DEPART_AFTER_MS`]: they are removed, and returned.
    pub fn expire(&mut self, now: Millis) -> Vec<PeerEntry> {
        let gone: Vec<PeerId> = self
            .peers
            .values()
            .filter(|e| !e.is_connected() && now.saturating_sub(e.last_seen) > DEPART_AFTER_MS)
            .map(|e| e.peer)
            .collect();
        gone.iter().filter_map(|p| self.peers.remove(p)).collect()
    }

    /// What the table knows about `peer`, if it knows it.
    pub fn get(&self, peer: &PeerId) -> Option<&PeerEntry> {
        self.peers.get(peer)
    }

    /// Every known peer, in peer id order.
    pub fn iter(&self) -> impl Iterator<Item = &PeerEntry> {
        self.peers.values()
    }

    /// The peers with at least one open connection, in peer id order.
    pub fn connected_peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .values()
            .filter(|e| e.is_connected())
            .map(|e| e.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keypair;
    use proptest::prelude::*;

    fn peer() -> PeerId {
        Keypair::generate_ed25519().public().to_peer_id()
    }

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/10.0.0.2/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn discovery_then_connection_then_departure() {
        let mut table = PeerTable::new(peer());
        let p = peer();
        assert!(table.discovered(p, Source::Mdns, [addr(1)], 0));
        assert!(!table.discovered(p, Source::Broadcast, [addr(1)], 100));
        let entry = table.get(&p).unwrap();
        assert_eq!(entry.sources, [Source::Mdns, Source::Broadcast].into());
        assert_eq!(entry.addrs, vec![addr(1)]);

        table.connected(p, addr(1), false, 200);
        assert!(
            table.expire(200 + DEPART_AFTER_MS * 10).is_empty(),
            "connected peers stay"
        );
        table.rtt(p, 3, 1_000);
        // The connection to the vanished peer times out much later.
        table.disconnected(p, 0);
        assert!(table.expire(1_000 + DEPART_AFTER_MS).is_empty());
        let gone = table.expire(1_001 + DEPART_AFTER_MS);
        assert_eq!(gone.len(), 1);
        assert!(table.get(&p).is_none());
    }

    #[test]
    fn the_local_node_is_never_a_peer() {
        let me = peer();
        let mut table = PeerTable::new(me);
        assert!(!table.discovered(me, Source::Mdns, [addr(1)], 0));
        assert_eq!(table.beacon(me, 1, "me", [], 0), BeaconVerdict::Stale);
        table.connected(me, addr(1), true, 0);
        assert_eq!(table.iter().count(), 0);
    }

    #[test]
    fn replayed_beacons_are_stale() {
        let mut table = PeerTable::new(peer());
        let p = peer();
        assert_eq!(table.beacon(p, 5, "a", [addr(1)], 0), BeaconVerdict::New);
        assert_eq!(table.beacon(p, 5, "a", [addr(1)], 10), BeaconVerdict::Stale);
        assert_eq!(table.beacon(p, 4, "a", [addr(9)], 10), BeaconVerdict::Stale);
        assert_eq!(
            table.beacon(p, 6, "b", [addr(1)], 20),
            BeaconVerdict::Refreshed
        );
        let entry = table.get(&p).unwrap();
        assert_eq!(entry.name.as_deref(), Some("b"));
        assert_eq!(entry.addrs, vec![addr(1)], "a stale beacon adds no address");
    }

    #[test]
    fn dialing_backs_off_and_stops_once_connected() {
        let mut table = PeerTable::new(peer());
        let p = peer();
        table.discovered(p, Source::Mdns, [addr(1)], 0);
        assert!(table.should_dial(&p, 0));
        assert!(!table.should_dial(&p, REDIAL_AFTER_MS - 1));
        assert!(table.should_dial(&p, REDIAL_AFTER_MS));
        table.connected(p, addr(1), false, REDIAL_AFTER_MS);
        assert!(!table.should_dial(&p, REDIAL_AFTER_MS * 5));
    }

    #[test]
    fn inbound_is_a_source_only_when_nothing_else_found_the_peer() {
        let mut table = PeerTable::new(peer());
        let (a, b) = (peer(), peer());
        table.connected(a, addr(1), true, 0);
        table.discovered(b, Source::Mdns, [addr(2)], 0);
        table.connected(b, addr(2), true, 0);
        assert_eq!(table.get(&a).unwrap().sources, [Source::Inbound].into());
        assert_eq!(table.get(&b).unwrap().sources, [Source::Mdns].into());
    }

    proptest! {
        #[test]
        fn addresses_stay_bounded_and_unique(ports in proptest::collection::vec(0u16..64, 0..200)) {
            let mut table = PeerTable::new(peer());
            let p = peer();
            for port in &ports {
                table.discovered(p, Source::Mdns, [addr(*port)], 0);
            }
            if let Some(entry) = table.get(&p) {
                prop_assert!(entry.addrs.len() <= MAX_ADDRS_PER_PEER);
                let unique: BTreeSet<_> = entry.addrs.iter().collect();
                prop_assert_eq!(unique.len(), entry.addrs.len());
            }
        }
    }

    #[test]
    fn a_flood_of_made_up_peers_fills_the_table_only_to_its_cap() {
        let mut table = PeerTable::new(PeerId::random());
        let addr: Multiaddr = "/ip4/10.0.0.9/tcp/4001".parse().unwrap();
        for _ in 0..MAX_PEERS + 10 {
            table.beacon(PeerId::random(), 1, "x", [addr.clone()], 0);
        }
        assert_eq!(table.iter().count(), MAX_PEERS);
        let late = PeerId::random();
        assert!(!table.discovered(late, Source::Mdns, [addr.clone()], 0));
        assert_eq!(
            table.beacon(late, 1, "x", [addr.clone()], 0),
            BeaconVerdict::Stale
        );
        // A peer that connects is tracked all the same.
        table.connected(late, addr, true, 0);
        assert!(table.get(&late).is_some_and(|e| e.is_connected()));
    }
}
