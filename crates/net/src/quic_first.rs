//! Hole punching that prefers QUIC.
//!
//! DCUtR offers the remote every address candidate it has and keeps whichever
//! simultaneous dial connects first, which on many networks is TCP; yet QUIC
//! punches through far more NATs (about three times as often in libp2p's own
//! measurements), since UDP mappings are what NATs are built to keep. This
//! wrapper holds TCP candidates back from DCUtR, and hands them over only if
//! no QUIC candidate has appeared a while after the first TCP one: TCP is
//! punched only where UDP seems blocked.

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, NewExternalAddrCandidate,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, dcutr};

/// How long TCP candidates wait for a QUIC one.
const QUIC_GRACE: Duration = Duration::from_secs(10);

pub struct QuicFirst {
    inner: dcutr::Behaviour,
    seen_quic: bool,
    /// TCP candidates held back, and when the first arrived.
    held_tcp: Vec<Multiaddr>,
    held_since: Option<Instant>,
}

impl QuicFirst {
    pub fn new(inner: dcutr::Behaviour) -> Self {
        Self {
            inner,
            seen_quic: false,
            held_tcp: Vec::new(),
            held_since: None,
        }
    }

    /// After the grace period with no QUIC candidate, TCP is all there is.
    fn release_tcp(&mut self) {
        if self.seen_quic || self.held_since.is_none_or(|t| t.elapsed() < QUIC_GRACE) {
            return;
        }
        for addr in std::mem::take(&mut self.held_tcp) {
            self.inner
                .on_swarm_event(FromSwarm::NewExternalAddrCandidate(
                    NewExternalAddrCandidate { addr: &addr },
                ));
        }
    }
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

fn is_tcp(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Tcp(_)))
}

impl NetworkBehaviour for QuicFirst {
    type ConnectionHandler = <dcutr::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = dcutr::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::NewExternalAddrCandidate(candidate) = &event {
            if is_quic(candidate.addr) {
                self.seen_quic = true;
                self.held_tcp.clear();
            } else if is_tcp(candidate.addr) {
                if !self.seen_quic && !self.held_tcp.contains(candidate.addr) {
                    self.held_tcp.push(candidate.addr.clone());
                    self.held_since.get_or_insert_with(Instant::now);
                }
                return;
            }
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.release_tcp();
        self.inner.poll(cx)
    }
}
