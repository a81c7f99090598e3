//! Sneakernet: bundles (and shared content) carried in a folder — a USB drive — from
//! one node to another.
//!
//! # Layout
//! ```text
//! DIR/ferry-dtn/README.txt                  what this folder is, for a person who finds it
//! DIR/ferry-dtn/bundles/<digest>.bundle     one RFC 9171 bundle per file, CBOR, as on the wire
//! DIR/ferry-dtn/acks.json                   delivery acknowledgements: [{"id", "expires_at"}]
//! DIR/ferry-dtn/content/<BLAKE3 hex>        a shared file's bytes
//! DIR/ferry-dtn/content/<BLAKE3 hex>.collection   a shared directory's manifest
//! ```
//! `<digest>` is the bundle id's [`BundleId::digest_hex`], so exporting the same
//! bundle twice writes one file, and a folder can gather bundles from several nodes.
//! Any DTN implementation can read `bundles/`: each file is one bundle, nothing else.
//!
//! Export never removes anything from the node (the folder may be lost on the way);
//! the copies are freed when the acknowledgements come back, by network or by folder.
//! Every file is written to a new temporary name, fsynced and renamed, so a drive
//! pulled out mid-export holds whole files only.
//!
//! The drive is a stranger's as much as a peer is: it may hold links, FIFOs,
//! devices and huge files planted where ferry reads and writes. Export writes only
//! into `ferry-dtn` folders that are real directories (a link is refused), through
//! files that no link can redirect ([`ferry_store::untrusted`]). Import reads only
//! regular files (no link followed, no FIFO or device opened) of bounded size
//! ([`MAX_BUNDLE_BYTES`], [`MAX_ACKS_FILE`], [`MAX_CONTENT_FILE`],
//! [`MAX_MANIFEST_BYTES`]), at most [`MAX_FOLDER_ENTRIES`] per folder, and checks
//! each as if it came from a peer: RFC 9171 parsing, de-duplication, content hashes.
//! `docs/protocols/sneakernet.md` says what whoever holds the drive learns and can do.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use ferry_core::content::{ContentId, ContentKind, MAX_MANIFEST_BYTES, Manifest};
use ferry_core::dtn::wire::Receipt;
use ferry_core::dtn::{Ack, BundleId, MAX_BUNDLE_BYTES, NodeId};
use ferry_store::BlobKind;
use ferry_store::untrusted::{self, UntrustedError};
use serde::{Deserialize, Serialize};

use super::Dtn;

/// The folder ferry writes inside the chosen directory.
pub const FOLDER: &str = "ferry-dtn";
const README: &str = "\
This folder carries delay-tolerant network data written by ferry.

bundles/*.bundle   RFC 9171 (Bundle Protocol 7) bundles, one per file, CBOR encoded.
acks.json          bundles known to be delivered, so carriers can free their copies.
content/           shared files (named by BLAKE3 hash) and directory manifests
                   (*.collection), for `ferry get`.

At the far end, run `ferry dtn import <the directory that holds this folder>`.
Nothing here is secret from whoever holds the drive: bundles are not encrypted.
";

/// The largest acks.json read (a million acks at most).
pub const MAX_ACKS_FILE: u64 = 128 * 1024 * 1024;
/// The largest content file imported from a folder: 64 GiB. Anything larger is
/// refused by its size before a byte is read, so a huge (or sparse) file on a
/// drive cannot keep an import hashing for hours, nor fill the store; larger
/// content travels over the network with `ferry get`.
pub const MAX_CONTENT_FILE: u64 = 64 << 30;
/// Entries read from one folder of the drive (`bundles/`, `content/`); the rest
/// are not read, and the report says so. Bounds the memory and time one import
/// takes whatever a drive holds.
pub const MAX_FOLDER_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExportReport {
    pub folder: String,
    /// Bundle files written (or already there, identical).
    pub bundles: u64,
    pub bytes: u64,
    pub acks: u64,
    /// Content blobs written (files and manifests).
    pub content: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportReport {
    pub folder: String,
    /// Stored here, to be carried on.
    pub stored: u64,
    /// Delivered to this node's inbox.
    pub delivered: u64,
    /// Already held or delivered.
    pub duplicates: u64,
    /// Not taken: (file, why).
    pub rejected: Vec<(String, String)>,
    /// Acknowledgements read, and the copies here they freed.
    pub acks: u64,
    pub freed: u64,
    /// Content blobs imported.
    pub content: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] ferry_store::StoreError),
    #[error("{0}")]
    Untrusted(#[from] UntrustedError),
    #[error("{0}")]
    Outgoing(#[from] super::OutgoingError),
    #[error("content {0} is not stored complete on this node; share or get it first")]
    NoContent(ContentId),
    #[error("{0}")]
    Other(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FolderError + '_ {
    move |source| FolderError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether `path` is already a regular file of `len` bytes (a link is not).
fn is_file_of(path: &Path, len: u64) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() == len)
}

/// Writes the bundles this node carries (only those for `to`, when given), the acks
/// it knows, and the content `content` names, into `DIR/ferry-dtn` (*blocking*).
pub fn export(
    dtn: &Dtn,
    dir: &Path,
    to: &[NodeId],
    content: &[ContentId],
) -> Result<ExportReport, FolderError> {
    // The directory the user named may be anything they chose (a link to the
    // drive, say); what ferry makes inside it must be real directories.
    fs::create_dir_all(dir).map_err(io(dir))?;
    let root = dir.join(FOLDER);
    untrusted::real_dir(&root, true)?;
    let bundles_dir = root.join("bundles");
    untrusted::real_dir(&bundles_dir, true)?;
    untrusted::write_file(&root, OsStr::new("README.txt"), README.as_bytes(), true)?;
    let mut report = ExportReport {
        folder: root.display().to_string(),
        ..ExportReport::default()
    };
    for meta in dtn.held(to) {
        let Some(bytes) = dtn.outgoing(&meta.id)? else {
            continue;
        };
        let name = bundle_file_name(&meta.id);
        if is_file_of(&bundles_dir.join(&name), bytes.len() as u64) {
            report.bundles += 1;
            continue;
        }
        untrusted::write_file(&bundles_dir, OsStr::new(&name), &bytes, true)?;
        report.bundles += 1;
        report.bytes += bytes.len() as u64;
    }
    untrusted::sync_dir(&bundles_dir)?;
    let mut acks = read_acks(&root)?;
    acks.extend(dtn.acks());
    acks.sort_by(|a, b| a.id.cmp(&b.id).then(b.expires_at.cmp(&a.expires_at)));
    acks.dedup_by(|a, b| a.id == b.id);
    report.acks = acks.len() as u64;
    let json = serde_json::to_vec_pretty(&acks).map_err(|e| FolderError::Other(e.to_string()))?;
    untrusted::write_file(&root, OsStr::new("acks.json"), &json, true)?;
    if !content.is_empty() {
        report.content = export_content(dtn, &root.join("content"), content)?;
    }
    untrusted::sync_dir(&root)?;
    tracing::info!(folder = %root.display(), bundles = report.bundles, acks = report.acks, content = report.content, "exported to folder");
    Ok(report)
}

/// Each named blob, and for a collection its manifest and every file in it.
fn export_content(dtn: &Dtn, dir: &Path, ids: &[ContentId]) -> Result<u64, FolderError> {
    untrusted::real_dir(dir, true)?;
    let store = dtn.store();
    let mut written = 0;
    let mut queue: Vec<ContentId> = ids.to_vec();
    while let Some(id) = queue.pop() {
        let info = store
            .blob(&id)?
            .filter(|info| info.complete)
            .ok_or(FolderError::NoContent(id))?;
        let path = match info.kind {
            ContentKind::Blob => dir.join(id.to_string()),
            ContentKind::Collection => {
                let manifest = Manifest::decode(&store.read_blob(&id, info.size)?)
                    .map_err(|e| FolderError::Other(format!("manifest {id}: {e}")))?;
                queue.extend(manifest.files().map(|(_, _, member, _)| member));
                dir.join(format!("{id}.collection"))
            }
        };
        if !is_file_of(&path, info.size) {
            // Written to a new temporary file and renamed over `path`: a link
            // planted there is replaced, not followed.
            store.export_blob(&id, &path, true)?;
        }
        written += 1;
    }
    untrusted::sync_dir(dir)?;
    Ok(written)
}

fn read_acks(root: &Path) -> Result<Vec<Ack>, FolderError> {
    let path = root.join("acks.json");
    if fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(Vec::new());
    }
    let bytes = untrusted::read_regular(&path, MAX_ACKS_FILE)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| FolderError::Other(format!("{} is not a list of acks: {e}", path.display())))
}

/// Reads `DIR/ferry-dtn` (or `DIR` itself, if it is that folder): every bundle is
/// received as if from the network, acks free the copies they name, content goes into
/// the store (*blocking*).
pub fn import(dtn: &Dtn, dir: &Path) -> Result<ImportReport, FolderError> {
    let exists = |path: &Path| fs::symlink_metadata(path).is_ok();
    let nested = dir.join(FOLDER);
    let root = if exists(&nested) {
        untrusted::real_dir(&nested, false)?;
        nested
    } else if exists(&dir.join("bundles")) || exists(&dir.join("acks.json")) {
        dir.to_owned()
    } else {
        return Err(FolderError::Other(format!(
            "{} holds no {FOLDER} folder; point at the directory `ferry dtn export` wrote to",
            dir.display()
        )));
    };
    let mut report = ImportReport {
        folder: root.display().to_string(),
        ..ImportReport::default()
    };
    match read_acks(&root) {
        Ok(acks) => {
            report.acks = acks.len() as u64;
            report.freed = dtn.on_acks(acks)? as u64;
        }
        Err(e) => {
            tracing::warn!("acks not imported: {e}");
            report
                .rejected
                .push((root.join("acks.json").display().to_string(), e.to_string()));
        }
    }
    let bundles_dir = root.join("bundles");
    if exists(&bundles_dir) {
        untrusted::real_dir(&bundles_dir, false)?;
        let mut files = list_folder(&bundles_dir, &mut report.rejected)?;
        files.retain(|p| p.extension().is_some_and(|x| x == "bundle"));
        files.sort();
        for path in files {
            let name = path.display().to_string();
            match read_bundle_file(&path).map(|bytes| dtn.receive(&bytes, None, None)) {
                Ok(Ok(Receipt::Stored)) => report.stored += 1,
                Ok(Ok(Receipt::Delivered(_))) => report.delivered += 1,
                Ok(Ok(_)) => report.duplicates += 1,
                // Each is in the report; the log gets the count only, so a
                // drive full of junk does not fill it.
                Ok(Err(rejection)) => {
                    tracing::debug!(file = %name, "bundle not imported: {}", rejection.reason);
                    report.rejected.push((name, rejection.reason));
                }
                Err(reason) => {
                    tracing::debug!(file = %name, "bundle not imported: {reason}");
                    report.rejected.push((name, reason));
                }
            }
        }
    }
    let content_dir = root.join("content");
    if exists(&content_dir) {
        untrusted::real_dir(&content_dir, false)?;
        report.content = import_content(dtn, &content_dir, &mut report.rejected)?;
    }
    tracing::info!(folder = %root.display(), stored = report.stored, delivered = report.delivered,
        duplicates = report.duplicates, rejected = report.rejected.len(), "imported from folder");
    Ok(report)
}

/// At most [`MAX_FOLDER_ENTRIES`] entries of `dir`; if there are more, the
/// report says so.
fn list_folder(
    dir: &Path,
    rejected: &mut Vec<(String, String)>,
) -> Result<Vec<PathBuf>, FolderError> {
    let (paths, more) = untrusted::list_dir(dir, MAX_FOLDER_ENTRIES)?;
    if more {
        rejected.push((
            dir.display().to_string(),
            format!(
                "more than {MAX_FOLDER_ENTRIES} entries; only the first {MAX_FOLDER_ENTRIES} read"
            ),
        ));
    }
    Ok(paths)
}

fn read_bundle_file(path: &Path) -> Result<Vec<u8>, String> {
    untrusted::read_regular(path, MAX_BUNDLE_BYTES as u64).map_err(|e| reason(&e))
}

/// Why a file was not taken, without its path (the report names the file).
fn reason(e: &UntrustedError) -> String {
    match e {
        UntrustedError::Io { source, .. } => source.to_string(),
        UntrustedError::Link(_) => "a symbolic link; not followed".into(),
        UntrustedError::NotAFile { kind, .. } => format!("{kind}, not a regular file; skipped"),
        UntrustedError::NotADirectory(_) => "not a directory".into(),
        UntrustedError::TooLarge { len, max, .. } => {
            format!("{len} bytes is over the {max}-byte limit")
        }
        UntrustedError::Exists(_) => "already exists".into(),
    }
}

/// Imports every content file whose bytes hash to its name; others are rejected.
fn import_content(
    dtn: &Dtn,
    dir: &Path,
    rejected: &mut Vec<(String, String)>,
) -> Result<u64, FolderError> {
    let store = dtn.store();
    let mut imported = 0;
    for path in list_folder(dir, rejected)? {
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if file_name.ends_with(".partial") {
            continue;
        }
        let (hex, kind) = match file_name.strip_suffix(".collection") {
            Some(hex) => (hex, BlobKind::Collection),
            None => (file_name, BlobKind::Blob),
        };
        let reject = |why: String| (path.display().to_string(), why);
        let Ok(claimed) = hex.parse::<ContentId>() else {
            rejected.push(reject("not named by a BLAKE3 hash".into()));
            continue;
        };
        let max = match kind {
            BlobKind::Blob => MAX_CONTENT_FILE,
            BlobKind::Collection => MAX_MANIFEST_BYTES as u64,
        };
        let mut file = match untrusted::open_regular(&path, max) {
            Ok((file, _)) => file,
            Err(e) => {
                rejected.push(reject(reason(&e)));
                continue;
            }
        };
        match hash_file(&file, max) {
            Ok(actual) if actual == claimed => {}
            Ok(actual) => {
                rejected.push(reject(format!("its bytes hash to {actual}, not its name")));
                continue;
            }
            Err(e) => {
                rejected.push(reject(e.to_string()));
                continue;
            }
        }
        if store.blob(&claimed)?.is_some_and(|b| b.complete) {
            imported += 1;
            continue;
        }
        file.rewind().map_err(io(&path))?;
        let info = match kind {
            BlobKind::Blob => store.import_open_file(&path, file, false, None, &mut |_| {})?,
            BlobKind::Collection => {
                let mut bytes = Vec::new();
                file.take(max).read_to_end(&mut bytes).map_err(io(&path))?;
                if let Err(e) = Manifest::decode(&bytes) {
                    rejected.push(reject(format!("not a collection manifest: {e}")));
                    continue;
                }
                store.import_bytes(&bytes, BlobKind::Collection, None)?
            }
        };
        debug_assert_eq!(info.id, claimed);
        imported += 1;
    }
    Ok(imported)
}

/// The hash of an opened file's first `max` bytes (it was checked to hold no more).
fn hash_file(file: &fs::File, max: u64) -> std::io::Result<ContentId> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(file.take(max))?;
    Ok(hasher.finalize().into())
}

/// The file a bundle is exported to: one name per bundle id, whoever exports it.
pub fn bundle_file_name(id: &BundleId) -> String {
    format!("{}.bundle", id.digest_hex())
}
