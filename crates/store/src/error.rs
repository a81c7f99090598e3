use std::path::PathBuf;

use ferry_core::content::ContentId;
use ferry_core::dtn::{BundleId, Refusal};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("another ferry node is already running with data directory {}", .0.display())]
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
    #[error(
        "the database in {path} cannot be used now ({problem}); the node reopens it by itself once the problem is fixed (free some space)"
    )]
    StorageUnavailable { path: PathBuf, problem: String },
    #[error("{}", no_space(what, *needed, *free, *reserve, path))]
    NoSpace {
        what: String,
        needed: u64,
        free: u64,
        reserve: u64,
        path: PathBuf,
    },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),

    // Blobs.
    #[error("no blob {0} in the store (see `ferry ls`)")]
    BlobNotFound(ContentId),
    #[error(
        "blob {id} is not complete yet ({verified} of {groups} chunk groups verified); wait for its download to finish"
    )]
    BlobIncomplete {
        id: ContentId,
        verified: u64,
        groups: u64,
    },
    #[error("blob {id} does not have chunk group {group} yet, so it cannot be served")]
    GroupsMissing { id: ContentId, group: u64 },
    #[error("chunk groups {first}..{last} are outside blob {id}, which has {groups}")]
    RangeOutOfBlob {
        id: ContentId,
        first: u64,
        last: u64,
        groups: u64,
    },
    #[error("a request for {asked} chunk groups is more than the {max} served at once")]
    RangeTooLarge { asked: u64, max: u64 },
    #[error(
        "blob {id} is already stored or being downloaded with size {stored} bytes, not {asked}; remove it with `ferry rm {id}` to start over"
    )]
    SizeMismatch {
        id: ContentId,
        stored: u64,
        asked: u64,
    },
    #[error("{size} bytes is too large for a blob (the limit is {max} bytes)")]
    BlobTooLarge { size: u64, max: u64 },
    #[error("blob {id} is {size} bytes, more than the {max} bytes allowed here")]
    BlobOverLimit { id: ContentId, size: u64, max: u64 },
    #[error("cannot read {path}: {source}")]
    ImportRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("{0} changed while it was being read; try again once nothing is writing to it")]
    ChangedWhileImporting(PathBuf),
    #[error(
        "{path}, shared in place as {id}, has changed (or gone) since it was shared, so it is no longer served; share it again to serve its new content"
    )]
    BlobChanged { id: ContentId, path: PathBuf },
    #[error(
        "the stored copy of blob {id} is damaged ({detail}); remove it with `ferry rm {id}`, then share or fetch it again"
    )]
    BlobCorrupt { id: ContentId, detail: String },
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    BlobIo {
        path: PathBuf,
        source: std::io::Error,
    },

    // Bundles.
    #[error("bundle {id} not stored: {refusal}")]
    BundleRefused { id: BundleId, refusal: Refusal },
    #[error("bundle file {path}: {source}")]
    BundleIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the DTN inbox is full ({count} bundles, {bytes} bytes; the limits are {max_count} bundles and {max_bytes} bytes); raise dtn_inbox_max_bundles or dtn_inbox_max_mib in config.toml to take more"
    )]
    InboxFull {
        count: u64,
        bytes: u64,
        max_count: u64,
        max_bytes: u64,
    },
}

impl StoreError {
    /// Whether this is the storage failing or refusing for want of space (a
    /// full disk, an I/O error), which the store reports once per episode (see
    /// [`crate::StorageHealth`]): callers need not log each occurrence.
    pub fn is_storage_failure(&self) -> bool {
        match self {
            StoreError::Database(redb::Error::Io(_) | redb::Error::PreviousIo) => true,
            StoreError::StorageUnavailable { .. } | StoreError::NoSpace { .. } => true,
            StoreError::BlobIo { source, .. } | StoreError::BundleIo { source, .. } => {
                crate::health::is_out_of_space(source)
            }
            _ => false,
        }
    }
}

fn no_space(what: &str, needed: u64, free: u64, reserve: u64, path: &std::path::Path) -> String {
    let (free, reserve, path) = (size(free), size(reserve), path.display());
    let why = if needed == 0 {
        format!("{free} are free on the disk of {path}, less than the {reserve} ferry keeps free")
    } else {
        let needed = size(needed);
        format!(
            "it needs {needed} but {free} are free on the disk of {path}, and ferry keeps {reserve} free"
        )
    };
    format!(
        "not enough free space for {what}: {why} (storage_reserve_mib in config.toml); free some space first"
    )
}

/// `12.3 MiB (12897484 bytes)`: a size people can read, exact for scripts.
fn size(bytes: u64) -> String {
    format!(
        "{:.1} MiB ({bytes} bytes)",
        bytes as f64 / (1u64 << 20) as f64
    )
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
