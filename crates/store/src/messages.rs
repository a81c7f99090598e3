//! Channel messages on disk.
//!
//! One row per message, keyed by its id, so de-duplication is a single lookup and
//! is exact. Two indexes per channel sit beside it:
//!
//! - by author timestamp, because that is the order people read a channel in and
//!   the order history sync ranks messages by;
//! - by a local sequence number, because author clocks can be wrong and old
//!   messages arrive late through history sync, while `read --follow` needs an
//!   order in which a newly stored message is always *after* everything it has
//!   already shown.
//!
//! Messages read back are decoded (and so re-verified) with [`Message::decode`]:
//! the database is trusted to be intact, but a damaged row becomes an error the
//! user can act on, never a panic or a silently wrong message.

use std::ops::{Bound, RangeInclusive};

use ferry_core::Millis;
use ferry_core::channel::{ChannelName, Message, MessageId};
use ferry_core::history::{self, Stored};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::{Store, StoreError};

type Id = [u8; 32];
/// `(seq, received_ms, wire bytes)`.
type MessageRow = (u64, u64, &'static [u8]);

/// id -> (seq, received_ms, wire).
const MESSAGES: TableDefinition<Id, MessageRow> = TableDefinition::new("messages");
/// (channel, author timestamp, id) -> (). The id in the key breaks timestamp ties
/// and keeps two messages posted in the same millisecond apart.
const BY_TIME: TableDefinition<(&str, u64, Id), ()> = TableDefinition::new("messages_by_time");
/// (channel, seq) -> id.
const BY_SEQ: TableDefinition<(&str, u64), Id> = TableDefinition::new("messages_by_seq");
/// channel -> number of stored messages. A row exists for every joined channel,
/// with count 0 for one joined explicitly that has no messages yet.
const CHANNELS: TableDefinition<&str, u64> = TableDefinition::new("channels");
/// Store-wide counters.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The last sequence number assigned. Kept rather than derived from the indexes
/// so that it never goes backwards, even if messages are ever deleted.
const SEQ_KEY: &str = "seq";

/// A message as stored, with what this node recorded about its arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Store-wide arrival order: larger means stored later.
    pub seq: u64,
    /// When this node stored it, by this node's clock (ms since the Unix epoch).
    pub received_ms: Millis,
    pub message: Message,
}

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(MESSAGES)?;
    txn.open_table(BY_TIME)?;
    txn.open_table(BY_SEQ)?;
    txn.open_table(CHANNELS)?;
    txn.open_table(META)?;
    Ok(())
}

/// Every key of `channel` in the by-time index, oldest first.
fn time_range(channel: &str) -> RangeInclusive<(&str, u64, Id)> {
    (channel, 0, [0; 32])..=(channel, u64::MAX, [0xff; 32])
}

impl Store {
    /// Stores a verified message durably: it returns only once the commit is on
    /// disk (redb's default `Durability::Immediate`), so an acknowledged message
    /// survives a crash.
    ///
    /// Returns `Some(seq)` for a new message and `None` if a message with the same
    /// id is already stored. Storing a message also joins its channel, since a
    /// node that holds a channel's messages should keep syncing it.
    pub fn insert_message(
        &self,
        msg: &Message,
        received_ms: Millis,
    ) -> Result<Option<u64>, StoreError> {
        Ok(self
            .insert_messages(std::slice::from_ref(msg), received_ms)?
            .first()
            .copied())
    }

    /// Stores many messages in one transaction (one fsync rather than one per
    /// message, which matters for a history response of thousands). Returns the
    /// seqs of the messages that were new, in the order given.
    pub fn insert_messages(
        &self,
        msgs: &[Message],
        received_ms: Millis,
    ) -> Result<Vec<u64>, StoreError> {
        // Messages are small: the reserve is their margin, so they are refused
        // only once the disk is below it.
        self.health.ensure_room("channel messages", 0)?;
        let txn = self.db.begin_write()?;
        let mut new = Vec::new();
        {
            let mut messages = txn.open_table(MESSAGES)?;
            let mut by_time = txn.open_table(BY_TIME)?;
            let mut by_seq = txn.open_table(BY_SEQ)?;
            let mut channels = txn.open_table(CHANNELS)?;
            let mut meta = txn.open_table(META)?;
            let mut seq = meta.get(SEQ_KEY)?.map_or(0, |v| v.value());
            for msg in msgs {
                let id = msg.id.0;
                if messages.get(id)?.is_some() {
                    continue;
                }
                seq += 1;
                let channel = msg.channel.as_str();
                messages.insert(id, (seq, received_ms, msg.wire()))?;
                by_time.insert((channel, msg.timestamp_ms, id), ())?;
                by_seq.insert((channel, seq), id)?;
                let count = channels.get(channel)?.map_or(0, |v| v.value());
                channels.insert(channel, count + 1)?;
                new.push(seq);
            }
            meta.insert(SEQ_KEY, seq)?;
        }
        if new.is_empty() {
            // Nothing changed: skip the fsync a commit would cost.
            txn.abort()?;
        } else {
            txn.commit()?;
        }
        Ok(new)
    }

    /// The newest `limit` messages of a channel by author timestamp (ties broken
    /// by id), returned oldest first, the order they are displayed in.
    pub fn recent(
        &self,
        channel: &ChannelName,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let txn = self.read()?;
        let by_time = txn.open_table(BY_TIME)?;
        let messages = txn.open_table(MESSAGES)?;
        let mut out = Vec::new();
        for entry in by_time
            .range(time_range(channel.as_str()))?
            .rev()
            .take(limit)
        {
            let (_, _, id) = entry?.0.value();
            out.push(load(&messages, id)?);
        }
        out.reverse();
        Ok(out)
    }

    /// Messages of a channel stored after `after` (`seq > after`), in seq order, at
    /// most `limit`. A follower passes the last seq it has shown.
    pub fn after(
        &self,
        channel: &ChannelName,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let txn = self.read()?;
        let by_seq = txn.open_table(BY_SEQ)?;
        let messages = txn.open_table(MESSAGES)?;
        let ch = channel.as_str();
        let range = (
            Bound::Excluded((ch, after)),
            Bound::Included((ch, u64::MAX)),
        );
        let mut out = Vec::new();
        for entry in by_seq.range(range)?.take(limit) {
            out.push(load(&messages, entry?.1.value())?);
        }
        Ok(out)
    }

    /// The highest seq ever assigned (0 when none).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META)?;
        Ok(meta.get(SEQ_KEY)?.map_or(0, |v| v.value()))
    }

    /// A channel's messages newest first by author timestamp, at most
    /// [`history::WINDOW_HARD_CAP`]: the summaries [`history::plan_response`]
    /// needs. Nothing beyond the hard cap can be in the window, so nothing more is
    /// read. Messages are not decoded here: only their lengths are needed, and
    /// whoever receives them verifies them.
    pub fn history(&self, channel: &ChannelName) -> Result<Vec<Stored>, StoreError> {
        let txn = self.read()?;
        let by_time = txn.open_table(BY_TIME)?;
        let messages = txn.open_table(MESSAGES)?;
        let mut out = Vec::new();
        for entry in by_time
            .range(time_range(channel.as_str()))?
            .rev()
            .take(history::WINDOW_HARD_CAP)
        {
            let (_, timestamp_ms, id) = entry?.0.value();
            let row = messages.get(id)?.ok_or_else(|| missing(id))?;
            out.push(Stored {
                id: MessageId(id),
                timestamp_ms,
                wire_len: row.value().2.len(),
            });
        }
        Ok(out)
    }

    /// The ids of the messages in the channel's history window at `now_ms` (see
    /// [`history::in_window`]): the `have` list of a sync request, so the peer
    /// sends only what is missing.
    pub fn window_ids(
        &self,
        channel: &ChannelName,
        now_ms: Millis,
    ) -> Result<Vec<MessageId>, StoreError> {
        let txn = self.read()?;
        let by_time = txn.open_table(BY_TIME)?;
        let mut out = Vec::new();
        for (rank, entry) in by_time
            .range(time_range(channel.as_str()))?
            .rev()
            .enumerate()
        {
            let (_, timestamp_ms, id) = entry?.0.value();
            if !history::in_window(rank, timestamp_ms, now_ms) {
                break;
            }
            out.push(MessageId(id));
        }
        Ok(out)
    }

    /// The wire bytes of stored messages, in the order asked; ids not stored are
    /// skipped. Not re-verified: they go to a peer, which verifies them anyway.
    pub fn wires(&self, ids: &[MessageId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.read()?;
        let messages = txn.open_table(MESSAGES)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = messages.get(id.0)? {
                out.push(row.value().2.to_vec());
            }
        }
        Ok(out)
    }

    /// Channels this node has joined (explicitly, or by storing a message of
    /// one), with their message counts, sorted by name.
    pub fn channels(&self) -> Result<Vec<(ChannelName, u64)>, StoreError> {
        let txn = self.read()?;
        let channels = txn.open_table(CHANNELS)?;
        // redb orders `&str` keys by their bytes, which is `ChannelName`'s order.
        channels
            .iter()?
            .map(|entry| {
                let (name, count) = entry?;
                let name = name.value();
                let channel = name.parse().map_err(|e| {
                    StoreError::Corrupt(format!(
                        "the channel list holds an invalid name {name:?}: {e}"
                    ))
                })?;
                Ok((channel, count.value()))
            })
            .collect()
    }

    /// Joins a channel, so it is listed and synced before any message of it is
    /// stored. Joining a channel already joined changes nothing.
    pub fn join_channel(&self, channel: &ChannelName) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        let joined = {
            let mut channels = txn.open_table(CHANNELS)?;
            let known = channels.get(channel.as_str())?.is_some();
            if !known {
                channels.insert(channel.as_str(), 0)?;
            }
            !known
        };
        if joined {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(())
    }
}

/// Reads and re-verifies one message.
fn load(
    messages: &impl ReadableTable<Id, MessageRow>,
    id: Id,
) -> Result<StoredMessage, StoreError> {
    let row = messages.get(id)?.ok_or_else(|| missing(id))?;
    let (seq, received_ms, wire) = row.value();
    let message = Message::decode(wire).map_err(|e| {
        StoreError::Corrupt(format!(
            "stored message {} no longer decodes ({e}); the database file is damaged",
            MessageId(id)
        ))
    })?;
    // The id is the hash of the wire bytes; a mismatch means the row was altered.
    if message.id.0 != id {
        return Err(StoreError::Corrupt(format!(
            "stored message {} has the bytes of message {}; the database file is damaged",
            MessageId(id),
            message.id
        )));
    }
    Ok(StoredMessage {
        seq,
        received_ms,
        message,
    })
}

fn missing(id: Id) -> StoreError {
    StoreError::Corrupt(format!(
        "the message index names {} but no such message is stored; the database file is damaged",
        MessageId(id)
    ))
}

#[cfg(test)]
mod tests;
