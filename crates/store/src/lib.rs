//! ferry-store: everything a node keeps on disk.
//!
//! The data directory holds a lock file (one node per directory), the node's
//! identity key, and a redb database. redb commits are durable when they return,
//! so a crash or `kill -9` at any moment loses nothing that was acknowledged.

mod data_dir;
mod error;
pub mod identity;
mod messages;
mod peers;

pub use data_dir::DataDir;
pub use error::StoreError;
pub use messages::StoredMessage;
pub use peers::RememberedPeer;

use redb::{Database, ReadableDatabase};

/// The node's database.
pub struct Store {
    db: Database,
}

const DB_FILE: &str = "ferry.redb";

impl Store {
    /// Opens (or creates) the database of a locked data directory.
    pub fn open(dir: &DataDir) -> Result<Self, StoreError> {
        let db = Database::create(dir.path().join(DB_FILE))?;
        let store = Self { db };
        store.create_tables()?;
        Ok(store)
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        messages::create_tables(&txn)?;
        peers::create_tables(&txn)?;
        txn.commit()?;
        Ok(())
    }

    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }
}
