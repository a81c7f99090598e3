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
use ferry_store::Store;

pub fn collection(
    store: &Store,
    manifest: &Manifest,
    target: &Path,
    force: bool,
) -> Result<(), String> {
    if target.exists() && !force {
        return Err(format!(
            "{} already exists; pass --force to overwrite it, or choose another path with -o",
            target.display()
        ));
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

fn build(store: &Store, manifest: &Manifest, root: &Path) -> Result<(), String> {
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
                    .map_err(|e| format!("cannot write {}: {e}", entry.path))?;
                if *executable {
                    set_executable(&path).map_err(|e| write_error(&path, e))?;
                }
            }
        }
    }
    Ok(())
}

/// Joins a manifest path under `root`, refusing anything but plain names.
fn safe_join(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let mut path = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(name) => path.push(name),
            _ => {
                return Err(format!(
                    "refused: {relative:?} is not a plain relative path"
                ));
            }
        }
    }
    Ok(path)
}

fn remove_existing(target: &Path) -> Result<(), String> {
    let removed = if target.is_dir() {
        fs::remove_dir_all(target)
    } else {
        fs::remove_file(target)
    };
    removed.map_err(|e| format!("cannot replace {}: {e}", target.display()))
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

fn write_error(path: &Path, e: std::io::Error) -> String {
    format!("cannot write {}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_join() {
        let root = Path::new("/tmp/target");
        assert_eq!(safe_join(root, "a/b.txt").unwrap(), root.join("a/b.txt"));
        assert!(safe_join(root, "../escape").is_err());
        assert!(safe_join(root, "/etc/passwd").is_err());
        assert!(safe_join(root, "a/../../b").is_err());
    }
}
