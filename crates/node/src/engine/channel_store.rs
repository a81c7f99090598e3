//! Channel storage off the engine task.
//!
//! Every change to the channels on disk (a message from gossip, a history
//! batch, a post, a join or a leave) is queued here and written on the blocking
//! pool, one batch at a time, each batch one transaction. While a batch is
//! being written, the next one gathers: under a flood many messages share one
//! fsync, and the engine task, which also runs every protocol and answers the
//! control API, never waits for the disk. Decoding (signature checks, hashing)
//! happens on the blocking pool too. Results come back as [`Done`] in the order
//! they were queued.

use std::collections::VecDeque;

use ferry_core::channel::{ChannelName, Message, MessageError, MessageId};
use ferry_core::history::latest_accepted;
use ferry_core::sync::SyncResponse;
use ferry_core::{Keypair, Millis, PeerId};
use ferry_net::libp2p::gossipsub::{self, MessageAcceptance};
use ferry_net::libp2p::request_response::ResponseChannel;
use ferry_store::{ChannelWrite, Store, StoreError, StoredMessage};
use tokio::sync::oneshot;

use crate::error::NodeError;
use crate::types::MessageView;

/// The most writes in one batch (one transaction): large enough that a flood
/// costs few fsyncs, small enough that one transaction stays short.
const MAX_BATCH: usize = 4_096;
/// The most gossip messages waiting to be written. Past it, gossip is ignored
/// (not stored, not forwarded) until the disk catches up, so a flood from many
/// peers at once cannot grow memory without bound.
const MAX_QUEUED_GOSSIP: usize = 20_000;

/// A change waiting to be written.
pub(crate) enum Pending {
    Join {
        channel: ChannelName,
        reply: Option<oneshot::Sender<Result<(), NodeError>>>,
    },
    Leave {
        channel: ChannelName,
        reply: oneshot::Sender<Result<bool, NodeError>>,
    },
    /// A gossip message, not decoded yet; its verdict goes back to gossipsub.
    Gossip {
        source: PeerId,
        id: gossipsub::MessageId,
        channel: ChannelName,
        data: Vec<u8>,
    },
    /// A history response to a request about `channel`.
    History {
        peer: PeerId,
        channel: ChannelName,
        wires: Vec<Vec<u8>>,
        more: bool,
    },
    /// A post, signed when written: signing hashes the message.
    Post {
        draft: Box<Draft>,
        reply: oneshot::Sender<Result<MessageView, NodeError>>,
    },
    /// Remove what retention no longer keeps from every channel.
    Prune,
}

/// A message to sign and post.
pub(crate) struct Draft {
    pub(crate) keypair: Keypair,
    pub(crate) channel: ChannelName,
    pub(crate) author_name: String,
    pub(crate) timestamp_ms: Millis,
    pub(crate) text: String,
}

impl Draft {
    fn sign(&self) -> Result<Message, MessageError> {
        Message::sign(
            &self.keypair,
            self.channel.clone(),
            &self.author_name,
            self.timestamp_ms,
            &self.text,
        )
    }
}

/// What became of one pending change.
pub(crate) enum Outcome {
    /// A gossip message's verdict for gossipsub.
    Gossip(MessageAcceptance),
    /// A history batch: how many of its messages were new, or why the peer
    /// sent something no honest node sends.
    History(Result<usize, String>),
    /// A post: the signed message and its seq (`None` if the identical
    /// message was stored already), or why it could not be signed.
    Post(Result<(Box<Message>, Option<u64>), String>),
    /// A join, leave or prune was written.
    Written,
}

/// Store work for channels, finished on the blocking pool.
pub(crate) enum Done {
    /// A batch written: each change with its outcome, or the store's error for
    /// the whole batch; and the highest seq now stored.
    Written {
        batch: Vec<Pending>,
        outcomes: Result<Vec<Outcome>, StoreError>,
        last_seq: Option<u64>,
    },
    /// The ids to list in a history request to `peer`.
    Asked {
        peer: PeerId,
        channel: ChannelName,
        have: Result<Vec<MessageId>, String>,
    },
    /// A history answer for `peer`, ready to send.
    Answered {
        reply: ResponseChannel<SyncResponse>,
        response: SyncResponse,
    },
}

/// The queue of changes, and whether a batch is being written.
#[derive(Default)]
pub(super) struct Writes {
    queue: VecDeque<Pending>,
    queued_gossip: usize,
    busy: bool,
}

impl Writes {
    /// Whether another gossip message may wait.
    pub(super) fn has_room_for_gossip(&self) -> bool {
        self.queued_gossip < MAX_QUEUED_GOSSIP
    }

    pub(super) fn push(&mut self, pending: Pending) {
        if matches!(pending, Pending::Gossip { .. }) {
            self.queued_gossip += 1;
        }
        self.queue.push_back(pending);
    }

    /// The next batch to write, if none is being written.
    pub(super) fn next_batch(&mut self) -> Option<Vec<Pending>> {
        if self.busy || self.queue.is_empty() {
            return None;
        }
        let take = self.queue.len().min(MAX_BATCH);
        let batch: Vec<Pending> = self.queue.drain(..take).collect();
        let gossip = batch
            .iter()
            .filter(|p| matches!(p, Pending::Gossip { .. }))
            .count();
        self.queued_gossip -= gossip;
        self.busy = true;
        Some(batch)
    }

    /// The batch being written is done.
    pub(super) fn finished(&mut self) {
        self.busy = false;
    }
}

/// Decodes and writes one batch in one transaction, at time `now_ms`.
pub(super) fn write_batch(store: &Store, batch: Vec<Pending>, now_ms: Millis) -> Done {
    let mut writes = Vec::new();
    // For each pending change: the range of `writes` it made, or its outcome
    // decided before writing (a message refused on decoding).
    let mut plans: Vec<Result<std::ops::Range<usize>, Outcome>> = Vec::with_capacity(batch.len());
    // The posts signed, in the order of the batch.
    let mut signed: VecDeque<Box<Message>> = VecDeque::new();
    let mut prune = false;
    for pending in &batch {
        let start = writes.len();
        let plan = match pending {
            Pending::Join { channel, .. } => {
                writes.push(ChannelWrite::Join(channel.clone()));
                Ok(())
            }
            Pending::Leave { channel, .. } => {
                writes.push(ChannelWrite::Leave(channel.clone()));
                Ok(())
            }
            Pending::Gossip { channel, data, .. } => match decode_gossip(channel, data, now_ms) {
                Ok(message) => {
                    writes.push(ChannelWrite::Insert(Box::new(message)));
                    Ok(())
                }
                Err(verdict) => Err(Outcome::Gossip(verdict)),
            },
            Pending::History { channel, wires, .. } => match decode_history(channel, wires, now_ms)
            {
                Ok(messages) => {
                    writes.extend(
                        messages
                            .into_iter()
                            .map(|m| ChannelWrite::Insert(Box::new(m))),
                    );
                    Ok(())
                }
                Err(why) => Err(Outcome::History(Err(why))),
            },
            Pending::Post { draft, .. } => match draft.sign() {
                Ok(message) => {
                    let message = Box::new(message);
                    writes.push(ChannelWrite::Insert(message.clone()));
                    signed.push_back(message);
                    Ok(())
                }
                Err(e) => Err(Outcome::Post(Err(e.to_string()))),
            },
            Pending::Prune => {
                prune = true;
                Ok(())
            }
        };
        plans.push(plan.map(|()| start..writes.len()));
    }
    let written = store.write_channels(&writes, now_ms).and_then(|results| {
        if prune {
            let removed = store.prune_channels(now_ms)?;
            if removed > 0 {
                tracing::info!(removed, "retention removed old channel messages");
            }
        }
        Ok(results)
    });
    let outcomes = written.map(|results| {
        batch
            .iter()
            .zip(plans)
            .map(|(pending, plan)| match plan {
                Err(decided) => decided,
                Ok(range) => outcome(pending, &results[range], &mut signed),
            })
            .collect()
    });
    Done::Written {
        batch,
        outcomes,
        last_seq: store.last_seq().ok(),
    }
}

fn outcome(
    pending: &Pending,
    results: &[Option<u64>],
    signed: &mut VecDeque<Box<Message>>,
) -> Outcome {
    let new = results.iter().flatten().count();
    match pending {
        Pending::Gossip { .. } if new > 0 => Outcome::Gossip(MessageAcceptance::Accept),
        // Stored already (or too old to keep): nothing to forward.
        Pending::Gossip { .. } => Outcome::Gossip(MessageAcceptance::Ignore),
        Pending::History { .. } => Outcome::History(Ok(new)),
        Pending::Post { .. } => match signed.pop_front() {
            Some(message) => Outcome::Post(Ok((message, results.first().copied().flatten()))),
            None => Outcome::Post(Err("the post was not signed".into())),
        },
        Pending::Join { .. } | Pending::Leave { .. } | Pending::Prune => Outcome::Written,
    }
}

/// A gossip message of `channel`, checked. An invalid one is rejected (its
/// sender relayed what no honest node relays); one dated too far ahead is
/// ignored, and refused before its signature is checked: an honest relay
/// whose clock is ahead of ours may have taken it.
fn decode_gossip(
    channel: &ChannelName,
    data: &[u8],
    now_ms: Millis,
) -> Result<Message, MessageAcceptance> {
    let message = match Message::decode_dated_until(data, latest_accepted(now_ms)) {
        Ok(message) => message,
        Err(MessageError::TooFarAhead) => return Err(MessageAcceptance::Ignore),
        Err(_) => return Err(MessageAcceptance::Reject),
    };
    if &message.channel != channel {
        return Err(MessageAcceptance::Reject);
    }
    Ok(message)
}

/// A history batch about `channel`, checked. Every message must verify and
/// belong to the channel asked about; one that does not shows the peer is
/// broken or hostile. Messages dated too far ahead are left out (see
/// [`ferry_core::history::MAX_FUTURE_SKEW_MS`]), as gossip leaves them out.
fn decode_history(
    channel: &ChannelName,
    wires: &[Vec<u8>],
    now_ms: Millis,
) -> Result<Vec<Message>, String> {
    let mut messages = Vec::with_capacity(wires.len());
    for wire in wires {
        let message = match Message::decode_dated_until(wire, latest_accepted(now_ms)) {
            Ok(message) => message,
            Err(MessageError::TooFarAhead) => continue,
            Err(e) => return Err(e.to_string()),
        };
        if &message.channel != channel {
            return Err(format!(
                "a message of channel {} in {channel}'s history",
                message.channel
            ));
        }
        messages.push(message);
    }
    Ok(messages)
}

/// The view of a message just posted and stored as `seq` at `now_ms`.
pub(super) fn posted_view(message: Message, seq: u64, now_ms: Millis) -> MessageView {
    super::views::message_view(&StoredMessage {
        seq,
        received_ms: now_ms,
        message,
    })
}
