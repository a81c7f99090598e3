//! Files whose names or contents a stranger chose: a drive carried by hand, a file
//! name carried in a bundle.
//!
//! Reading, only regular files of a bounded size are taken, never through a
//! symbolic link, never blocking on a FIFO, never opening a device: the path's
//! own entry is checked first (`lstat`), then the file is opened with
//! `O_NOFOLLOW | O_NONBLOCK` and checked again on the opened descriptor (`fstat`),
//! so an entry swapped in between is caught too.
//!
//! Writing, a file goes only into a directory checked to be a real one (not a
//! link), through a new file created with `O_EXCL` (which never follows a link),
//! fsynced, then renamed into place: a link planted at the final name is replaced,
//! never written through.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a file or directory a stranger controls was not used.
#[derive(Debug, Error)]
pub enum UntrustedError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: a symbolic link; links are not followed here", .0.display())]
    Link(PathBuf),
    #[error("{}: {kind}, not a regular file", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{}: {len} bytes is over the {max}-byte limit", path.display())]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> UntrustedError + '_ {
    move |source| UntrustedError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a directory entry is, in words.
fn kind_of(file_type: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Opens a regular file of at most `max` bytes for reading, and returns it with
/// its length. See the module documentation for what is refused.
pub fn open_regular(path: &Path, max: u64) -> Result<(File, u64), UntrustedError> {
    let entry = fs::symlink_metadata(path).map_err(io_at(path))?;
    check_regular(path, &entry, max)?;
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| {
        if is_link_error(&e) {
            UntrustedError::Link(path.to_owned())
        } else {
            io_at(path)(e)
        }
    })?;
    let opened = file.metadata().map_err(io_at(path))?;
    check_regular(path, &opened, max)?;
    Ok((file, opened.len()))
}

/// Whether opening failed for the entry being a link (`O_NOFOLLOW`): it was
/// swapped for one after it was checked.
#[cfg(unix)]
fn is_link_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

#[cfg(not(unix))]
fn is_link_error(_: &io::Error) -> bool {
    false
}

fn check_regular(path: &Path, meta: &fs::Metadata, max: u64) -> Result<(), UntrustedError> {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        return Err(UntrustedError::Link(path.to_owned()));
    }
    if !file_type.is_file() {
        return Err(UntrustedError::NotAFile {
            path: path.to_owned(),
            kind: kind_of(file_type),
        });
    }
    if meta.len() > max {
        return Err(UntrustedError::TooLarge {
            path: path.to_owned(),
            len: meta.len(),
            max,
        });
    }
    Ok(())
}

/// Reads a regular file of at most `max` bytes whole (see [`open_regular`]).
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>, UntrustedError> {
    let (file, len) = open_regular(path, max)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    // A file growing while read is cut at the limit and caught below.
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_at(path))?;
    if bytes.len() as u64 > max {
        return Err(UntrustedError::TooLarge {
            path: path.to_owned(),
            len: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// Checks that `dir` is a directory and not a link to one; with `create`, makes
/// it (one level) if it is absent.
pub fn real_dir(dir: &Path, create: bool) -> Result<(), UntrustedError> {
    let meta = match fs::symlink_metadata(dir) {
        Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
            match fs::create_dir(dir) {
                Ok(()) => {}
                // Made meanwhile by someone else: checked below like any other.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_at(dir)(e)),
            }
            fs::symlink_metadata(dir).map_err(io_at(dir))?
        }
        other => other.map_err(io_at(dir))?,
    };
    if meta.file_type().is_symlink() {
        return Err(UntrustedError::Link(dir.to_owned()));
    }
    if !meta.is_dir() {
        return Err(UntrustedError::NotADirectory(dir.to_owned()));
    }
    Ok(())
}

/// The paths of at most `max` entries of `dir`, and whether there were more.
pub fn list_dir(dir: &Path, max: usize) -> Result<(Vec<PathBuf>, bool), UntrustedError> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        if paths.len() == max {
            return Ok((paths, true));
        }
        paths.push(entry.map_err(io_at(dir))?.path());
    }
    Ok((paths, false))
}

/// A new, empty temporary file in `dir`, created with `O_EXCL` under a random
/// name (`.ferry-XXXXXX.partial`), with the usual permissions of a new file
/// (0666 less the umask) rather than tempfile's private 0600.
pub fn temp_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".ferry-").suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(dir)
}

/// Writes `bytes` to `dir/name` whole or not at all (see the module
/// documentation). Without `replace`, an existing entry at that name (even a
/// dangling link) is left alone and [`UntrustedError::Exists`] returned. `dir`
/// must have been checked by the caller ([`real_dir`]) if a stranger could have
/// made it; the caller makes the new entry durable with [`sync_dir`].
pub fn write_file(
    dir: &Path,
    name: &OsStr,
    bytes: &[u8],
    replace: bool,
) -> Result<(), UntrustedError> {
    let dest = dir.join(name);
    let mut tmp = temp_file_in(dir).map_err(io_at(dir))?;
    tmp.write_all(bytes).map_err(io_at(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
    let persisted = if replace {
        tmp.persist(&dest)
    } else {
        tmp.persist_noclobber(&dest)
    };
    match persisted {
        Ok(_) => {}
        Err(e) if !replace && e.error.kind() == io::ErrorKind::AlreadyExists => {
            return Err(UntrustedError::Exists(dest));
        }
        Err(e) => return Err(io_at(&dest)(e.error)),
    }
    Ok(())
}

/// Makes the entries written in `dir` durable (after [`write_file`]s).
pub fn sync_dir(dir: &Path) -> Result<(), UntrustedError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_fifos_and_large_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::write(&real, b"12345").unwrap();
        assert_eq!(read_regular(&real, 5).unwrap(), b"12345");
        assert!(matches!(
            read_regular(&real, 4),
            Err(UntrustedError::TooLarge { len: 5, max: 4, .. })
        ));
        let link = dir.path().join("link");
        symlink(&real, &link).unwrap();
        assert!(matches!(
            read_regular(&link, 5),
            Err(UntrustedError::Link(_))
        ));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // The standard library cannot make a FIFO; mkfifo(3) only reads the path.
        #[allow(unsafe_code)]
        let made = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
        assert_eq!(made, 0);
        assert!(matches!(
            read_regular(&fifo, 5),
            Err(UntrustedError::NotAFile { kind: "a FIFO", .. })
        ));
        assert!(matches!(
            read_regular(dir.path(), 5),
            Err(UntrustedError::NotAFile { .. })
        ));
    }

    #[test]
    fn writes_replace_links_and_never_follow_them() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        symlink(&victim, out.join("name")).unwrap();
        assert!(matches!(
            write_file(&out, OsStr::new("name"), b"new", false),
            Err(UntrustedError::Exists(_))
        ));
        symlink(dir.path().join("absent"), out.join("dangling")).unwrap();
        assert!(matches!(
            write_file(&out, OsStr::new("dangling"), b"new", false),
            Err(UntrustedError::Exists(_))
        ));
        write_file(&out, OsStr::new("name"), b"new", true).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(out.join("name")).unwrap(), b"new");
        assert!(!fs::symlink_metadata(out.join("name")).unwrap().is_symlink());
        assert!(!dir.path().join("absent").exists());
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_linked_directory_is_not_real() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made");
        real_dir(&made, true).unwrap();
        real_dir(&made, false).unwrap();
        let link = dir.path().join("link");
        symlink(&made, &link).unwrap();
        assert!(matches!(
            real_dir(&link, true),
            Err(UntrustedError::Link(_))
        ));
        assert!(real_dir(&dir.path().join("absent"), false).is_err());
        fs::write(dir.path().join("file"), b"").unwrap();
        assert!(matches!(
            real_dir(&dir.path().join("file"), true),
            Err(UntrustedError::NotADirectory(_))
        ));
        let (listed, more) = list_dir(dir.path(), 2).unwrap();
        assert_eq!((listed.len(), more), (2, true));
        let (listed, more) = list_dir(dir.path(), 10).unwrap();
        assert_eq!((listed.len(), more), (3, false));
    }
}
