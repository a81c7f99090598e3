//! A collection (a shared directory) as a manifest blob: every file's
//! relative path, size, id and executable bit, plus the directories that
//! would otherwise be lost because they are empty.
//!
//! A manifest arrives from a peer, so [`Manifest::decode`] treats it as
//! hostile: every path is checked so that writing the collection out can
//! never touch anything outside the target directory.
//!
//! Which names are refused: on every platform, names that are empty, `.`,
//! `..`, longer than 255 bytes, or that hold `/`, `\` (a separator on
//! Windows), NUL or another control character. On Windows also the names
//! Windows cannot create: reserved device names (`CON`, `NUL`, `COM1`, ...
//! with any extension), the characters `<>:"|?*`, and a trailing dot or
//! space. Those stay allowed elsewhere, because Linux and macOS hold them
//! fine and refusing them would stop people sharing ordinary trees. Names
//! that differ only in case are not refused here; whoever writes a
//! collection out must create each file exclusively (never overwrite), so
//! that on a case-insensitive disk the second one fails instead of
//! replacing the first.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::ContentId;

/// The largest manifest accepted, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;
/// The most entries a manifest may list.
pub const MAX_ENTRIES: usize = 100_000;
/// The longest name of one file or directory, in bytes.
pub const MAX_COMPONENT_BYTES: usize = 255;
/// The longest relative path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;

/// Leads the encoding, so a later format is told apart instead of misread.
const FORMAT_VERSION: u8 = 1;
/// How much of a hostile path an error message repeats.
const SHOWN_PATH_CHARS: usize = 200;

/// A collection's table of contents, sorted and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Every entry, sorted by path in canonical order, each path checked.
    pub entries: Vec<Entry>,
}

/// One file or empty directory in a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative to the collection's root, components separated by `/`.
    pub path: String,
    /// Whether it is a file (with its size and id) or an empty directory.
    pub kind: EntryKind,
}

/// What a manifest entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file, fetched as its own blob.
    File {
        /// The file's length in bytes, as the manifest states it.
        size: u64,
        /// The BLAKE3 hash of the file's bytes.
        id: ContentId,
        /// Whether the file was executable where it was shared, so the copy written out
        /// can be too.
        executable: bool,
    },
    /// A directory. Only listed when nothing else lies under it: directories
    /// that hold entries are implied by their paths.
    Dir,
}

impl Manifest {
    /// Checks `entries` and puts them in canonical order (so the same tree
    /// always encodes to the same bytes, and so the same id). Directory
    /// entries implied by another entry's path are dropped for the same
    /// reason.
    pub fn new(mut entries: Vec<Entry>) -> Result<Self, ManifestError> {
        if entries.len() > MAX_ENTRIES {
            return Err(ManifestError::TooManyEntries(entries.len() as u64));
        }
        for entry in &entries {
            check_path(&entry.path)?;
        }
        entries.sort_by(|a, b| path_order(&a.path, &b.path));
        // In component order a path's descendants follow it directly, so
        // comparing neighbours finds every duplicate and everything nested
        // under a file.
        for pair in entries.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.path == b.path {
                return Err(ManifestError::Duplicate(shown(&a.path)));
            }
            if matches!(a.kind, EntryKind::File { .. }) && is_under(&b.path, &a.path) {
                return Err(ManifestError::UnderFile {
                    path: shown(&b.path),
                    file: shown(&a.path),
                });
            }
        }
        let mut canonical = Vec::with_capacity(entries.len());
        let mut rest = entries.into_iter().peekable();
        while let Some(entry) = rest.next() {
            let implied = entry.kind == EntryKind::Dir
                && rest
                    .peek()
                    .is_some_and(|next| is_under(&next.path, &entry.path));
            if !implied {
                canonical.push(entry);
            }
        }
        let manifest = Self { entries: canonical };
        manifest.checked_total()?;
        Ok(manifest)
    }

    /// The manifest as the bytes of its blob; the same tree always gives the
    /// same bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(&self.entries, vec![FORMAT_VERSION])
            .expect("writing to memory cannot fail")
    }

    /// Reads a manifest received from anyone, refusing anything unsafe or
    /// inconsistent.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        let (&version, rest) = bytes.split_first().ok_or(ManifestError::Malformed)?;
        if version != FORMAT_VERSION {
            return Err(ManifestError::UnknownVersion(version));
        }
        // Entries are read one at a time, each checked as it comes, so a
        // hostile count or path cannot make us hold more than the limits.
        let (count, mut rest) =
            postcard::take_from_bytes::<u64>(rest).map_err(|_| ManifestError::Malformed)?;
        if count > MAX_ENTRIES as u64 {
            return Err(ManifestError::TooManyEntries(count));
        }
        // Every entry takes at least a byte, so the input bounds the count.
        let mut entries = Vec::with_capacity((count as usize).min(rest.len()));
        for _ in 0..count {
            let (entry, tail) =
                postcard::take_from_bytes::<Entry>(rest).map_err(|_| ManifestError::Malformed)?;
            check_path(&entry.path)?;
            entries.push(entry);
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(ManifestError::Malformed);
        }
        let manifest = Self::new(entries)?;
        // Another encoding of the same tree would be another id for it.
        if manifest.encode() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }

    /// The bytes of all files together. Saturates for a hand-built manifest
    /// whose sizes overflow; [`Manifest::new`] and [`Manifest::decode`]
    /// refuse those.
    pub fn total_size(&self) -> u64 {
        self.files()
            .fold(0u64, |sum, (_, size, _, _)| sum.saturating_add(size))
    }

    /// Every file: path, size, id and whether it is executable.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, ContentId, bool)> + '_ {
        self.entries.iter().filter_map(|entry| match entry.kind {
            EntryKind::File {
                size,
                id,
                executable,
            } => Some((entry.path.as_str(), size, id, executable)),
            EntryKind::Dir => None,
        })
    }

    fn checked_total(&self) -> Result<u64, ManifestError> {
        self.files()
            .try_fold(0u64, |sum, (_, size, _, _)| sum.checked_add(size))
            .ok_or(ManifestError::SizeOverflow)
    }
}

/// Checks one file or directory name: safe to create inside a directory on
/// this platform, and nothing else (no separators, no `..`).
pub fn check_component(name: &str) -> Result<(), ManifestError> {
    component_problem(name).map_or(Ok(()), |problem| {
        Err(ManifestError::BadPath {
            path: shown(name),
            problem,
        })
    })
}

fn check_path(path: &str) -> Result<(), ManifestError> {
    let problem = if path.is_empty() {
        Some(PathProblem::Empty)
    } else if path.starts_with('/') {
        Some(PathProblem::Absolute)
    } else if path.len() > MAX_PATH_BYTES {
        Some(PathProblem::PathTooLong(path.len()))
    } else {
        // `..` anywhere is the worse news, so it wins over other problems.
        let components = || path.split('/');
        components()
            .any(|c| c == "..")
            .then_some(PathProblem::ParentDir)
            .or_else(|| components().find_map(component_problem))
    };
    problem.map_or(Ok(()), |problem| {
        Err(ManifestError::BadPath {
            path: shown(path),
            problem,
        })
    })
}

pub(super) fn component_problem(name: &str) -> Option<PathProblem> {
    let problem = match name {
        "" => PathProblem::EmptyComponent,
        "." => PathProblem::CurrentDir,
        ".." => PathProblem::ParentDir,
        _ if name.len() > MAX_COMPONENT_BYTES => PathProblem::ComponentTooLong(name.len()),
        _ if name.contains('/') => PathProblem::Slash,
        _ if name.contains('\\') => PathProblem::Backslash,
        _ if name.chars().any(char::is_control) => PathProblem::Control,
        _ if cfg!(windows) => return windows_problem(name),
        _ => return None,
    };
    Some(problem)
}

/// What Windows refuses beyond the portable rules; only applied on Windows.
fn windows_problem(name: &str) -> Option<PathProblem> {
    const RESERVED: [&str; 22] = [
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
        "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if let Some(bad) = name.chars().find(|c| "<>:\"|?*".contains(*c)) {
        return Some(PathProblem::WindowsCharacter(bad));
    }
    if name.ends_with(['.', ' ']) {
        return Some(PathProblem::TrailingDotOrSpace);
    }
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(stem))
        .then_some(PathProblem::WindowsReserved)
}

/// Component by component, so that a directory's contents sort right after
/// it (plain byte order would put `a-b` between `a` and `a/b`).
fn path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

fn is_under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// A hostile path, cut short so that an error message stays readable.
fn shown(path: &str) -> String {
    match path.char_indices().nth(SHOWN_PATH_CHARS) {
        Some((cut, _)) => format!("{}…", &path[..cut]),
        None => path.to_owned(),
    }
}

/// Why a path in a collection is refused; reads as the end of "which ...".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathProblem {
    /// The path is empty.
    Empty,
    /// The path starts with '/', so it would leave the target directory.
    Absolute,
    /// A component is `..`, which would leave the target directory.
    ParentDir,
    /// A component is `.`, which would give one file two paths.
    CurrentDir,
    /// A component is empty (`//` or a trailing `/`).
    EmptyComponent,
    /// A single name (a ticket's suggested name) holds '/'.
    Slash,
    /// A name holds '\', a path separator on Windows.
    Backslash,
    /// A name holds NUL or another control character.
    Control,
    /// A name is over [`MAX_COMPONENT_BYTES`]; carries its length in bytes.
    ComponentTooLong(usize),
    /// The whole path is over [`MAX_PATH_BYTES`]; carries its length in bytes.
    PathTooLong(usize),
    /// A name holds one of `<>:"|?*`, which Windows does not allow (checked on Windows
    /// only).
    WindowsCharacter(char),
    /// A name ends in a dot or a space, which Windows drops (checked on Windows only).
    TrailingDotOrSpace,
    /// A name is a device name Windows reserves, such as `CON` or `COM1` with any
    /// extension (checked on Windows only).
    WindowsReserved,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("is empty"),
            Self::Absolute => f.write_str("is absolute and would leave the target directory"),
            Self::ParentDir => f.write_str("leaves the target directory"),
            Self::CurrentDir => f.write_str("has a '.' component"),
            Self::EmptyComponent => f.write_str("has an empty name ('//' or a trailing '/')"),
            Self::Slash => f.write_str("holds '/', so it is not a single name"),
            Self::Backslash => f.write_str("holds '\\', a path separator on Windows"),
            Self::Control => f.write_str("holds a control character"),
            Self::ComponentTooLong(n) => write!(
                f,
                "has a name of {n} bytes, more than the {MAX_COMPONENT_BYTES} a file system holds"
            ),
            Self::PathTooLong(n) => {
                write!(
                    f,
                    "is {n} bytes long, more than the {MAX_PATH_BYTES}-byte limit"
                )
            }
            Self::WindowsCharacter(c) => write!(f, "holds {c:?}, which Windows does not allow"),
            Self::TrailingDotOrSpace => f.write_str("ends in a dot or space, which Windows drops"),
            Self::WindowsReserved => {
                f.write_str("is a device name Windows reserves (CON, NUL, COM1, ...)")
            }
        }
    }
}

/// Why a manifest is refused, whether built from a local tree or decoded from a peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManifestError {
    /// An entry's path is unsafe to write out (see [`PathProblem`]).
    #[error("the collection lists {path:?}, which {problem}: refused")]
    BadPath {
        /// The path as listed (possibly shortened for the message).
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A path is listed twice; carries the path.
    #[error("the collection lists {0:?} twice: refused")]
    Duplicate(String),
    /// A path lies under another entry that is a file.
    #[error("the collection lists {path:?} inside {file:?}, which is a file: refused")]
    UnderFile {
        /// The entry listed under the file.
        path: String,
        /// The file it is listed under.
        file: String,
    },
    /// The file sizes add up to more than `u64` holds.
    #[error("the collection's file sizes add up to more than 2^64 bytes: refused")]
    SizeOverflow,
    /// More entries than [`MAX_ENTRIES`]; carries how many.
    #[error("the collection lists {0} entries; the limit is {MAX_ENTRIES}: share it in parts")]
    TooManyEntries(u64),
    /// The encoding is over [`MAX_MANIFEST_BYTES`]; carries its length in bytes.
    #[error("the collection's manifest is {0} bytes; the limit is 16 MiB: refused")]
    TooLarge(usize),
    /// The bytes do not decode as a manifest (perhaps the id is a file's).
    #[error("the collection's manifest is corrupt or is not a manifest (was the id a file's?)")]
    Malformed,
    /// The format byte is not one this ferry knows; carries it.
    #[error("the collection's manifest has format {0}, unknown to this ferry: upgrade ferry")]
    UnknownVersion(u8),
    /// The entries are out of canonical order or the bytes are padded, so one tree could
    /// get two ids.
    #[error("the collection's manifest is not in canonical form (out of order or padded): refused")]
    NotCanonical,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                size,
                id: ContentId::of(path.as_bytes()),
                executable: false,
            },
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::Dir,
        }
    }

    /// Encodes entries exactly as given, as a hostile peer could.
    fn raw(entries: &[Entry]) -> Vec<u8> {
        postcard::to_extend(entries, vec![FORMAT_VERSION]).unwrap()
    }

    fn problem(path: &str) -> Option<PathProblem> {
        match check_path(path) {
            Err(ManifestError::BadPath { problem, .. }) => Some(problem),
            Err(other) => panic!("unexpected {other}"),
            Ok(()) => None,
        }
    }

    #[test]
    fn sorts_by_component_and_round_trips() {
        let manifest = Manifest::new(vec![
            file("a-b", 1),
            file("a/z", 2),
            dir("empty"),
            file("a/b/c", 3),
        ])
        .unwrap();
        let paths: Vec<_> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a/b/c", "a/z", "a-b", "empty"]);
        assert_eq!(manifest.total_size(), 6);
        assert_eq!(manifest.files().count(), 3);
        assert_eq!(Manifest::decode(&manifest.encode()).unwrap(), manifest);
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        let one = Manifest::new(vec![file("x/1", 1), dir("x"), dir("y"), file("b", 0)]).unwrap();
        let two = Manifest::new(vec![dir("y"), file("b", 0), file("x/1", 1)]).unwrap();
        assert_eq!(one.encode(), two.encode());
        assert_eq!(one.entries.len(), 3, "the implied dir 'x' is dropped");
    }

    #[test]
    fn an_empty_collection_is_valid() {
        let empty = Manifest::new(vec![]).unwrap();
        assert_eq!(Manifest::decode(&empty.encode()).unwrap(), empty);
        assert_eq!(empty.total_size(), 0);
    }

    #[test]
    fn escaping_paths_are_refused_with_a_clear_reason() {
        let err = Manifest::new(vec![file("../etc/passwd", 1)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the collection lists \"../etc/passwd\", which leaves the target directory: refused"
        );
        assert_eq!(problem("/etc/passwd"), Some(PathProblem::Absolute));
        assert_eq!(problem("a/../../b"), Some(PathProblem::ParentDir));
        assert_eq!(problem("a/./b"), Some(PathProblem::CurrentDir));
        assert_eq!(problem("a//b"), Some(PathProblem::EmptyComponent));
        assert_eq!(problem("a/"), Some(PathProblem::EmptyComponent));
        assert_eq!(problem(""), Some(PathProblem::Empty));
        assert_eq!(problem("a\\..\\b"), Some(PathProblem::Backslash));
        assert_eq!(problem("a\0b"), Some(PathProblem::Control));
        assert_eq!(problem("bell\x07"), Some(PathProblem::Control));
        assert_eq!(problem("esc\u{9b}"), Some(PathProblem::Control));
        assert_eq!(
            problem(&"n".repeat(256)),
            Some(PathProblem::ComponentTooLong(256))
        );
        let deep = ["d"; 2049].join("/");
        assert_eq!(problem(&deep), Some(PathProblem::PathTooLong(4097)));
        assert_eq!(problem(&"n".repeat(255)), None);
        assert_eq!(problem("ünïcode/ok name.txt"), None);
        assert_eq!(problem("..hidden/...dots"), None);
    }

    #[test]
    fn names_windows_cannot_hold_are_checked_only_there() {
        assert_eq!(windows_problem("CON"), Some(PathProblem::WindowsReserved));
        assert_eq!(
            windows_problem("nul.txt"),
            Some(PathProblem::WindowsReserved)
        );
        assert_eq!(
            windows_problem("Com1 .tar.gz"),
            Some(PathProblem::WindowsReserved)
        );
        assert_eq!(
            windows_problem("a:b"),
            Some(PathProblem::WindowsCharacter(':'))
        );
        assert_eq!(
            windows_problem("what?"),
            Some(PathProblem::WindowsCharacter('?'))
        );
        assert_eq!(
            windows_problem("trail."),
            Some(PathProblem::TrailingDotOrSpace)
        );
        assert_eq!(
            windows_problem("trail "),
            Some(PathProblem::TrailingDotOrSpace)
        );
        assert_eq!(windows_problem("console"), None);
        assert_eq!(windows_problem("com10"), None);
        assert_eq!(check_component("CON").is_err(), cfg!(windows));
        assert_eq!(check_component("a:b").is_err(), cfg!(windows));
    }

    #[test]
    fn check_component_wants_a_single_name() {
        assert!(check_component("report.pdf").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "tab\there"] {
            assert!(check_component(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicates_and_entries_under_files_are_refused() {
        assert_eq!(
            Manifest::new(vec![file("a", 1), file("a", 2)]).unwrap_err(),
            ManifestError::Duplicate("a".into())
        );
        assert_eq!(
            Manifest::new(vec![file("a", 1), dir("a")]).unwrap_err(),
            ManifestError::Duplicate("a".into())
        );
        assert_eq!(
            Manifest::new(vec![file("a", 1), file("a-b", 1), file("a/b", 2)]).unwrap_err(),
            ManifestError::UnderFile {
                path: "a/b".into(),
                file: "a".into()
            }
        );
        assert!(Manifest::new(vec![file("a", 1), dir("a/deep/er")]).is_err());
        assert!(Manifest::new(vec![file("ab", 1), file("a/b", 2)]).is_ok());
    }

    #[test]
    fn sizes_that_overflow_are_refused() {
        let err = Manifest::new(vec![file("a", u64::MAX), file("b", 1)]).unwrap_err();
        assert_eq!(err, ManifestError::SizeOverflow);
        assert!(Manifest::decode(&raw(&[file("a", u64::MAX), file("b", 1)])).is_err());
        assert!(Manifest::new(vec![file("a", u64::MAX), file("b", 0)]).is_ok());
    }

    #[test]
    fn hostile_encodings_are_refused() {
        assert_eq!(Manifest::decode(&[]), Err(ManifestError::Malformed));
        assert_eq!(
            Manifest::decode(&[9, 0]),
            Err(ManifestError::UnknownVersion(9))
        );
        let huge = vec![FORMAT_VERSION; MAX_MANIFEST_BYTES + 1];
        assert_eq!(
            Manifest::decode(&huge),
            Err(ManifestError::TooLarge(MAX_MANIFEST_BYTES + 1))
        );
        let many = postcard::to_extend(&u64::MAX, vec![FORMAT_VERSION]).unwrap();
        assert_eq!(
            Manifest::decode(&many),
            Err(ManifestError::TooManyEntries(u64::MAX))
        );
        let out_of_order = raw(&[file("b", 1), file("a", 1)]);
        assert_eq!(
            Manifest::decode(&out_of_order),
            Err(ManifestError::NotCanonical)
        );
        let implied_dir = raw(&[dir("a"), file("a/b", 1)]);
        assert_eq!(
            Manifest::decode(&implied_dir),
            Err(ManifestError::NotCanonical)
        );
        let mut trailing = raw(&[file("a", 1)]);
        trailing.push(0);
        assert_eq!(Manifest::decode(&trailing), Err(ManifestError::Malformed));
        let dup = raw(&[file("a", 1), file("a", 1)]);
        assert_eq!(
            Manifest::decode(&dup),
            Err(ManifestError::Duplicate("a".into()))
        );
        let escaping = raw(&[file("../../.bashrc", 1)]);
        assert!(matches!(
            Manifest::decode(&escaping),
            Err(ManifestError::BadPath {
                problem: PathProblem::ParentDir,
                ..
            })
        ));
    }

    #[test]
    fn error_messages_show_a_long_path_cut_short() {
        let long = format!("{}/..", "x".repeat(5000));
        let message = Manifest::new(vec![file(&long, 1)]).unwrap_err().to_string();
        assert!(message.len() < 400, "{message}");
        assert!(message.contains('…'));
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 _.-]{1,12}".prop_filter("not . or ..", |c| c != "." && c != "..")
    }

    fn entry() -> impl Strategy<Value = Entry> {
        (
            proptest::collection::vec(component(), 1..4),
            proptest::option::of((0u64..1 << 40, any::<[u8; 32]>(), any::<bool>())),
        )
            .prop_map(|(parts, file)| Entry {
                path: parts.join("/"),
                kind: match file {
                    Some((size, id, executable)) => EntryKind::File {
                        size,
                        id: ContentId(id),
                        executable,
                    },
                    None => EntryKind::Dir,
                },
            })
    }

    proptest! {
        #[test]
        fn decode_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Manifest::decode(&bytes);
            let mut versioned = vec![FORMAT_VERSION];
            versioned.extend_from_slice(&bytes);
            let _ = Manifest::decode(&versioned);
        }

        #[test]
        fn any_valid_manifest_round_trips(entries in proptest::collection::vec(entry(), 0..40)) {
            if let Ok(manifest) = Manifest::new(entries) {
                let bytes = manifest.encode();
                prop_assert_eq!(Manifest::decode(&bytes), Ok(manifest.clone()));
                let mut shuffled = manifest.entries.clone();
                shuffled.reverse();
                prop_assert_eq!(Manifest::new(shuffled).unwrap().encode(), bytes);
            }
        }

        #[test]
        fn escaping_paths_never_validate(
            parts in proptest::collection::vec(component(), 0..4),
            at in any::<prop::sample::Index>(),
            absolute in any::<bool>()) {
            let mut parts = parts;
            let path = if absolute {
                format!("/{}", parts.join("/"))
            } else {
                parts.insert(at.index(parts.len() + 1), "..".into());
                parts.join("/")
            };
            prop_assert!(check_path(&path).is_err());
            let entries = vec![file(&path, 1)];
            prop_assert!(Manifest::new(entries.clone()).is_err());
            prop_assert!(Manifest::decode(&raw(&entries)).is_err());
        }

        #[test]
        fn a_flipped_byte_never_yields_an_unsafe_manifest(
            entries in proptest::collection::vec(entry(), 1..10),
            at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            if let Ok(manifest) = Manifest::new(entries) {
                let mut bytes = manifest.encode();
                let i = at.index(bytes.len());
                bytes[i] = byte;
                if let Ok(decoded) = Manifest::decode(&bytes) {
                    for entry in &decoded.entries {
                        prop_assert!(check_path(&entry.path).is_ok());
                    }
                    prop_assert_eq!(decoded.encode(), bytes);
                }
            }
        }
    }
}
