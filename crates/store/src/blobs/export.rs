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
        if !force && fs::symlink_metadata(dest).is_ok() {
            return Err(StoreError::Exists(dest.to_owned()));
        }
        let dest_err = |source| StoreError::BlobIo {
            path: dest.to_owned(),
            source,
        };
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(dest_err)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(".ferry-").suffix(".part");
        #[cfg(unix)]
        {
            // tempfile's default is 0600; a file handed to the user gets the
            // usual 0666 less the umask.
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o666));
        }
        let mut tmp = builder.tempfile_in(&parent).map_err(dest_err)?;

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
