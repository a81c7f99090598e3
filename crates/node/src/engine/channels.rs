//! Channels: posting, gossip, and the history exchange that lets a node that
//! was away catch up.

use std::collections::HashSet;

use ferry_core::PeerId;
use ferry_core::channel::{ChannelName, Message};
use ferry_core::history::{self, MAX_RESPONSE_BYTES};
use ferry_core::sync::{MAX_HAVE_IDS, SyncRequest, SyncResponse};
use ferry_net::libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use ferry_net::libp2p::request_response::{self, ResponseChannel};

use super::{Engine, views};
use crate::control::types::MessageView;

type SyncEvent = request_response::Event<SyncRequest, SyncResponse>;

impl Engine {
    /// Subscribes to every channel the store knows, at start.
    pub(super) fn rejoin_channels(&mut self) {
        match self.store.channels() {
            Ok(channels) => {
                for (channel, _) in channels {
                    self.join(channel);
                }
            }
            Err(e) => tracing::error!("cannot list stored channels: {e}"),
        }
    }

    /// Joins a channel: subscribes to its topic and asks the peers already in it
    /// for its recent history.
    pub(super) fn join(&mut self, channel: ChannelName) {
        if self.joined.contains(&channel) {
            return;
        }
        let topic = IdentTopic::new(channel.topic());
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.subscribe(&topic) {
            tracing::error!(%channel, "cannot subscribe: {e}");
            return;
        }
        if let Err(e) = self.store.join_channel(&channel) {
            tracing::error!(%channel, "cannot record the channel: {e}");
        }
        tracing::info!(%channel, "joined channel");
        let hash = topic.hash();
        let members: Vec<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .filter(|(_, topics)| topics.contains(&&hash))
            .map(|(peer, _)| *peer)
            .collect();
        self.joined.insert(channel.clone());
        for peer in members {
            self.request_history(peer, &channel);
        }
    }

    pub(super) fn post(&mut self, channel: ChannelName, text: &str) -> Result<MessageView, String> {
        self.join(channel.clone());
        let message = Message::sign(
            &self.keypair,
            channel.clone(),
            &self.name,
            self.clock.unix_ms(),
            text,
        )
        .map_err(|e| e.to_string())?;
        let seq = self
            .store
            .insert_message(&message, self.clock.unix_ms())
            .map_err(|e| format!("cannot store the message: {e}"))?;
        self.announce_new_messages();
        let topic = IdentTopic::new(channel.topic());
        match self
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
        Ok(views::message_view(&ferry_store::StoredMessage {
            seq: seq.unwrap_or_default(),
            received_ms: self.clock.unix_ms(),
            message,
        }))
    }

    pub(super) fn on_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                let verdict = self.accept_gossip(&message);
                if verdict == MessageAcceptance::Reject {
                    tracing::warn!(peer = %propagation_source, "dropped an invalid channel message");
                }
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, verdict);
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                // A crowd's channels are open to all: join every channel a
                // neighbour is in, and catch up on it from that neighbour.
                if let Some(channel) = ChannelName::from_topic(topic.as_str()) {
                    self.join(channel.clone());
                    self.request_history(peer_id, &channel);
                }
            }
            _ => {}
        }
    }

    fn accept_gossip(&mut self, gossip: &gossipsub::Message) -> MessageAcceptance {
        let Ok(message) = Message::decode(&gossip.data) else {
            return MessageAcceptance::Reject;
        };
        if ChannelName::from_topic(gossip.topic.as_str()).as_ref() != Some(&message.channel) {
            return MessageAcceptance::Reject;
        }
        match self.store.insert_message(&message, self.clock.unix_ms()) {
            Ok(Some(_)) => {
                self.announce_new_messages();
                MessageAcceptance::Accept
            }
            Ok(None) => MessageAcceptance::Ignore,
            Err(e) => {
                // A full disk is reported once by the store, not per message.
                if !e.is_storage_failure() {
                    tracing::error!("cannot store a message: {e}");
                }
                MessageAcceptance::Ignore
            }
        }
    }

    pub(super) fn say_hello(&mut self, peer: PeerId) {
        self.swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::Hello);
    }

    pub(super) fn request_history(&mut self, peer: PeerId, channel: &ChannelName) {
        let have = match self.store.window_ids(channel, self.clock.unix_ms()) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(%channel, "cannot read history: {e}");
                return;
            }
        };
        let id = self.swarm.behaviour_mut().sync.send_request(
            &peer,
            SyncRequest::History {
                channel: channel.clone(),
                have,
            },
        );
        self.pending_history.insert(id, channel.clone());
    }

    /// Asks a newly connected peer for the history of every joined channel.
    /// Gossip's own subscription exchange is not enough: a peer that still
    /// holds a dead connection to a restarted node sees no new peer, and sends
    /// it nothing.
    pub(super) fn catch_up_with(&mut self, peer: PeerId) {
        let channels: Vec<ChannelName> = self.joined.iter().cloned().collect();
        for channel in channels {
            self.request_history(peer, &channel);
        }
    }

    /// Exchanges history of every joined channel with the next connected peer.
    pub(super) fn anti_entropy(&mut self) {
        let connected: Vec<PeerId> = self.peers.connected_peers().collect();
        if connected.is_empty() {
            return;
        }
        self.anti_entropy_turn = (self.anti_entropy_turn + 1) % connected.len();
        self.catch_up_with(connected[self.anti_entropy_turn]);
    }

    pub(super) fn on_sync(&mut self, event: SyncEvent) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.answer(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let asked = self.pending_history.remove(&request_id);
                    self.on_response(peer, asked, response);
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.pending_history.remove(&request_id);
                tracing::debug!(%peer, "sync request failed: {error}");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, "sync answer failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn answer(&mut self, peer: PeerId, request: SyncRequest, reply: ResponseChannel<SyncResponse>) {
        let response = if self.sync_limiter.allow(&peer, self.clock.mono_ms()) {
            self.response_to(request)
        } else {
            SyncResponse::Refused {
                reason: "too many sync requests; slow down".into(),
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(reply, response);
    }

    fn response_to(&self, request: SyncRequest) -> SyncResponse {
        match request {
            SyncRequest::Hello => SyncResponse::Hello {
                name: self.name.clone(),
            },
            SyncRequest::History { have, .. } if have.len() > MAX_HAVE_IDS => {
                SyncResponse::Refused {
                    reason: format!("a history request may list at most {MAX_HAVE_IDS} ids"),
                }
            }
            SyncRequest::History { channel, have } => {
                let have: HashSet<_> = have.into_iter().collect();
                let plan = self.store.history(&channel).map(|stored| {
                    history::plan_response(stored, &have, self.clock.unix_ms(), MAX_RESPONSE_BYTES)
                });
                match plan.and_then(|plan| Ok((self.store.wires(&plan.send)?, plan.more))) {
                    Ok((messages, more)) => SyncResponse::History { messages, more },
                    Err(e) => {
                        tracing::error!(%channel, "cannot read history: {e}");
                        SyncResponse::Refused {
                            reason: "history unavailable".into(),
                        }
                    }
                }
            }
        }
    }

    fn on_response(&mut self, peer: PeerId, asked: Option<ChannelName>, response: SyncResponse) {
        match (response, asked) {
            (SyncResponse::Hello { name }, _) => match ferry_core::channel::check_name(&name) {
                Ok(()) => self.peers.named(peer, name),
                Err(e) => self.drop_peer(peer, &format!("sent a bad name: {e}")),
            },
            (SyncResponse::History { messages, more }, Some(channel)) => {
                self.take_history(peer, &channel, &messages, more)
            }
            (SyncResponse::History { .. }, None) => {
                self.drop_peer(peer, "sent history nobody asked for")
            }
            (SyncResponse::Refused { reason }, _) => {
                tracing::debug!(%peer, "sync refused: {reason}")
            }
        }
    }

    /// Stores a history batch. Every message must verify and belong to the
    /// channel asked about; one that does not shows the peer is broken or
    /// hostile, and it is dropped.
    fn take_history(&mut self, peer: PeerId, channel: &ChannelName, wires: &[Vec<u8>], more: bool) {
        let decoded: Result<Vec<Message>, String> = wires
            .iter()
            .map(|wire| match Message::decode(wire) {
                Ok(m) if &m.channel == channel => Ok(m),
                Ok(m) => Err(format!(
                    "a message of channel {} in {channel}'s history",
                    m.channel
                )),
                Err(e) => Err(e.to_string()),
            })
            .collect();
        let messages = match decoded {
            Ok(m) => m,
            Err(why) => return self.drop_peer(peer, &format!("sent bad history: {why}")),
        };
        match self.store.insert_messages(&messages, self.clock.unix_ms()) {
            Ok(new) => {
                if !new.is_empty() {
                    tracing::info!(%peer, %channel, count = new.len(), "caught up on history");
                    self.announce_new_messages();
                }
                // Ask for the next round only while rounds bring something new,
                // so a peer that keeps saying "more" cannot keep us busy.
                if more && !new.is_empty() {
                    self.request_history(peer, channel);
                }
            }
            Err(e) if e.is_storage_failure() => {}
            Err(e) => tracing::error!(%channel, "cannot store history: {e}"),
        }
    }

    fn drop_peer(&mut self, peer: PeerId, why: &str) {
        tracing::warn!(%peer, "dropping peer: {why}");
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn announce_new_messages(&self) {
        match self.store.last_seq() {
            Ok(seq) => {
                self.new_messages.send_replace(seq);
            }
            Err(e) => tracing::error!("cannot read the message counter: {e}"),
        }
    }
}
