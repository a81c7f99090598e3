//! A disk that fills up on demand, for the tests of recovery: the database's
//! real file backend, whose writes fail with "no space left on device" while
//! the switch is on.

use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

use super::Db;
use crate::health::Health;
use crate::{DataDir, Store, StoreLimits};

/// A switch: while on, the database's disk is full.
#[derive(Clone, Default)]
pub(crate) struct DiskFull(Arc<AtomicBool>);

impl DiskFull {
    pub(crate) fn set(&self, full: bool) {
        self.0.store(full, Ordering::SeqCst);
    }

    fn check(&self) -> std::io::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
        } else {
            Ok(())
        }
    }
}

impl Store {
    /// Opens a store whose database's disk is full while the returned switch
    /// is on.
    pub(crate) fn open_with_full_disk(dir: &DataDir, limits: StoreLimits) -> (Store, DiskFull) {
        let full = DiskFull::default();
        let switch = full.clone();
        let health = Arc::new(Health::new(dir.path().to_owned(), limits.reserve_bytes));
        let db = Db::open_with(
            dir.path().join(crate::DB_FILE),
            health.clone(),
            Box::new(move |file| {
                Ok(Box::new(Fillable {
                    inner: FileBackend::new(file)?,
                    full: switch.clone(),
                }))
            }),
        )
        .unwrap();
        (Store::open_on(dir, limits, health, db).unwrap(), full)
    }
}

#[derive(Debug)]
struct Fillable {
    inner: FileBackend,
    full: DiskFull,
}

impl std::fmt::Debug for DiskFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DiskFull({})", self.0.load(Ordering::SeqCst))
    }
}

impl StorageBackend for Fillable {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.full.check()?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> std::io::Result<()> {
        self.full.check()?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.full.check()?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }

    delegate_locks!();
}
