use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error(
        "another ferry node is already running with data directory {0}: stop it first, or pick another directory with --data-dir"
    )]
    Locked(PathBuf),
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the identity key in {path} is unreadable ({reason}); restore it from a backup, or move it away to start as a new node"
    )]
    BadIdentity { path: PathBuf, reason: String },
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.into())
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
