//! Finding peers: LAN beacons, mDNS, identify, remembered peers; and noticing
//! when one is gone.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferry_core::beacon::{self, Beacon, BeaconError, BeaconInfo};
use ferry_core::peers::{BeaconVerdict, Source};
use ferry_core::ratelimit::KeyedLimiter;
use ferry_core::{Millis, Multiaddr, PeerId};
use ferry_net::beacon::BeaconSocket;
use ferry_net::libp2p::multiaddr::Protocol;
use ferry_net::libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use ferry_net::libp2p::{identify, mdns, ping};
use ferry_store::RememberedPeer;

use super::hooks::{Every, Hooks, Stored};
use super::{Shared, Work};

/// A beacon is sent this often: often enough that a new node is found within
/// about a second, rarely enough to be no load.
const BEACON_INTERVAL: Duration = Duration::from_secs(1);

/// The beacon socket and what guards it.
struct Beacons {
    socket: BeaconSocket,
    /// Datagrams per sender address: a flood from one host is dropped early,
    /// before any signature is checked.
    limiter: KeyedLimiter<IpAddr>,
    /// Rejected datagrams, logged in summary so a flood cannot flood the log.
    rejected: u64,
    /// Datagrams whose signature is being checked on the blocking pool.
    checking: usize,
}

/// Beacons checked on the blocking pool at once, at most; past it a datagram
/// is dropped. Senders are limited per address, but a flood from many
/// (spoofed) addresses must not queue signature checks without end; an honest
/// LAN sends a few a second.
const MAX_BEACONS_CHECKING: usize = 64;

/// Discovery's work, finished on the blocking pool.
pub(crate) enum Done {
    /// A beacon datagram from `from`, decoded and checked.
    Beacon {
        from: SocketAddr,
        result: Result<Beacon, BeaconError>,
    },
}

impl Beacons {
    fn new(socket: BeaconSocket) -> Self {
        Self {
            socket,
            limiter: KeyedLimiter::new(10, 4.0, 1024),
            rejected: 0,
            checking: 0,
        }
    }
}

/// Finding peers and noticing they left: the beacon socket (if beacons are
/// on) and its timer. The peer table itself is shared ([`Shared`]).
pub(super) struct Discovery {
    beacon: Option<Beacons>,
    beacons_due: Every,
}

impl Hooks for Discovery {
    fn on_start(&mut self, cx: &mut Shared, stored: &Stored) {
        self.redial_remembered(cx, stored);
    }

    /// Unconnected peers are dialled again (the peer table spaces the
    /// attempts) and peers not seen for a while are forgotten.
    fn on_tick(&mut self, cx: &mut Shared, now: Millis) {
        self.redial_known(cx, now);
        for gone in cx.peers.expire(now) {
            tracing::info!(peer = %gone.peer, name = ?gone.name, "peer left");
        }
    }
}

impl Discovery {
    pub(super) fn new(socket: Option<BeaconSocket>, now: Millis) -> Self {
        Self {
            beacon: socket.map(Beacons::new),
            beacons_due: Every::starting(BEACON_INTERVAL, now),
        }
    }

    /// The next datagram on the beacon socket; never resolves when beacons are off.
    pub(super) async fn next_beacon(&self) -> io::Result<(Vec<u8>, SocketAddr)> {
        match &self.beacon {
            Some(b) => b.socket.recv().await,
            None => std::future::pending().await,
        }
    }

    pub(super) fn on_beacon(
        &mut self,
        cx: &mut Shared,
        received: io::Result<(Vec<u8>, SocketAddr)>,
    ) {
        let now = cx.clock.mono_ms();
        let Some(beacons) = self.beacon.as_mut() else {
            return;
        };
        let (datagram, from) = match received {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("beacon socket: {e}");
                return;
            }
        };
        if !beacons.limiter.allow(&from.ip(), now) {
            beacons.rejected += 1;
            return;
        }
        if beacons.checking >= MAX_BEACONS_CHECKING {
            beacons.rejected += 1;
            return;
        }
        // The signature is checked on the blocking pool, as every hash is.
        beacons.checking += 1;
        cx.blocking(move |_| {
            Work::Discovery(Done::Beacon {
                from,
                result: beacon::decode(&datagram),
            })
        });
    }

    /// Work of discovery finished on the blocking pool.
    pub(super) fn on_done(&mut self, cx: &mut Shared, done: Done) {
        match done {
            Done::Beacon { from, result } => self.on_beacon_checked(cx, from, result),
        }
    }

    /// A beacon's datagram decoded and its signature checked, or not.
    fn on_beacon_checked(
        &mut self,
        cx: &mut Shared,
        from: SocketAddr,
        result: Result<Beacon, BeaconError>,
    ) {
        let now = cx.clock.mono_ms();
        let Some(beacons) = self.beacon.as_mut() else {
            return;
        };
        beacons.checking = beacons.checking.saturating_sub(1);
        let beacon = match result {
            Ok(b) => b,
            Err(e) => {
                beacons.rejected += 1;
                if beacons.rejected.is_power_of_two() {
                    tracing::warn!(%from, rejected = beacons.rejected, "ignored a bad beacon: {e}");
                }
                return;
            }
        };
        let addrs = beacon_addrs(from.ip(), &beacon.info);
        let verdict = cx
            .peers
            .beacon(beacon.peer, beacon.info.seq, &beacon.info.name, addrs, now);
        if verdict == BeaconVerdict::New {
            tracing::info!(peer = %beacon.peer, name = %beacon.info.name, %from, "found by broadcast");
        }
        if verdict != BeaconVerdict::Stale {
            self.maybe_dial(cx, beacon.peer, now);
        }
    }

    /// Broadcasts a beacon when one is due (the one hook that awaits: a
    /// beacon goes out on a socket).
    pub(super) async fn send_beacon(&mut self, cx: &Shared, now: Millis) {
        if self.beacon.is_none() || !self.beacons_due.due(now) {
            return;
        }
        let (tcp_port, quic_port) = self.listen_ports(cx);
        if tcp_port.is_none() && quic_port.is_none() {
            return;
        }
        let info = BeaconInfo {
            // The wall clock grows across restarts, so a restarted node's
            // beacons are never taken for replays of its old ones.
            seq: cx.clock.unix_ms(),
            name: cx.name.clone(),
            tcp_port,
            quic_port,
        };
        let datagram = match beacon::encode(&cx.keypair, &info) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("cannot encode a beacon: {e}");
                return;
            }
        };
        if let Some(beacons) = &self.beacon
            && beacons.socket.broadcast(&datagram).await == 0
        {
            tracing::debug!("no interface could send a beacon");
        }
    }

    /// The first IPv4 TCP and QUIC ports this node listens on.
    fn listen_ports(&self, cx: &Shared) -> (Option<u16>, Option<u16>) {
        let mut tcp = None;
        let mut quic = None;
        for addr in &cx.listen_addrs {
            let parts: Vec<Protocol> = addr.iter().collect();
            match parts.as_slice() {
                [Protocol::Ip4(_), Protocol::Tcp(port)] => tcp = tcp.or(Some(*port)),
                [Protocol::Ip4(_), Protocol::Udp(port), Protocol::QuicV1] => {
                    quic = quic.or(Some(*port))
                }
                _ => {}
            }
        }
        (tcp, quic)
    }

    pub(super) fn on_mdns(&mut self, cx: &mut Shared, event: mdns::Event, now: Millis) {
        if let mdns::Event::Discovered(found) = event {
            for (peer, addr) in found {
                if cx.peers.discovered(peer, Source::Mdns, [addr], now) {
                    tracing::info!(%peer, "found by mDNS");
                }
                self.maybe_dial(cx, peer, now);
            }
        }
    }

    /// A connected peer told us where it listens: remember it for next start.
    pub(super) fn on_identify(&mut self, cx: &mut Shared, event: identify::Event) {
        let identify::Event::Received { peer_id, info, .. } = event else {
            return;
        };
        let remembered = RememberedPeer {
            peer: peer_id,
            name: cx.peers.get(&peer_id).and_then(|e| e.name.clone()),
            addrs: info
                .listen_addrs
                .into_iter()
                .filter(is_dialable)
                .take(ferry_core::peers::MAX_ADDRS_PER_PEER)
                .collect(),
            last_connected_ms: cx.clock.unix_ms(),
        };
        let store = cx.store.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.remember_peer(&remembered)
                && !e.is_storage_failure()
            {
                tracing::warn!(peer = %peer_id, "cannot remember peer: {e}");
            }
        });
    }

    pub(super) fn on_ping(&mut self, cx: &mut Shared, event: ping::Event, now: Millis) {
        match event.result {
            Ok(rtt) => cx.peers.rtt(
                event.peer,
                u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX),
                now,
            ),
            Err(e) => {
                // A peer that stops answering pings is gone (its host slept,
                // left the Wi-Fi, or was killed): drop the connection now
                // rather than wait for TCP to notice.
                tracing::info!(peer = %event.peer, "ping failed ({e}); closing the connection");
                cx.swarm.close_connection(event.connection);
            }
        }
    }

    /// Peers from an earlier run: dialled once at start, forgotten like any
    /// other peer if they do not answer.
    fn redial_remembered(&mut self, cx: &mut Shared, stored: &Stored) {
        let now = cx.clock.mono_ms();
        let remembered = match &stored.remembered {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("cannot read remembered peers: {e}");
                return;
            }
        };
        for peer in remembered {
            cx.peers
                .discovered(peer.peer, Source::Remembered, peer.addrs.clone(), now);
            if let Some(name) = &peer.name {
                cx.peers.named(peer.peer, name.clone());
            }
            self.maybe_dial(cx, peer.peer, now);
        }
    }

    pub(super) fn redial_known(&mut self, cx: &mut Shared, now: Millis) {
        let unconnected: Vec<PeerId> = cx
            .peers
            .iter()
            .filter(|e| !e.is_connected())
            .map(|e| e.peer)
            .collect();
        for peer in unconnected {
            self.maybe_dial(cx, peer, now);
        }
    }

    pub(super) fn maybe_dial(&mut self, cx: &mut Shared, peer: PeerId, now: Millis) {
        if !cx.peers.should_dial(&peer, now) {
            return;
        }
        let Some(entry) = cx.peers.get(&peer) else {
            return;
        };
        let opts = DialOpts::peer_id(peer)
            .addresses(entry.addrs.clone())
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = cx.swarm.dial(opts) {
            tracing::debug!(%peer, "not dialled: {e}");
        }
    }
}

/// The addresses a beacon's sender listens on, as seen from here.
fn beacon_addrs(ip: IpAddr, info: &BeaconInfo) -> Vec<Multiaddr> {
    let base = Multiaddr::from(ip);
    let mut addrs = Vec::new();
    if let Some(port) = info.tcp_port {
        addrs.push(base.clone().with(Protocol::Tcp(port)));
    }
    if let Some(port) = info.quic_port {
        addrs.push(base.with(Protocol::Udp(port)).with(Protocol::QuicV1));
    }
    addrs
}

/// Unspecified addresses (0.0.0.0) cannot be dialled; everything else may be.
fn is_dialable(addr: &Multiaddr) -> bool {
    !addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beacon_addresses_pair_the_sender_ip_with_its_ports() {
        let info = BeaconInfo {
            seq: 1,
            name: "a".into(),
            tcp_port: Some(4001),
            quic_port: Some(4002),
        };
        let addrs = beacon_addrs("10.0.0.9".parse().unwrap(), &info);
        assert_eq!(
            addrs,
            vec![
                "/ip4/10.0.0.9/tcp/4001".parse::<Multiaddr>().unwrap(),
                "/ip4/10.0.0.9/udp/4002/quic-v1".parse().unwrap()
            ]
        );
    }
}
