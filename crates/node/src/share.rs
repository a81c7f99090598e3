//! `ferry share`: hashing a file, or a directory's files and its manifest, into
//! the store. Blocking work: it runs on the blocking pool and reports progress
//! through the job.

use std::fs;
use std::path::{Path, PathBuf};

use ferry_core::content::{ContentId, ContentKind, Entry, EntryKind, Manifest};
use ferry_store::Store;

/// What was shared.
pub struct Shared {
    pub id: ContentId,
    pub kind: ContentKind,
    pub name: String,
    pub size: u64,
    pub files: u64,
}

/// Shares `path` (a file or a directory). `progress` gets the bytes hashed so
/// far and the total.
pub fn share(
    store: &Store,
    path: &Path,
    in_place: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Shared, String> {
    let meta = fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} has no name to share it under", path.display()))?;
    if meta.is_file() {
        let size = meta.len();
        let info = store
            .import_file(path, in_place, Some(name.clone()), &mut |done| {
                progress(done, size)
            })
            .map_err(|e| e.to_string())?;
        return Ok(Shared {
            id: info.id,
            kind: ContentKind::Blob,
            name,
            size: info.size,
            files: 1,
        });
    }
    if !meta.is_dir() {
        return Err(format!(
            "{} is neither a file nor a directory",
            path.display()
        ));
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
                    .map_err(|e| format!("{}: {e}", full.display()))?;
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
    let manifest =
        Manifest::new(entries).map_err(|e| format!("cannot share {}: {e}", path.display()))?;
    let files = manifest.files().count() as u64;
    let info = store
        .import_bytes(
            &manifest.encode(),
            ContentKind::Collection,
            Some(name.clone()),
        )
        .map_err(|e| e.to_string())?;
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
fn walk(root: &Path) -> Result<Vec<(String, PathBuf, Option<u64>)>, String> {
    let mut found = Vec::new();
    let mut pending = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = pending.pop() {
        let mut children: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let name = child.file_name();
            let Some(name) = name.to_str() else {
                return Err(format!(
                    "{} has a name that is not valid UTF-8; rename it to share the folder",
                    child.path().display()
                ));
            };
            let relative = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let file_type = child
                .file_type()
                .map_err(|e| format!("cannot read {}: {e}", child.path().display()))?;
            if file_type.is_dir() {
                found.push((relative.clone(), child.path(), None));
                pending.push((relative, child.path()));
            } else if file_type.is_file() {
                let size = child
                    .metadata()
                    .map_err(|e| format!("cannot read {}: {e}", child.path().display()))?
                    .len();
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
