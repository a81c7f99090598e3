//! Blobs: content addressed by its BLAKE3 hash, kept as files beside the database.
//!
//! # Layout
//!
//! ```text
//! DATA_DIR/blobs/<first 2 hex>/<hex>.data   the bytes (absent for a blob shared in place)
//! DATA_DIR/blobs/<first 2 hex>/<hex>.obao   the bao-tree outboard: the hash pairs of the
//!                                           BLAKE3 tree in post order, 16 KiB chunk groups
//! DATA_DIR/blobs/tmp/                       files being written (emptied on open)
//! ```
//!
//! The outboard is bao-tree's `PostOrderOutboard` (no size suffix) rather than the
//! pre-order one: hashing produces post-order hash pairs strictly in sequence, so
//! an import streams them to disk at hashing speed with bounded memory. Given the
//! size, both orders serve and receive alike.
//!
//! Rows in redb: `blobs` (id -> postcard-encoded `Meta`) and `blob_bitfields` (id -> the
//! [`Bitfield`] of a partial blob's verified groups; none once complete).
//!
//! # Crash consistency
//!
//! A row is committed only after the files it names are written, fsynced and renamed
//! into place, and a group is marked in a bitfield only after its data and hash pairs
//! are fsynced (in batches: see [`Store::write_verified`] and [`Store::flush_blob`]).
//! So after a crash at any moment every row names files that hold what the row
//! says, and the worst left behind is files no row names, which [`Store::open`]
//! deletes. Groups written but not yet marked when the process died are checked
//! against the id, fsynced and marked when the download is resumed
//! ([`Store::begin_partial`]).
//!
//! # Concurrency
//!
//! Every public method may be called from any thread. Operations that replace or
//! remove a blob's files (import, `begin_partial`, remove) exclude, per blob, those
//! that read or write them (serve, receive, export); receives of different ranges of
//! one blob run in parallel with positional writes.

mod export;
mod files;
mod import;
mod receive;
mod serve;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bao_tree::{BaoTree, BlockSize, ChunkNum, ChunkRanges};
pub use ferry_core::content::ContentKind;
use ferry_core::content::{Bitfield, ContentId, GROUP_CHUNK_LOG, group_count};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

pub use receive::{BadData, FLUSH_BYTES, FLUSH_INTERVAL, ReceiveError, verify_size};
pub use serve::MAX_ENCODE_GROUPS;

use crate::{Store, StoreError};
use files::Stamp;
use receive::Receiving;

/// The largest blob accepted: the core's 4 TiB, which keeps a download's
/// bitfield (one bit per 16 KiB group) at most 32 MiB, whatever size a peer
/// claims.
pub const MAX_BLOB_SIZE: u64 = ferry_core::content::MAX_BLOB_BYTES;

/// id -> postcard-encoded [`Row`].
const BLOBS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blobs");
/// id -> [`Bitfield::to_bytes`], for partial blobs only.
const BITFIELDS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blob_bitfields");

/// What a blob holds: core's [`ContentKind`], under the name the store's API
/// used first.
pub type BlobKind = ContentKind;

/// [`ContentKind`] as stored: a separate enum, so the on-disk encoding never
/// changes with the core type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum StoredKind {
    Blob,
    Collection,
}

impl From<ContentKind> for StoredKind {
    fn from(kind: ContentKind) -> Self {
        match kind {
            ContentKind::Blob => Self::Blob,
            ContentKind::Collection => Self::Collection,
        }
    }
}

impl From<StoredKind> for ContentKind {
    fn from(kind: StoredKind) -> Self {
        match kind {
            StoredKind::Blob => Self::Blob,
            StoredKind::Collection => Self::Collection,
        }
    }
}

/// What the store knows about one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub id: ContentId,
    pub size: u64,
    pub kind: ContentKind,
    /// The name it was shared or fetched under, for listings.
    pub name: Option<String>,
    /// Every group is verified and durably on disk.
    pub complete: bool,
    /// Groups verified and written (for a complete blob, all of them). For a
    /// download in progress this includes groups not yet fsynced, which a power
    /// loss would lose (see [`Store::flush_blob`]; a crash of the process alone
    /// does not, see [`Store::begin_partial`]).
    pub verified_groups: u64,
    /// Kept deliberately (shared by this node), as opposed to merely fetched.
    pub pinned: bool,
    /// The file this blob is served from when it was shared in place.
    pub in_place: Option<PathBuf>,
    /// The data no longer matches the id (a file shared in place was changed, or
    /// the stored copy is damaged): the blob is not served any more.
    pub stale: bool,
}

/// The stored row. Versioned because postcard is not self-describing: a later
/// layout becomes a new variant and old rows still decode.
#[derive(Serialize, Deserialize)]
enum Row {
    V1(Meta),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    size: u64,
    kind: StoredKind,
    name: Option<String>,
    complete: bool,
    pinned: bool,
    in_place: Option<InPlace>,
    stale: bool,
}

/// A file shared where it is, with what it looked like when hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InPlace {
    /// The absolute path, as raw bytes on Unix (paths need not be UTF-8).
    path: Vec<u8>,
    stamp: Stamp,
}

impl InPlace {
    fn new(path: &Path, stamp: Stamp) -> Self {
        Self {
            path: files::path_to_bytes(path),
            stamp,
        }
    }

    fn path(&self) -> PathBuf {
        files::path_from_bytes(&self.path)
    }
}

/// The blob part of the store: where the files live, and the in-memory state
/// shared between threads.
pub(crate) struct Blobs {
    dir: PathBuf,
    /// Per-blob locks, striped by the id's first byte: shared for reading or
    /// writing a blob's files, exclusive for replacing or removing them.
    locks: [RwLock<()>; 64],
    /// Downloads being written: open files and groups not yet committed.
    receiving: Mutex<HashMap<ContentId, Arc<Receiving>>>,
    /// Downloads whose fsync or commit failed in this process: their files are
    /// not trusted for recovery (after a failed fsync the page cache may hold
    /// bytes that never reach the disk, and a later fsync reports success).
    unrecoverable: Mutex<HashSet<ContentId>>,
}

/// The bao-tree chunk group size: [`GROUP_CHUNK_LOG`], 16 KiB.
fn block_size() -> BlockSize {
    BlockSize::from_chunk_log(GROUP_CHUNK_LOG)
}

fn tree(size: u64) -> BaoTree {
    BaoTree::new(size, block_size())
}

/// Groups `[first, last)` of a blob of `size` bytes, the end clamped to the
/// blob: returns the clamped end, or an error for a range with nothing in it.
fn group_range(id: &ContentId, size: u64, first: u64, last: u64) -> Result<u64, StoreError> {
    let groups = group_count(size);
    let last = last.min(groups);
    if first >= last {
        return Err(StoreError::RangeOutOfBlob {
            id: *id,
            first,
            last,
            groups,
        });
    }
    Ok(last)
}

/// The chunk ranges of groups `[first, last)`.
fn group_ranges(first: u64, last: u64) -> ChunkRanges {
    let shift = GROUP_CHUNK_LOG;
    ChunkRanges::from(ChunkNum(first << shift)..ChunkNum(last << shift))
}

impl Blobs {
    pub(crate) fn open(dir: PathBuf) -> Result<Self, StoreError> {
        let blobs = Self {
            dir,
            locks: std::array::from_fn(|_| RwLock::new(())),
            receiving: Mutex::new(HashMap::new()),
            unrecoverable: Mutex::new(HashSet::new()),
        };
        let tmp = blobs.tmp_dir();
        fs::create_dir_all(&tmp).map_err(|source| StoreError::BlobIo { path: tmp, source })?;
        Ok(blobs)
    }

    fn lock(&self, id: &ContentId) -> &RwLock<()> {
        &self.locks[usize::from(id.0[0]) % self.locks.len()]
    }

    fn shared(&self, id: &ContentId) -> RwLockReadGuard<'_, ()> {
        self.lock(id).read().unwrap_or_else(PoisonError::into_inner)
    }

    fn exclusive(&self, id: &ContentId) -> RwLockWriteGuard<'_, ()> {
        self.lock(id)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn receiving_map(&self) -> std::sync::MutexGuard<'_, HashMap<ContentId, Arc<Receiving>>> {
        self.receiving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn unrecoverable(&self) -> std::sync::MutexGuard<'_, HashSet<ContentId>> {
        self.unrecoverable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn shard_dir(&self, id: &ContentId) -> PathBuf {
        self.dir.join(hex2(id))
    }

    fn data_path(&self, id: &ContentId) -> PathBuf {
        self.shard_dir(id).join(format!("{id}.data"))
    }

    fn outboard_path(&self, id: &ContentId) -> PathBuf {
        self.shard_dir(id).join(format!("{id}.obao"))
    }

    /// A new temporary file in `blobs/tmp`, deleted when dropped unless persisted.
    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        tempfile::Builder::new()
            .prefix("import-")
            .tempfile_in(self.tmp_dir())
            .map_err(|source| StoreError::BlobIo {
                path: self.tmp_dir(),
                source,
            })
    }

    /// Moves finished temporary files to their names for `id` and makes the
    /// renames durable. Existing files of that name are replaced.
    fn place(
        &self,
        id: &ContentId,
        data: Option<tempfile::NamedTempFile>,
        outboard: tempfile::NamedTempFile,
    ) -> Result<(), StoreError> {
        let shard = self.shard_dir(id);
        fs::create_dir_all(&shard).map_err(|source| StoreError::BlobIo {
            path: shard.clone(),
            source,
        })?;
        let persist = |tmp: tempfile::NamedTempFile, to: PathBuf| {
            tmp.persist(&to).map(drop).map_err(|e| StoreError::BlobIo {
                path: to,
                source: e.error,
            })
        };
        if let Some(data) = data {
            persist(data, self.data_path(id))?;
        }
        persist(outboard, self.outboard_path(id))?;
        files::sync_dir(&shard)?;
        files::sync_dir(&self.dir)
    }

    /// Deletes what `blobs/tmp` holds and blob files no row names: what a crash
    /// between writing files and committing their row leaves behind.
    fn clean(&self, rows: &HashMap<ContentId, bool>) -> Result<(), StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::BlobIo { path, source }
        };
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
            let path = entry.map_err(io(&tmp))?.path();
            remove_quietly(&path);
        }
        for shard in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let shard = shard.map_err(io(&self.dir))?.path();
            let is_shard = shard
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()));
            if !is_shard || !shard.is_dir() {
                continue;
            }
            for file in fs::read_dir(&shard).map_err(io(&shard))? {
                let path = file.map_err(io(&shard))?.path();
                let Some((id, ext)) = parse_blob_file(&path) else {
                    continue;
                };
                let keep = match (rows.get(&id), ext) {
                    (None, _) => false,
                    // A blob shared in place has no data file of its own.
                    (Some(in_place), "data") => !in_place,
                    (Some(_), _) => true,
                };
                if !keep {
                    tracing::info!(path = %path.display(), "removing a blob file no record names");
                    remove_quietly(&path);
                }
            }
        }
        Ok(())
    }
}

fn hex2(id: &ContentId) -> String {
    format!("{:02x}", id.0[0])
}

/// `(id, "data" | "obao")` for a file named like a blob file.
fn parse_blob_file(path: &Path) -> Option<(ContentId, &str)> {
    let name = path.file_name()?.to_str()?;
    let (stem, ext) = name.split_once('.')?;
    let id = stem.parse().ok()?;
    matches!(ext, "data" | "obao").then_some((id, ext))
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale blob file");
    }
}

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(BLOBS)?;
    txn.open_table(BITFIELDS)?;
    Ok(())
}

fn decode_row(id: &ContentId, bytes: &[u8]) -> Result<Meta, StoreError> {
    match postcard::from_bytes(bytes) {
        Ok(Row::V1(meta)) => Ok(meta),
        Err(e) => Err(StoreError::Corrupt(format!(
            "the record of blob {id} does not decode ({e}); the database file is damaged"
        ))),
    }
}

fn read_meta(
    table: &impl ReadableTable<[u8; 32], &'static [u8]>,
    id: &ContentId,
) -> Result<Option<Meta>, StoreError> {
    match table.get(id.0)? {
        Some(row) => decode_row(id, row.value()).map(Some),
        None => Ok(None),
    }
}

fn write_meta(
    table: &mut Table<'_, [u8; 32], &'static [u8]>,
    id: &ContentId,
    meta: &Meta,
) -> Result<(), StoreError> {
    let row = postcard::to_stdvec(&Row::V1(meta.clone())).expect("a blob record always encodes");
    table.insert(id.0, row.as_slice())?;
    Ok(())
}

fn read_bitfield(
    table: &impl ReadableTable<[u8; 32], &'static [u8]>,
    id: &ContentId,
    size: u64,
) -> Result<Bitfield, StoreError> {
    let groups = group_count(size);
    let field = match table.get(id.0)? {
        Some(row) => Bitfield::from_bytes(row.value()),
        None => None,
    };
    match field {
        Some(field) if field.groups() == groups => Ok(field),
        _ => Err(StoreError::Corrupt(format!(
            "the download progress of blob {id} is missing or damaged; remove it with `ferry rm {id}` and fetch it again"
        ))),
    }
}

impl Store {
    /// Deletes leftovers of interrupted writes; called once by [`Store::open`].
    pub(crate) fn clean_blobs(&self) -> Result<(), StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(BLOBS)?;
        let mut rows = HashMap::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let id = ContentId(key.value());
            let meta = decode_row(&id, value.value())?;
            rows.insert(id, meta.in_place.is_some());
        }
        drop(table);
        drop(txn);
        self.blobs.clean(&rows)
    }

    fn meta(&self, id: &ContentId) -> Result<Option<Meta>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(BLOBS)?;
        read_meta(&table, id)
    }

    /// The verified groups of a partial blob: the in-memory state of a download
    /// being written, else the committed bitfield.
    fn have(&self, id: &ContentId, meta: &Meta) -> Result<Bitfield, StoreError> {
        if meta.complete {
            return Bitfield::full(group_count(meta.size)).map_err(|e| {
                StoreError::Corrupt(format!(
                    "the record of blob {id} is damaged ({e}); remove it with `ferry rm {id}`"
                ))
            });
        }
        if let Some(recv) = self.blobs.receiving_map().get(id).cloned() {
            return Ok(recv.have());
        }
        let txn = self.read()?;
        let table = txn.open_table(BITFIELDS)?;
        read_bitfield(&table, id, meta.size)
    }

    fn info(&self, id: &ContentId, meta: &Meta) -> Result<BlobInfo, StoreError> {
        let verified_groups = if meta.complete {
            group_count(meta.size)
        } else {
            self.have(id, meta)?.count()
        };
        Ok(BlobInfo {
            id: *id,
            size: meta.size,
            kind: meta.kind.into(),
            name: meta.name.clone(),
            complete: meta.complete,
            verified_groups,
            pinned: meta.pinned,
            in_place: meta.in_place.as_ref().map(InPlace::path),
            stale: meta.stale,
        })
    }

    /// What the store knows about one blob, if it has it (complete or partial).
    pub fn blob(&self, id: &ContentId) -> Result<Option<BlobInfo>, StoreError> {
        let _guard = self.blobs.shared(id);
        match self.meta(id)? {
            Some(meta) => self.info(id, &meta).map(Some),
            None => Ok(None),
        }
    }

    /// Every blob, complete or partial, ordered by id.
    pub fn blobs(&self) -> Result<Vec<BlobInfo>, StoreError> {
        let rows = {
            let txn = self.read()?;
            let table = txn.open_table(BLOBS)?;
            let mut rows = Vec::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                let id = ContentId(key.value());
                rows.push((id, decode_row(&id, value.value())?));
            }
            rows
        };
        rows.iter().map(|(id, meta)| self.info(id, meta)).collect()
    }

    /// Which groups of a blob are verified (all of them for a complete blob).
    pub fn bitfield(&self, id: &ContentId) -> Result<Option<Bitfield>, StoreError> {
        let _guard = self.blobs.shared(id);
        match self.meta(id)? {
            Some(meta) => self.have(id, &meta).map(Some),
            None => Ok(None),
        }
    }

    /// Pins or unpins a blob: pinned blobs are kept deliberately (shared content
    /// is pinned on import). Returns false if the blob is not stored.
    pub fn set_pinned(&self, id: &ContentId, pinned: bool) -> Result<bool, StoreError> {
        let _guard = self.blobs.exclusive(id);
        self.update_meta(id, |meta| meta.pinned = pinned)
    }

    /// Applies `change` to a blob's row; false if there is no row.
    fn update_meta(
        &self,
        id: &ContentId,
        change: impl FnOnce(&mut Meta),
    ) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let found = {
            let mut table = txn.open_table(BLOBS)?;
            match read_meta(&table, id)? {
                Some(mut meta) => {
                    let before = meta.clone();
                    change(&mut meta);
                    if meta != before {
                        write_meta(&mut table, id, &meta)?;
                    }
                    true
                }
                None => false,
            }
        };
        txn.commit()?;
        Ok(found)
    }

    /// Marks a blob as no longer matching its id, so it is not served again.
    fn mark_stale(&self, id: &ContentId) {
        tracing::warn!(%id, "blob data no longer matches its id; it will not be served");
        if let Err(e) = self.update_meta(id, |meta| meta.stale = true) {
            tracing::warn!(%id, error = %e, "cannot record that a blob is stale");
        }
    }

    /// Removes a blob: its row, its progress and its files in the store. A file
    /// shared in place is never deleted. Returns false if the blob was not stored.
    pub fn remove_blob(&self, id: &ContentId) -> Result<bool, StoreError> {
        let _guard = self.blobs.exclusive(id);
        self.blobs.receiving_map().remove(id);
        let txn = self.db.begin_write()?;
        let meta = {
            let mut table = txn.open_table(BLOBS)?;
            let meta = table.remove(id.0)?.map(|row| decode_row(id, row.value()));
            txn.open_table(BITFIELDS)?.remove(id.0)?;
            meta.transpose()?
        };
        let Some(meta) = meta else {
            txn.abort()?;
            return Ok(false);
        };
        // Row first, files after: a crash in between leaves only files no row
        // names, which the next open deletes.
        txn.commit()?;
        if meta.in_place.is_none() {
            remove_quietly(&self.blobs.data_path(id));
        }
        remove_quietly(&self.blobs.outboard_path(id));
        Ok(true)
    }

    /// Commits a complete blob whose files are already in place, replacing any
    /// partial or stale row, and drops any download state.
    fn commit_complete(&self, id: &ContentId, meta: &Meta) -> Result<(), StoreError> {
        self.blobs.receiving_map().remove(id);
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(BLOBS)?;
            write_meta(&mut table, id, meta)?;
            txn.open_table(BITFIELDS)?.remove(id.0)?;
        }
        txn.commit()?;
        Ok(())
    }
}
