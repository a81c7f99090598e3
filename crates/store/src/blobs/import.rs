//! Importing: hashing a file (or bytes) into a complete blob.
//!
//! The file is read once, in large sequential reads, through bao-tree's post-order
//! outboard builder, which hashes each 16 KiB chunk group and writes the tree's
//! hash pairs sequentially; a copy into the store is written from the same
//! buffers. Memory stays at about 1 MiB whatever the file's size.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use bao_tree::io::sync::outboard_post_order;
use ferry_core::content::ContentId;

use super::files::Stamp;
use super::{BlobInfo, BlobKind, InPlace, MAX_BLOB_SIZE, Meta, StoredKind, tree};
use crate::{Store, StoreError};

/// Bytes read from the file at a time (and between progress reports).
const READ_BUF: usize = 1 << 20;

impl Store {
    /// Hashes a file and stores it as a complete, pinned blob: copied into the
    /// store, or with `in_place` referenced where it is (its size, mtime and inode
    /// are recorded so a later change is noticed and the blob stops being served).
    ///
    /// `progress` is called with the bytes hashed so far, about every MiB.
    /// Importing content that is already stored complete changes nothing but
    /// pinning it (and naming it, if it had no name); importing content that is
    /// being downloaded completes the download.
    pub fn import_file(
        &self,
        path: &Path,
        in_place: bool,
        name: Option<String>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<BlobInfo, StoreError> {
        let file = File::open(path).map_err(|source| StoreError::ImportRead {
            path: path.to_owned(),
            source,
        })?;
        self.import_open_file(path, file, in_place, name, progress)
    }

    /// [`Store::import_file`] of a file already opened from `path` (by
    /// [`crate::untrusted::open_regular`], say, so that what is hashed is what
    /// was checked), read from its start.
    pub fn import_open_file(
        &self,
        path: &Path,
        file: File,
        in_place: bool,
        name: Option<String>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<BlobInfo, StoreError> {
        let read_err = |source| StoreError::ImportRead {
            path: path.to_owned(),
            source,
        };
        let before = file.metadata().map_err(read_err)?;
        if !before.is_file() {
            return Err(StoreError::NotAFile(path.to_owned()));
        }
        let size = before.len();
        check_size(size)?;
        let stamp = Stamp::of(&before);
        let copied = if in_place { 0 } else { size };
        self.health.ensure_room(
            &format!("sharing {}", path.display()),
            copied.saturating_add(tree(size).outboard_size()),
        )?;

        let outboard = self.blobs.temp_file()?;
        let data = if in_place {
            None
        } else {
            Some(self.blobs.temp_file()?)
        };
        let mut copy_err = None;
        let mut obao_err = None;
        let hashed = {
            let source = Tee {
                inner: file.take(size),
                copy: data.as_ref().map(|d| d.as_file()),
                error: &mut copy_err,
            };
            let counted = Progress {
                inner: source,
                done: 0,
                progress,
            };
            let reader = BufReader::with_capacity(READ_BUF, counted);
            let writer = BufWriter::with_capacity(
                64 << 10,
                Recorded {
                    inner: outboard.as_file(),
                    error: &mut obao_err,
                },
            );
            hash_outboard(reader, size, writer)
        };
        let id = match hashed {
            Ok(id) => id,
            Err(e) => {
                let failed = match (copy_err, obao_err) {
                    (Some(source), _) => Some(io_at(data.as_ref().map(|d| d.path()), source)),
                    (None, Some(source)) => Some(io_at(Some(outboard.path()), source)),
                    (None, None) => None,
                };
                if let Some(failed) = failed {
                    self.note_file_failure(&failed);
                    return Err(failed);
                }
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    return Err(StoreError::ChangedWhileImporting(path.to_owned()));
                }
                return Err(read_err(e));
            }
        };
        // Compare with the file now at the path: a write, truncation or
        // replacement while it was read means the hash may describe no version
        // of it.
        let after = fs::metadata(path).map_err(read_err)?;
        if Stamp::of(&after) != stamp {
            return Err(StoreError::ChangedWhileImporting(path.to_owned()));
        }
        if let Some(data) = &data {
            sync(data)?;
        }
        sync(&outboard)?;
        let in_place = if in_place {
            let absolute = fs::canonicalize(path).map_err(read_err)?;
            Some(InPlace::new(&absolute, stamp))
        } else {
            None
        };
        let meta = Meta {
            size,
            kind: StoredKind::Blob,
            name,
            complete: true,
            pinned: true,
            in_place,
            stale: false,
        };
        self.install(&id, meta, data, outboard)
    }

    /// Stores bytes held in memory (a manifest, say) as a complete, pinned blob.
    /// Idempotent like [`Store::import_file`].
    pub fn import_bytes(
        &self,
        bytes: &[u8],
        kind: BlobKind,
        name: Option<String>,
    ) -> Result<BlobInfo, StoreError> {
        let size = bytes.len() as u64;
        check_size(size)?;
        self.health.ensure_room(
            "a collection manifest",
            size.saturating_add(tree(size).outboard_size()),
        )?;
        let data = self.blobs.temp_file()?;
        let outboard = self.blobs.temp_file()?;
        let mut hashes = Vec::new();
        let id = hash_outboard(bytes, size, &mut hashes).expect("hashing memory cannot fail");
        write_all(&data, bytes)?;
        write_all(&outboard, &hashes)?;
        sync(&data)?;
        sync(&outboard)?;
        let meta = Meta {
            size,
            kind: kind.into(),
            name,
            complete: true,
            pinned: true,
            in_place: None,
            stale: false,
        };
        self.install(&id, meta, Some(data), outboard)
    }

    /// Commits a freshly hashed complete blob whose temporary files are written
    /// and fsynced, unless the same content is already stored complete and sound.
    fn install(
        &self,
        id: &ContentId,
        mut meta: Meta,
        data: Option<tempfile::NamedTempFile>,
        outboard: tempfile::NamedTempFile,
    ) -> Result<BlobInfo, StoreError> {
        let _guard = self.blobs.exclusive(id);
        let existing = self.meta(id)?;
        if let Some(old) = &existing
            && old.complete
            && !old.stale
            && old.in_place.as_ref().is_none_or(unchanged)
        {
            // Already here: the new temporary files are dropped (deleted).
            self.update_meta(id, |m| {
                m.pinned |= meta.pinned;
                if m.name.is_none() {
                    m.name = meta.name.take();
                }
                if meta.kind == StoredKind::Collection {
                    m.kind = StoredKind::Collection;
                }
            })?;
            let current = self
                .meta(id)?
                .expect("the row was just read under the lock");
            return self.info(id, &current);
        }
        if let Some(old) = &existing {
            meta.pinned |= old.pinned;
            if meta.name.is_none() {
                meta.name = old.name.clone();
            }
        }
        let replaces_own_data = existing.as_ref().is_some_and(|old| old.in_place.is_none());
        let has_data = data.is_some();
        self.blobs.place(id, data, outboard)?;
        self.commit_complete(id, &meta)?;
        if replaces_own_data && !has_data {
            // A partial (or stale copy) now served in place: its data file is
            // no longer named by any row.
            super::remove_quietly(&self.blobs.data_path(id));
        }
        self.info(id, &meta)
    }
}

/// Whether a file shared in place still looks as it did when hashed.
fn unchanged(in_place: &InPlace) -> bool {
    fs::metadata(in_place.path()).is_ok_and(|m| Stamp::of(&m) == in_place.stamp)
}

fn check_size(size: u64) -> Result<(), StoreError> {
    if size > MAX_BLOB_SIZE {
        return Err(StoreError::BlobTooLarge {
            size,
            max: MAX_BLOB_SIZE,
        });
    }
    Ok(())
}

/// Hashes exactly `size` bytes of `data`, writing the post-order outboard to
/// `outboard`; returns the root, which is the BLAKE3 hash of the bytes.
fn hash_outboard(data: impl Read, size: u64, mut outboard: impl Write) -> io::Result<ContentId> {
    let root = outboard_post_order(data, tree(size), &mut outboard)?;
    outboard.flush()?;
    Ok(root.into())
}

fn io_at(path: Option<&Path>, source: io::Error) -> StoreError {
    StoreError::BlobIo {
        path: path.map(Path::to_owned).unwrap_or_default(),
        source,
    }
}

fn write_all(tmp: &tempfile::NamedTempFile, bytes: &[u8]) -> Result<(), StoreError> {
    tmp.as_file()
        .write_all(bytes)
        .map_err(|source| io_at(Some(tmp.path()), source))
}

fn sync(tmp: &tempfile::NamedTempFile) -> Result<(), StoreError> {
    tmp.as_file()
        .sync_all()
        .map_err(|source| io_at(Some(tmp.path()), source))
}

/// Copies what is read from `inner` to `copy`, so a file is read only once to
/// be both hashed and stored. A write error is kept in `error`, so it is not
/// mistaken for a read error of the file being imported.
struct Tee<'a, R> {
    inner: R,
    copy: Option<&'a File>,
    error: &'a mut Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(mut copy) = self.copy
            && let Err(e) = copy.write_all(&buf[..n])
        {
            let returned = io::Error::new(e.kind(), e.to_string());
            *self.error = Some(e);
            return Err(returned);
        }
        Ok(n)
    }
}

/// Keeps a write error aside, like [`Tee`] does.
struct Recorded<'a> {
    inner: &'a File,
    error: &'a mut Option<io::Error>,
}

impl Write for Recorded<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            *self.error = Some(io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reports the bytes read so far after each read.
struct Progress<'a, R> {
    inner: R,
    done: u64,
    progress: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.done += n as u64;
            (self.progress)(self.done);
        }
        Ok(n)
    }
}
