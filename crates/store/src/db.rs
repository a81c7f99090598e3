//! The redb database, reopened after an I/O error.
//!
//! After one failed write (a full disk, say) redb refuses every later operation
//! with `PreviousIo` until the database is closed and opened again. [`Db`] does
//! that by itself: the file is opened through [`Watched`], a storage backend that
//! notes every I/O error, and the next transaction begun after one reopens the
//! database first. What was committed before is on disk (redb commits are
//! durable), so reopening loses nothing; the failed transaction is simply gone.
//!
//! Reopening needs no transaction to be alive: each transaction holds a read
//! guard of the lock around the database, and the reopen takes its write guard.
//! It only *tries* to take it (for [`REOPEN_WAIT`]), so a thread that holds a
//! transaction while beginning another can never deadlock; an attempt that finds
//! the database busy is made again by the next transaction. Reopens are at
//! least [`BACKOFF_MIN`] apart, and reopens that fail (opening a database after
//! a failed write repairs it, which writes) are spaced by a backoff doubling up
//! to [`BACKOFF_MAX`], so a disk that stays full costs a reopen every few seconds
//! at most, not one per write. Meanwhile transactions are refused with
//! [`StoreError::StorageUnavailable`], which says what failed.

use std::fs::{File, OpenOptions};
use std::ops::{Bound, Deref};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, TryLockError};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{
    BackendError, Database, ReadTransaction, ReadableDatabase, StorageBackend, WriteTransaction,
};

use crate::StoreError;
use crate::health::Health;

/// The shortest time between two reopens, and the first wait after a reopen
/// that failed.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest wait between two reopens while the database keeps failing: a disk
/// freed by hand is noticed within this long.
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// How long a reopen waits for the transactions in flight to end before leaving
/// the reopen to the next transaction.
const REOPEN_WAIT: Duration = Duration::from_millis(200);

/// Makes the storage backend for the database file (the plain file backend, or
/// one that fails on demand in tests).
pub(crate) type MakeBackend =
    dyn Fn(File) -> Result<Box<dyn StorageBackend>, redb::DatabaseError> + Send + Sync;

/// The node's database, reopened after an I/O error. See the module docs.
pub(crate) struct Db {
    path: PathBuf,
    make_backend: Box<MakeBackend>,
    /// `None` while a reopen has failed (every transaction is refused until the
    /// next one succeeds).
    open: RwLock<Option<Database>>,
    /// Set by [`Watched`] when the database's file fails; cleared by a reopen.
    failed: Arc<AtomicBool>,
    health: Arc<Health>,
    backoff: Mutex<Backoff>,
}

struct Backoff {
    next_attempt: Instant,
    wait: Duration,
}

impl Db {
    /// Opens (or creates) the database at `path` with the plain file backend.
    pub(crate) fn open(path: PathBuf, health: Arc<Health>) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            health,
            Box::new(|file| Ok(Box::new(FileBackend::new(file)?))),
        )
    }

    /// Opens (or creates) the database at `path` on backends `make_backend` makes.
    pub(crate) fn open_with(
        path: PathBuf,
        health: Arc<Health>,
        make_backend: Box<MakeBackend>,
    ) -> Result<Self, StoreError> {
        let failed = Arc::new(AtomicBool::new(false));
        let db = open_database(&path, &make_backend, &failed, &health)?;
        Ok(Self {
            path,
            make_backend,
            open: RwLock::new(Some(db)),
            failed,
            health,
            backoff: Mutex::new(Backoff {
                next_attempt: Instant::now(),
                wait: BACKOFF_MIN,
            }),
        })
    }

    /// Begins a write transaction, reopening the database first if it failed.
    pub(crate) fn begin_write(&self) -> Result<WriteTxn<'_>, StoreError> {
        let guard = self.usable()?;
        let txn = guard
            .as_ref()
            .ok_or_else(|| self.unavailable())?
            .begin_write()?;
        Ok(WriteTxn {
            txn,
            db: self,
            _guard: guard,
        })
    }

    /// Begins a read transaction, reopening the database first if it failed.
    pub(crate) fn begin_read(&self) -> Result<ReadTxn<'_>, StoreError> {
        let guard = self.usable()?;
        let txn = guard
            .as_ref()
            .ok_or_else(|| self.unavailable())?
            .begin_read()?;
        Ok(ReadTxn { txn, _guard: guard })
    }

    fn unavailable(&self) -> StoreError {
        StoreError::StorageUnavailable {
            path: self.path.clone(),
            problem: self
                .health
                .problem()
                .unwrap_or_else(|| "it could not be reopened".into()),
        }
    }

    /// A read guard of the database, after reopening it if it failed and a
    /// reopen is due.
    ///
    /// A database that failed and is not reopened yet is not handed out: its
    /// every operation would fail with redb's `PreviousIo`, which says nothing
    /// to a person; [`StoreError::StorageUnavailable`] says what failed.
    fn usable(&self) -> Result<RwLockReadGuard<'_, Option<Database>>, StoreError> {
        if self.failed.load(Ordering::Acquire) || self.read_guard().is_none() {
            self.try_reopen();
        }
        let guard = self.read_guard();
        if guard.is_none() || self.failed.load(Ordering::Acquire) {
            return Err(self.unavailable());
        }
        Ok(guard)
    }

    fn read_guard(&self) -> RwLockReadGuard<'_, Option<Database>> {
        // A panic while holding a guard leaves the database as it was.
        self.open.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes the failed database and opens it again, unless the backoff says
    /// not yet or transactions are still running (then a later call does it).
    fn try_reopen(&self) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now < backoff.next_attempt {
            return;
        }
        let Some(mut slot) = self.write_guard_within(REOPEN_WAIT) else {
            return;
        };
        if !self.failed.load(Ordering::Acquire) && slot.is_some() {
            return; // Another thread reopened it meanwhile.
        }
        // Dropping closes the file and releases its lock; what failed to be
        // written is dropped with it, what was committed is in the file.
        drop(slot.take());
        self.failed.store(false, Ordering::Release);
        match open_database(&self.path, &self.make_backend, &self.failed, &self.health) {
            Ok(db) => {
                tracing::info!(path = %self.path.display(), "database reopened after an I/O error");
                *slot = Some(db);
                // Readable again; a write failing again soon may reopen it soon.
                backoff.next_attempt = now + BACKOFF_MIN;
            }
            Err(e) => {
                tracing::debug!(path = %self.path.display(), "reopening the database failed: {e}");
                self.health.failed("reopening the database", &e.to_string());
                backoff.next_attempt = now + backoff.wait;
                backoff.wait = (backoff.wait * 2).min(BACKOFF_MAX);
            }
        }
    }

    fn write_guard_within(
        &self,
        limit: Duration,
    ) -> Option<std::sync::RwLockWriteGuard<'_, Option<Database>>> {
        let deadline = Instant::now() + limit;
        loop {
            match self.open.try_write() {
                Ok(guard) => return Some(guard),
                Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
                Err(TryLockError::WouldBlock) if Instant::now() >= deadline => return None,
                Err(TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    /// A commit went through: the database works again.
    fn committed(&self) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        backoff.wait = BACKOFF_MIN;
        drop(backoff);
        self.health.wrote();
    }
}

fn open_database(
    path: &Path,
    make_backend: &MakeBackend,
    failed: &Arc<AtomicBool>,
    health: &Arc<Health>,
) -> Result<Database, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::Database(redb::Error::Io(e)))?;
    let backend = Watched {
        inner: make_backend(file)?,
        failed: failed.clone(),
        health: health.clone(),
    };
    Ok(Database::builder().create_with_backend(backend)?)
}

/// A write transaction that keeps the database from being reopened under it.
pub(crate) struct WriteTxn<'a> {
    txn: WriteTransaction,
    db: &'a Db,
    // Declared last: dropped after the transaction.
    _guard: RwLockReadGuard<'a, Option<Database>>,
}

impl WriteTxn<'_> {
    pub(crate) fn commit(self) -> Result<(), StoreError> {
        let WriteTxn { txn, db, _guard } = self;
        txn.commit()?;
        // Released first: a reopen waiting for it holds what `committed` takes.
        drop(_guard);
        db.committed();
        Ok(())
    }

    pub(crate) fn abort(self) -> Result<(), StoreError> {
        Ok(self.txn.abort()?)
    }
}

impl Deref for WriteTxn<'_> {
    type Target = WriteTransaction;

    fn deref(&self) -> &WriteTransaction {
        &self.txn
    }
}

/// A read transaction that keeps the database from being reopened under it.
pub(crate) struct ReadTxn<'a> {
    txn: ReadTransaction,
    // Declared last: dropped after the transaction.
    _guard: RwLockReadGuard<'a, Option<Database>>,
}

impl Deref for ReadTxn<'_> {
    type Target = ReadTransaction;

    fn deref(&self) -> &ReadTransaction {
        &self.txn
    }
}

/// The file-lock methods of a [`StorageBackend`] that wraps another in a field
/// `inner`: locking is the wrapped backend's business, unchanged.
macro_rules! delegate_locks {
    () => {
        fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.try_lock_range(start, end)
        }

        fn try_lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.try_lock_shared_range(start, end)
        }

        fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_range(start, end)
        }

        fn lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<(), BackendError> {
            self.inner.lock_shared_range(start, end)
        }

        fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.inner.unlock_range(start, end)
        }

        fn query_lock_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.query_lock_range(start, end)
        }
    };
}

/// The database file's backend, noting every I/O error: redb fails every later
/// operation after one, so the database must be reopened ([`Db`]) and the
/// failure reported ([`Health`]).
#[derive(Debug)]
struct Watched {
    inner: Box<dyn StorageBackend>,
    failed: Arc<AtomicBool>,
    health: Arc<Health>,
}

impl Watched {
    fn watch<T>(&self, what: &str, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result {
            self.failed.store(true, Ordering::Release);
            self.health.io_failed(what, e);
        }
        result
    }
}

impl StorageBackend for Watched {
    fn len(&self) -> std::io::Result<u64> {
        self.watch("reading the database", self.inner.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.watch("reading the database", self.inner.read(offset, out))
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.watch("growing the database", self.inner.set_len(len))
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.watch("writing the database", self.inner.sync_data())
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.watch("writing the database", self.inner.write(offset, data))
    }

    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }

    delegate_locks!();
}

#[cfg(test)]
pub(crate) mod fault;
#[cfg(test)]
mod tests;
