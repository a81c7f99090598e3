//! The engine: one task that owns the swarm, feeds what happens on the
//! network to the protocols and the core's state machines, and carries out
//! the control API's commands.
//!
//! Everything that changes network state goes through this one task, so no
//! lock is held across the network code; the store is shared with the API,
//! which reads it directly.
//!
//! Each protocol is a struct of its own that owns its state: [`discovery`]
//! (beacons, mDNS, identify, dialling, departures), [`reach`] (DHT, AutoNAT,
//! relays, hole punching), [`channels`] (gossip, history exchange), [`serve`]
//! and [`download`] (content), [`dtn`] (bundle contacts). The engine keeps
//! only what they share ([`Shared`]) and calls every protocol's [`Hooks`]
//! from one list ([`Engine::protocols`]).
//!
//! No disk access and no hashing on this task: store reads and writes,
//! verification and signature checks of what peers send run on tokio's
//! blocking pool ([`Shared::blocking`]) and come back as [`Work`].

mod channel_store;
mod channels;
mod discovery;
mod download;
mod dtn;
mod hooks;
mod reach;
mod serve;
mod views;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::channel::ChannelName;
use ferry_core::content::{ContentId, ContentKind, Ticket};
use ferry_core::peers::PeerTable;
use ferry_core::transfer::BlobResponse;
use ferry_core::{Keypair, Multiaddr, PeerId};
use ferry_net::beacon::BeaconSocket;
use ferry_net::libp2p::core::ConnectedPoint;
use ferry_net::libp2p::futures::StreamExt;
use ferry_net::libp2p::identify;
use ferry_net::libp2p::request_response::{self, ResponseChannel};
use ferry_net::libp2p::swarm::{ConnectionId, SwarmEvent};
use ferry_net::libp2p::{Swarm, multiaddr::Protocol};
use ferry_net::{Behaviour, BehaviourEvent};
use ferry_store::Store;
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::dtn::Dtn;
use crate::error::NodeError;
use crate::jobs::{JobId, Jobs};
use crate::types::{ConnectReply, FindReply, IdInfo, MessageView, NatInfo, PeerInfo};
use hooks::{Hooks, Stored};

pub(crate) use download::GetPlan;
pub(crate) use views::{blob_entry, message_view};

/// How often the protocols' timers are checked ([`Hooks::on_tick`]); each
/// timer's own period is a named `Duration` in its protocol's module.
const TICK: Duration = Duration::from_millis(500);

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

/// Work finished off the engine task (on the blocking pool), coming back.
pub(crate) enum Work {
    Served {
        peer: PeerId,
        reply: ResponseChannel<BlobResponse>,
        response: BlobResponse,
    },
    Discovery(discovery::Done),
    Download(download::Done),
    Dtn(dtn::Done),
    Channels(channel_store::Done),
}

/// What every protocol shares: the swarm and the node's identity, the store,
/// the clock, the peer table, the work channel and the jobs. Each protocol's
/// own state lives in its own struct (see [`Hooks`]); their
/// methods are given this as `cx`.
pub(crate) struct Shared {
    swarm: Swarm<Behaviour>,
    keypair: Keypair,
    name: String,
    store: Arc<Store>,
    clock: Clock,
    peers: PeerTable,
    listen_addrs: BTreeSet<Multiaddr>,
    data_dir: String,
    jobs: Jobs,
    work: mpsc::UnboundedSender<Work>,
}

impl Shared {
    fn local_peer(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs `job` on the blocking pool (disk and hashing never run on the
    /// engine task); what it returns comes back to [`Engine::on_work`].
    fn blocking(&self, job: impl FnOnce(&Store) -> Work + Send + 'static) {
        let (store, work) = (self.store.clone(), self.work.clone());
        tokio::task::spawn_blocking(move || {
            let _ = work.send(job(&store));
        });
    }

    /// Disconnects a peer that broke a protocol.
    fn drop_peer(&mut self, peer: PeerId, why: &str) {
        tracing::warn!(%peer, "dropping peer: {why}");
        let _ = self.swarm.disconnect_peer_id(peer);
    }
}

pub(crate) struct Engine {
    cx: Shared,
    /// `ferry connect` calls waiting for their dial to end.
    pending_dials: HashMap<ConnectionId, oneshot::Sender<Result<ConnectReply, NodeError>>>,
    discovery: discovery::Discovery,
    channels: channels::Channels,
    serving: serve::Serving,
    downloads: download::Downloads,
    reach: reach::Reach,
    dtn: dtn::Links,
}

/// What the engine is built from.
pub(crate) struct Parts {
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
    pub(crate) fn new(parts: Parts) -> (Self, mpsc::UnboundedReceiver<Work>) {
        let local = *parts.swarm.local_peer_id();
        let (work, work_done) = mpsc::unbounded_channel();
        let clock = Clock::new();
        let now = clock.mono_ms();
        let engine = Self {
            cx: Shared {
                swarm: parts.swarm,
                keypair: parts.keypair,
                name: parts.name,
                store: parts.store,
                clock,
                peers: PeerTable::new(local),
                listen_addrs: BTreeSet::new(),
                data_dir: parts.data_dir,
                jobs: parts.jobs,
                work,
            },
            pending_dials: HashMap::new(),
            discovery: discovery::Discovery::new(parts.beacon, now),
            channels: channels::Channels::new(parts.new_messages, now),
            serving: serve::Serving::default(),
            downloads: download::Downloads::default(),
            reach: reach::Reach::new(parts.bootstrap, now),
            dtn: dtn::Links::new(parts.dtn, parts.dtn_peer_rate, now),
        };
        (engine, work_done)
    }

    /// Runs until `shutdown` resolves.
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut work_done: mpsc::UnboundedReceiver<Work>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let store = self.cx.store.clone();
        match tokio::task::spawn_blocking(move || Stored::read(&store)).await {
            Ok(stored) => self.on_start(&stored),
            Err(e) => tracing::error!("cannot read the store at start: {e}"),
        }
        let mut dtn_changed = self.dtn.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                event = self.cx.swarm.select_next_some() => self.on_swarm_event(event),
                Some(command) = commands.recv() => self.on_command(command),
                Some(work) = work_done.recv() => self.on_work(work),
                received = self.discovery.next_beacon() => self.discovery.on_beacon(&mut self.cx, received),
                Ok(()) = dtn_changed.changed() => self.dtn.on_changed(&mut self.cx),
                _ = tick.tick() => self.on_tick().await,
                () = &mut shutdown => break,
            }
        }
        tracing::info!("shutting down");
    }

    /// Every protocol, listed in one place: the hooks below reach each
    /// through this list, so a new protocol is added here once (its events and
    /// work are dispatched in `on_behaviour_event` and `on_work`).
    fn protocols(&mut self) -> (&mut Shared, [&mut dyn Hooks; 6]) {
        (
            &mut self.cx,
            [
                &mut self.discovery,
                &mut self.reach,
                &mut self.channels,
                &mut self.serving,
                &mut self.downloads,
                &mut self.dtn,
            ],
        )
    }

    fn on_start(&mut self, stored: &Stored) {
        let (cx, protocols) = self.protocols();
        for protocol in protocols {
            protocol.on_start(cx, stored);
        }
    }

    async fn on_tick(&mut self) {
        let now = self.cx.clock.mono_ms();
        // The one hook that awaits: a beacon goes out on a socket.
        self.discovery.send_beacon(&self.cx, now).await;
        let (cx, protocols) = self.protocols();
        for protocol in protocols {
            protocol.on_tick(cx, now);
        }
    }

    fn on_connection_opened(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        endpoint: &ConnectedPoint,
        first: bool,
    ) {
        let (cx, protocols) = self.protocols();
        for protocol in protocols {
            protocol.on_connection_opened(cx, peer, connection, endpoint);
            if first {
                protocol.on_connected(cx, peer);
            }
        }
    }

    fn on_connection_closed(&mut self, peer: PeerId, connection: ConnectionId, last: bool) {
        let (cx, protocols) = self.protocols();
        for protocol in protocols {
            protocol.on_connection_closed(cx, peer, connection);
            if last {
                protocol.on_disconnected(cx, peer);
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Id(reply) => {
                let _ = reply.send(self.id_info());
            }
            Command::Peers(reply) => {
                let now = self.cx.clock.mono_ms();
                let _ = reply.send(
                    self.cx
                        .peers
                        .iter()
                        .map(|e| views::peer_info(e, now))
                        .collect(),
                );
            }
            Command::Connect(addr, reply) => self.connect(addr, reply),
            Command::Post(channel, text, reply) => {
                self.channels.post(&mut self.cx, channel, &text, reply)
            }
            Command::Join(channel, reply) => {
                let _ = self
                    .channels
                    .join(&mut self.cx, channel, false, Some(reply));
            }
            Command::Leave(channel, reply) => self.channels.leave(&mut self.cx, channel, reply),
            Command::Get {
                job,
                plan,
                provider_addrs,
            } => {
                let now = self.cx.clock.mono_ms();
                for provider in &plan.providers {
                    self.cx.peers.discovered(
                        *provider,
                        ferry_core::peers::Source::Manual,
                        provider_addrs.clone(),
                        now,
                    );
                }
                self.downloads.start(&mut self.cx, job, plan);
            }
            Command::Cancel { job, keep, reply } => {
                self.downloads.cancel(&mut self.cx, job, keep, reply)
            }
            Command::Find(peer, reply) => self.reach.find(&mut self.cx, peer, reply),
            Command::Nat(reply) => {
                let _ = reply.send(self.reach.nat_info(&self.cx));
            }
            Command::Provide(id) => self.reach.provide(&mut self.cx, id),
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
                    provider: self.cx.local_peer(),
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
                self.serving.served(&mut self.cx, peer, reply, response);
            }
            Work::Discovery(done) => self.discovery.on_done(&mut self.cx, done),
            Work::Download(done) => self.downloads.on_done(&mut self.cx, done),
            Work::Dtn(done) => self.dtn.on_done(&mut self.cx, done),
            Work::Channels(done) => self.channels.on_done(&mut self.cx, done),
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
            .cx
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
        let local = self.cx.local_peer();
        IdInfo {
            peer_id: local.to_string(),
            name: self.cx.name.clone(),
            listen_addrs: self
                .cx
                .listen_addrs
                .iter()
                .map(|a| a.clone().with(Protocol::P2p(local)).to_string())
                .collect(),
            data_dir: self.cx.data_dir.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            // Filled in by the control API, off the engine task.
            storage: Default::default(),
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        let now = self.cx.clock.mono_ms();
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(
                    "listening on {}",
                    address.clone().with(Protocol::P2p(self.cx.local_peer()))
                );
                self.reach.on_relayed_listen_addr(&address, true);
                self.cx.listen_addrs.insert(address);
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                self.reach.on_listener_closed(listener_id);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.reach.on_relayed_listen_addr(&address, false);
                self.cx.listen_addrs.remove(&address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                let remote = endpoint.get_remote_address().clone();
                self.cx
                    .peers
                    .connected(peer_id, remote.clone(), endpoint.is_listener(), now);
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    self.cx.peers.discovered(
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
                let first = num_established.get() == 1;
                if first {
                    tracing::info!(peer = %peer_id, via = %remote, "connected");
                }
                self.on_connection_opened(peer_id, connection_id, &endpoint, first);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.cx.peers.disconnected(peer_id, num_established);
                self.on_connection_closed(peer_id, connection_id, num_established == 0);
                if num_established == 0 {
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
        let cx = &mut self.cx;
        match event {
            BehaviourEvent::Mdns(event) => self.discovery.on_mdns(cx, event, now),
            BehaviourEvent::Identify(event) => {
                if let identify::Event::Received { peer_id, info, .. } = &event {
                    self.reach.on_identified(cx, *peer_id, info);
                }
                self.discovery.on_identify(cx, event);
            }
            BehaviourEvent::Ping(event) => self.discovery.on_ping(cx, event, now),
            BehaviourEvent::Gossipsub(event) => self.channels.on_gossip(cx, event),
            BehaviourEvent::Sync(event) => self.channels.on_sync(cx, event),
            BehaviourEvent::Blob(event) => match event {
                request_response::Event::Message {
                    peer,
                    message:
                        request_response::Message::Request {
                            request, channel, ..
                        },
                    ..
                } => self.serving.serve(cx, peer, request, channel),
                request_response::Event::InboundFailure { peer, error, .. } => {
                    tracing::debug!(%peer, "blob answer failed: {error}");
                }
                event => self.downloads.on_blob_event(cx, event),
            },
            BehaviourEvent::Kad(event) => {
                if let Some(found) = self.reach.on_kad(cx, event) {
                    self.downloads.on_providers(cx, found);
                }
            }
            BehaviourEvent::Dtn(event) => self.dtn.on_event(cx, event),
            BehaviourEvent::Autonat(event) => self.reach.on_autonat(cx, event),
            BehaviourEvent::RelayClient(event) => self.reach.on_relay_client(event),
            BehaviourEvent::Relay(event) => self.reach.on_relay_server(event),
            BehaviourEvent::Dcutr(event) => self.reach.on_dcutr(cx, event),
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
            && peer == self.cx.local_peer()
        {
            let _ = reply.send(Err(NodeError::SelfAddress));
            return;
        }
        let opts = ferry_net::libp2p::swarm::dial_opts::DialOpts::from(addr);
        let id = opts.connection_id();
        match self.cx.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(id, reply);
            }
            Err(e) => {
                let _ = reply.send(Err(NodeError::Unreachable(e.to_string())));
            }
        }
    }
}
