//! DTN contacts with connected ferry peers over `/ferry/dtn/1`.
//!
//! When a peer connects, both sides send their summary (bundles held, deliveries
//! known); each answer is the other's summary. Then each side sends, a few at a
//! time, the bundles its router plans for the peer; the peer answers each only once
//! the bundle is durably stored or delivered. A peer whose summary is out of date
//! (this node's bundles or acks changed since it was sent) gets it again at the
//! next check, once a second ([`SUMMARY_INTERVAL`]), so acknowledgements flow
//! during a contact too; every 10 s ([`REPLAN_INTERVAL`]) every contact is
//! planned again, so refused bundles are offered again.
//! Store I/O runs on the blocking pool and comes back as [`Done`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ferry_core::dtn::wire::{DtnRequest, DtnResponse, Receipt};
use ferry_core::dtn::{BundleId, Forward, NodeId, Summary};
use ferry_core::ratelimit::{KeyedLimiter, LogLimiter, quiet_note};
use ferry_core::{Millis, PeerId};
use ferry_net::libp2p::request_response::{
    self, Message, OutboundFailure, OutboundRequestId, ResponseChannel,
};

use super::hooks::{Every, Hooks};
use super::{Shared, Work};
use tokio::sync::watch;

use crate::dtn::{Dtn, OutgoingError, PeerRate, Rejection};

/// Bundles sent to one peer and not yet answered.
const WINDOW: usize = 8;
/// Malformed bundles a peer may send before it is disconnected.
const MAX_STRIKES: u32 = 3;
/// Summaries one peer may send: a burst of 4, then one a second (an honest node
/// sends one at the start of a contact and at most one a second after, only when
/// something changed). Past it a summary goes unanswered and unread, so what one
/// peer's summaries cost (up to 20,000 ids and 20,000 ack signatures each) is
/// bounded per second; the peer's own retry sends it again later.
const SUMMARY_BURST: u32 = 4;
const SUMMARIES_PER_SECOND: f64 = 1.0;
/// Rate-limit warnings, and refusals for want of room, are logged at most this
/// often per peer: a peer that keeps sending into a full store must not fill
/// the log instead.
const FLOOD_LOG_MS: u64 = 10_000;
/// Peers whose log lines are limited at once (the stalest forgotten past it).
const LOGGED_PEERS: usize = 4096;
/// How long a peer struck out keeps its connection, so the answer saying why
/// reaches it before the hang-up (closing at once drops answers in flight).
const HANG_UP_DELAY_MS: u64 = 500;

/// Summaries are sent again this often to peers whose summary is out of date
/// (this node's bundles or acks changed since), so acks spread during a contact.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(1);
/// Bundles are planned again for every contact this often, so a bundle a peer
/// refused (its store was full, it was busy) is offered again.
const REPLAN_INTERVAL: Duration = Duration::from_secs(10);
/// The agent's upkeep (expiry, saving the router's state) runs this often.
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(5);

/// The contacts in progress, and the bundle agent they feed.
pub(super) struct Links {
    /// The bundle agent, shared with the control API and TCPCL sessions.
    dtn: Arc<Dtn>,
    links: HashMap<PeerId, Link>,
    sent: HashMap<OutboundRequestId, (PeerId, Sent)>,
    limiter: KeyedLimiter<PeerId>,
    rate: PeerRate,
    summary_limiter: KeyedLimiter<PeerId>,
    strikes: Strikes,
    flood_logged: LogLimiter<PeerId>,
    /// Refusals of a peer's bundles for want of room, logged once in a while.
    refusal_logged: LogLimiter<PeerId>,
    summaries: Every,
    replan: Every,
    maintain: Every,
}

impl Links {
    pub(super) fn new(dtn: Arc<Dtn>, rate: PeerRate, now: Millis) -> Self {
        Self {
            dtn,
            links: HashMap::new(),
            sent: HashMap::new(),
            limiter: KeyedLimiter::new(rate.burst, f64::from(rate.per_second), LOGGED_PEERS),
            rate,
            summary_limiter: KeyedLimiter::new(SUMMARY_BURST, SUMMARIES_PER_SECOND, 4096),
            strikes: Strikes::default(),
            flood_logged: LogLimiter::new(FLOOD_LOG_MS, LOGGED_PEERS),
            refusal_logged: LogLimiter::new(FLOOD_LOG_MS, LOGGED_PEERS),
            summaries: Every::after(SUMMARY_INTERVAL, now),
            replan: Every::after(REPLAN_INTERVAL, now),
            maintain: Every::after(MAINTAIN_INTERVAL, now),
        }
    }

    /// Tells when the agent's bundles or acks change.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.dtn.subscribe()
    }
}

impl Hooks for Links {
    fn on_connected(&mut self, cx: &mut Shared, peer: PeerId) {
        self.contact_up(cx, peer);
    }

    fn on_disconnected(&mut self, _cx: &mut Shared, peer: PeerId) {
        self.contact_down(peer);
    }

    /// Peers struck out are disconnected when due; peers whose summary is
    /// stale hear of the changes; every contact is planned again now and then;
    /// the agent's upkeep runs on the blocking pool.
    fn on_tick(&mut self, cx: &mut Shared, now: Millis) {
        for peer in self.strikes.hang_ups_due(now) {
            let _ = cx.swarm.disconnect_peer_id(peer);
        }
        if self.summaries.due(now) {
            let generation = self.dtn.generation();
            let stale: Vec<PeerId> = self
                .links
                .iter()
                .filter(|(_, link)| link.summary_generation != Some(generation))
                .map(|(peer, _)| *peer)
                .collect();
            for peer in stale {
                self.send_summary(cx, peer);
            }
        }
        if self.replan.due(now) {
            self.on_changed(cx);
        }
        if self.maintain.due(now) {
            let dtn: Arc<Dtn> = self.dtn.clone();
            tokio::task::spawn_blocking(move || {
                // A full disk is reported once by the store, not every tick.
                if let Err(e) = dtn.maintain()
                    && !e.is_storage_failure()
                {
                    tracing::warn!("cannot save DTN state: {e}");
                }
            });
        }
    }
}

#[derive(Default)]
struct Link {
    /// Planned (copies reserved in the router), not yet sent.
    queue: VecDeque<Forward>,
    in_flight: usize,
    /// The agent's generation when our summary was last sent.
    summary_generation: Option<u64>,
    /// The peer's summary has arrived: plans mean something.
    summarised: bool,
    /// A summary of the peer's is being read on the blocking pool.
    reading_summary: bool,
    /// The newest summary that arrived meanwhile, read next (older ones are
    /// replaced: a summary says everything the peer knows). So one peer costs one
    /// summary's signature checks at a time, never the same acks twice in parallel.
    next_summary: Option<Summary>,
}

enum Sent {
    Summary,
    Bundle(BundleId),
}

/// Store work for a contact, finished on the blocking pool.
pub(crate) enum Done {
    Summarised(PeerId),
    Received {
        peer: PeerId,
        channel: ResponseChannel<DtnResponse>,
        result: Result<Receipt, Rejection>,
    },
    Loaded {
        peer: PeerId,
        forward: Forward,
        result: Result<Option<Vec<u8>>, OutgoingError>,
    },
    Answered(PeerId),
}

/// How many more bundles may go to a peer with `in_flight` unanswered and
/// `queued` planned: the window's room, at most what is queued.
fn window_room(in_flight: usize, queued: usize) -> usize {
    WINDOW.saturating_sub(in_flight).min(queued)
}

/// Malformed bundles counted per peer, and the peers struck out, to be
/// disconnected once the answer saying why has gone out.
#[derive(Default)]
struct Strikes {
    counts: HashMap<PeerId, u32>,
    /// Peers struck out, and when to disconnect them (monotonic ms).
    hang_up: HashMap<PeerId, Millis>,
}

impl Strikes {
    /// A malformed bundle from `peer` at `now`; whether it strikes the peer
    /// out ([`MAX_STRIKES`]), which schedules its hang-up
    /// [`HANG_UP_DELAY_MS`] later (not at once: the answer being sent now
    /// would be lost).
    fn strike(&mut self, peer: PeerId, now: Millis) -> bool {
        let count = self.counts.entry(peer).or_insert(0);
        *count += 1;
        if *count < MAX_STRIKES {
            return false;
        }
        self.counts.remove(&peer);
        self.hang_up
            .entry(peer)
            .or_insert(now.saturating_add(HANG_UP_DELAY_MS));
        true
    }

    /// Whether `peer` is struck out and waiting to be hung up on: its bundles
    /// are refused unread.
    fn is_struck_out(&self, peer: &PeerId) -> bool {
        self.hang_up.contains_key(peer)
    }

    /// The peers to disconnect at `now`, forgotten here.
    fn hang_ups_due(&mut self, now: Millis) -> Vec<PeerId> {
        let due: Vec<PeerId> = self
            .hang_up
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &due {
            self.hang_up.remove(peer);
        }
        due
    }
}

fn node(peer: &PeerId) -> NodeId {
    NodeId::from_peer(peer)
}

impl Links {
    /// Runs `job` on the blocking pool; its result comes back to [`Links::on_done`].
    fn blocking(&self, cx: &Shared, job: impl FnOnce(&Dtn) -> Done + Send + 'static) {
        let (dtn, work) = (self.dtn.clone(), cx.work.clone());
        tokio::task::spawn_blocking(move || {
            let _ = work.send(Work::Dtn(job(&dtn)));
        });
    }

    pub(super) fn contact_up(&mut self, cx: &mut Shared, peer: PeerId) {
        self.dtn.contact_up(&node(&peer), "libp2p");
        self.links.insert(peer, Link::default());
        self.send_summary(cx, peer);
    }

    pub(super) fn contact_down(&mut self, peer: PeerId) {
        if self.links.remove(&peer).is_some() {
            self.dtn.contact_down(&node(&peer));
        }
    }

    fn send_summary(&mut self, cx: &mut Shared, peer: PeerId) {
        let generation = self.dtn.generation();
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        link.summary_generation = Some(generation);
        let summary = self.dtn.summary();
        let id = cx
            .swarm
            .behaviour_mut()
            .dtn
            .send_request(&peer, DtnRequest::Summary(summary));
        self.sent.insert(id, (peer, Sent::Summary));
    }

    fn take_summary(&mut self, cx: &mut Shared, peer: PeerId, summary: Summary) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if link.reading_summary {
            link.next_summary = Some(summary);
            return;
        }
        link.reading_summary = true;
        self.blocking(cx, move |dtn| {
            if let Err(e) = dtn.on_summary(&node(&peer), summary) {
                tracing::warn!("cannot free acknowledged bundles: {e}");
            }
            Done::Summarised(peer)
        });
    }

    pub(super) fn on_event(
        &mut self,
        cx: &mut Shared,
        event: request_response::Event<DtnRequest, DtnResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                Message::Request {
                    request, channel, ..
                } => self.on_request(cx, peer, request, channel),
                Message::Response {
                    request_id,
                    response,
                } => self.on_response(cx, request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let sent = self.sent.remove(&request_id);
                match &sent {
                    Some((_, Sent::Bundle(id))) => {
                        self.dtn.forward_failed(&node(&peer), id);
                        if let Some(link) = self.links.get_mut(&peer) {
                            link.in_flight = link.in_flight.saturating_sub(1);
                        }
                    }
                    // The peer may never have heard it: the next tick sends it again.
                    Some((_, Sent::Summary)) => {
                        if let Some(link) = self.links.get_mut(&peer) {
                            link.summary_generation = None;
                        }
                    }
                    None => {}
                }
                if matches!(error, OutboundFailure::UnsupportedProtocols) {
                    tracing::debug!(%peer, "peer does not speak the DTN protocol");
                    self.contact_down(peer);
                } else {
                    tracing::debug!(%peer, "DTN request failed: {error}");
                    // One of several connections to the peer closed (a peer that
                    // restarted before its old connection timed out has two, and
                    // requests are spread over both): what was sent over the dead one
                    // goes again now over the live one, not at the next periodic plan.
                    // Once the last connection closes the contact is down and this
                    // does nothing.
                    if sent.is_some() && matches!(error, OutboundFailure::ConnectionClosed) {
                        self.pump_bundles(cx, peer, true);
                    }
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::warn!(%peer, "DTN message from peer dropped: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_request(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        request: DtnRequest,
        channel: ResponseChannel<DtnResponse>,
    ) {
        match request {
            DtnRequest::Summary(summary) => {
                let now = cx.clock.mono_ms();
                if !self.summary_limiter.allow(&peer, now) {
                    // Dropping the channel fails the peer's request; it sends again.
                    tracing::debug!(%peer, "peer sends summaries too often; one ignored");
                    return;
                }
                let Some(link) = self.links.get_mut(&peer) else {
                    // No contact (not a ferry node yet, or gone): nothing to read it into.
                    return;
                };
                link.summary_generation = Some(self.dtn.generation());
                let ours = DtnResponse::Summary(self.dtn.summary());
                let _ = cx.swarm.behaviour_mut().dtn.send_response(channel, ours);
                self.take_summary(cx, peer, summary);
            }
            DtnRequest::Bundle { .. } if self.strikes.is_struck_out(&peer) => {
                let refused = Receipt::Refused(format!(
                    "{MAX_STRIKES} malformed bundles from you; disconnecting"
                ));
                let _ = cx
                    .swarm
                    .behaviour_mut()
                    .dtn
                    .send_response(channel, DtnResponse::Receipt(refused));
            }
            DtnRequest::Bundle { copies, bytes } => {
                let now = cx.clock.mono_ms();
                if !self.limiter.allow(&peer, now) {
                    if let Some(quiet) = self.flood_logged.check(&peer, now) {
                        tracing::warn!(%peer, "peer is sending bundles faster than {}/s; refusing the excess{}", self.rate.per_second, quiet_note(quiet));
                    }
                    let refused = Receipt::Refused(
                        "too many bundles from you; slow down and try again".into(),
                    );
                    let _ = cx
                        .swarm
                        .behaviour_mut()
                        .dtn
                        .send_response(channel, DtnResponse::Receipt(refused));
                    return;
                }
                self.blocking(cx, move |dtn| Done::Received {
                    peer,
                    channel,
                    result: dtn.receive(&bytes, Some(&node(&peer)), Some(copies)),
                });
            }
        }
    }

    fn on_response(
        &mut self,
        cx: &mut Shared,
        request_id: OutboundRequestId,
        response: DtnResponse,
    ) {
        let Some((peer, sent)) = self.sent.remove(&request_id) else {
            return;
        };
        match (sent, response) {
            (Sent::Summary, DtnResponse::Summary(summary)) => self.take_summary(cx, peer, summary),
            (Sent::Bundle(id), DtnResponse::Receipt(receipt)) => {
                if let Some(link) = self.links.get_mut(&peer) {
                    link.in_flight = link.in_flight.saturating_sub(1);
                }
                if let Receipt::Refused(reason) = &receipt {
                    tracing::info!(%peer, bundle = %id, "peer refused bundle: {reason}");
                }
                self.blocking(cx, move |dtn| {
                    if let Err(e) = dtn.forward_answered(&node(&peer), &id, &receipt) {
                        tracing::warn!("cannot free a delivered bundle: {e}");
                    }
                    Done::Answered(peer)
                });
            }
            (sent, _) => {
                tracing::warn!(%peer, "peer answered a DTN request with the wrong message; disconnecting");
                if let Sent::Bundle(id) = sent {
                    self.dtn.forward_failed(&node(&peer), &id);
                }
                let _ = cx.swarm.disconnect_peer_id(peer);
            }
        }
    }

    pub(super) fn on_done(&mut self, cx: &mut Shared, done: Done) {
        match done {
            Done::Summarised(peer) => {
                let next = self.links.get_mut(&peer).and_then(|link| {
                    link.summarised = true;
                    link.reading_summary = false;
                    link.next_summary.take()
                });
                if let Some(summary) = next {
                    self.take_summary(cx, peer, summary);
                }
                self.pump_bundles(cx, peer, true);
            }
            Done::Received {
                peer,
                channel,
                result,
            } => {
                let receipt = match result {
                    Ok(receipt) => receipt,
                    Err(rejection) => self.refused_bundle(cx, peer, rejection),
                };
                let _ = cx
                    .swarm
                    .behaviour_mut()
                    .dtn
                    .send_response(channel, DtnResponse::Receipt(receipt));
            }
            Done::Loaded {
                peer,
                forward,
                result,
            } => self.send_bundle(cx, peer, forward, result),
            Done::Answered(peer) => self.pump_bundles(cx, peer, false),
        }
    }

    /// Logs a refused bundle; a peer that keeps sending malformed ones is dropped.
    fn refused_bundle(&mut self, cx: &mut Shared, peer: PeerId, rejection: Rejection) -> Receipt {
        if rejection.peer_fault {
            tracing::warn!(%peer, "malformed bundle from peer refused: {}", rejection.reason);
            if self.strikes.strike(peer, cx.clock.mono_ms()) {
                tracing::warn!(%peer, "disconnecting peer: {MAX_STRIKES} malformed bundles");
            }
        } else {
            let now = cx.clock.mono_ms();
            if let Some(quiet) = self.refusal_logged.check(&peer, now) {
                tracing::warn!(%peer, "bundle from peer refused: {}{}", rejection.reason, quiet_note(quiet));
            }
        }
        Receipt::Refused(rejection.reason)
    }

    fn send_bundle(
        &mut self,
        cx: &mut Shared,
        peer: PeerId,
        forward: Forward,
        result: Result<Option<Vec<u8>>, OutgoingError>,
    ) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        match result {
            Ok(Some(bytes)) => {
                let id = cx.swarm.behaviour_mut().dtn.send_request(
                    &peer,
                    DtnRequest::Bundle {
                        copies: forward.copies,
                        bytes,
                    },
                );
                self.sent.insert(id, (peer, Sent::Bundle(forward.id)));
            }
            Ok(None) => {
                link.in_flight -= 1;
                self.dtn.forward_failed(&node(&peer), &forward.id);
            }
            Err(e) => {
                // Left reserved for this contact, so it is not retried in a loop.
                link.in_flight -= 1;
                tracing::warn!(bundle = %forward.id, "cannot forward bundle: {e}");
            }
        }
    }

    /// Sends `peer` what fits in the window, planning again first if asked.
    fn pump_bundles(&mut self, cx: &mut Shared, peer: PeerId, replan: bool) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if !link.summarised {
            return;
        }
        if replan || link.queue.is_empty() {
            link.queue.extend(self.dtn.plan(&node(&peer)));
        }
        let room = window_room(link.in_flight, link.queue.len());
        let batch: Vec<Forward> = link.queue.drain(..room).collect();
        link.in_flight += batch.len();
        for forward in batch {
            let id = forward.id.clone();
            self.blocking(cx, move |dtn| Done::Loaded {
                peer,
                forward,
                result: dtn.outgoing(&id),
            });
        }
    }

    /// The agent's bundles or acks changed: new bundles may go out at once.
    pub(super) fn on_changed(&mut self, cx: &mut Shared) {
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for peer in peers {
            self.pump_bundles(cx, peer, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerId {
        ferry_core::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    #[test]
    fn a_peer_is_struck_out_at_the_third_malformed_bundle_and_hung_up_later() {
        let mut strikes = Strikes::default();
        let (bad, other) = (peer(), peer());
        assert!(!strikes.strike(bad, 1_000));
        assert!(!strikes.strike(other, 1_000));
        assert!(!strikes.strike(bad, 1_100));
        assert!(!strikes.is_struck_out(&bad));
        assert!(strikes.strike(bad, 1_200));
        assert!(strikes.is_struck_out(&bad));
        assert!(!strikes.is_struck_out(&other));
        // The answer saying why goes out first.
        assert!(
            strikes
                .hang_ups_due(1_200 + HANG_UP_DELAY_MS - 1)
                .is_empty()
        );
        assert_eq!(strikes.hang_ups_due(1_200 + HANG_UP_DELAY_MS), vec![bad]);
        assert!(!strikes.is_struck_out(&bad));
        assert!(strikes.hang_ups_due(u64::MAX).is_empty());
    }

    #[test]
    fn the_window_holds_at_most_eight_unanswered_bundles() {
        assert_eq!(window_room(0, 20), WINDOW);
        assert_eq!(window_room(5, 20), 3);
        assert_eq!(window_room(0, 2), 2);
        assert_eq!(window_room(WINDOW, 20), 0);
        assert_eq!(window_room(WINDOW + 1, 20), 0);
    }
}
