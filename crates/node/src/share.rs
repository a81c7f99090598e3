//! `ferry share`: hashing a file, or a directory's files and its manifest, into
//! the store. Blocking work: it runs on the blocking pool and reports progress
//! through the job.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_core::content::{ContentId, ContentKind, Entry, EntryKind, Manifest};
use ferry_store::{Store, StoreError};

use crate::error::NodeError;

/// Why sharing a path failed.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The path, or something under it, cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The path cannot be shared as it is (no name, not a file or directory,
    /// a name that is not UTF-8, a tree no manifest can hold).
    #[error("{0}")]
    Unshareable(String),
    /// The store refused or failed to take a file in.
    #[error("{}: {source}", .path.display())]
    Store { path: PathBuf, source: StoreError },
}

impl From<ShareError> for NodeError {
    fn from(error: ShareError) -> Self {
        match &error {
            ShareError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                NodeError::NotFound(error.to_string())
            }
            ShareError::Read { .. } | ShareError::Unshareable(_) => {
                NodeError::Invalid(error.to_string())
            }
            ShareError::Store { path, source } => {
                NodeError::store(&format!("cannot share {}", path.display()), source)
            }
        }
    }
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ShareError + '_ {
    move |source| ShareError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn store_error(path: &Path) -> impl FnOnce(StoreError) -> ShareError + '_ {
    move |source| ShareError::Store {
        path: path.to_path_buf(),
        source,
    }
}

/// What was shared.
pub(crate) struct Shared {
    pub id: ContentId,
    pub kind: ContentKind,
    pub name: String,
    pub size: u64,
    pub files: u64,
}

/// Shares `path` (a file or a directory). `progress` gets the bytes hashed so
/// far and the total.
pub(crate) fn share(
    store: &Store,
    path: &Path,
    in_place: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Shared, ShareError> {
    let meta = fs::metadata(path).map_err(read_error(path))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            ShareError::Unshareable(format!("{} has no name to share it under", path.display()))
        })?;
    if meta.is_file() {
        let size = meta.len();
        let info = store
            .import_file(path, in_place, Some(name.clone()), &mut |done| {
                progress(done, size)
            })
            .map_err(store_error(path))?;
        return Ok(Shared {
            id: info.id,
            kind: ContentKind::Blob,
            name,
            size: info.size,
            files: 1,
        });
    }
    if !meta.is_dir() {
        return Err(ShareError::Unshareable(format!(
            "{} is neither a file nor a directory",
            path.display()
        )));
    }
    let tree = walk(path)?;
    let total: u64 = tree.iter().filter_map(|(_, _, size)| *size).sum();
    let mut done = 0u64;
    let mut entries = Vec::with_capacity(tree.len());
    for (relative, full, size) in tree {
        let kind = match size {
            None => EntryKind::Dir,
            Some(size) => {
                let info = store
                    .import_file(&full, in_place, None, &mut |bytes| {
                        progress(done + bytes, total)
                    })
                    .map_err(store_error(&full))?;
                done += size;
                EntryKind::File {
                    size: info.size,
                    id: info.id,
                    executable: is_executable(&full),
                }
            }
        };
        entries.push(Entry {
            path: relative,
            kind,
        });
    }
    let manifest = Manifest::new(entries)
        .map_err(|e| ShareError::Unshareable(format!("cannot share {}: {e}", path.display())))?;
    let files = manifest.files().count() as u64;
    let info = store
        .import_bytes(
            &manifest.encode(),
            ContentKind::Collection,
            Some(name.clone()),
        )
        .map_err(store_error(path))?;
    Ok(Shared {
        id: info.id,
        kind: ContentKind::Collection,
        name,
        size: total,
        files,
    })
}

/// Every file and directory under `root`: relative path ('/'-separated), full
/// path, and size (`None` for a directory). Symbolic links are skipped: one
/// could point outside the shared tree or form a loop.
fn walk(root: &Path) -> Result<Vec<(String, PathBuf, Option<u64>)>, ShareError> {
    let mut found = Vec::new();
    let mut pending = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = pending.pop() {
        let mut children: Vec<_> = fs::read_dir(&dir)
            .map_err(read_error(&dir))?
            .collect::<Result<_, _>>()
            .map_err(read_error(&dir))?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let name = child.file_name();
            let Some(name) = name.to_str() else {
                return Err(ShareError::Unshareable(format!(
                    "{} has a name that is not valid UTF-8; rename it to share the folder",
                    child.path().display()
                )));
            };
            let relative = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let file_type = child.file_type().map_err(read_error(&child.path()))?;
            if file_type.is_dir() {
                found.push((relative.clone(), child.path(), None));
                pending.push((relative, child.path()));
            } else if file_type.is_file() {
                let size = child.metadata().map_err(read_error(&child.path()))?.len();
                found.push((relative, child.path(), Some(size)));
            } else {
                tracing::warn!(path = %child.path().display(), "skipped: not a regular file or directory");
            }
        }
    }
    Ok(found)
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use ferry_store::DataDir;

    use super::*;
    use crate::error::ErrorKind;

    fn store(dir: &Path) -> Store {
        Store::open(&DataDir::lock(&dir.join("data")).unwrap()).unwrap()
    }

    #[test]
    fn failures_keep_their_class_across_the_api() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let share = |path: &Path| -> NodeError {
            match share(&store, path, false, &mut |_, _| {}) {
                Ok(_) => panic!("{} was shared", path.display()),
                Err(e) => e.into(),
            }
        };
        let missing = share(&dir.path().join("missing"));
        assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
        assert!(missing.to_string().contains("missing"), "{missing}");
        let nameless = share(Path::new("/"));
        assert_eq!(nameless.kind(), ErrorKind::Invalid, "{nameless}");
        let device = share(Path::new("/dev/null"));
        assert_eq!(device.kind(), ErrorKind::Invalid, "{device}");
        assert!(device.to_string().contains("neither a file"), "{device}");
    }

    #[test]
    fn a_store_failure_stays_a_store_failure() {
        let full = ShareError::Store {
            path: "/big.iso".into(),
            source: StoreError::NoSpace {
                what: "a file".into(),
                needed: 10,
                free: 1,
                reserve: 8,
                path: "/data".into(),
            },
        };
        let error = NodeError::from(full);
        assert_eq!(error.kind(), ErrorKind::Storage);
        assert!(
            error.to_string().starts_with("cannot share /big.iso: "),
            "{error}"
        );
    }
}
