//! Whether the store's disk can take writes: free space against a reserve, and
//! failures reported once per episode.
//!
//! Writes that add data (a bundle, an inbox entry, a download, a shared file, a
//! message) first ask [`Health::ensure_room`], which refuses while the
//! filesystem holding the data directory would be left with less than the
//! reserve free ([`StoreLimits::reserve_bytes`]): the store stops short of a
//! full disk, where every program on the machine starts failing. A write that
//! fails anyway (another program filled the disk) starts a *failure episode*:
//! one ERROR log line, and [`Health::report`] says what failed until a later
//! commit succeeds with the reserve free again (then one INFO line).

use std::path::PathBuf;
use std::sync::Mutex;

use crate::{Store, StoreError};

/// Space left free on the data directory's filesystem by default: room for the
/// database to finish what it is doing and for the rest of the system to keep
/// working (logs, other programs).
pub(crate) const DEFAULT_RESERVE_BYTES: u64 = 64 << 20;
/// Bundles the DTN inbox holds at most by default: a peer that sends this node
/// thousands of small bundles fills a bounded list, not the disk.
pub(crate) const DEFAULT_INBOX_MAX_BUNDLES: u64 = 10_000;
/// Bytes the DTN inbox holds at most by default (bundle bytes, inline or files).
pub(crate) const DEFAULT_INBOX_MAX_BYTES: u64 = 1 << 30;

/// The store's limits against a full disk. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Bytes to keep free on the data directory's filesystem.
    pub reserve_bytes: u64,
    /// Bundles the DTN inbox may hold.
    pub inbox_max_bundles: u64,
    /// Bytes the DTN inbox may hold.
    pub inbox_max_bytes: u64,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            inbox_max_bundles: DEFAULT_INBOX_MAX_BUNDLES,
            inbox_max_bytes: DEFAULT_INBOX_MAX_BYTES,
        }
    }
}

/// The storage's state as reported to people ([`Store::storage_health`](crate::Store::storage_health)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageHealth {
    pub state: StorageState,
    /// What failed, while not [`StorageState::Ok`].
    pub problem: Option<String>,
    /// Bytes free on the data directory's filesystem (`None` if unknown).
    pub free_bytes: Option<u64>,
    pub reserve_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageState {
    Ok,
    /// Out of space: a write was refused or failed for want of room.
    Full,
    /// A write failed for another reason (an I/O error).
    Failing,
}

impl StorageState {
    pub fn as_str(self) -> &'static str {
        match self {
            StorageState::Ok => "ok",
            StorageState::Full => "full",
            StorageState::Failing => "failing",
        }
    }
}

#[derive(Debug, Clone)]
struct Failure {
    problem: String,
    full: bool,
}

/// The data directory's free space and failure episodes. See the module docs.
#[derive(Debug)]
pub(crate) struct Health {
    dir: PathBuf,
    reserve: u64,
    failure: Mutex<Option<Failure>>,
}

impl Health {
    pub(crate) fn new(dir: PathBuf, reserve: u64) -> Self {
        Self {
            dir,
            reserve,
            failure: Mutex::new(None),
        }
    }

    fn failure(&self) -> std::sync::MutexGuard<'_, Option<Failure>> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes an unprivileged writer may still use on the data directory's
    /// filesystem, `None` if the system cannot say.
    pub(crate) fn free_bytes(&self) -> Option<u64> {
        free_bytes(&self.dir)
    }

    /// Refuses a write of `needed` more bytes (`what` says what, for people)
    /// that would leave less than the reserve free.
    pub(crate) fn ensure_room(&self, what: &str, needed: u64) -> Result<(), StoreError> {
        let Some(free) = self.free_bytes() else {
            return Ok(()); // Cannot tell: let the write try.
        };
        if free >= needed.saturating_add(self.reserve) {
            return Ok(());
        }
        let refusal = StoreError::NoSpace {
            what: what.to_owned(),
            needed,
            free,
            reserve: self.reserve,
            path: self.dir.clone(),
        };
        if free <= self.reserve {
            // The disk itself is (nearly) full, not merely too small for this.
            self.start_episode(refusal.to_string(), true);
        } else {
            // Too large for the space left: the caller reports it (a peer's
            // bundles may be refused many times a second).
            tracing::debug!("{refusal}");
        }
        Err(refusal)
    }

    /// An I/O error while `what` (the database's or a file's).
    pub(crate) fn io_failed(&self, what: &str, error: &std::io::Error) {
        self.start_episode(format!("{what}: {error}"), is_out_of_space(error));
    }

    /// A failure that is not an I/O error of its own (a reopen that failed).
    pub(crate) fn failed(&self, what: &str, problem: &str) {
        self.start_episode(format!("{what}: {problem}"), false);
    }

    /// Records a failure: the first of an episode is logged and reported (it is
    /// the cause; what fails after it follows from it).
    fn start_episode(&self, problem: String, full: bool) {
        let mut failure = self.failure();
        if failure.is_some() {
            return;
        }
        tracing::error!(
            data_dir = %self.dir.display(),
            free_bytes = ?self.free_bytes(),
            "storage failure: {problem}; writes are refused until it is fixed (free some space), and the node recovers by itself without a restart"
        );
        *failure = Some(Failure { problem, full });
    }

    /// A write was committed: if a failure episode is running and more than the
    /// reserve is free again, it is over (a commit that fits in the database's
    /// free pages on a disk still full does not end it).
    pub(crate) fn wrote(&self) {
        let mut failure = self.failure();
        if failure.is_some() && self.free_bytes().is_none_or(|free| free > self.reserve) {
            *failure = None;
            tracing::info!(data_dir = %self.dir.display(), "storage works again");
        }
    }

    /// What failed, while a failure episode runs.
    pub(crate) fn problem(&self) -> Option<String> {
        self.failure().as_ref().map(|f| f.problem.clone())
    }

    pub(crate) fn report(&self) -> StorageHealth {
        let free_bytes = self.free_bytes();
        let below_reserve = free_bytes.is_some_and(|free| free <= self.reserve);
        let (state, problem) = match &*self.failure() {
            Some(f) if f.full => (StorageState::Full, Some(f.problem.clone())),
            Some(f) => (StorageState::Failing, Some(f.problem.clone())),
            None if below_reserve => (
                StorageState::Full,
                Some(format!(
                    "no more than the {} bytes kept free are free",
                    self.reserve
                )),
            ),
            None => (StorageState::Ok, None),
        };
        StorageHealth {
            state,
            problem,
            free_bytes,
            reserve_bytes: self.reserve,
        }
    }
}

impl Store {
    /// Notes a failed write of a blob's or bundle's file for the storage's
    /// health (the database's own failures are noted by its backend).
    pub(crate) fn note_file_failure(&self, error: &StoreError) {
        if let StoreError::BlobIo { path, source } | StoreError::BundleIo { path, source } = error {
            self.health
                .io_failed(&format!("writing {}", path.display()), source);
        }
    }
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub(crate) fn is_out_of_space(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

#[cfg(unix)]
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_dir: &std::path::Path) -> Option<u64> {
    None
}
