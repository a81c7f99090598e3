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
//! Writes come in batches ([`Store::write_channels`]): a flood of messages costs
//! one transaction (one fsync) per batch, not one per message, and retention
//! ([`Retention`]: a count and an age per channel) is enforced in the same
//! transaction, so a channel never holds more than its limit on disk.
//!
//! Messages read back are decoded (and so re-verified) with [`Message::decode`]:
//! the database is trusted to be intact, but a damaged row becomes an error the
//! user can act on, never a panic or a silently wrong message.

use std::ops::{Bound, RangeInclusive};

use ferry_core::Millis;
use ferry_core::channel::{ChannelName, Message, MessageId};
use ferry_core::history::{self, MAX_FUTURE_SKEW_MS, Stored};
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
/// Channels the user left: still listed in `CHANNELS` (their messages stay
/// until retention removes them) but not joined, so not synced or rejoined.
const LEFT: TableDefinition<&str, ()> = TableDefinition::new("channels_left");
/// Store-wide counters.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The last sequence number assigned. Kept rather than derived from the indexes
/// so that it never goes backwards, even if messages are ever deleted.
const SEQ_KEY: &str = "seq";

/// How many messages a channel keeps by default: twice the history window's
/// hard cap, so what retention removes is never in a peer's window for long.
pub const DEFAULT_MAX_MESSAGES: u64 = 2 * history::WINDOW_HARD_CAP as u64;
/// How old a message a channel keeps by default, by its author's timestamp.
pub const DEFAULT_MAX_AGE_MS: Millis = 90 * 24 * 60 * 60 * 1000;

/// How much of each channel the store keeps; older messages are removed in the
/// transaction that stores newer ones (and by [`Store::prune_channels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The most messages kept per channel: the newest by author timestamp.
    pub max_messages: u64,
    /// Messages older than this (by author timestamp) are removed.
    pub max_age_ms: Millis,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_messages: DEFAULT_MAX_MESSAGES,
            max_age_ms: DEFAULT_MAX_AGE_MS,
        }
    }
}

/// One change to the channels on disk; [`Store::write_channels`] makes a batch
/// of them in one transaction, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelWrite {
    /// Join a channel: list it (again, if it was left).
    Join(ChannelName),
    /// Leave a channel: no longer list it as joined. Its messages stay.
    Leave(ChannelName),
    /// Store a verified message, unless it is stored already or too old to keep.
    Insert(Box<Message>),
}

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
    txn.open_table(LEFT)?;
    txn.open_table(META)?;
    Ok(())
}

/// Every key of `channel` in the by-time index, oldest first.
fn time_range(channel: &str) -> RangeInclusive<(&str, u64, Id)> {
    time_range_until(channel, u64::MAX)
}

/// The keys of `channel` in the by-time index up to author time `last_ms`.
fn time_range_until(channel: &str, last_ms: Millis) -> RangeInclusive<(&str, u64, Id)> {
    (channel, 0, [0; 32])..=(channel, last_ms, [0xff; 32])
}

/// The keys of `channel` that history may rank at `now_ms`: none dated further
/// ahead than the clock skew allowed (see [`history::from_the_future`]).
fn history_range(channel: &str, now_ms: Millis) -> RangeInclusive<(&str, u64, Id)> {
    time_range_until(channel, now_ms.saturating_add(MAX_FUTURE_SKEW_MS))
}

/// The tables a batch of channel writes changes, opened once per transaction.
struct Tables<'txn> {
    messages: redb::Table<'txn, Id, MessageRow>,
    by_time: redb::Table<'txn, (&'static str, u64, Id), ()>,
    by_seq: redb::Table<'txn, (&'static str, u64), Id>,
    channels: redb::Table<'txn, &'static str, u64>,
    left: redb::Table<'txn, &'static str, ()>,
}

impl<'txn> Tables<'txn> {
    fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            messages: txn.open_table(MESSAGES)?,
            by_time: txn.open_table(BY_TIME)?,
            by_seq: txn.open_table(BY_SEQ)?,
            channels: txn.open_table(CHANNELS)?,
            left: txn.open_table(LEFT)?,
        })
    }

    fn count(&self, channel: &str) -> Result<u64, StoreError> {
        Ok(self.channels.get(channel)?.map_or(0, |v| v.value()))
    }

    fn join(&mut self, channel: &str) -> Result<bool, StoreError> {
        let mut changed = self.left.remove(channel)?.is_some();
        if self.channels.get(channel)?.is_none() {
            self.channels.insert(channel, 0)?;
            changed = true;
        }
        Ok(changed)
    }

    fn leave(&mut self, channel: &str) -> Result<bool, StoreError> {
        if self.channels.get(channel)?.is_none() {
            return Ok(false);
        }
        Ok(self.left.insert(channel, ())?.is_none())
    }

    /// Whether retention would remove a message of `channel` with author time
    /// `timestamp_ms` and id `id` at once: older than the age limit, or older
    /// than every message kept in a channel already at its count limit. Such a
    /// message is not stored, so a peer that sends it again and again (it may
    /// still be in the peer's history window) costs no write.
    fn too_old(
        &self,
        channel: &str,
        key: (u64, Id),
        now_ms: Millis,
        retention: &Retention,
    ) -> Result<bool, StoreError> {
        if key.0 < now_ms.saturating_sub(retention.max_age_ms) {
            return Ok(true);
        }
        if self.count(channel)? < retention.max_messages {
            return Ok(false);
        }
        let oldest = self
            .by_time
            .range(time_range(channel))?
            .next()
            .transpose()?;
        Ok(oldest.is_some_and(|(k, _)| {
            let (_, timestamp_ms, id) = k.value();
            key < (timestamp_ms, id)
        }))
    }

    /// Removes `channel`'s messages beyond `retention`, oldest first; returns
    /// the seqs removed.
    fn prune(
        &mut self,
        channel: &str,
        now_ms: Millis,
        retention: &Retention,
    ) -> Result<Vec<u64>, StoreError> {
        let cutoff = now_ms.saturating_sub(retention.max_age_ms);
        let mut count = self.count(channel)?;
        let mut doomed = Vec::new();
        for entry in self.by_time.range(time_range(channel))? {
            let (_, timestamp_ms, id) = entry?.0.value();
            if count <= retention.max_messages && timestamp_ms >= cutoff {
                break;
            }
            doomed.push((timestamp_ms, id));
            count = count.saturating_sub(1);
        }
        let mut removed = Vec::with_capacity(doomed.len());
        for (timestamp_ms, id) in doomed {
            self.by_time.remove((channel, timestamp_ms, id))?;
            if let Some(row) = self.messages.remove(id)? {
                let seq = row.value().0;
                self.by_seq.remove((channel, seq))?;
                removed.push(seq);
            }
        }
        if !removed.is_empty() {
            self.channels.insert(channel, count)?;
        }
        Ok(removed)
    }
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
        let writes: Vec<ChannelWrite> = msgs
            .iter()
            .map(|m| ChannelWrite::Insert(Box::new(m.clone())))
            .collect();
        Ok(self
            .write_channels(&writes, received_ms)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Makes a batch of channel changes in one transaction, in order, at time
    /// `now_ms` (the arrival time recorded for new messages). Retention is
    /// enforced on every channel a message was stored in, in the same
    /// transaction. Returns, for each write, the seq of a message newly stored
    /// and still kept at the end of the batch, or `None`.
    ///
    /// The commit is durable when this returns (redb's default
    /// `Durability::Immediate`); a batch that changes nothing commits nothing.
    pub fn write_channels(
        &self,
        writes: &[ChannelWrite],
        now_ms: Millis,
    ) -> Result<Vec<Option<u64>>, StoreError> {
        // Messages are small: the reserve is their margin, so they are refused
        // only once the disk is below it. Joins and leaves always go through.
        if writes.iter().any(|w| matches!(w, ChannelWrite::Insert(_))) {
            self.health.ensure_room("channel messages", 0)?;
        }
        let txn = self.db.begin_write()?;
        let mut results = Vec::with_capacity(writes.len());
        let mut changed = false;
        {
            let mut tables = Tables::open(&txn)?;
            let mut meta = txn.open_table(META)?;
            let mut seq = meta.get(SEQ_KEY)?.map_or(0, |v| v.value());
            let mut touched = std::collections::BTreeSet::new();
            for write in writes {
                let stored = match write {
                    ChannelWrite::Join(channel) => {
                        changed |= tables.join(channel.as_str())?;
                        None
                    }
                    ChannelWrite::Leave(channel) => {
                        changed |= tables.leave(channel.as_str())?;
                        None
                    }
                    ChannelWrite::Insert(msg) => {
                        let id = msg.id.0;
                        let channel = msg.channel.as_str();
                        let key = (msg.timestamp_ms, id);
                        if tables.messages.get(id)?.is_some()
                            || tables.too_old(channel, key, now_ms, &self.retention)?
                        {
                            None
                        } else {
                            seq += 1;
                            tables.messages.insert(id, (seq, now_ms, msg.wire()))?;
                            tables.by_time.insert((channel, msg.timestamp_ms, id), ())?;
                            tables.by_seq.insert((channel, seq), id)?;
                            let count = tables.count(channel)?;
                            tables.channels.insert(channel, count + 1)?;
                            touched.insert(channel);
                            changed = true;
                            Some(seq)
                        }
                    }
                };
                results.push(stored);
            }
            let mut pruned = std::collections::HashSet::new();
            for channel in touched {
                pruned.extend(tables.prune(channel, now_ms, &self.retention)?);
            }
            for result in &mut results {
                if result.is_some_and(|seq| pruned.contains(&seq)) {
                    *result = None;
                }
            }
            meta.insert(SEQ_KEY, seq)?;
        }
        if changed {
            txn.commit()?;
        } else {
            // Nothing changed: skip the fsync a commit would cost.
            txn.abort()?;
        }
        Ok(results)
    }

    /// Removes from every channel the messages beyond retention at `now_ms`
    /// (a quiet channel's messages age out too); returns how many.
    pub fn prune_channels(&self, now_ms: Millis) -> Result<usize, StoreError> {
        let txn = self.db.begin_write()?;
        let mut removed = 0;
        {
            let mut tables = Tables::open(&txn)?;
            let names: Vec<String> = tables
                .channels
                .iter()?
                .map(|entry| Ok(entry?.0.value().to_owned()))
                .collect::<Result<_, StoreError>>()?;
            for name in &names {
                removed += tables.prune(name, now_ms, &self.retention)?.len();
            }
        }
        if removed > 0 {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(removed)
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
    /// read; nor is anything dated too far after `now_ms` (it is never ranked).
    /// Messages are not decoded here: only their lengths are needed, and
    /// whoever receives them verifies them.
    pub fn history(
        &self,
        channel: &ChannelName,
        now_ms: Millis,
    ) -> Result<Vec<Stored>, StoreError> {
        let txn = self.read()?;
        let by_time = txn.open_table(BY_TIME)?;
        let messages = txn.open_table(MESSAGES)?;
        let mut out = Vec::new();
        for entry in by_time
            .range(history_range(channel.as_str(), now_ms))?
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
            .range(history_range(channel.as_str(), now_ms))?
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
    /// one) and not left, with their message counts, sorted by name.
    pub fn channels(&self) -> Result<Vec<(ChannelName, u64)>, StoreError> {
        let txn = self.read()?;
        let channels = txn.open_table(CHANNELS)?;
        let left = txn.open_table(LEFT)?;
        // redb orders `&str` keys by their bytes, which is `ChannelName`'s order.
        let mut out = Vec::new();
        for entry in channels.iter()? {
            let (name, count) = entry?;
            if left.get(name.value())?.is_none() {
                out.push((channel_name(name.value())?, count.value()));
            }
        }
        Ok(out)
    }

    /// Channels the user left (and has not joined again), sorted by name.
    pub fn left_channels(&self) -> Result<Vec<ChannelName>, StoreError> {
        let txn = self.read()?;
        let left = txn.open_table(LEFT)?;
        left.iter()?
            .map(|entry| channel_name(entry?.0.value()))
            .collect()
    }

    /// Joins a channel, so it is listed and synced before any message of it is
    /// stored; joins again a channel left. Joining a channel already joined
    /// changes nothing.
    pub fn join_channel(&self, channel: &ChannelName) -> Result<(), StoreError> {
        self.write_channels(&[ChannelWrite::Join(channel.clone())], 0)?;
        Ok(())
    }

    /// Leaves a channel: it is no longer listed as joined; its messages stay
    /// until retention removes them.
    pub fn leave_channel(&self, channel: &ChannelName) -> Result<(), StoreError> {
        self.write_channels(&[ChannelWrite::Leave(channel.clone())], 0)?;
        Ok(())
    }
}

/// A channel name read back from the database.
fn channel_name(name: &str) -> Result<ChannelName, StoreError> {
    name.parse().map_err(|e| {
        StoreError::Corrupt(format!(
            "the channel list holds an invalid name {name:?}: {e}"
        ))
    })
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
