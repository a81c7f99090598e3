//! DTN bundles on disk: the bundles this node carries, the ones delivered to it (the
//! inbox), and the router's durable state.
//!
//! # Where the bytes go
//! A bundle of at most [`INLINE_MAX`] bytes (64 KiB) is kept in redb itself, in its own
//! table beside the metadata row: one transaction, one commit, one fsync, and thousands
//! of small bundles (a message each) cost no file per bundle. A larger one (up to
//! core's 16 MiB limit) is a file, so a 5 MiB bundle is written once rather than copied
//! through redb's copy-on-write pages and left as free space in the database file:
//!
//! ```text
//! DATA_DIR/bundles/<digest>.bundle   a carried bundle's bytes
//! DATA_DIR/bundles/<digest>.inbox    a delivered bundle's bytes
//! DATA_DIR/bundles/tmp/              files being written (emptied on open)
//! ```
//!
//! `<digest>` is [`BundleId::digest_hex`]: 32 hex digits of the BLAKE3 hash of the id's
//! text form, which is also the row's key, so a file's owner is found from the key alone.
//!
//! Rows (all keyed by the id's text form, `SOURCE-TIME-SEQ`):
//! - `bundles`: a postcard record: the [`BundleMeta`] in a store-owned layout, where the
//!   bytes are, their length and BLAKE3 hash; `bundle_data`: the bytes of inline ones;
//! - `inbox`, `inbox_data`: the same for bundles delivered to this node, with a
//!   delivery sequence number (the inbox's order);
//! - `dtn_state`: the router's [`RouterState`], the inbox counter, and the last
//!   creation timestamp of the node's own bundles.
//!
//! # Crash consistency
//! "A received bundle is durably on disk before the sender is told it arrived":
//! [`Store::put_bundle`] returns only after its commit is durable (redb's default
//! immediate durability). A file is written to `tmp/`, fsynced, renamed to its name,
//! and the directory fsynced, all *before* the row naming it is committed; files are
//! deleted only *after* the commit that removed their row. So after a `kill -9` or a
//! power loss at any moment, every row names bytes that are all there, and the worst
//! left behind is a file no row names, which [`Store::open`] deletes. Nothing
//! half-written is ever visible: an uncommitted row does not exist, and every read
//! checks the bytes against the length and hash in the row (a mismatch is
//! [`StoreError::Corrupt`], never wrong bytes or a panic).
//!
//! # Quota
//! [`Store::put_bundle`] asks core's [`make_room`] with every stored bundle's metadata;
//! what it says to drop (expired bundles, then lower-priority foreign ones; never the
//! node's own) is deleted in the same transaction that stores the new bundle, so a
//! crash can never leave the drops without the new bundle or the reverse. A refusal
//! changes nothing. The metadata is cached in memory (loaded on first use, updated on
//! every commit), so a put costs one pass over the metas, not one over the database.
//! The inbox has a quota of its own (bundles and bytes, [`crate::StoreLimits`]):
//! what is delivered belongs to the person, so it is never evicted, but a peer may
//! not fill the disk with it. Every write of bundles first checks that the disk
//! keeps its free-space reserve (`room`); a write that fails anyway leaves no
//! file behind that no row names.
//!
//! # Concurrency
//! Every method may be called from any thread; writes are serialised by one lock (redb
//! serialises write transactions anyway).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use ferry_core::dtn::{
    BundleId, BundleMeta, CreationTimestamp, DtnMillis, NodeId, Priority, Quota, Refusal,
    RouterState, make_room,
};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::{Store, StoreError};

mod room;
#[cfg(test)]
mod tests;

/// Largest bundle kept inside the database; larger ones are files.
pub const INLINE_MAX: usize = 64 * 1024;

/// id text -> postcard [`Row`] of a carried bundle.
const BUNDLES: TableDefinition<&str, &[u8]> = TableDefinition::new("bundles");
/// id text -> bytes of a carried bundle stored inline.
const BUNDLE_DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("bundle_data");
/// id text -> postcard [`Row`] of a delivered bundle.
const INBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("inbox");
/// id text -> bytes of a delivered bundle stored inline.
const INBOX_DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("inbox_data");
/// Single values, postcard-encoded.
const DTN_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("dtn_state");
const ROUTER_KEY: &str = "router";
const INBOX_SEQ_KEY: &str = "inbox_seq";
const LAST_OWN_KEY: &str = "last_own_creation";

const TMP_DIR: &str = "tmp";

/// Which of the two bundle collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Carried,
    Inbox,
}

impl Kind {
    fn rows(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Kind::Carried => BUNDLES,
            Kind::Inbox => INBOX,
        }
    }

    fn data(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            Kind::Carried => BUNDLE_DATA,
            Kind::Inbox => INBOX_DATA,
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Kind::Carried => "bundle",
            Kind::Inbox => "inbox",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Carried => "bundle",
            Kind::Inbox => "inbox bundle",
        }
    }
}

/// What [`Store::put_bundle`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBundle {
    /// `false` when a bundle with this id was already stored (nothing changed).
    pub new: bool,
    /// The metadata as stored (`size` is the real length of the bytes).
    pub meta: BundleMeta,
    /// Expired bundles deleted to make room (log them as expiries).
    pub expired: Vec<BundleId>,
    /// Foreign bundles evicted to make room (never an own one).
    pub evicted: Vec<BundleId>,
}

/// A bundle delivered to this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Delivery order: larger means delivered later.
    pub seq: u64,
    pub meta: BundleMeta,
    /// When it was delivered (DTN ms, the caller's clock).
    pub delivered_at: DtnMillis,
}

/// A stored row. Versioned because postcard is not self-describing.
#[derive(Serialize, Deserialize)]
enum Row {
    V1(Record),
}

/// [`BundleMeta`] in a layout the store owns (so the on-disk encoding never changes
/// with the core type), plus where the bytes are and how to check them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    id: String,
    destination: String,
    priority: u8,
    expires_at: DtnMillis,
    own: bool,
    received_from: Option<String>,
    /// Length of the bytes (the meta's size).
    len: u64,
    hash: [u8; 32],
    place: Place,
    /// When it was stored (DTN ms).
    stored_at: DtnMillis,
    /// Inbox delivery order; 0 for carried bundles.
    seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Place {
    Inline,
    File,
}

/// The router state as stored: versioned, so a later layout can be told apart.
#[derive(Serialize, Deserialize)]
enum RouterRow {
    /// The layout from before acks were signed: never decoded (its acks carry no
    /// signature, so no peer would take them); [`V1_TAG`] tells it apart, and the
    /// node's start-up reconciliation rebuilds the rest from the store.
    V1Unsigned(()),
    V2(RouterState),
}

/// postcard's encoding of the variant `RouterRow::V1Unsigned`: its index, 0.
const V1_TAG: u8 = 0;

impl Record {
    fn new(meta: &BundleMeta, bytes: &[u8], stored_at: DtnMillis, seq: u64) -> Self {
        Self {
            id: meta.id.to_string(),
            destination: meta.destination.to_string(),
            priority: meta.priority.code(),
            expires_at: meta.expires_at,
            own: meta.own,
            received_from: meta.received_from.as_ref().map(NodeId::to_string),
            len: bytes.len() as u64,
            hash: *blake3::hash(bytes).as_bytes(),
            place: if bytes.len() > INLINE_MAX {
                Place::File
            } else {
                Place::Inline
            },
            stored_at,
            seq,
        }
    }

    fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(&Row::V1(self.clone())).expect("a bundle record always encodes")
    }

    fn decode(kind: Kind, key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |what: String| {
            StoreError::Corrupt(format!(
                "the record of {} {key:?} {what}; the database file is damaged",
                kind.noun()
            ))
        };
        let record = match postcard::from_bytes(bytes) {
            Ok(Row::V1(record)) => record,
            Err(e) => return Err(corrupt(format!("does not decode ({e})"))),
        };
        if record.id != key {
            return Err(corrupt(format!("names another bundle, {:?}", record.id)));
        }
        Ok(record)
    }

    fn meta(&self, kind: Kind) -> Result<BundleMeta, StoreError> {
        let corrupt = |what: &str| {
            StoreError::Corrupt(format!(
                "the record of {} {:?} has an invalid {what}; the database file is damaged",
                kind.noun(),
                self.id
            ))
        };
        Ok(BundleMeta {
            id: self.id.parse().map_err(|_| corrupt("id"))?,
            destination: self
                .destination
                .parse()
                .map_err(|_| corrupt("destination"))?,
            size: self.len,
            priority: Priority::from_code(self.priority).ok_or_else(|| corrupt("priority"))?,
            expires_at: self.expires_at,
            own: self.own,
            received_from: match &self.received_from {
                Some(node) => Some(node.parse().map_err(|_| corrupt("sender"))?),
                None => None,
            },
        })
    }
}

/// The bundle part of the store: where the files live, and the cached metadata.
pub(crate) struct Bundles {
    dir: PathBuf,
    /// The metadata of every carried bundle, `None` until first loaded (or after a
    /// failed write, which may have left it out of step). The lock also serialises
    /// every write of bundles and of the inbox.
    metas: Mutex<Option<BTreeMap<BundleId, BundleMeta>>>,
    /// What the inbox holds, `None` until first counted (or after a failed write).
    inbox_usage: Mutex<Option<room::InboxUsage>>,
    /// Files written for writes that failed, whose rows could not be checked
    /// yet (see [`Store::clean_unconfirmed`]).
    unconfirmed: Mutex<Vec<(Kind, String)>>,
}

impl Bundles {
    pub(crate) fn open(dir: PathBuf) -> Result<Self, StoreError> {
        let tmp = dir.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(Self {
            dir,
            metas: Mutex::new(None),
            inbox_usage: Mutex::new(None),
            unconfirmed: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<BTreeMap<BundleId, BundleMeta>>> {
        self.metas.lock().unwrap_or_else(|poisoned| {
            // A writer panicked: the cache may be out of step; reload it.
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        })
    }

    fn unconfirmed(&self) -> MutexGuard<'_, Vec<(Kind, String)>> {
        self.unconfirmed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, kind: Kind, key: &str) -> PathBuf {
        self.dir.join(format!("{}.{}", digest_hex(key), kind.ext()))
    }

    /// Writes `bytes` to a temporary file, fsyncs it and renames it to the bundle's
    /// name. The caller fsyncs the directory before committing the row.
    fn write_file(&self, kind: Kind, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp_dir = self.dir.join(TMP_DIR);
        let mut tmp = tempfile::Builder::new()
            .prefix("bundle-")
            .tempfile_in(&tmp_dir)
            .map_err(io(&tmp_dir))?;
        tmp.write_all(bytes).map_err(io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        let to = self.path(kind, key);
        tmp.persist(&to).map_err(|e| StoreError::BundleIo {
            path: to.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), StoreError> {
        #[cfg(unix)]
        {
            fs::File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir))
        }
        #[cfg(not(unix))]
        {
            Ok(())
        }
    }

    /// Deletes what `tmp/` holds and bundle files no row names: what a crash between
    /// writing a file and committing its row (or between a removal's commit and the
    /// file's deletion) leaves behind.
    fn clean(&self, keep: &BTreeSet<String>) -> Result<(), StoreError> {
        let tmp = self.dir.join(TMP_DIR);
        for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
            remove_quietly(&entry.map_err(io(&tmp))?.path());
        }
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let path = entry.map_err(io(&self.dir))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let is_bundle_file = name.split_once('.').is_some_and(|(stem, ext)| {
                stem.len() == 32
                    && stem.bytes().all(|b| b.is_ascii_hexdigit())
                    && matches!(ext, "bundle" | "inbox")
            });
            if is_bundle_file && !keep.contains(name) {
                tracing::info!(path = %path.display(), "removing a bundle file no record names");
                remove_quietly(&path);
            }
        }
        Ok(())
    }
}

/// [`BundleId::digest_hex`] from the id's text form.
fn digest_hex(key: &str) -> String {
    blake3::hash(key.as_bytes()).as_bytes()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| StoreError::BundleIo { path, source }
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale bundle file");
    }
}

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(BUNDLES)?;
    txn.open_table(BUNDLE_DATA)?;
    txn.open_table(INBOX)?;
    txn.open_table(INBOX_DATA)?;
    txn.open_table(DTN_STATE)?;
    Ok(())
}

fn get_state<T: for<'de> Deserialize<'de>>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(key)? {
        Some(value) => postcard::from_bytes(value.value()).map(Some).map_err(|e| {
            StoreError::Corrupt(format!(
                "the stored DTN {key} does not decode ({e}); the database file is damaged"
            ))
        }),
        None => Ok(None),
    }
}

fn put_state<T: Serialize>(
    table: &mut Table<'_, &'static str, &'static [u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = postcard::to_stdvec(value).expect("DTN state always encodes");
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Deletes one bundle's rows in `txn`; returns where its bytes were (`None` if it
/// was not stored). A row that does not decode is deleted too, and its file (if any)
/// assumed to exist.
fn delete_rows(txn: &WriteTransaction, kind: Kind, key: &str) -> Result<Option<Place>, StoreError> {
    let mut rows = txn.open_table(kind.rows())?;
    let mut data = txn.open_table(kind.data())?;
    let old = rows.remove(key)?.map(|row| {
        Record::decode(kind, key, row.value()).map_or(Place::File, |record| record.place)
    });
    data.remove(key)?;
    Ok(old)
}

impl Store {
    /// Deletes leftovers of interrupted writes; called once by [`Store::open`].
    pub(crate) fn clean_bundles(&self) -> Result<(), StoreError> {
        let txn = self.read()?;
        let mut keep = BTreeSet::new();
        for kind in [Kind::Carried, Kind::Inbox] {
            let table = txn.open_table(kind.rows())?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                let key = key.value();
                // A row that does not decode keeps its file: it is reported when read.
                let place =
                    Record::decode(kind, key, value.value()).map_or(Place::File, |r| r.place);
                if place == Place::File {
                    keep.insert(format!("{}.{}", digest_hex(key), kind.ext()));
                }
            }
        }
        drop(txn);
        self.bundles.clean(&keep)
    }

    /// The cached metas, loading them if needed.
    fn cached_metas<'a>(
        &self,
        guard: &'a mut MutexGuard<'_, Option<BTreeMap<BundleId, BundleMeta>>>,
    ) -> Result<&'a mut BTreeMap<BundleId, BundleMeta>, StoreError> {
        if guard.is_none() {
            let txn = self.read()?;
            let table = txn.open_table(BUNDLES)?;
            let mut metas = BTreeMap::new();
            for entry in table.iter()? {
                let (key, value) = entry?;
                let meta = Record::decode(Kind::Carried, key.value(), value.value())?
                    .meta(Kind::Carried)?;
                metas.insert(meta.id.clone(), meta);
            }
            **guard = Some(metas);
        }
        Ok(guard.as_mut().expect("loaded above"))
    }

    /// Stores a parsed bundle's bytes and metadata durably, making room by core's
    /// eviction policy ([`make_room`]): the expired and evicted bundles it names are
    /// deleted in the same transaction. Returns once the bundle is durably on disk,
    /// so the sender may be told it arrived.
    ///
    /// Idempotent: a bundle whose id is already stored is left as it is
    /// (`new: false`). `meta.size` is taken from `bytes.len()`: the quota counts the
    /// real bytes. A refusal is [`StoreError::BundleRefused`], with core's
    /// [`Refusal`] (its text is the reason to log), and changes nothing.
    pub fn put_bundle(
        &self,
        bytes: &[u8],
        meta: &BundleMeta,
        quota: &Quota,
        now: DtnMillis,
    ) -> Result<StoredBundle, StoreError> {
        let mut results = self.put_bundles(&[(bytes, meta)], quota, now)?;
        match results.pop() {
            Some(Ok(stored)) => Ok(stored),
            Some(Err(refusal)) => Err(StoreError::BundleRefused {
                id: meta.id.clone(),
                refusal,
            }),
            None => unreachable!("one result per bundle"),
        }
    }

    /// Stores many bundles in one transaction (one commit and fsync for all: a
    /// contact delivering thousands of small bundles), each as [`Store::put_bundle`]
    /// would, in order; a later one may evict an earlier one. Returns one result per
    /// bundle; an `Err` for the whole call means nothing was stored.
    pub fn put_bundles(
        &self,
        bundles: &[(&[u8], &BundleMeta)],
        quota: &Quota,
        now: DtnMillis,
    ) -> Result<Vec<Result<StoredBundle, Refusal>>, StoreError> {
        self.ensure_bundle_room(bundles)?;
        let mut guard = self.bundles.lock();
        self.clean_unconfirmed();
        let result = self.put_locked(&mut guard, bundles, quota, now);
        if let Err(e) = &result {
            *guard = None;
            self.after_failed_write(Kind::Carried, bundles, e);
        }
        result
    }

    fn put_locked(
        &self,
        guard: &mut MutexGuard<'_, Option<BTreeMap<BundleId, BundleMeta>>>,
        bundles: &[(&[u8], &BundleMeta)],
        quota: &Quota,
        now: DtnMillis,
    ) -> Result<Vec<Result<StoredBundle, Refusal>>, StoreError> {
        let metas = self.cached_metas(guard)?;
        let txn = self.db.begin_write()?;
        let mut results = Vec::with_capacity(bundles.len());
        let mut changed = false;
        let mut wrote_file = false;
        let mut dropped_files = Vec::new();
        let mut last_own: Option<CreationTimestamp> = None;
        for &(bytes, meta) in bundles {
            let meta = BundleMeta {
                size: bytes.len() as u64,
                ..meta.clone()
            };
            if metas.contains_key(&meta.id) {
                results.push(Ok(StoredBundle {
                    new: false,
                    meta,
                    expired: Vec::new(),
                    evicted: Vec::new(),
                }));
                continue;
            }
            let room = match make_room(quota, metas.values(), &meta, now) {
                Ok(room) => room,
                Err(refusal) => {
                    results.push(Err(refusal));
                    continue;
                }
            };
            for id in room.ids() {
                let key = id.to_string();
                if delete_rows(&txn, Kind::Carried, &key)? == Some(Place::File) {
                    dropped_files.push((id.clone(), key));
                }
                metas.remove(id);
            }
            let key = meta.id.to_string();
            let record = Record::new(&meta, bytes, now, 0);
            if record.place == Place::File {
                self.bundles.write_file(Kind::Carried, &key, bytes)?;
                wrote_file = true;
            } else {
                txn.open_table(BUNDLE_DATA)?.insert(key.as_str(), bytes)?;
            }
            txn.open_table(BUNDLES)?
                .insert(key.as_str(), record.encode().as_slice())?;
            if meta.own {
                let created = meta.id.created();
                last_own = Some(last_own.map_or(created, |l| l.max(created)));
            }
            changed = true;
            metas.insert(meta.id.clone(), meta.clone());
            results.push(Ok(StoredBundle {
                new: true,
                meta,
                expired: room.expired,
                evicted: room.evicted,
            }));
        }
        if !changed {
            // Nothing to store: skip the fsync a commit would cost.
            txn.abort()?;
            return Ok(results);
        }
        if let Some(created) = last_own {
            let mut state = txn.open_table(DTN_STATE)?;
            let before: Option<CreationTimestamp> = get_state(&state, LAST_OWN_KEY)?;
            if before.is_none_or(|b| b < created) {
                put_state(&mut state, LAST_OWN_KEY, &created)?;
            }
        }
        if wrote_file {
            self.bundles.sync_dir()?;
        }
        txn.commit()?;
        for (id, key) in dropped_files {
            // Re-stored in the same batch: the file is the new bundle's now.
            if !metas.contains_key(&id) {
                remove_quietly(&self.bundles.path(Kind::Carried, &key));
            }
        }
        Ok(results)
    }

    /// The stored bytes of a carried bundle, checked against the length and hash
    /// recorded when it was stored; `None` if it is not stored.
    pub fn bundle_bytes(&self, id: &BundleId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_bytes(Kind::Carried, &id.to_string())
    }

    /// Whether a bundle with this id is carried.
    pub fn has_bundle(&self, id: &BundleId) -> Result<bool, StoreError> {
        let mut guard = self.bundles.lock();
        Ok(self.cached_metas(&mut guard)?.contains_key(id))
    }

    /// The metadata of every carried bundle (expired ones included), ordered by id.
    pub fn bundle_metas(&self) -> Result<Vec<BundleMeta>, StoreError> {
        let mut guard = self.bundles.lock();
        Ok(self.cached_metas(&mut guard)?.values().cloned().collect())
    }

    /// Deletes a carried bundle; `false` if it was not stored.
    pub fn remove_bundle(&self, id: &BundleId) -> Result<bool, StoreError> {
        Ok(!self.remove_bundles(std::slice::from_ref(id))?.is_empty())
    }

    /// Deletes carried bundles in one transaction; returns those that were stored.
    /// Works on rows that no longer decode, too (a way out of a damaged record).
    pub fn remove_bundles(&self, ids: &[BundleId]) -> Result<Vec<BundleId>, StoreError> {
        let mut guard = self.bundles.lock();
        let result = self.remove_locked(&mut guard, ids);
        if result.is_err() {
            *guard = None;
        }
        result
    }

    fn remove_locked(
        &self,
        guard: &mut MutexGuard<'_, Option<BTreeMap<BundleId, BundleMeta>>>,
        ids: &[BundleId],
    ) -> Result<Vec<BundleId>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut removed = Vec::new();
        let mut files = Vec::new();
        for id in ids {
            let key = id.to_string();
            if let Some(place) = delete_rows(&txn, Kind::Carried, &key)? {
                if place == Place::File {
                    files.push(key);
                }
                removed.push(id.clone());
            }
        }
        if removed.is_empty() {
            txn.abort()?;
            return Ok(removed);
        }
        txn.commit()?;
        if let Some(metas) = guard.as_mut() {
            for id in &removed {
                metas.remove(id);
            }
        }
        for key in files {
            remove_quietly(&self.bundles.path(Kind::Carried, &key));
        }
        Ok(removed)
    }

    /// Deletes every carried bundle whose lifetime is over at `now`; returns them.
    pub fn remove_expired_bundles(&self, now: DtnMillis) -> Result<Vec<BundleId>, StoreError> {
        let expired: Vec<BundleId> = self
            .bundle_metas()?
            .into_iter()
            .filter(|m| m.is_expired(now))
            .map(|m| m.id)
            .collect();
        if expired.is_empty() {
            return Ok(expired);
        }
        self.remove_bundles(&expired)
    }

    /// The last creation timestamp of the node's own bundles ever stored, for
    /// [`ferry_core::dtn::CreationClock::resume_after`]; kept after they are gone.
    pub fn last_own_creation(&self) -> Result<Option<CreationTimestamp>, StoreError> {
        let txn = self.read()?;
        get_state(&txn.open_table(DTN_STATE)?, LAST_OWN_KEY)
    }

    /// Saves the router's durable state (acks, PRoPHET table, copy counts),
    /// replacing what was saved; durable when it returns.
    pub fn save_router_state(&self, state: &RouterState) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        put_state(
            &mut txn.open_table(DTN_STATE)?,
            ROUTER_KEY,
            &RouterRow::V2(state.clone()),
        )?;
        txn.commit()?;
        Ok(())
    }

    /// The router state last saved, `None` if never.
    pub fn load_router_state(&self) -> Result<Option<RouterState>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(DTN_STATE)?;
        let legacy = table
            .get(ROUTER_KEY)?
            .is_some_and(|row| row.value().first() == Some(&V1_TAG));
        if legacy {
            return Ok(None);
        }
        let row: Option<RouterRow> = get_state(&table, ROUTER_KEY)?;
        Ok(row.and_then(|row| match row {
            RouterRow::V2(state) => Some(state),
            RouterRow::V1Unsigned(()) => None,
        }))
    }

    /// Appends a bundle delivered to this node to the inbox, durably, before its
    /// delivery is acknowledged. Returns `false` if it is already there (nothing
    /// changes). Refused ([`StoreError::InboxFull`]) beyond the inbox's quota.
    pub fn deliver_to_inbox(
        &self,
        bytes: &[u8],
        meta: &BundleMeta,
        now: DtnMillis,
    ) -> Result<bool, StoreError> {
        Ok(self.deliver_many_to_inbox(&[(bytes, meta)], now)?[0])
    }

    /// [`Store::deliver_to_inbox`] for many bundles in one transaction; one `new`
    /// flag per bundle, in order.
    pub fn deliver_many_to_inbox(
        &self,
        bundles: &[(&[u8], &BundleMeta)],
        now: DtnMillis,
    ) -> Result<Vec<bool>, StoreError> {
        let _guard = self.bundles.lock();
        self.clean_unconfirmed();
        let mut usage = self
            .bundles
            .inbox_usage
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.ensure_inbox_room(&mut usage, bundles)?;
        let result = self.deliver_locked(bundles, now);
        match &result {
            Ok(new) => Self::count_delivered(&mut usage, bundles, new),
            Err(e) => {
                *usage = None;
                self.after_failed_write(Kind::Inbox, bundles, e);
            }
        }
        result
    }

    fn deliver_locked(
        &self,
        bundles: &[(&[u8], &BundleMeta)],
        now: DtnMillis,
    ) -> Result<Vec<bool>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut out = Vec::with_capacity(bundles.len());
        let mut wrote_file = false;
        {
            let mut rows = txn.open_table(INBOX)?;
            let mut data = txn.open_table(INBOX_DATA)?;
            let mut state = txn.open_table(DTN_STATE)?;
            let mut seq: u64 = get_state(&state, INBOX_SEQ_KEY)?.unwrap_or(0);
            for &(bytes, meta) in bundles {
                let key = meta.id.to_string();
                if rows.get(key.as_str())?.is_some() {
                    out.push(false);
                    continue;
                }
                seq += 1;
                let record = Record::new(meta, bytes, now, seq);
                if record.place == Place::File {
                    self.bundles.write_file(Kind::Inbox, &key, bytes)?;
                    wrote_file = true;
                } else {
                    data.insert(key.as_str(), bytes)?;
                }
                rows.insert(key.as_str(), record.encode().as_slice())?;
                out.push(true);
            }
            put_state(&mut state, INBOX_SEQ_KEY, &seq)?;
        }
        if !out.contains(&true) {
            txn.abort()?;
            return Ok(out);
        }
        if wrote_file {
            self.bundles.sync_dir()?;
        }
        txn.commit()?;
        Ok(out)
    }

    /// The inbox, in delivery order.
    pub fn inbox(&self) -> Result<Vec<InboxEntry>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(INBOX)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            let record = Record::decode(Kind::Inbox, key.value(), value.value())?;
            out.push(InboxEntry {
                seq: record.seq,
                meta: record.meta(Kind::Inbox)?,
                delivered_at: record.stored_at,
            });
        }
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    /// A delivered bundle's bytes, checked; `None` if it is not in the inbox.
    pub fn inbox_bytes(&self, id: &BundleId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_bytes(Kind::Inbox, &id.to_string())
    }

    /// Deletes a bundle from the inbox; `false` if it was not there.
    pub fn remove_from_inbox(&self, id: &BundleId) -> Result<bool, StoreError> {
        let _guard = self.bundles.lock();
        let key = id.to_string();
        let txn = self.db.begin_write()?;
        let Some(place) = delete_rows(&txn, Kind::Inbox, &key)? else {
            txn.abort()?;
            return Ok(false);
        };
        txn.commit()?;
        *self
            .bundles
            .inbox_usage
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        if place == Place::File {
            remove_quietly(&self.bundles.path(Kind::Inbox, &key));
        }
        Ok(true)
    }

    /// Reads and checks a bundle's bytes. A file may be replaced or deleted by a
    /// writer between the read transaction and the file read; then the row is read
    /// again, and only a row that still names those bytes makes a mismatch corrupt.
    fn read_bytes(&self, kind: Kind, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let txn = self.read()?;
            let Some(record) = ({
                let rows = txn.open_table(kind.rows())?;
                let row = rows.get(key)?;
                row.map(|r| Record::decode(kind, key, r.value()))
                    .transpose()?
            }) else {
                return Ok(None);
            };
            let corrupt = |what: String| {
                StoreError::Corrupt(format!(
                    "the stored copy of {} {key} {what}; remove it and receive it again",
                    kind.noun()
                ))
            };
            let bytes = match record.place {
                Place::Inline => {
                    let data = txn.open_table(kind.data())?;
                    let value = data.get(key)?;
                    match value {
                        Some(v) => v.value().to_vec(),
                        None => return Err(corrupt("has no bytes in the database".into())),
                    }
                }
                Place::File => {
                    drop(txn);
                    let path = self.bundles.path(kind, key);
                    match fs::read(&path) {
                        Ok(bytes) => bytes,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            if attempts < 3 && self.record_changed(kind, key, &record)? {
                                continue;
                            }
                            return Err(corrupt(format!("is missing its file {}", path.display())));
                        }
                        Err(e) => return Err(io(&path)(e)),
                    }
                }
            };
            if bytes.len() as u64 == record.len && *blake3::hash(&bytes).as_bytes() == record.hash {
                return Ok(Some(bytes));
            }
            if record.place == Place::File
                && attempts < 3
                && self.record_changed(kind, key, &record)?
            {
                continue;
            }
            return Err(corrupt(format!(
                "does not match what was stored ({} bytes, {} expected, or its hash differs)",
                bytes.len(),
                record.len
            )));
        }
    }

    /// Whether the row of `key` is gone or differs from `record` now.
    fn record_changed(&self, kind: Kind, key: &str, record: &Record) -> Result<bool, StoreError> {
        let txn = self.read()?;
        let rows = txn.open_table(kind.rows())?;
        let now = rows.get(key)?;
        Ok(match now {
            None => true,
            Some(row) => Record::decode(kind, key, row.value()).ok().as_ref() != Some(record),
        })
    }
}
