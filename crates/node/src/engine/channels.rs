//! Channels: joining and leaving, posting, gossip, and the history exchange
//! that lets a node that was away catch up.
//!
//! A node joins only the channels its user asked for (by posting, reading or
//! chatting), at most [`MAX_JOINED_CHANNELS`]; a neighbour that subscribes to a
//! topic makes it join nothing. Disk work runs on the blocking pool (see
//! [`super::channel_store`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use ferry_core::channel::{ChannelName, Message};
use ferry_core::history::{self, MAX_RESPONSE_BYTES};
use ferry_core::ratelimit::KeyedLimiter;
use ferry_core::retry::Retries;
use ferry_core::sync::{MAX_HAVE_IDS, SyncRequest, SyncResponse};
use ferry_core::{Millis, PeerId};
use ferry_net::libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use ferry_net::libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use ferry_store::{Store, StoreError};
use tokio::sync::{oneshot, watch};

use super::channel_store::{self, Done, Draft, Outcome, Pending};
use super::hooks::{Every, Hooks, Stored};
use super::{Shared, Work};
use crate::error::NodeError;
use crate::types::MessageView;

type SyncEvent = request_response::Event<SyncRequest, SyncResponse>;

/// The most channels a node is in at once. Each joined channel costs a gossip
/// subscription (mesh upkeep with every peer in it) and a history exchange
/// with every new peer; a person follows far fewer.
pub(super) const MAX_JOINED_CHANNELS: usize = 256;
/// Gossip messages one peer may make this node store: a burst of 500, then 100
/// a second. A busy chat relayed by one neighbour stays far below; past it,
/// the peer's messages are ignored (neither stored nor forwarded) before they
/// are even decoded, so a flood costs little more than receiving it.
const GOSSIP_BURST: u32 = 500;
const GOSSIP_PER_SECOND: f64 = 100.0;
/// Peers whose gossip rate is tracked at once (the least recently seen is
/// forgotten past it).
const GOSSIP_RATE_PEERS: usize = 4096;
/// Failed history requests waiting to be retried at once (peers times joined
/// channels; past it a failure waits for the periodic exchange).
const MAX_HISTORY_RETRIES: usize = 4096;
/// Retention runs over every channel this often, so a quiet channel's
/// messages age out too.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// History is exchanged with one connected peer (in turn) this often, so a
/// message that gossip lost (a peer joined just as it was posted) still
/// arrives.
const ANTI_ENTROPY_INTERVAL: Duration = Duration::from_secs(30);
/// History requests one peer may make: a burst of 20, then 2 a second.
const SYNC_BURST: u32 = 20;
const SYNC_PER_SECOND: f64 = 2.0;
/// Peers whose sync request rate is tracked at once.
const SYNC_RATE_PEERS: usize = 4096;

/// The channels' state: which are joined and left, the writes waiting for the
/// disk, history requests in flight and to retry, and the rate limits.
pub(super) struct Channels {
    joined: BTreeSet<ChannelName>,
    /// Channels the user left, which a read does not join again.
    left: BTreeSet<ChannelName>,
    /// Channel changes waiting for the disk.
    channel_writes: channel_store::Writes,
    /// What each peer may make this node store through gossip.
    gossip_limiter: KeyedLimiter<PeerId>,
    /// History requests in flight, and the channel each is about.
    pending_history: HashMap<OutboundRequestId, ChannelName>,
    /// History requests that failed, to send again soon.
    history_retries: Retries<(PeerId, ChannelName)>,
    sync_limiter: KeyedLimiter<PeerId>,
    /// The highest message seq stored; API long polls wait on it.
    new_messages: watch::Sender<u64>,
    /// Round-robin position for periodic history exchange.
    anti_entropy_turn: usize,
    anti_entropy: Every,
    prune: Every,
}

impl Hooks for Channels {
    fn on_start(&mut self, cx: &mut Shared, stored: &Stored) {
        self.rejoin_channels(cx, stored);
    }

    fn on_connected(&mut self, cx: &mut Shared, peer: PeerId) {
        self.say_hello(cx, peer);
        self.catch_up_with(cx, peer);
    }

    fn on_disconnected(&mut self, _cx: &mut Shared, peer: PeerId) {
        self.history_retries.forget(|(p, _)| *p == peer);
    }

    fn on_tick(&mut self, cx: &mut Shared, now: Millis) {
        if self.anti_entropy.due(now) {
            self.anti_entropy(cx);
        }
        self.retry_history(cx, now);
        if self.prune.due(now) {
            self.prune_channels(cx);
        }
    }
}

impl Channels {
    pub(super) fn new(new_messages: watch::Sender<u64>, now: Millis) -> Self {
        Self {
            joined: BTreeSet::new(),
            left: BTreeSet::new(),
            channel_writes: channel_store::Writes::default(),
            gossip_limiter: KeyedLimiter::new(GOSSIP_BURST, GOSSIP_PER_SECOND, GOSSIP_RATE_PEERS),
            pending_history: HashMap::new(),
            history_retries: Retries::new(MAX_HISTORY_RETRIES),
            sync_limiter: KeyedLimiter::new(SYNC_BURST, SYNC_PER_SECOND, SYNC_RATE_PEERS),
            new_messages,
            anti_entropy_turn: 0,
            anti_entropy: Every::after(ANTI_ENTROPY_INTERVAL, now),
            prune: Every::after(PRUNE_INTERVAL, now),
        }
    }

    /// Subscribes to the channels the store lists as joined, at start (at most
    /// [`MAX_JOINED_CHANNELS`]), and queues a retention pass.
    fn rejoin_channels(&mut self, cx: &mut Shared, stored: &Stored) {
        match &stored.left_channels {
            Ok(left) => self.left.extend(left.iter().cloned()),
            Err(e) => tracing::error!("cannot list the channels left: {e}"),
        }
        match &stored.channels {
            Ok(channels) => {
                for (channel, _) in channels {
                    if let Err(e) = self.join(cx, channel.clone(), true, None) {
                        tracing::warn!("not rejoining every stored channel: {e}");
                        break;
                    }
                }
            }
            Err(e) => tracing::error!("cannot list stored channels: {e}"),
        }
        self.prune_channels(cx);
    }

    /// Queues a retention pass over every channel.
    pub(super) fn prune_channels(&mut self, cx: &mut Shared) {
        self.queue_channel_write(cx, Pending::Prune);
    }

    /// Joins a channel: subscribes to its topic and asks the peers already in
    /// it for its recent history. A channel the user left is joined again only
    /// when `rejoin` (a post, not a read). `reply` is answered once the join is
    /// on disk, or at once if there is nothing to do.
    pub(super) fn join(
        &mut self,
        cx: &mut Shared,
        channel: ChannelName,
        rejoin: bool,
        reply: Option<oneshot::Sender<Result<(), NodeError>>>,
    ) -> Result<(), NodeError> {
        if self.joined.contains(&channel) || (self.left.contains(&channel) && !rejoin) {
            if let Some(reply) = reply {
                let _ = reply.send(Ok(()));
            }
            return Ok(());
        }
        if self.joined.len() >= MAX_JOINED_CHANNELS {
            let error = NodeError::TooManyChannels(MAX_JOINED_CHANNELS);
            if let Some(reply) = reply {
                let _ = reply.send(Err(NodeError::TooManyChannels(MAX_JOINED_CHANNELS)));
            }
            return Err(error);
        }
        let topic = IdentTopic::new(channel.topic());
        if let Err(e) = cx.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
            tracing::error!(%channel, "cannot subscribe: {e}");
        }
        tracing::info!(%channel, "joined channel");
        self.left.remove(&channel);
        self.joined.insert(channel.clone());
        self.queue_channel_write(
            cx,
            Pending::Join {
                channel: channel.clone(),
                reply,
            },
        );
        let hash = topic.hash();
        let members: Vec<PeerId> = cx
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in members {
            self.request_history(cx, peer, &channel);
        }
        Ok(())
    }

    /// Leaves a channel: unsubscribes, stops syncing it, and remembers that
    /// across restarts. Answers whether the node was in it, once on disk.
    pub(super) fn leave(
        &mut self,
        cx: &mut Shared,
        channel: ChannelName,
        reply: oneshot::Sender<Result<bool, NodeError>>,
    ) {
        if !self.joined.remove(&channel) {
            let _ = reply.send(Ok(false));
            return;
        }
        let topic = IdentTopic::new(channel.topic());
        cx.swarm.behaviour_mut().gossipsub.unsubscribe(&topic);
        tracing::info!(%channel, "left channel");
        self.left.insert(channel.clone());
        self.queue_channel_write(cx, Pending::Leave { channel, reply });
    }

    /// Signs a message and queues it; it is published once stored, and
    /// `reply` answered then.
    pub(super) fn post(
        &mut self,
        cx: &mut Shared,
        channel: ChannelName,
        text: &str,
        reply: oneshot::Sender<Result<MessageView, NodeError>>,
    ) {
        if let Err(e) = self.join(cx, channel.clone(), true, None) {
            let _ = reply.send(Err(e));
            return;
        }
        let draft = Draft {
            keypair: cx.keypair.clone(),
            channel,
            author_name: cx.name.clone(),
            timestamp_ms: cx.clock.unix_ms(),
            text: text.to_owned(),
        };
        self.queue_channel_write(
            cx,
            Pending::Post {
                draft: Box::new(draft),
                reply,
            },
        );
    }

    fn publish(&mut self, cx: &mut Shared, message: &Message) {
        let channel = &message.channel;
        let topic = IdentTopic::new(channel.topic());
        match cx
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic, message.wire().to_vec())
        {
            Ok(_) => {}
            // Nobody is listening yet: the message is stored and reaches
            // peers through history exchange when they join.
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!(%channel, "posted with no peer in the channel yet")
            }
            Err(e) => tracing::warn!(%channel, "gossip publish failed: {e}"),
        }
    }

    pub(super) fn on_gossip(&mut self, cx: &mut Shared, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                if let Some(verdict) =
                    self.take_gossip(cx, propagation_source, &message_id, message)
                {
                    self.report_gossip(cx, &message_id, &propagation_source, verdict);
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                // Catch up on a channel we are in from a neighbour who is in it
                // too. A neighbour's other channels are its own business.
                if let Some(channel) = ChannelName::from_topic(topic.as_str())
                    && self.joined.contains(&channel)
                {
                    self.request_history(cx, peer_id, &channel);
                }
            }
            _ => {}
        }
    }

    /// Queues a gossip message to be checked and stored (`None`: its verdict
    /// comes once written), or returns its verdict at once: ignored when it is
    /// not for a joined channel, when its sender is over its rate, or when the
    /// queue is full.
    fn take_gossip(
        &mut self,
        cx: &mut Shared,
        source: PeerId,
        id: &gossipsub::MessageId,
        gossip: gossipsub::Message,
    ) -> Option<MessageAcceptance> {
        // gossipsub delivers only topics this node is subscribed to; a message
        // racing a leave is the one exception.
        let Some(channel) = ChannelName::from_topic(gossip.topic.as_str())
            .filter(|channel| self.joined.contains(channel))
        else {
            return Some(MessageAcceptance::Ignore);
        };
        if !self.gossip_limiter.allow(&source, cx.clock.mono_ms()) {
            tracing::debug!(peer = %source, "gossip over the per-peer rate: ignored");
            return Some(MessageAcceptance::Ignore);
        }
        if !self.channel_writes.has_room_for_gossip() {
            tracing::debug!(peer = %source, "channel writes are behind: gossip ignored");
            return Some(MessageAcceptance::Ignore);
        }
        self.queue_channel_write(
            cx,
            Pending::Gossip {
                source,
                id: id.clone(),
                channel,
                data: gossip.data,
            },
        );
        None
    }

    fn report_gossip(
        &mut self,
        cx: &mut Shared,
        id: &gossipsub::MessageId,
        source: &PeerId,
        verdict: MessageAcceptance,
    ) {
        if verdict == MessageAcceptance::Reject {
            tracing::warn!(peer = %source, "dropped an invalid channel message");
        }
        cx.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, verdict);
    }

    /// Queues a change to the channels on disk, and starts writing if idle.
    fn queue_channel_write(&mut self, cx: &mut Shared, pending: Pending) {
        self.channel_writes.push(pending);
        self.write_channels(cx);
    }

    fn write_channels(&mut self, cx: &mut Shared) {
        if let Some(batch) = self.channel_writes.next_batch() {
            let now = cx.clock.unix_ms();
            self.channels_blocking(cx, move |store| {
                channel_store::write_batch(store, batch, now)
            });
        }
    }

    /// Runs `job` on the blocking pool; its result comes back to
    /// [`Channels::on_done`].
    fn channels_blocking(&self, cx: &Shared, job: impl FnOnce(&Store) -> Done + Send + 'static) {
        cx.blocking(move |store| Work::Channels(job(store)));
    }

    pub(super) fn on_done(&mut self, cx: &mut Shared, done: Done) {
        match done {
            Done::Written {
                batch,
                outcomes,
                last_seq,
            } => {
                self.channel_writes.finished();
                self.on_written(cx, batch, outcomes);
                if let Some(seq) = last_seq {
                    self.new_messages.send_if_modified(|known| {
                        let newer = seq > *known;
                        *known = (*known).max(seq);
                        newer
                    });
                }
                self.write_channels(cx);
            }
            Done::Asked {
                peer,
                channel,
                have,
            } => self.send_history_request(cx, peer, channel, have),
            Done::Answered { reply, response } => {
                let _ = cx.swarm.behaviour_mut().sync.send_response(reply, response);
            }
        }
    }

    fn on_written(
        &mut self,
        cx: &mut Shared,
        batch: Vec<Pending>,
        outcomes: Result<Vec<Outcome>, StoreError>,
    ) {
        let outcomes = match outcomes {
            Ok(outcomes) => outcomes,
            Err(e) => {
                // A full disk is reported once by the store, not per batch.
                if !e.is_storage_failure() {
                    tracing::error!("cannot store channel changes: {e}");
                }
                for pending in batch {
                    self.on_not_written(cx, pending, &e);
                }
                return;
            }
        };
        let now = cx.clock.unix_ms();
        for (pending, outcome) in batch.into_iter().zip(outcomes) {
            match (pending, outcome) {
                (Pending::Gossip { source, id, .. }, Outcome::Gossip(verdict)) => {
                    self.report_gossip(cx, &id, &source, verdict)
                }
                (
                    Pending::History {
                        peer,
                        channel,
                        more,
                        ..
                    },
                    Outcome::History(result),
                ) => self.on_history_stored(cx, peer, &channel, more, result),
                (Pending::Post { reply, .. }, Outcome::Post(signed)) => match signed {
                    Ok((message, seq)) => {
                        self.publish(cx, &message);
                        let view =
                            channel_store::posted_view(*message, seq.unwrap_or_default(), now);
                        let _ = reply.send(Ok(view));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NodeError::Invalid(e)));
                    }
                },
                (
                    Pending::Join {
                        reply: Some(reply), ..
                    },
                    _,
                ) => {
                    let _ = reply.send(Ok(()));
                }
                (Pending::Leave { reply, .. }, _) => {
                    let _ = reply.send(Ok(true));
                }
                _ => {}
            }
        }
    }

    /// A change the store failed to write: say so to whoever waits on it.
    fn on_not_written(&mut self, cx: &mut Shared, pending: Pending, error: &StoreError) {
        match pending {
            Pending::Gossip { source, id, .. } => {
                self.report_gossip(cx, &id, &source, MessageAcceptance::Ignore)
            }
            Pending::Post { reply, .. } => {
                let _ = reply.send(Err(NodeError::store("cannot store the message", error)));
            }
            Pending::Join {
                reply: Some(reply), ..
            } => {
                let _ = reply.send(Err(NodeError::store("cannot store the change", error)));
            }
            Pending::Leave { reply, .. } => {
                let _ = reply.send(Err(NodeError::store("cannot store the change", error)));
            }
            Pending::Join { reply: None, .. } | Pending::History { .. } | Pending::Prune => {}
        }
    }

    fn on_history_stored(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        channel: &ChannelName,
        more: bool,
        result: Result<usize, String>,
    ) {
        match result {
            Ok(new) => {
                if new > 0 {
                    tracing::info!(%peer, %channel, count = new, "caught up on history");
                }
                // Ask for the next round only while rounds bring something new,
                // so a peer that keeps saying "more" cannot keep us busy.
                if more && new > 0 && self.joined.contains(channel) {
                    self.request_history(cx, peer, channel);
                }
            }
            Err(why) => cx.drop_peer(peer, &format!("sent bad history: {why}")),
        }
    }

    pub(super) fn say_hello(&mut self, cx: &mut Shared, peer: PeerId) {
        cx.swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::Hello);
    }

    /// Asks `peer` for `channel`'s history, listing what this node has (read on
    /// the blocking pool).
    pub(super) fn request_history(&mut self, cx: &mut Shared, peer: PeerId, channel: &ChannelName) {
        let (channel, now) = (channel.clone(), cx.clock.unix_ms());
        self.channels_blocking(cx, move |store| Done::Asked {
            have: store.window_ids(&channel, now).map_err(|e| e.to_string()),
            peer,
            channel,
        });
    }

    fn send_history_request(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        channel: ChannelName,
        have: Result<Vec<ferry_core::channel::MessageId>, String>,
    ) {
        let have = match have {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(%channel, "cannot read history: {e}");
                return;
            }
        };
        if !self.joined.contains(&channel) {
            return;
        }
        let id = cx.swarm.behaviour_mut().sync.send_request(
            &peer,
            SyncRequest::History {
                channel: channel.clone(),
                have,
            },
        );
        self.pending_history.insert(id, channel);
    }

    /// Asks a newly connected peer for the history of every joined channel.
    /// Gossip's own subscription exchange is not enough: a peer that still
    /// holds a dead connection to a restarted node sees no new peer, and sends
    /// it nothing.
    pub(super) fn catch_up_with(&mut self, cx: &mut Shared, peer: PeerId) {
        let channels: Vec<ChannelName> = self.joined.iter().cloned().collect();
        for channel in channels {
            self.request_history(cx, peer, &channel);
        }
    }

    /// A history request failed (its connection closed, the peer was busy):
    /// asks again a little later while the peer stays connected, so a newcomer
    /// does not wait for the periodic exchange.
    fn history_failed(&mut self, cx: &mut Shared, peer: PeerId, channel: ChannelName) {
        if self.joined.contains(&channel) && cx.swarm.is_connected(&peer) {
            let now = cx.clock.mono_ms();
            if let Some(due) = self.history_retries.failed((peer, channel), now) {
                tracing::debug!(%peer, "history request retried in {} ms", due - now);
            }
        }
    }

    /// Sends again the history requests whose retry is due.
    pub(super) fn retry_history(&mut self, cx: &mut Shared, now: u64) {
        for (peer, channel) in self.history_retries.due(now) {
            self.request_history(cx, peer, &channel);
        }
    }

    /// Exchanges history of every joined channel with the next connected peer.
    pub(super) fn anti_entropy(&mut self, cx: &mut Shared) {
        let connected: Vec<PeerId> = cx.peers.connected_peers().collect();
        if connected.is_empty() {
            return;
        }
        self.anti_entropy_turn = (self.anti_entropy_turn + 1) % connected.len();
        self.catch_up_with(cx, connected[self.anti_entropy_turn]);
    }

    pub(super) fn on_sync(&mut self, cx: &mut Shared, event: SyncEvent) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.answer(cx, peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let asked = self.pending_history.remove(&request_id);
                    self.on_response(cx, peer, asked, response);
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, "sync request failed: {error}");
                if let Some(channel) = self.pending_history.remove(&request_id) {
                    self.history_failed(cx, peer, channel);
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "sync answer failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn answer(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        request: SyncRequest,
        reply: ResponseChannel<SyncResponse>,
    ) {
        let response = if !self.sync_limiter.allow(&peer, cx.clock.mono_ms()) {
            SyncResponse::Refused {
                reason: "too many sync requests; slow down".into(),
            }
        } else {
            match request {
                SyncRequest::Hello => SyncResponse::Hello {
                    name: cx.name.clone(),
                },
                SyncRequest::History { have, .. } if have.len() > MAX_HAVE_IDS => {
                    SyncResponse::Refused {
                        reason: format!("a history request may list at most {MAX_HAVE_IDS} ids"),
                    }
                }
                SyncRequest::History { channel, have } => {
                    let now = cx.clock.unix_ms();
                    self.channels_blocking(cx, move |store| Done::Answered {
                        response: history_response(store, &channel, have, now),
                        reply,
                    });
                    return;
                }
            }
        };
        let _ = cx.swarm.behaviour_mut().sync.send_response(reply, response);
    }

    fn on_response(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        asked: Option<ChannelName>,
        response: SyncResponse,
    ) {
        match (response, asked) {
            (SyncResponse::Hello { name }, _) => match ferry_core::channel::check_name(&name) {
                Ok(()) => cx.peers.named(peer, name),
                Err(e) => cx.drop_peer(peer, &format!("sent a bad name: {e}")),
            },
            (SyncResponse::History { messages, more }, Some(channel)) => {
                self.history_retries.succeeded(&(peer, channel.clone()));
                // A channel left since the request was sent takes nothing more.
                if self.joined.contains(&channel) {
                    self.queue_channel_write(
                        cx,
                        Pending::History {
                            peer,
                            channel,
                            wires: messages,
                            more,
                        },
                    );
                }
            }
            (SyncResponse::History { .. }, None) => {
                cx.drop_peer(peer, "sent history nobody asked for")
            }
            (SyncResponse::Refused { reason }, asked) => {
                tracing::debug!(%peer, "sync refused: {reason}");
                if let Some(channel) = asked {
                    self.history_failed(cx, peer, channel);
                }
            }
        }
    }
}

/// The answer to a history request: the messages of `channel`'s window the
/// asker does not `have`, within the response's byte budget.
fn history_response(
    store: &Store,
    channel: &ChannelName,
    have: Vec<ferry_core::channel::MessageId>,
    now_ms: ferry_core::Millis,
) -> SyncResponse {
    let have: HashSet<_> = have.into_iter().collect();
    let plan = store
        .history(channel, now_ms)
        .map(|stored| history::plan_response(stored, &have, now_ms, MAX_RESPONSE_BYTES));
    match plan.and_then(|plan| Ok((store.wires(&plan.send)?, plan.more))) {
        Ok((messages, more)) => SyncResponse::History { messages, more },
        Err(e) => {
            tracing::error!(%channel, "cannot read history: {e}");
            SyncResponse::Refused {
                reason: "history unavailable".into(),
            }
        }
    }
}
