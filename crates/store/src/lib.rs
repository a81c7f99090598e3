//! ferry-store: everything a node keeps on disk.
//!
//! The data directory holds a lock file (one node per directory), the node's
//! identity key, a redb database, the blobs' files under `blobs/` (see
//! [`blobs`]), and large DTN bundles' files under `bundles/`. redb commits are
//! durable when they return, so a crash or `kill -9` at any moment loses nothing
//! that was acknowledged.

pub mod blobs;
pub mod bundles;
mod data_dir;
mod error;
pub mod identity;
mod messages;
mod peers;

pub use blobs::{BadData, BlobInfo, BlobKind, ContentKind, ReceiveError};
pub use bundles::{INLINE_MAX as BUNDLE_INLINE_MAX, InboxEntry, StoredBundle};
pub use data_dir::DataDir;
pub use error::StoreError;
pub use messages::{
    ChannelWrite, DEFAULT_MAX_AGE_MS, DEFAULT_MAX_MESSAGES, Retention, StoredMessage,
};
pub use peers::RememberedPeer;

use redb::{Database, ReadableDatabase};

/// The node's database, and the blob files beside it.
pub struct Store {
    db: Database,
    blobs: blobs::Blobs,
    bundles: bundles::Bundles,
    /// How much of each channel is kept.
    retention: messages::Retention,
}

const DB_FILE: &str = "ferry.redb";
const BLOBS_DIR: &str = "blobs";
const BUNDLES_DIR: &str = "bundles";

impl Store {
    /// Opens (or creates) the database of a locked data directory.
    pub fn open(dir: &DataDir) -> Result<Self, StoreError> {
        let db = Database::create(dir.path().join(DB_FILE))?;
        let blobs = blobs::Blobs::open(dir.path().join(BLOBS_DIR))?;
        let bundles = bundles::Bundles::open(dir.path().join(BUNDLES_DIR))?;
        let store = Self {
            db,
            blobs,
            bundles,
            retention: messages::Retention::default(),
        };
        store.create_tables()?;
        store.clean_blobs()?;
        store.clean_bundles()?;
        Ok(store)
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

    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }
}

impl Drop for Store {
    /// Commits the progress of downloads in flight, so a clean shutdown loses
    /// nothing verified.
    fn drop(&mut self) {
        let _ = self.flush_blobs();
    }
}
