use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::StoreError;

const LOCK_FILE: &str = "ferry.lock";

/// A data directory held for the exclusive use of this process.
///
/// The lock is an OS file lock, so it is released however the process ends,
/// `kill -9` included, and a stale lock file never blocks a restart.
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed (readable by its owner only) and locks it.
    pub fn lock(path: &Path) -> Result<Self, StoreError> {
        let io_err = |source| StoreError::DataDir {
            path: path.to_owned(),
            source,
        };
        fs::create_dir_all(path).map_err(io_err)?;
        restrict_to_owner(path, 0o700).map_err(io_err)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK_FILE))
            .map_err(io_err)?;
        match lock.try_lock() {
            Ok(()) => Ok(Self {
                path: path.to_owned(),
                _lock: lock,
            }),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked(path.to_owned())),
            Err(fs::TryLockError::Error(e)) => Err(io_err(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Sets `path`'s permission bits (on Unix; elsewhere a no-op).
pub(crate) fn restrict_to_owner(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_fails_clearly_until_released() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DataDir::lock(tmp.path()).unwrap();
        let err = DataDir::lock(tmp.path())
            .err()
            .expect("second lock must fail");
        assert!(matches!(err, StoreError::Locked(_)));
        assert!(err.to_string().contains("already running"));
        drop(first);
        DataDir::lock(tmp.path()).unwrap();
    }
}
