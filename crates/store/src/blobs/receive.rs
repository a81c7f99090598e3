//! Receiving: writing verified chunk groups of a download, durably and resumably.
//!
//! Data from a peer is decoded with bao-tree against the blob's id, so nothing
//! reaches the disk before it is verified. Verified groups are written at once
//! (positional writes: several ranges of one blob may be received in parallel)
//! and served at once, but they are marked in the bitfield on disk only after
//! the data and outboard files are fsynced. An fsync costs milliseconds here, so
//! it is batched: the groups verified since the last one are committed together
//! once [`FLUSH_BYTES`] have accumulated, once [`FLUSH_INTERVAL`] has passed since
//! the first of them, when the blob becomes complete, and on
//! [`Store::flush_blob`] / drop of the store. A crash never leaves a group
//! marked that is not on disk.
//!
//! # Recovery
//!
//! A crash of the process alone (`kill -9`, a panic that aborts) loses no
//! written byte: what was written since the last commit is in the page cache,
//! only its mark is missing. So when a download's state is first opened in a
//! process ([`Store::begin_partial`] of a blob already partial, or its first
//! [`Store::write_verified`]), the groups its committed bitfield lacks are
//! checked against the id with the data and outboard files as they are on disk
//! (bao-tree's `valid_ranges`, from the root down: a group counts only if its
//! data and every hash pair on its path verify, so unwritten, torn or damaged
//! groups and hash pairs never do). The groups that verify are fsynced and
//! committed, and are not fetched again. Only groups not marked are read, and
//! only under hash pairs that verify, so the check hashes little more than what
//! was written since the last commit. A power loss can still lose the groups
//! verified in the last [`FLUSH_INTERVAL`] that never reached the disk.

use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bao_tree::io::outboard::PostOrderOutboard;
use bao_tree::io::sync::{DecodeResponseIter, OutboardMut, WriteAt, valid_ranges};
use bao_tree::io::{BaoContentItem, DecodeError};
use bao_tree::{ChunkNum, ChunkRangesRef};
use ferry_core::content::{
    Bitfield, ContentId, GROUP_BYTES, GROUP_CHUNK_LOG, group_bytes, group_count,
};
use thiserror::Error;

use super::files::{self, At};
use super::{
    BITFIELDS, BLOBS, BlobInfo, BlobKind, Meta, group_range, group_ranges, read_bitfield,
    read_meta, tree, write_meta,
};
use crate::{Store, StoreError};

/// Commit verified groups once this many bytes of them are waiting.
pub const FLUSH_BYTES: u64 = 64 << 20;
/// Commit verified groups at the latest this long after the first of them was
/// written (checked when the next range arrives). A crash of the process loses
/// nothing (see the module docs' recovery); this bounds what a power loss does.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Why data from a peer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BadData {
    #[error("a hash does not match the content id")]
    HashMismatch,
    #[error("the data ends early")]
    Truncated,
    #[error("{0} unexpected bytes follow the data")]
    TrailingBytes(usize),
    #[error("a size of {0} bytes is beyond the largest blob accepted")]
    TooLarge(u64),
}

/// Why [`Store::write_verified`] failed.
#[derive(Debug, Error)]
pub enum ReceiveError {
    /// The peer sent data that does not verify: drop it. The first `verified`
    /// groups of the range did verify and are kept (`newly_verified` of them were
    /// new).
    #[error(
        "bad data for blob {id}, chunk groups {first}..{last}: {reason}; the first {verified} groups verified and were kept"
    )]
    BadData {
        id: ContentId,
        first: u64,
        last: u64,
        verified: u64,
        newly_verified: u64,
        reason: BadData,
    },
    /// A local problem (disk, database, unknown blob): not the peer's fault.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReceiveError {
    /// How many groups at the start of the range verified and were kept (0 for
    /// a local error).
    pub fn verified_groups(&self) -> u64 {
        match self {
            Self::BadData { verified, .. } => *verified,
            Self::Store(_) => 0,
        }
    }

    /// Whether the peer is to blame (its data does not verify), rather than a
    /// local problem such as a full disk.
    pub fn is_bad_data(&self) -> bool {
        matches!(self, Self::BadData { .. })
    }
}

/// Checks a peer's claim that blob `id` is `size` bytes long, given its encoding
/// of the blob's last chunk group (what `encode_groups(id, n - 1, n)` returns for
/// `n` groups): it verifies only if the blob really has that size. Nothing is
/// stored. Check a size from a peer this way before [`Store::begin_partial`],
/// which allocates for it.
pub fn verify_size(id: &ContentId, size: u64, encoded: &[u8]) -> Result<(), BadData> {
    if size > super::MAX_BLOB_SIZE {
        return Err(BadData::TooLarge(size));
    }
    let last = group_count(size) - 1;
    let ranges = group_ranges(last, last + 1);
    let mut reader = encoded;
    for item in DecodeResponseIter::new((*id).into(), tree(size), &mut reader, &ranges) {
        match item {
            Ok(_) => {}
            Err(DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_)) => {
                return Err(BadData::HashMismatch);
            }
            Err(_) => return Err(BadData::Truncated),
        }
    }
    match reader.len() {
        0 => Ok(()),
        n => Err(BadData::TrailingBytes(n)),
    }
}

/// Runs of chunk groups `[first, last)`, in order.
type Runs = Vec<(u64, u64)>;

/// The groups of a partial blob that `have` (its committed bitfield) lacks but
/// whose data and hash pairs in `data` and `outboard` verify against the id,
/// as maximal runs `[first, last)`. Only groups missing from `have` are read,
/// and bao-tree checks from the root down, so a subtree under a hash pair that
/// does not verify (never written: zeros) is skipped without reading its data.
///
/// Best effort: a read error ends the search with what was found before it.
fn recoverable(id: &ContentId, size: u64, data: &File, outboard: &File, have: &Bitfield) -> Runs {
    let missing = have.missing_runs();
    if missing.is_empty() {
        return Vec::new();
    }
    let shift = GROUP_CHUNK_LOG;
    let boundaries: Vec<ChunkNum> = missing
        .iter()
        .flat_map(|&(first, last)| [ChunkNum(first << shift), ChunkNum(last << shift)])
        .collect();
    let ranges =
        ChunkRangesRef::new(&boundaries).expect("maximal missing runs are sorted and apart");
    let tree = tree(size);
    let outboard = PostOrderOutboard {
        root: (*id).into(),
        tree,
        data: At(outboard),
    };
    let groups = group_count(size);
    let mut found = Runs::new();
    for range in valid_ranges(outboard, At(data), ranges) {
        let range = match range {
            Ok(range) => range,
            Err(e) => {
                tracing::warn!(%id, error = %e, "cannot read a download's files to recover it");
                break;
            }
        };
        // Whole groups only (what bao-tree yields): a partial group at either
        // end is dropped, except the blob's last, shorter group.
        let first = range.start.0.div_ceil(1 << shift);
        let last = if range.end >= tree.chunks() {
            groups
        } else {
            range.end.0 >> shift
        };
        if first >= last {
            continue;
        }
        match found.last_mut() {
            Some(run) if run.1 == first => run.1 = last,
            _ => found.push((first, last)),
        }
    }
    found
}

/// A download being written: its open files and what is verified.
pub(crate) struct Receiving {
    size: u64,
    data: File,
    outboard: File,
    state: Mutex<State>,
}

struct State {
    /// Groups verified and written: committed plus pending.
    have: Bitfield,
    /// Ranges verified and written since the last commit.
    pending: Vec<(u64, u64)>,
    pending_bytes: u64,
    pending_since: Option<Instant>,
}

impl Receiving {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn have(&self) -> Bitfield {
        self.state().have.clone()
    }

    /// Records groups `[first, end)` as written; returns how many were new and
    /// whether it is time to commit.
    fn record(&self, first: u64, end: u64) -> (u64, bool) {
        let mut state = self.state();
        let newly = (first..end).filter(|&g| !state.have.get(g)).count() as u64;
        if newly > 0 {
            state.have.set_range(first, end);
            state.pending.push((first, end));
            let (start, stop) = group_bytes(first, end, self.size);
            state.pending_bytes += stop - start;
            state.pending_since.get_or_insert_with(Instant::now);
        }
        let due = !state.pending.is_empty()
            && (state.have.is_complete()
                || state.pending_bytes >= FLUSH_BYTES
                || state
                    .pending_since
                    .is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL));
        (newly, due)
    }

    fn take_pending(&self) -> Vec<(u64, u64)> {
        let mut state = self.state();
        state.pending_bytes = 0;
        state.pending_since = None;
        std::mem::take(&mut state.pending)
    }
}

impl Store {
    /// Starts or resumes a download of `size` bytes (a size the caller has
    /// verified against the id): creates the partial blob's files and an empty
    /// bitfield. If the blob is already stored (partial or complete) with that
    /// size, it is returned as it is, so a download resumes where it stopped. A
    /// different size for the same id is an error.
    ///
    /// Resuming a partial blob first in this process recovers the groups written
    /// before a crash but not yet marked (see the module docs), so call this
    /// before reading the bitfield to plan what to fetch.
    ///
    /// An empty blob whose id is the hash of no bytes is complete at once.
    pub fn begin_partial(
        &self,
        id: &ContentId,
        size: u64,
        kind: BlobKind,
        name: Option<String>,
    ) -> Result<BlobInfo, StoreError> {
        if size > super::MAX_BLOB_SIZE {
            return Err(StoreError::BlobTooLarge {
                size,
                max: super::MAX_BLOB_SIZE,
            });
        }
        let _guard = self.blobs.exclusive(id);
        if let Some(mut meta) = self.meta(id)? {
            if meta.size != size {
                return Err(StoreError::SizeMismatch {
                    id: *id,
                    stored: meta.size,
                    asked: size,
                });
            }
            let mut changed = false;
            if meta.name.is_none() && name.is_some() {
                self.update_meta(id, |m| m.name = name)?;
                changed = true;
            }
            if !meta.complete {
                // Resuming: the rest of the data must fit.
                let have = self.have(id, &meta)?.count().saturating_mul(GROUP_BYTES);
                self.health
                    .ensure_room(&format!("the rest of blob {id}"), size.saturating_sub(have))?;
            }
            // Exclusive: no write of this blob runs while its files are checked.
            if !meta.complete && !self.blobs.receiving_map().contains_key(id) {
                match self.open_receiving(id, size)? {
                    Some((recv, _)) => {
                        self.blobs.receiving_map().insert(*id, recv);
                    }
                    None => changed = true,
                }
            }
            if changed {
                meta = self
                    .meta(id)?
                    .expect("the row was just read under the lock");
            }
            return self.info(id, &meta);
        }
        let complete = size == 0 && *id == ContentId::of(&[]);
        let tree = tree(size);
        // The files are sparse: nothing is taken until groups arrive, so the
        // whole blob must fit now, or the download would fill the disk later.
        self.health.ensure_room(
            &format!("blob {id}"),
            size.saturating_add(tree.outboard_size()),
        )?;
        let data = self.blobs.temp_file()?;
        let outboard = self.blobs.temp_file()?;
        for (tmp, len) in [(&data, size), (&outboard, tree.outboard_size())] {
            // Sparse files of the final size: groups are written where they belong.
            tmp.as_file()
                .set_len(len)
                .and_then(|()| tmp.as_file().sync_all())
                .map_err(|source| StoreError::BlobIo {
                    path: tmp.path().to_owned(),
                    source,
                })?;
        }
        self.blobs.place(id, Some(data), outboard)?;
        // New files: nothing of an earlier failed download of this id is in them.
        self.blobs.unrecoverable().remove(id);
        let meta = Meta {
            size,
            kind: kind.into(),
            name,
            complete,
            pinned: false,
            in_place: None,
            stale: false,
        };
        let txn = self.db.begin_write()?;
        {
            write_meta(&mut txn.open_table(BLOBS)?, id, &meta)?;
            if !complete {
                let field = Bitfield::new(group_count(size))
                    .map_err(|_| StoreError::BlobTooLarge {
                        size,
                        max: super::MAX_BLOB_SIZE,
                    })?
                    .to_bytes();
                txn.open_table(BITFIELDS)?.insert(id.0, field.as_slice())?;
            }
        }
        txn.commit()?;
        self.info(id, &meta)
    }

    /// Verifies `encoded`, a peer's bao encoding of chunk groups `[first, last)`
    /// (clamped to the blob) of a partial blob, against the blob's id, writing
    /// each group to the blob as soon as it is verified. Returns how many groups
    /// were newly verified; when the last missing group arrives, the blob is
    /// committed complete before this returns.
    ///
    /// Verified groups are served at once; they are marked on disk after an
    /// fsync that is batched (see the module docs and [`Store::flush_blob`]).
    ///
    /// Data that does not verify is [`ReceiveError::BadData`]: the groups of the
    /// range before the bad one are kept, nothing after it is written. Ranges of
    /// one blob may be written from several threads at once. For a complete blob
    /// the data is verified and nothing is written.
    pub fn write_verified(
        &self,
        id: &ContentId,
        first: u64,
        last: u64,
        encoded: &[u8],
    ) -> Result<u64, ReceiveError> {
        let _guard = self.blobs.shared(id);
        let meta = self.meta(id)?.ok_or(StoreError::BlobNotFound(*id))?;
        let last = group_range(id, meta.size, first, last)?;
        if !meta.complete {
            // Something else may have filled the disk since the download began:
            // stop with a clear error rather than at a failed write.
            self.health
                .ensure_room(&format!("blob {id}"), encoded.len() as u64)?;
        }
        // None also when opening the download recovered its last groups.
        let recv = if meta.complete {
            None
        } else {
            self.receiving(id, &meta)?
        };
        let tree = tree(meta.size);
        let ranges = group_ranges(first, last);
        let mut outboard = recv.as_ref().map(|r| PostOrderOutboard {
            root: (*id).into(),
            tree,
            data: At(&r.outboard),
        });
        let mut reader = encoded;
        // Leaves come in order, so the verified groups are `first..first + verified`.
        let mut verified = 0u64;
        let mut failure = None;
        let mut local_error = None;
        for item in DecodeResponseIter::new((*id).into(), tree, &mut reader, &ranges) {
            let item = match item {
                Ok(item) => item,
                Err(DecodeError::ParentHashMismatch(_) | DecodeError::LeafHashMismatch(_)) => {
                    failure = Some(BadData::HashMismatch);
                    break;
                }
                Err(_) => {
                    failure = Some(BadData::Truncated);
                    break;
                }
            };
            let written = match (item, &recv, &mut outboard) {
                (BaoContentItem::Parent(parent), _, Some(outboard)) => outboard
                    .save(parent.node, &parent.pair)
                    .map_err(|source| StoreError::BlobIo {
                        path: self.blobs.outboard_path(id),
                        source,
                    }),
                (BaoContentItem::Leaf(leaf), recv, _) => {
                    debug_assert_eq!(leaf.offset, (first + verified) * GROUP_BYTES);
                    let written = match recv {
                        Some(recv) => At(&recv.data)
                            .write_all_at(leaf.offset, &leaf.data)
                            .map_err(|source| StoreError::BlobIo {
                                path: self.blobs.data_path(id),
                                source,
                            }),
                        None => Ok(()),
                    };
                    if written.is_ok() {
                        verified += 1;
                    }
                    written
                }
                // A complete blob: verify only.
                (BaoContentItem::Parent(_), _, None) => Ok(()),
            };
            if let Err(e) = written {
                local_error = Some(e);
                break;
            }
        }
        if failure.is_none() && local_error.is_none() && !reader.is_empty() {
            failure = Some(BadData::TrailingBytes(reader.len()));
        }
        let newly_verified = match &recv {
            Some(recv) if verified > 0 => {
                let (newly, due) = recv.record(first, first + verified);
                if due && let Err(e) = self.flush_receiving(id, recv) {
                    local_error.get_or_insert(e);
                }
                newly
            }
            _ => 0,
        };
        if let Some(e) = local_error {
            self.note_file_failure(&e);
            return Err(e.into());
        }
        match failure {
            None => Ok(newly_verified),
            Some(reason) => Err(ReceiveError::BadData {
                id: *id,
                first,
                last,
                verified,
                newly_verified,
                reason,
            }),
        }
    }

    /// Makes the groups verified so far of a download durable and marks them in
    /// its bitfield on disk. Call it when a download pauses or stops; dropping
    /// the store does it for every download.
    pub fn flush_blob(&self, id: &ContentId) -> Result<(), StoreError> {
        let _guard = self.blobs.shared(id);
        let recv = self.blobs.receiving_map().get(id).cloned();
        match recv {
            Some(recv) => self.flush_receiving(id, &recv),
            None => Ok(()),
        }
    }

    /// [`Store::flush_blob`] for every download being written.
    pub fn flush_blobs(&self) -> Result<(), StoreError> {
        let ids: Vec<ContentId> = self.blobs.receiving_map().keys().copied().collect();
        let mut result = Ok(());
        for id in ids {
            if let Err(e) = self.flush_blob(&id) {
                tracing::warn!(%id, error = %e, "cannot commit a download's progress");
                result = Err(e);
            }
        }
        result
    }

    /// The open download of a partial blob, opened on first use (with the
    /// recovery of [`Store::open_receiving`]); `None` if that recovery completed
    /// the blob. The caller holds the blob's lock (shared).
    fn receiving(&self, id: &ContentId, meta: &Meta) -> Result<Option<Arc<Receiving>>, StoreError> {
        if let Some(recv) = self.blobs.receiving_map().get(id) {
            return Ok(Some(recv.clone()));
        }
        // Opened without holding the map, since recovery reads and hashes. Two
        // threads may both open it: the first in the map is used, and what the
        // other recovered is committed already and added to it.
        let Some((opened, recovered)) = self.open_receiving(id, meta.size)? else {
            return Ok(None);
        };
        let mut map = self.blobs.receiving_map();
        let recv = map.entry(*id).or_insert_with(|| opened.clone()).clone();
        if !Arc::ptr_eq(&recv, &opened) {
            let mut state = recv.state();
            for &(first, last) in &recovered {
                state.have.set_range(first, last);
            }
        }
        Ok(Some(recv))
    }

    /// Opens a partial blob's files for receiving, from its committed bitfield
    /// plus the groups [`recoverable`] finds written but not marked, which are
    /// fsynced and committed first. Returns the download state and the groups
    /// recovered, or `None` if they completed the blob. No caller may hold an
    /// open download of the blob in the map while it runs unless it is ready to
    /// merge the result (see [`Store::receiving`]).
    fn open_receiving(
        &self,
        id: &ContentId,
        size: u64,
    ) -> Result<Option<(Arc<Receiving>, Runs)>, StoreError> {
        let data = files::open_rw(&self.blobs.data_path(id))?;
        let outboard = files::open_rw(&self.blobs.outboard_path(id))?;
        let mut have = {
            let txn = self.read()?;
            let table = txn.open_table(BITFIELDS)?;
            read_bitfield(&table, id, size)?
        };
        let recovered = if self.blobs.unrecoverable().contains(id) {
            Runs::new()
        } else {
            recoverable(id, size, &data, &outboard, &have)
        };
        if !recovered.is_empty() {
            // Verified in the page cache: made durable before it is marked.
            let committed = data
                .sync_data()
                .map_err(|source| StoreError::BlobIo {
                    path: self.blobs.data_path(id),
                    source,
                })
                .and_then(|()| {
                    outboard.sync_data().map_err(|source| StoreError::BlobIo {
                        path: self.blobs.outboard_path(id),
                        source,
                    })
                })
                .and_then(|()| self.commit_groups(id, &recovered));
            let complete = committed.inspect_err(|_| {
                self.blobs.unrecoverable().insert(*id);
            })?;
            let groups: u64 = recovered.iter().map(|&(first, last)| last - first).sum();
            tracing::info!(%id, groups, "recovered groups written but not recorded before a restart");
            if complete {
                return Ok(None);
            }
            for &(first, last) in &recovered {
                have.set_range(first, last);
            }
        }
        let recv = Arc::new(Receiving {
            size,
            data,
            outboard,
            state: Mutex::new(State {
                have,
                pending: Vec::new(),
                pending_bytes: 0,
                pending_since: None,
            }),
        });
        Ok(Some((recv, recovered)))
    }

    /// fsyncs a download's files, then commits the groups written before the
    /// fsync. The caller holds the blob's lock (shared).
    fn flush_receiving(&self, id: &ContentId, recv: &Arc<Receiving>) -> Result<(), StoreError> {
        let ranges = recv.take_pending();
        if ranges.is_empty() {
            return Ok(());
        }
        let synced = recv
            .data
            .sync_data()
            .map_err(|source| StoreError::BlobIo {
                path: self.blobs.data_path(id),
                source,
            })
            .and_then(|()| {
                recv.outboard
                    .sync_data()
                    .map_err(|source| StoreError::BlobIo {
                        path: self.blobs.outboard_path(id),
                        source,
                    })
            });
        let committed = synced.and_then(|()| self.commit_groups(id, &ranges));
        match committed {
            Ok(complete) => {
                if complete {
                    self.forget_receiving(id, recv);
                }
                Ok(())
            }
            Err(e) => {
                // What was pending may not be on disk: start again from what is
                // committed, and fetch the rest again (not recovered: see
                // `Blobs::unrecoverable`).
                self.blobs.unrecoverable().insert(*id);
                self.forget_receiving(id, recv);
                Err(e)
            }
        }
    }

    fn forget_receiving(&self, id: &ContentId, recv: &Arc<Receiving>) {
        let mut map = self.blobs.receiving_map();
        if map.get(id).is_some_and(|r| Arc::ptr_eq(r, recv)) {
            map.remove(id);
        }
    }

    /// Marks ranges in a partial blob's bitfield; commits it complete when the
    /// bitfield fills. Returns whether the blob is complete.
    fn commit_groups(&self, id: &ContentId, ranges: &[(u64, u64)]) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let complete = {
            let mut blobs = txn.open_table(BLOBS)?;
            let mut meta = read_meta(&blobs, id)?.ok_or(StoreError::BlobNotFound(*id))?;
            if meta.complete {
                true
            } else {
                let mut bitfields = txn.open_table(BITFIELDS)?;
                let mut field = read_bitfield(&bitfields, id, meta.size)?;
                for &(first, last) in ranges {
                    field.set_range(first, last);
                }
                if field.is_complete() {
                    meta.complete = true;
                    write_meta(&mut blobs, id, &meta)?;
                    bitfields.remove(id.0)?;
                } else {
                    bitfields.insert(id.0, field.to_bytes().as_slice())?;
                }
                meta.complete
            }
        };
        txn.commit()?;
        Ok(complete)
    }
}
