//! Writing a downloaded collection out as the tree of files it describes.
//!
//! The manifest has been validated (no absolute paths, no `..`, no
//! duplicates), and every path is still joined component by component here,
//! so nothing can be written outside the target.
//!
//! Each file's bytes are moved out of the store rather than copied (see
//! `Store::move_blob_out`), and the node goes on serving them from the tree.
//! That is why the tree is built at its final place: a tree built elsewhere
//! and renamed would leave the store pointing at paths that no longer exist.
//! A failure removes what was written; a crash can leave part of the tree,
//! which `ferry get --force` replaces.

use std::fs;
use std::path::{Component, Path, PathBuf};

use ferry_core::content::{EntryKind, Manifest};
use ferry_store::{Store, StoreError};

use crate::error::NodeError;

/// Why writing a collection out failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The target exists and overwriting was not asked for.
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    /// A file or directory could not be written or replaced.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file's bytes could not be moved out of the store.
    #[error("cannot write {path}: {source}")]
    Store { path: String, source: StoreError },
    /// A manifest path that is not a plain relative path (the manifest was
    /// checked on arrival, so this is a bug or a damaged store).
    #[error("refused: {0:?} is not a plain relative path")]
    UnsafePath(String),
}

impl From<ExportError> for NodeError {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::Exists(path) => NodeError::Exists(path),
            ExportError::Store { path, source } => {
                NodeError::store(&format!("cannot write {path}"), &source)
            }
            ExportError::Write { ref source, .. }
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                NodeError::Storage(error.to_string())
            }
            ExportError::Write { .. } | ExportError::UnsafePath(_) => {
                NodeError::Internal(error.to_string())
            }
        }
    }
}

pub(crate) fn collection(
    store: &Store,
    manifest: &Manifest,
    target: &Path,
    force: bool,
) -> Result<(), ExportError> {
    if target.exists() && !force {
        return Err(ExportError::Exists(target.to_path_buf()));
    }
    if target.exists() {
        remove_existing(target)?;
    }
    fs::create_dir_all(target).map_err(|e| write_error(target, e))?;
    let built = build(store, manifest, target);
    if built.is_err() {
        let _ = fs::remove_dir_all(target);
    }
    built
}

fn build(store: &Store, manifest: &Manifest, root: &Path) -> Result<(), ExportError> {
    for entry in &manifest.entries {
        let path = safe_join(root, &entry.path)?;
        match &entry.kind {
            EntryKind::Dir => fs::create_dir_all(&path).map_err(|e| write_error(&path, e))?,
            EntryKind::File { id, executable, .. } => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
                }
                store
                    .move_blob_out(id, &path, false)
                    .map_err(|source| ExportError::Store {
                        path: entry.path.clone(),
                        source,
                    })?;
                if *executable {
                    set_executable(&path).map_err(|e| write_error(&path, e))?;
                }
            }
        }
    }
    Ok(())
}

/// Joins a manifest path under `root`, refusing anything but plain names.
fn safe_join(root: &Path, relative: &str) -> Result<PathBuf, ExportError> {
    let mut path = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(name) => path.push(name),
            _ => {
                return Err(ExportError::UnsafePath(relative.to_owned()));
            }
        }
    }
    Ok(path)
}

fn remove_existing(target: &Path) -> Result<(), ExportError> {
    let removed = if target.is_dir() {
        fs::remove_dir_all(target)
    } else {
        fs::remove_file(target)
    };
    removed.map_err(|source| write_error(target, source))
}

fn set_executable(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut permissions = fs::metadata(path)?.permissions();
        permissions.set_mode(permissions.mode() | 0o111);
        fs::set_permissions(path, permissions)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

fn write_error(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Write {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn an_existing_target_is_refused_as_existing() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(&ferry_store::DataDir::lock(&dir.path().join("data")).unwrap()).unwrap();
        let target = dir.path().join("out");
        fs::create_dir(&target).unwrap();
        let manifest = Manifest::new(Vec::new()).unwrap();
        let error = NodeError::from(collection(&store, &manifest, &target, false).unwrap_err());
        assert_eq!(error, NodeError::Exists(target.clone()));
        assert_eq!(error.kind(), ErrorKind::Exists);
        assert!(target.is_dir());
    }

    #[test]
    fn only_plain_relative_paths_join() {
        let root = Path::new("/tmp/target");
        assert_eq!(safe_join(root, "a/b.txt").unwrap(), root.join("a/b.txt"));
        assert!(safe_join(root, "../escape").is_err());
        assert!(safe_join(root, "/etc/passwd").is_err());
        assert!(safe_join(root, "a/../../b").is_err());
    }
}
