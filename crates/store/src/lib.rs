//! ferry-store: everything a node keeps on disk.
//!
//! The data directory holds a lock file (one node per directory), the node's
//! identity key, a redb database, the blobs' files under `blobs/` (see
//! [`blobs`]), and large DTN bundles' files under `bundles/`. redb commits are
//! durable when they return, so a crash or `kill -9` at any moment loses nothing
//! that was acknowledged.
//!
//! A full disk is met in two ways: writes that add data are refused while they
//! would leave less than a reserve free ([`StoreLimits`], `health`), and a write
//! that fails anyway makes the database reopen itself (`db`), so the store works
//! again once space is freed, without a restart; [`Store::storage_health`] says
//! which state it is in.

pub mod blobs;
pub mod bundles;
#[cfg(test)]
mod crash_child;
mod data_dir;
mod db;
mod error;
mod health;
pub mod identity;
mod messages;
mod peers;
pub mod untrusted;

pub use blobs::{BadData, BlobInfo, BlobKind, ContentKind, ReceiveError};
pub use bundles::{INLINE_MAX as BUNDLE_INLINE_MAX, InboxEntry, StoredBundle};
pub use data_dir::DataDir;
pub use error::StoreError;
pub use health::{StorageHealth, StorageState, StoreLimits};
pub use messages::{
    ChannelWrite, DEFAULT_MAX_AGE_MS, DEFAULT_MAX_MESSAGES, Retention, StoredMessage,
};
pub use peers::RememberedPeer;

use std::sync::Arc;

use db::Db;
use health::Health;

/// The node's database, and the blob files beside it.
pub struct Store {
    db: Db,
    health: Arc<Health>,
    limits: StoreLimits,
    blobs: blobs::Blobs,
    bundles: bundles::Bundles,
    /// How much of each channel is kept.
    retention: messages::Retention,
}

const DB_FILE: &str = "ferry.redb";
const BLOBS_DIR: &str = "blobs";
const BUNDLES_DIR: &str = "bundles";

impl Store {
    /// Opens (or creates) the database of a locked data directory, with the
    /// default [`StoreLimits`].
    pub fn open(dir: &DataDir) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreLimits::default())
    }

    /// Opens (or creates) the database of a locked data directory.
    pub fn open_with(dir: &DataDir, limits: StoreLimits) -> Result<Self, StoreError> {
        let health = Arc::new(Health::new(dir.path().to_owned(), limits.reserve_bytes));
        let db = Db::open(dir.path().join(DB_FILE), health.clone())?;
        Self::open_on(dir, limits, health, db)
    }

    fn open_on(
        dir: &DataDir,
        limits: StoreLimits,
        health: Arc<Health>,
        db: Db,
    ) -> Result<Self, StoreError> {
        let blobs = blobs::Blobs::open(dir.path().join(BLOBS_DIR))?;
        let bundles = bundles::Bundles::open(dir.path().join(BUNDLES_DIR))?;
        let store = Self {
            db,
            health,
            limits,
            blobs,
            bundles,
            retention: messages::Retention::default(),
        };
        store.create_tables()?;
        store.clean_blobs()?;
        store.clean_bundles()?;
        Ok(store)
    }

    /// Whether the store can take writes, and the space left (see
    /// [`StoreLimits`]).
    pub fn storage_health(&self) -> StorageHealth {
        self.health.report()
    }

    /// The store, keeping `retention` of each channel from now on.
    pub fn with_retention(mut self, retention: messages::Retention) -> Self {
        self.retention = retention;
        self
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        messages::create_tables(&txn)?;
        peers::create_tables(&txn)?;
        blobs::create_tables(&txn)?;
        bundles::create_tables(&txn)?;
        txn.commit()?;
        Ok(())
    }

    fn read(&self) -> Result<db::ReadTxn<'_>, StoreError> {
        self.db.begin_read()
    }
}

impl Drop for Store {
    /// Commits the progress of downloads in flight, so a clean shutdown loses
    /// nothing verified.
    fn drop(&mut self) {
        let _ = self.flush_blobs();
    }
}
