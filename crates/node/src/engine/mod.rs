//! The engine: one task that owns the swarm, the peer table and the beacon
//! socket, feeds what happens on the network to the core's state machines, and
//! carries out the control API's commands.
//!
//! Everything that changes network state goes through this one task, so no
//! lock is held across the network code; the store is shared with the API,
//! which reads it directly.

mod channel_store;
mod channels;
mod discovery;
mod download;
mod dtn;
mod reach;
mod serve;
mod views;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::channel::ChannelName;
use ferry_core::content::{ContentId, ContentKind, Ticket};
use ferry_core::peers::PeerTable;
use ferry_core::ratelimit::KeyedLimiter;
use ferry_core::retry::Retries;
use ferry_core::transfer::BlobResponse;
use ferry_core::{Keypair, Multiaddr, PeerId};
use ferry_net::beacon::BeaconSocket;
use ferry_net::libp2p::futures::StreamExt;
use ferry_net::libp2p::request_response::{OutboundRequestId, ResponseChannel};
use ferry_net::libp2p::swarm::{ConnectionId, SwarmEvent};
use ferry_net::libp2p::{Swarm, multiaddr::Protocol};
use ferry_net::{Behaviour, BehaviourEvent};
use ferry_store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::control::types::{ConnectReply, FindReply, IdInfo, MessageView, NatInfo, PeerInfo};
use crate::dtn::Dtn;
use crate::error::NodeError;
use crate::jobs::{JobId, Jobs};

pub use download::GetPlan;
pub use views::{blob_entry, message_view};

/// How often timers run: beacons, redials, departures.
const TICK: Duration = Duration::from_millis(500);
/// Provider records are announced again every 30 minutes (in ticks).
const REPROVIDE_TICKS: u64 = 30 * 60 * 2;

/// A request from the control API. Each carries the channel its answer goes to.
pub enum Command {
    Id(oneshot::Sender<IdInfo>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Connect(Multiaddr, oneshot::Sender<Result<ConnectReply, NodeError>>),
    Post(
        ChannelName,
        String,
        oneshot::Sender<Result<MessageView, NodeError>>,
    ),
    /// Join a channel (a read: a channel the user left stays left); the answer
    /// comes once it is on disk.
    Join(ChannelName, oneshot::Sender<Result<(), NodeError>>),
    /// Leave a channel; answers whether the node was in it.
    Leave(ChannelName, oneshot::Sender<Result<bool, NodeError>>),
    /// Download: the job is already registered; a ticket's provider and
    /// addresses come along so they can be dialled.
    Get {
        job: JobId,
        plan: GetPlan,
        provider_addrs: Vec<Multiaddr>,
    },
    /// Stop a running download; its partial data is removed unless `keep`.
    /// The answer comes once that is done.
    Cancel {
        job: JobId,
        keep: bool,
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    /// Find a peer by id (the DHT if needed) and connect to it.
    Find(PeerId, oneshot::Sender<Result<FindReply, NodeError>>),
    Nat(oneshot::Sender<NatInfo>),
    /// Announce shared content in the DHT.
    Provide(ContentId),
    /// A ticket for content this node holds, with its current addresses.
    Ticket {
        id: ContentId,
        kind: ContentKind,
        name: Option<String>,
        reply: oneshot::Sender<Ticket>,
    },
}

/// Why received groups were not (all) stored.
pub(crate) enum Received {
    /// The peer's data failed verification after this many good groups.
    BadData(u64, String),
    /// This node could not store it (a full disk): not the peer's fault.
    Local(String),
}

/// Work finished off the engine task (on the blocking pool), coming back.
pub(crate) enum Work {
    Served {
        peer: PeerId,
        reply: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    },
    Verified {
        job: JobId,
        peer: PeerId,
        first: u64,
        last: u64,
        /// The size this verification proves, when it is a size probe.
        probe: Option<u64>,
        /// Newly verified groups, or why the data was not stored.
        result: Result<u64, Received>,
    },
    Exported {
        job: JobId,
        result: Result<(), String>,
    },
    Dtn(dtn::Done),
    Channels(channel_store::Done),
}

pub struct Engine {
    swarm: Swarm<Behaviour>,
    keypair: Keypair,
    name: String,
    store: Arc<Store>,
    clock: Clock,
    peers: PeerTable,
    joined: BTreeSet<ChannelName>,
    /// Channels the user left, which a read does not join again.
    left: BTreeSet<ChannelName>,
    /// Channel changes waiting for the disk.
    channel_writes: channel_store::Writes,
    /// What each peer may make this node store through gossip.
    gossip_limiter: KeyedLimiter<PeerId>,
    listen_addrs: BTreeSet<Multiaddr>,
    data_dir: String,
    /// `ferry connect` calls waiting for their dial to end.
    pending_dials: HashMap<ConnectionId, oneshot::Sender<Result<ConnectReply, NodeError>>>,
    /// History requests in flight, and the channel each is about.
    pending_history: HashMap<OutboundRequestId, ChannelName>,
    /// History requests that failed, to send again soon.
    history_retries: Retries<(PeerId, ChannelName)>,
    beacon: Option<discovery::Beacons>,
    sync_limiter: KeyedLimiter<PeerId>,
    /// The highest message seq stored; API long polls wait on it.
    new_messages: watch::Sender<u64>,
    /// Round-robin position for periodic history exchange.
    anti_entropy_turn: usize,
    ticks: u64,
    jobs: Jobs,
    work: mpsc::UnboundedSender<Work>,
    serving: serve::Serving,
    downloads: HashMap<JobId, download::Download>,
    blob_requests: HashMap<OutboundRequestId, download::Asked>,
    /// Downloads cancelled (without keep) while their size probe was being
    /// verified, and the blob it may still create a partial of.
    late_probes: HashMap<JobId, ContentId>,
    reach: reach::Reach,
    bootstrap: Vec<Multiaddr>,
    dtn: Arc<Dtn>,
    dtn_links: dtn::Links,
}

/// What the engine is built from.
pub struct Parts {
    pub swarm: Swarm<Behaviour>,
    pub keypair: Keypair,
    pub name: String,
    pub store: Arc<Store>,
    pub beacon: Option<BeaconSocket>,
    pub data_dir: String,
    pub new_messages: watch::Sender<u64>,
    pub jobs: Jobs,
    /// DHT bootstrap nodes to dial at start.
    pub bootstrap: Vec<Multiaddr>,
    /// The bundle agent, shared with the control API and TCPCL sessions.
    pub dtn: Arc<Dtn>,
    /// How fast one peer may hand this node bundles.
    pub dtn_peer_rate: crate::dtn::PeerRate,
}

impl Engine {
    /// The engine, and the receiving end of its work channel for `run`.
    pub fn new(parts: Parts) -> (Self, mpsc::UnboundedReceiver<Work>) {
        let local = *parts.swarm.local_peer_id();
        let (work, work_done) = mpsc::unbounded_channel();
        let engine = Self {
            swarm: parts.swarm,
            keypair: parts.keypair,
            name: parts.name,
            store: parts.store,
            clock: Clock::new(),
            peers: PeerTable::new(local),
            joined: BTreeSet::new(),
            left: BTreeSet::new(),
            channel_writes: channel_store::Writes::default(),
            gossip_limiter: KeyedLimiter::new(
                channels::GOSSIP_BURST,
                channels::GOSSIP_PER_SECOND,
                channels::GOSSIP_RATE_PEERS,
            ),
            listen_addrs: BTreeSet::new(),
            data_dir: parts.data_dir,
            pending_dials: HashMap::new(),
            pending_history: HashMap::new(),
            history_retries: Retries::new(channels::MAX_HISTORY_RETRIES),
            reach: reach::Reach::default(),
            bootstrap: parts.bootstrap,
            beacon: parts.beacon.map(discovery::Beacons::new),
            sync_limiter: KeyedLimiter::new(20, 2.0, 4096),
            new_messages: parts.new_messages,
            anti_entropy_turn: 0,
            ticks: 0,
            jobs: parts.jobs,
            work,
            serving: serve::Serving::default(),
            downloads: HashMap::new(),
            blob_requests: HashMap::new(),
            late_probes: HashMap::new(),
            dtn_links: dtn::Links::new(parts.dtn_peer_rate),
            dtn: parts.dtn,
        };
        (engine, work_done)
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut work_done: mpsc::UnboundedReceiver<Work>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        self.rejoin_channels();
        self.dial_bootstrap();
        self.provide_stored();
        self.redial_remembered();
        let mut dtn_changed = self.dtn.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(command) = commands.recv() => self.on_command(command),
                Some(work) = work_done.recv() => self.on_work(work),
                received = discovery::next_beacon(&self.beacon) => self.on_beacon(received),
                Ok(()) = dtn_changed.changed() => self.on_dtn_changed(),
                _ = tick.tick() => self.on_tick().await,
                () = &mut shutdown => break,
            }
        }
        tracing::info!("shutting down");
    }

    fn local_peer(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Id(reply) => {
                let _ = reply.send(self.id_info());
            }
            Command::Peers(reply) => {
                let now = self.clock.mono_ms();
                let _ = reply.send(
                    self.peers
                        .iter()
                        .map(|e| views::peer_info(e, now))
                        .collect(),
                );
            }
            Command::Connect(addr, reply) => self.connect(addr, reply),
            Command::Post(channel, text, reply) => self.post(channel, &text, reply),
            Command::Join(channel, reply) => {
                let _ = self.join(channel, false, Some(reply));
            }
            Command::Leave(channel, reply) => self.leave(channel, reply),
            Command::Get {
                job,
                plan,
                provider_addrs,
            } => {
                let now = self.clock.mono_ms();
                for provider in &plan.providers {
                    self.peers.discovered(
                        *provider,
                        ferry_core::peers::Source::Manual,
                        provider_addrs.clone(),
                        now,
                    );
                }
                self.start_download(job, plan);
            }
            Command::Cancel { job, keep, reply } => self.cancel_download(job, keep, reply),
            Command::Find(peer, reply) => self.find(peer, reply),
            Command::Nat(reply) => {
                let _ = reply.send(self.nat_info());
            }
            Command::Provide(id) => self.provide(id),
            Command::Ticket {
                id,
                kind,
                name,
                reply,
            } => {
                let _ = reply.send(Ticket {
                    id,
                    kind,
                    name,
                    provider: self.local_peer(),
                    addrs: self.ticket_addrs(),
                });
            }
        }
    }

    fn on_work(&mut self, work: Work) {
        match work {
            Work::Served {
                peer,
                reply,
                response,
            } => {
                self.serving.end(&peer);
                self.respond_blob(reply, response);
            }
            Work::Verified {
                job,
                peer,
                first,
                last,
                probe,
                result,
            } => self.on_verified(job, peer, (first, last), probe, result),
            Work::Exported { job, result } => self.on_exported(job, result),
            Work::Dtn(done) => self.on_dtn_done(done),
            Work::Channels(done) => self.on_channels_done(done),
        }
    }

    /// The addresses a ticket carries: reachable ones first (LAN, then
    /// global IPv6), loopback last, link-local never (it needs a scope id a
    /// ticket cannot carry).
    fn ticket_addrs(&self) -> Vec<Multiaddr> {
        let rank = |addr: &Multiaddr| match addr.iter().next() {
            Some(Protocol::Ip4(ip)) if ip.is_loopback() => Some(2),
            Some(Protocol::Ip4(_)) => Some(0),
            Some(Protocol::Ip6(ip)) if ip.is_loopback() => Some(3),
            Some(Protocol::Ip6(ip)) if ip.is_unicast_link_local() => None,
            Some(Protocol::Ip6(_)) => Some(1),
            _ => None,
        };
        let mut addrs: Vec<(u8, Multiaddr)> = self
            .listen_addrs
            .iter()
            .filter_map(|a| Some((rank(a)?, a.clone())))
            .collect();
        addrs.sort_by_key(|(r, _)| *r);
        addrs
            .into_iter()
            .map(|(_, a)| a)
            .take(ferry_core::content::MAX_TICKET_ADDRS)
            .collect()
    }

    fn id_info(&self) -> IdInfo {
        let local = self.local_peer();
        IdInfo {
            peer_id: local.to_string(),
            name: self.name.clone(),
            listen_addrs: self
                .listen_addrs
                .iter()
                .map(|a| a.clone().with(Protocol::P2p(local)).to_string())
                .collect(),
            data_dir: self.data_dir.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // Filled in by the control API, off the engine task.
            storage: Default::default(),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let now = self.clock.mono_ms();
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(
                    "listening on {}",
                    address.clone().with(Protocol::P2p(self.local_peer()))
                );
                self.on_relayed_listen_addr(&address, true);
                self.listen_addrs.insert(address);
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                self.on_listener_closed(listener_id);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.on_relayed_listen_addr(&address, false);
                self.listen_addrs.remove(&address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                self.peers
                    .connected(peer_id, remote.clone(), endpoint.is_listener(), now);
                self.on_connection_opened(peer_id, connection_id, &endpoint);
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    self.peers.discovered(
                        peer_id,
                        ferry_core::peers::Source::Manual,
                        [remote.clone()],
                        now,
                    );
                    let _ = reply.send(Ok(ConnectReply {
                        peer_id: peer_id.to_string(),
                        connected_via: remote.to_string(),
                    }));
                }
                if num_established.get() == 1 {
                    tracing::info!(peer = %peer_id, via = %remote, "connected");
                    self.say_hello(peer_id);
                    self.catch_up_with(peer_id);
                    self.dtn_contact_up(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.on_connection_closed(connection_id);
                self.peers.disconnected(peer_id, num_established);
                if num_established == 0 {
                    self.dtn_contact_down(peer_id);
                    self.history_retries.forget(|(peer, _)| *peer == peer_id);
                    tracing::info!(peer = %peer_id, "disconnected{}", cause.map(|c| format!(": {c}")).unwrap_or_default());
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NodeError::Unreachable(error.to_string())));
                } else {
                    tracing::debug!(?peer_id, "dial failed: {error}");
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event, now),
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent, now: ferry_core::Millis) {
        match event {
            BehaviourEvent::Mdns(event) => self.on_mdns(event, now),
            BehaviourEvent::Identify(event) => self.on_identify(event),
            BehaviourEvent::Ping(event) => self.on_ping(event, now),
            BehaviourEvent::Gossipsub(event) => self.on_gossip(event),
            BehaviourEvent::Sync(event) => self.on_sync(event),
            BehaviourEvent::Blob(event) => self.on_blob_event(event),
            BehaviourEvent::Kad(event) => self.on_kad(event),
            BehaviourEvent::Dtn(event) => self.on_dtn_event(event),
            BehaviourEvent::Autonat(event) => self.on_autonat(event),
            BehaviourEvent::RelayClient(event) => self.on_relay_client(event),
            BehaviourEvent::Relay(event) => self.on_relay_server(event),
            BehaviourEvent::Dcutr(event) => self.on_dcutr(event),
            BehaviourEvent::Upnp(event) => tracing::info!("UPnP: {event:?}"),
            BehaviourEvent::ConnectionLimits(never) => match never {},
        }
    }

    fn connect(
        &mut self,
        addr: Multiaddr,
        reply: oneshot::Sender<Result<ConnectReply, NodeError>>,
    ) {
        if let Some(Protocol::P2p(peer)) = addr.iter().last()
            && peer == self.local_peer()
        {
            let _ = reply.send(Err(NodeError::SelfAddress));
            return;
        }
        let opts = ferry_net::libp2p::swarm::dial_opts::DialOpts::from(addr);
        let id = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Unreachable(e.to_string())));
            }
        }
    }

    async fn on_tick(&mut self) {
        self.ticks += 1;
        let now = self.clock.mono_ms();
        self.send_beacon().await;
        self.redial_known(now);
        for gone in self.peers.expire(now) {
            tracing::info!(peer = %gone.peer, name = ?gone.name, "peer left");
        }
        // Every 30 s, exchange history with one connected peer: a message that
        // gossip lost (a peer joined just as it was posted) still arrives.
        if self.ticks.is_multiple_of(60) {
            self.anti_entropy();
        }
        self.retry_history(now);
        if self.ticks.is_multiple_of(channels::PRUNE_TICKS) {
            self.prune_channels();
        }
        if self.ticks.is_multiple_of(REPROVIDE_TICKS) {
            self.reprovide();
        }
        self.dtn_tick();
        self.expire_finds(now);
        self.retry_stalled_downloads(now);
        // Every 30 s, ask again for relay slots that were refused or ended.
        if self.ticks.is_multiple_of(60) {
            self.renew_reservations();
        }
    }
}
