//! File helpers: positional I/O on a shared `&File`, change stamps, durable renames.

use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bao_tree::io::sync::{ReadAt, WriteAt};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Positional reads and writes through a shared file handle (`pread`/`pwrite`),
/// so several threads can write different ranges of one file at once.
pub(super) struct At<'a>(pub &'a File);

impl ReadAt for At<'_> {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        read_at(self.0, pos, buf)
    }
}

impl WriteAt for At<'_> {
    fn write_at(&mut self, pos: u64, buf: &[u8]) -> io::Result<usize> {
        write_at(self.0, pos, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(unix)]
fn read_at(file: &File, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(unix)]
fn write_at(file: &File, pos: u64, buf: &[u8]) -> io::Result<usize> {
    std::os::unix::fs::FileExt::write_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

#[cfg(windows)]
fn write_at(file: &File, pos: u64, buf: &[u8]) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_write(file, buf, pos)
}

/// What a file looked like when it was hashed: if any of it differs later, the
/// file has been changed (or replaced) since.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Stamp {
    pub size: u64,
    /// Modification time: seconds and nanoseconds since the Unix epoch (seconds
    /// negative before it).
    pub mtime_s: i64,
    pub mtime_ns: u32,
    /// Inode number on Unix (0 elsewhere): a file replaced by a rename differs.
    pub ino: u64,
}

impl Stamp {
    pub(super) fn of(meta: &Metadata) -> Self {
        let (mtime_s, mtime_ns) = match meta.modified() {
            Ok(t) => match t.duration_since(UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
                Err(before) => (
                    -(before.duration().as_secs() as i64),
                    before.duration().subsec_nanos(),
                ),
            },
            Err(_) => (0, 0),
        };
        Self {
            size: meta.len(),
            mtime_s,
            mtime_ns,
            ino: ino(meta),
        }
    }
}

#[cfg(unix)]
fn ino(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn ino(_: &Metadata) -> u64 {
    0
}

/// Makes renames and creations in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| StoreError::BlobIo {
                path: dir.to_owned(),
                source,
            })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(unix)]
pub(super) fn path_to_bytes(path: &Path) -> Vec<u8> {
    std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec()
}

#[cfg(unix)]
pub(super) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(bytes))
}

#[cfg(not(unix))]
pub(super) fn path_to_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

#[cfg(not(unix))]
pub(super) fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Opens a blob's file for reading, with its path in the error.
pub(super) fn open_read(path: &Path) -> Result<File, StoreError> {
    File::open(path).map_err(|source| StoreError::BlobIo {
        path: path.to_owned(),
        source,
    })
}

/// Opens a blob's file for reading and positional writing.
pub(super) fn open_rw(path: &Path) -> Result<File, StoreError> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| StoreError::BlobIo {
            path: path.to_owned(),
            source,
        })
}
