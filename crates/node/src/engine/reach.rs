//! Reaching peers beyond the LAN: the DHT (bootstrap, finding a peer by id,
//! provider records), AutoNAT's verdict on our reachability, relay
//! reservations for a node behind NAT, and hole punching (DCUtR).
//!
//! libp2p runs each protocol; this module decides when to use them: a node
//! answers DHT queries only once peers have dialled it back, reserves a relay
//! slot only while it is not reachable, and drops a relayed connection as soon
//! as a direct one to the same peer exists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use ferry_core::content::ContentId;
use ferry_core::{Millis, Multiaddr, PeerId};
use ferry_net::IDENTIFY_PROTOCOL;
use ferry_net::libp2p::core::ConnectedPoint;
use ferry_net::libp2p::core::transport::ListenerId;
use ferry_net::libp2p::multiaddr::Protocol;
use ferry_net::libp2p::swarm::ConnectionId;
use ferry_net::libp2p::{autonat, dcutr, identify, kad, relay};
use tokio::sync::oneshot;

use super::Shared;
use super::hooks::{Every, Hooks, Stored};
use crate::error::NodeError;
use crate::types::{
    Connection, DhtMode, FindReply, Mapping, NatInfo, ObservedAddr, PeerPath, Reachability,
    RelayInfo,
};

/// How long a find waits for a connection after its lookup ended.
const FIND_GRACE_MS: u64 = 10_000;

/// The protocol a relay serves reservations on.
const RELAY_HOP: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// Relays this node keeps a reservation on, at most. Any peer may say it
/// serves as one, and each costs a listener and a reservation kept alive;
/// a few are all a node behind NAT needs to be reachable.
const MAX_RELAYS: usize = 8;

/// Peers whose report of our address is kept, at most. The first reports
/// say what our NAT does; a stream of new peer ids must not grow the map.
const MAX_OBSERVERS: usize = 64;

/// Addresses of one peer given to the DHT from its identify messages, at
/// most: the same cap as the peer table's.
const MAX_DHT_ADDRS_PER_PEER: usize = ferry_core::peers::MAX_ADDRS_PER_PEER;

/// Provider records are announced again this often, so they outlive the DHT
/// peers that held them.
const REPROVIDE_INTERVAL: Duration = Duration::from_secs(30 * 60);
/// Relay reservations that were refused or ended are asked for again this
/// often, while the node is not reachable.
const RESERVE_INTERVAL: Duration = Duration::from_secs(30);

/// The DHT's answer to a provider lookup (which downloads make): providers
/// found, or `None` once the lookup ended.
pub(super) struct ProvidersFound {
    pub(super) query: kad::QueryId,
    pub(super) providers: Option<Vec<PeerId>>,
}

/// What the engine knows about reaching and being reached.
pub(super) struct Reach {
    /// DHT bootstrap nodes, dialled at start.
    bootstrap: Vec<Multiaddr>,
    reprovide: Every,
    reserve: Every,
    status: Option<autonat::NatStatus>,
    /// Our address as each peer sees it, per transport (`true`: UDP), over
    /// direct connections only: an address seen through a relay says nothing
    /// about our NAT.
    observed: BTreeMap<(PeerId, bool), Multiaddr>,
    /// Peers that serve as relays, and our reservation on each.
    relays: BTreeMap<PeerId, Reservation>,
    /// Open connections: peer, remote address, and whether hole punching made it.
    connections: HashMap<ConnectionId, Path>,
    /// `ferry find` calls waiting for a connection to the peer.
    finding: HashMap<PeerId, Vec<FindCall>>,
    lookups: HashMap<kad::QueryId, PeerId>,
    /// Finds whose DHT lookup ended without the peer: they wait until this
    /// (monotonic) time for the connection the lookup's own dials may still
    /// bring (a peer behind NAT never answers DHT queries itself, so it is
    /// never in a lookup's result, only reachable at the address others gave).
    find_deadlines: HashMap<PeerId, u64>,
    /// Content this node announces in the DHT.
    provided: std::collections::BTreeSet<ContentId>,
}

impl Hooks for Reach {
    fn on_start(&mut self, cx: &mut Shared, stored: &Stored) {
        self.dial_bootstrap(cx);
        self.provide_stored(stored);
    }

    fn on_connection_opened(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        connection: ConnectionId,
        endpoint: &ConnectedPoint,
    ) {
        let relayed = endpoint.is_relayed();
        self.connections.insert(
            connection,
            Path {
                peer,
                remote: endpoint.get_remote_address().clone(),
                relayed,
                hole_punched: false,
            },
        );
        if !relayed {
            self.close_relayed(cx, peer);
        }
        self.answer_finds(cx, peer);
    }

    fn on_connection_closed(&mut self, _cx: &mut Shared, _peer: PeerId, connection: ConnectionId) {
        self.connections.remove(&connection);
    }

    fn on_tick(&mut self, cx: &mut Shared, now: Millis) {
        if self.reprovide.due(now) {
            self.reprovide(cx);
        }
        self.expire_finds(now);
        if self.reserve.due(now) {
            self.reserve_relays(cx);
        }
    }
}

/// How many addresses the DHT's routing table holds for `peer`.
fn dht_addrs(kad: &mut kad::Behaviour<kad::store::MemoryStore>, peer: &PeerId) -> usize {
    let key = kad::KBucketKey::from(*peer);
    kad.kbucket(*peer)
        .and_then(|bucket| {
            bucket
                .iter()
                .find(|entry| *entry.node.key == key)
                .map(|entry| entry.node.value.len())
        })
        .unwrap_or(0)
}

/// A `ferry find` waiting: when it started, and where its answer goes.
type FindCall = (Instant, oneshot::Sender<Result<FindReply, NodeError>>);

#[derive(Default)]
struct Reservation {
    listener: Option<ListenerId>,
    relayed_addr: Option<Multiaddr>,
    reserved: bool,
}

struct Path {
    peer: PeerId,
    remote: Multiaddr,
    /// Through a relay. Read from the whole endpoint: on the accepting side
    /// of a relayed connection the remote address is a bare `/p2p/PEER`, and
    /// only our local (circuit) address shows the relay.
    relayed: bool,
    hole_punched: bool,
}

impl Path {
    fn via(&self) -> Connection {
        if self.relayed {
            return Connection::Relayed;
        }
        if self.hole_punched {
            return Connection::HolePunched;
        }
        let ip = self.remote.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(std::net::IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        });
        match ip {
            Some(ip) if ip.is_loopback() || ferry_net::interfaces::on_local_subnet(ip) => {
                Connection::Lan
            }
            _ => Connection::Direct,
        }
    }
}

impl Reach {
    pub(super) fn new(bootstrap: Vec<Multiaddr>, now: Millis) -> Self {
        Self {
            bootstrap,
            reprovide: Every::after(REPROVIDE_INTERVAL, now),
            reserve: Every::after(RESERVE_INTERVAL, now),
            status: None,
            observed: BTreeMap::new(),
            relays: BTreeMap::new(),
            connections: HashMap::new(),
            finding: HashMap::new(),
            lookups: HashMap::new(),
            find_deadlines: HashMap::new(),
            provided: std::collections::BTreeSet::new(),
        }
    }

    /// Dials the configured bootstrap nodes; the DHT learns them when they
    /// identify themselves.
    pub(super) fn dial_bootstrap(&mut self, cx: &mut Shared) {
        for addr in &self.bootstrap {
            if let Err(e) = cx.swarm.dial(addr.clone()) {
                tracing::warn!(%addr, "cannot dial bootstrap node: {e}");
            }
        }
    }

    /// Once a direct path to a peer exists, its relayed connections only cost
    /// the relay: close them, so transfers take the direct path.
    fn close_relayed(&mut self, cx: &mut Shared, peer: PeerId) {
        let relayed: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, path)| path.peer == peer && path.via() == Connection::Relayed)
            .map(|(id, _)| *id)
            .collect();
        for connection in relayed {
            tracing::info!(%peer, "direct connection open; closing the relayed one");
            cx.swarm.close_connection(connection);
        }
    }

    /// The best path to a connected peer.
    fn best_path(&self, peer: &PeerId) -> Option<&Path> {
        self.connections
            .values()
            .filter(|p| p.peer == *peer)
            .min_by_key(|p| p.via())
    }

    pub(super) fn on_identified(&mut self, cx: &mut Shared, peer: PeerId, info: &identify::Info) {
        let observed = &info.observed_addr;
        let has_ip = matches!(
            observed.iter().next(),
            Some(Protocol::Ip4(_) | Protocol::Ip6(_))
        );
        if has_ip && !observed.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
            let udp = observed.iter().any(|p| matches!(p, Protocol::Udp(_)));
            // The first report per peer stands: a later one may come over an
            // AutoNAT dial-back or another connection from a fresh port, which
            // says nothing about the mapping of our listening port.
            if self.observed.len() < MAX_OBSERVERS {
                self.observed
                    .entry((peer, udp))
                    .or_insert_with(|| observed.clone());
            }
        }
        // Every ferry node goes into the routing table, DHT server or not: a
        // node behind NAT is only a client, yet must be findable by id (its
        // relayed address among its addresses).
        // The DHT keeps every address it is given for a peer, so a peer
        // pushing new ones would grow its entry without end: past the cap,
        // its addresses are replaced by those it gives now.
        if info.protocol_version == IDENTIFY_PROTOCOL {
            let kad = &mut cx.swarm.behaviour_mut().kad;
            if dht_addrs(kad, &peer) + info.listen_addrs.len() > MAX_DHT_ADDRS_PER_PEER {
                kad.remove_peer(&peer);
            }
            for addr in info.listen_addrs.iter().take(MAX_DHT_ADDRS_PER_PEER) {
                kad.add_address(&peer, addr.clone());
            }
        }
        let serves_relay = info.protocols.iter().any(|p| p.as_ref() == RELAY_HOP);
        if serves_relay && !self.relays.contains_key(&peer) && self.relays.len() < MAX_RELAYS {
            self.relays.insert(peer, Reservation::default());
            self.reserve_relays(cx);
        }
    }

    /// While this node is not known to be reachable, it holds a reservation on
    /// every relay it knows, so that others can reach it through them.
    fn reserve_relays(&mut self, cx: &mut Shared) {
        if self.status.as_ref().is_some_and(|s| s.is_public()) {
            return;
        }
        let wanted: Vec<PeerId> = self
            .relays
            .iter()
            .filter(|(_, r)| r.listener.is_none())
            .map(|(peer, _)| *peer)
            .collect();
        for relay in wanted {
            let Some(addr) = self
                .best_path(&relay)
                .filter(|p| p.via() != Connection::Relayed)
                .map(|p| p.remote.clone())
            else {
                continue;
            };
            let circuit = strip_p2p(addr)
                .with(Protocol::P2p(relay))
                .with(Protocol::P2pCircuit);
            match cx.swarm.listen_on(circuit.clone()) {
                Ok(listener) => {
                    tracing::info!(%relay, "asking for a relay reservation");
                    if let Some(r) = self.relays.get_mut(&relay) {
                        r.listener = Some(listener);
                    }
                }
                Err(e) => tracing::warn!(%relay, "cannot listen through the relay: {e}"),
            }
        }
    }

    /// A listener closed: if it was a relay reservation (refused, or ended),
    /// forget it, so the next round of `reserve_relays` asks again.
    pub(super) fn on_listener_closed(&mut self, listener: ListenerId) {
        for (relay, r) in self.relays.iter_mut() {
            if r.listener == Some(listener) {
                tracing::info!(%relay, "relay reservation ended");
                *r = Reservation::default();
            }
        }
    }

    /// A relayed listen address (ours, through a relay) appeared or went.
    pub(super) fn on_relayed_listen_addr(&mut self, addr: &Multiaddr, added: bool) {
        let Some(relay) = relay_of(addr) else {
            return;
        };
        if let Some(r) = self.relays.get_mut(&relay) {
            r.relayed_addr = added.then(|| addr.clone());
        }
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        if let relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } = event {
            tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
            if let Some(r) = self.relays.get_mut(&relay_peer_id) {
                r.reserved = true;
            }
        }
    }

    /// What this node does as a relay for others, logged.
    pub(super) fn on_relay_server(&self, event: relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                tracing::info!(peer = %src_peer_id, "relaying for a peer (reservation)")
            }
            relay::Event::ReservationReqDenied { src_peer_id, .. } => {
                tracing::info!(peer = %src_peer_id, "relay reservation refused: over the limits")
            }
            relay::Event::CircuitReqDenied {
                src_peer_id,
                dst_peer_id,
                ..
            } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, "relay circuit refused: over the limits")
            }
            relay::Event::CircuitClosed {
                src_peer_id,
                dst_peer_id,
                error,
            } => {
                tracing::info!(src = %src_peer_id, dst = %dst_peer_id, "relay circuit closed{}", error.map(|e| format!(": {e}")).unwrap_or_default())
            }
            _ => {}
        }
    }

    pub(super) fn on_autonat(&mut self, cx: &mut Shared, event: autonat::Event) {
        let autonat::Event::StatusChanged { new, .. } = event else {
            return;
        };
        tracing::info!(status = ?new, "reachability");
        let public = new.is_public();
        self.status = Some(new);
        let mode = if public {
            kad::Mode::Server
        } else {
            kad::Mode::Client
        };
        cx.swarm.behaviour_mut().kad.set_mode(Some(mode));
        if public {
            // Reachable: relayed addresses would only add a detour.
            let listeners: Vec<ListenerId> = self
                .relays
                .values_mut()
                .filter_map(|r| r.listener.take())
                .collect();
            for listener in listeners {
                cx.swarm.remove_listener(listener);
            }
        } else {
            self.reserve_relays(cx);
        }
    }

    pub(super) fn on_dcutr(&mut self, cx: &mut Shared, event: dcutr::Event) {
        match event.result {
            Ok(connection) => {
                tracing::info!(peer = %event.remote_peer_id, "hole punched: direct connection");
                if let Some(path) = self.connections.get_mut(&connection) {
                    path.hole_punched = true;
                }
                self.close_relayed(cx, event.remote_peer_id);
            }
            Err(e) => {
                tracing::info!(peer = %event.remote_peer_id, "hole punching failed, staying relayed: {e}")
            }
        }
    }

    pub(super) fn find(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        reply: oneshot::Sender<Result<FindReply, NodeError>>,
    ) {
        if peer == cx.local_peer() {
            let _ = reply.send(Err(NodeError::SelfId));
            return;
        }
        self.finding
            .entry(peer)
            .or_default()
            .push((Instant::now(), reply));
        if cx.swarm.is_connected(&peer) {
            return self.answer_finds(cx, peer);
        }
        let query = cx.swarm.behaviour_mut().kad.get_closest_peers(peer);
        self.lookups.insert(query, peer);
    }

    fn answer_finds(&mut self, cx: &mut Shared, peer: PeerId) {
        self.find_deadlines.remove(&peer);
        let Some(waiting) = self.finding.remove(&peer) else {
            return;
        };
        let Some(path) = self.best_path(&peer) else {
            self.finding.insert(peer, waiting);
            return;
        };
        // What the peer table learnt (DHT, discovery) and every path open now.
        let mut addrs: Vec<String> = cx
            .peers
            .get(&peer)
            .map(|e| e.addrs.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        for path in self.connections.values().filter(|p| p.peer == peer) {
            let addr = path.remote.to_string();
            if !addrs.contains(&addr) {
                addrs.push(addr);
            }
        }
        for (started, reply) in waiting {
            let _ = reply.send(Ok(FindReply {
                peer_id: peer.to_string(),
                addrs: addrs.clone(),
                connected_via: path.remote.to_string(),
                connection: path.via(),
                elapsed_ms: started.elapsed().as_millis() as u64,
            }));
        }
    }

    pub(super) fn on_kad(&mut self, cx: &mut Shared, event: kad::Event) -> Option<ProvidersFound> {
        if let kad::Event::RoutingUpdated {
            is_new_peer: true, ..
        } = event
            && cx
                .swarm
                .behaviour_mut()
                .kad
                .kbuckets()
                .map(|b| b.num_entries())
                .sum::<usize>()
                == 1
        {
            // The first DHT peer: announce what was shared before there was anyone to tell.
            self.reprovide(cx);
            return None;
        }
        let kad::Event::OutboundQueryProgressed { id, result, .. } = event else {
            return None;
        };
        match result {
            kad::QueryResult::GetClosestPeers(result) => {
                let target = self.lookups.remove(&id)?;
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                match peers.into_iter().find(|p| p.peer_id == target) {
                    Some(found) => {
                        tracing::info!(peer = %target, addrs = ?found.addrs, "found in the DHT");
                        cx.peers.discovered(
                            target,
                            ferry_core::peers::Source::Dht,
                            found.addrs.clone(),
                            cx.clock.mono_ms(),
                        );
                        let opts = ferry_net::libp2p::swarm::dial_opts::DialOpts::peer_id(target)
                            .addresses(found.addrs)
                            .build();
                        if let Err(e) = cx.swarm.dial(opts) {
                            self.fail_finds(
                                target,
                                NodeError::Unreachable(format!(
                                    "found {target} but cannot dial it: {e}"
                                )),
                            );
                        }
                    }
                    None => {
                        let _ = cx.swarm.dial(target);
                        self.find_deadlines
                            .insert(target, cx.clock.mono_ms() + FIND_GRACE_MS);
                    }
                }
            }
            kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                providers,
                ..
            })) => {
                return Some(ProvidersFound {
                    query: id,
                    providers: Some(providers.into_iter().collect()),
                });
            }
            kad::QueryResult::GetProviders(_) => {
                return Some(ProvidersFound {
                    query: id,
                    providers: None,
                });
            }
            kad::QueryResult::StartProviding(Err(e)) => {
                tracing::debug!("provider record not published: {e}")
            }
            _ => {}
        }
        None
    }

    /// Finds whose grace ran out without a connection fail.
    pub(super) fn expire_finds(&mut self, now: u64) {
        let expired: Vec<PeerId> = self
            .find_deadlines
            .iter()
            .filter(|(_, deadline)| now >= **deadline)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.find_deadlines.remove(&peer);
            self.fail_finds(
                peer,
                NodeError::NotFound(format!("{peer} was not found in the DHT: it may be offline, or no bootstrap node is known (ferry start --bootstrap ADDR)")),
            );
        }
    }

    fn fail_finds(&mut self, peer: PeerId, error: NodeError) {
        for (_, reply) in self.finding.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Err(error.clone()));
        }
    }

    /// Announces in the DHT that this node provides `id`, now and whenever
    /// [`Engine::reprovide`] runs.
    pub(super) fn provide(&mut self, cx: &mut Shared, id: ContentId) {
        self.provided.insert(id);
        self.announce(cx, id);
    }

    /// Adds everything the store holds complete to what this node announces;
    /// the announcements go out once the DHT has a peer.
    fn provide_stored(&mut self, stored: &Stored) {
        match &stored.blobs {
            Ok(blobs) => self.provided.extend(
                blobs
                    .iter()
                    .filter(|b| b.complete && !b.stale)
                    .map(|b| b.id),
            ),
            Err(e) => tracing::warn!("cannot list stored content: {e}"),
        }
    }

    /// Announces everything provided again: when the first DHT peer appears,
    /// and periodically, so records outlive the peers that held them.
    pub(super) fn reprovide(&mut self, cx: &mut Shared) {
        for id in self.provided.clone() {
            self.announce(cx, id);
        }
    }

    fn announce(&mut self, cx: &mut Shared, id: ContentId) {
        let key = kad::RecordKey::new(id.as_bytes());
        if let Err(e) = cx.swarm.behaviour_mut().kad.start_providing(key) {
            tracing::warn!(%id, "cannot announce the content in the DHT: {e}");
        }
    }

    pub(super) fn nat_info(&self, cx: &Shared) -> NatInfo {
        let (reachability, public_addr) = match &self.status {
            Some(autonat::NatStatus::Public(addr)) => {
                (Reachability::Public, Some(addr.to_string()))
            }
            Some(autonat::NatStatus::Private) => (Reachability::Private, None),
            _ => (Reachability::Unknown, None),
        };
        let mut peers: Vec<PeerPath> = cx
            .swarm
            .connected_peers()
            .filter_map(|peer| {
                let path = self.best_path(peer)?;
                Some(PeerPath {
                    peer_id: peer.to_string(),
                    name: cx.peers.get(peer).and_then(|e| e.name.clone()),
                    connection: path.via(),
                    remote_addr: path.remote.to_string(),
                })
            })
            .collect();
        peers.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
        NatInfo {
            reachability,
            public_addr,
            observed: self
                .observed
                .iter()
                .map(|((peer, _), addr)| ObservedAddr {
                    by_peer: peer.to_string(),
                    addr: addr.to_string(),
                })
                .collect(),
            mapping: mapping_behaviour(
                self.observed
                    .iter()
                    .filter(|((_, udp), _)| *udp)
                    .map(|(_, addr)| addr),
            ),
            dht_mode: if self.status.as_ref().is_some_and(|s| s.is_public()) {
                DhtMode::Server
            } else {
                DhtMode::Client
            },
            relay_server: cx.swarm.behaviour().relay.is_enabled(),
            relays: self
                .relays
                .iter()
                .filter(|(_, r)| r.listener.is_some() || r.reserved)
                .map(|(peer, r)| RelayInfo {
                    peer_id: peer.to_string(),
                    relayed_addr: r.relayed_addr.as_ref().map(ToString::to_string),
                    reserved: r.reserved,
                })
                .collect(),
            peers,
        }
    }
}

/// Endpoint-independent when every peer that reported our UDP address saw
/// the same IP and port (a cone NAT, or no NAT), endpoint-dependent when they
/// saw different ports (a symmetric NAT), unknown with fewer than two reports.
/// UDP, because QUIC uses one socket for every peer, so a difference can only
/// come from the NAT; TCP dials use a fresh port each.
fn mapping_behaviour<'a>(observed: impl Iterator<Item = &'a Multiaddr>) -> Mapping {
    let udp: Vec<(String, u16)> = observed
        .filter_map(|addr| {
            let mut ip = None;
            let mut port = None;
            for p in addr.iter() {
                match p {
                    Protocol::Ip4(a) => ip = Some(a.to_string()),
                    Protocol::Ip6(a) => ip = Some(a.to_string()),
                    Protocol::Udp(p) => port = Some(p),
                    _ => {}
                }
            }
            Some((ip?, port?))
        })
        .collect();
    if udp.len() < 2 {
        return Mapping::Unknown;
    }
    let distinct: HashSet<&(String, u16)> = udp.iter().collect();
    if distinct.len() == 1 {
        Mapping::EndpointIndependent
    } else {
        Mapping::EndpointDependent
    }
}

fn strip_p2p(mut addr: Multiaddr) -> Multiaddr {
    while matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

/// The relay a relayed address goes through: the peer before `/p2p-circuit`.
fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => relay = Some(peer),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn mapping_needs_udp_reports_and_compares_ports() {
        let cone = addrs(&[
            "/ip4/1.2.3.4/udp/5000/quic-v1",
            "/ip4/1.2.3.4/udp/5000/quic-v1",
        ]);
        assert_eq!(mapping_behaviour(cone.iter()), "endpoint-independent");
        assert_eq!(mapping_behaviour(cone[..1].iter()), "unknown");
        let symmetric = addrs(&[
            "/ip4/1.2.3.4/udp/5000/quic-v1",
            "/ip4/1.2.3.4/udp/6123/quic-v1",
        ]);
        assert_eq!(mapping_behaviour(symmetric.iter()), "endpoint-dependent");
        let tcp_only = addrs(&["/ip4/1.2.3.4/tcp/5000"]);
        assert_eq!(mapping_behaviour(tcp_only.iter()), "unknown");
    }

    #[test]
    fn relayed_addresses_name_their_relay() {
        let relay: PeerId = ferry_core::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let addr: Multiaddr = format!("/ip4/10.0.0.1/tcp/4001/p2p/{relay}/p2p-circuit")
            .parse()
            .unwrap();
        assert_eq!(relay_of(&addr), Some(relay));
        assert_eq!(relay_of(&"/ip4/10.0.0.1/tcp/4001".parse().unwrap()), None);
    }
}
