//! Exporting: a complete blob's bytes written out as a file, atomically.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ferry_core::content::ContentId;

use crate::{Store, StoreError};

const COPY_BUF: usize = 1 << 20;

impl Store {
    /// Writes a complete blob's bytes to `dest`: into a temporary file beside it,
    /// fsynced, then renamed to `dest`, so `dest` is either absent or whole. The
    /// bytes are hashed on the way and must match the id. Refuses to replace an
    /// existing `dest` unless `force`. Missing parent directories are created.
    /// The file gets the usual permissions of a new file (0666 less the umask).
    pub fn export_blob(&self, id: &ContentId, dest: &Path, force: bool) -> Result<(), StoreError> {
        let _guard = self.blobs.shared(id);
        let meta = self.readable(id)?;
        let parent = prepare_destination(dest, force)?;
        let dest_err = |source| StoreError::BlobIo {
            path: dest.to_owned(),
            source,
        };
        // Created with O_EXCL, so no link planted beside `dest` is followed;
        // the rename below replaces a link at `dest` rather than writing through it.
        let mut tmp = crate::untrusted::temp_file_in(&parent).map_err(dest_err)?;

        let source = self.open_data(id, &meta)?;
        let source_path = self.data_location(id, &meta);
        let mut reader = source.take(meta.size + 1);
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; COPY_BUF];
        let mut copied = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(StoreError::BlobIo {
                        path: source_path,
                        source,
                    });
                }
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(dest_err)?;
            copied += n as u64;
        }
        if copied != meta.size || ContentId::from(hasher.finalize()) != *id {
            // The temporary file is deleted when dropped.
            return Err(self.found_stale(id, &meta, "its bytes do not hash to its id"));
        }
        tmp.as_file().sync_all().map_err(dest_err)?;
        let persisted = if force {
            tmp.persist(dest)
        } else {
            tmp.persist_noclobber(dest)
        };
        match persisted {
            Ok(_) => {}
            Err(e) if !force && e.error.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(dest.to_owned()));
            }
            Err(e) => return Err(dest_err(e.error)),
        }
        super::files::sync_dir(&parent)
    }
}

impl Store {
    /// Hands a downloaded blob to the user at `dest` without copying it: the
    /// store's data file is renamed to `dest`, and the blob is from then on
    /// served from there, as if shared with `--in-place` (a later change to
    /// the file is detected and it is no longer served). This is how a
    /// downloader keeps seeding without holding the bytes twice.
    ///
    /// Falls back to [`Store::export_blob`] (a copy) when the blob is already
    /// shared in place, or `dest` is on another file system.
    ///
    /// The rename comes before the row changes: a crash in between leaves the
    /// user's file whole at `dest` and a row that no longer finds its data,
    /// which is then reported stale; never the other way round, which would let
    /// `open` delete a file a row names nowhere.
    pub fn move_blob_out(
        &self,
        id: &ContentId,
        dest: &Path,
        force: bool,
    ) -> Result<(), StoreError> {
        self.flush_blob(id)?;
        let guard = self.blobs.exclusive(id);
        let meta = self.readable(id)?;
        if meta.in_place.is_some() {
            drop(guard);
            return self.export_blob(id, dest, force);
        }
        let parent = prepare_destination(dest, force)?;
        let dest_err = |source| StoreError::BlobIo {
            path: dest.to_owned(),
            source,
        };
        let source = self.blobs.data_path(id);
        if let Err(e) = fs::rename(&source, dest) {
            if e.kind() == io::ErrorKind::CrossesDevices {
                drop(guard);
                return self.export_blob(id, dest, force);
            }
            return Err(dest_err(e));
        }
        super::files::sync_dir(&parent)?;
        #[cfg(unix)]
        {
            // Store files are private (0600); a file handed to the user gets
            // the usual permissions of a new file.
            use std::os::unix::fs::PermissionsExt;
            let umask = current_umask();
            fs::set_permissions(dest, fs::Permissions::from_mode(0o666 & !umask))
                .map_err(dest_err)?;
        }
        let absolute = fs::canonicalize(dest).map_err(dest_err)?;
        let stamp = super::files::Stamp::of(&fs::metadata(&absolute).map_err(dest_err)?);
        self.update_meta(id, |meta| {
            meta.in_place = Some(super::InPlace::new(&absolute, stamp));
        })?;
        Ok(())
    }
}

/// Refuses an existing `dest` unless `force`, and creates its parent
/// directory; returns the parent.
fn prepare_destination(dest: &Path, force: bool) -> Result<PathBuf, StoreError> {
    if !force && fs::symlink_metadata(dest).is_ok() {
        return Err(StoreError::Exists(dest.to_owned()));
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|source| StoreError::BlobIo {
        path: dest.to_owned(),
        source,
    })?;
    Ok(parent)
}

/// The process's umask, read without changing it (Linux reports it in
/// /proc/self/status); 022 if it cannot be read.
#[cfg(unix)]
fn current_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}
