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
//! Every file is written to a temporary name, fsynced and renamed, so a drive pulled
//! out mid-export holds whole files only. Import checks every file as if it came from
//! a stranger: size limit, RFC 9171 parsing, de-duplication, content hashes.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use ferry_core::content::{ContentId, ContentKind, Manifest};
use ferry_core::dtn::wire::Receipt;
use ferry_core::dtn::{Ack, BundleId, MAX_BUNDLE_BYTES, NodeId};
use ferry_store::BlobKind;
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
const MAX_ACKS_FILE: u64 = 128 * 1024 * 1024;

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

/// Writes `bytes` to `path` whole or not at all.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FolderError> {
    let tmp = path.with_extension("partial");
    let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn sync_dir(dir: &Path) -> Result<(), FolderError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Writes the bundles this node carries (only those for `to`, when given), the acks
/// it knows, and the content `content` names, into `DIR/ferry-dtn` (*blocking*).
pub fn export(
    dtn: &Dtn,
    dir: &Path,
    to: &[NodeId],
    content: &[ContentId],
) -> Result<ExportReport, FolderError> {
    let root = dir.join(FOLDER);
    let bundles_dir = root.join("bundles");
    fs::create_dir_all(&bundles_dir).map_err(io(&bundles_dir))?;
    write_atomic(&root.join("README.txt"), README.as_bytes())?;
    let mut report = ExportReport {
        folder: root.display().to_string(),
        ..ExportReport::default()
    };
    for meta in dtn.held(to) {
        let Some(bytes) = dtn.outgoing(&meta.id).map_err(FolderError::Other)? else {
            continue;
        };
        let path = bundles_dir.join(bundle_file_name(&meta.id));
        if fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64) {
            report.bundles += 1;
            continue;
        }
        write_atomic(&path, &bytes)?;
        report.bundles += 1;
        report.bytes += bytes.len() as u64;
    }
    sync_dir(&bundles_dir)?;
    let mut acks = read_acks(&root)?;
    acks.extend(dtn.acks());
    acks.sort_by(|a, b| a.id.cmp(&b.id).then(b.expires_at.cmp(&a.expires_at)));
    acks.dedup_by(|a, b| a.id == b.id);
    report.acks = acks.len() as u64;
    let json = serde_json::to_vec_pretty(&acks).map_err(|e| FolderError::Other(e.to_string()))?;
    write_atomic(&root.join("acks.json"), &json)?;
    if !content.is_empty() {
        report.content = export_content(dtn, &root.join("content"), content)?;
    }
    sync_dir(&root)?;
    tracing::info!(folder = %root.display(), bundles = report.bundles, acks = report.acks, content = report.content, "exported to folder");
    Ok(report)
}

/// Each named blob, and for a collection its manifest and every file in it.
fn export_content(dtn: &Dtn, dir: &Path, ids: &[ContentId]) -> Result<u64, FolderError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
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
        if !fs::metadata(&path).is_ok_and(|m| m.len() == info.size) {
            store.export_blob(&id, &path, true)?;
        }
        written += 1;
    }
    sync_dir(dir)?;
    Ok(written)
}

fn read_acks(root: &Path) -> Result<Vec<Ack>, FolderError> {
    let path = root.join("acks.json");
    match fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
        Ok(m) if m.len() > MAX_ACKS_FILE => {
            return Err(FolderError::Other(format!(
                "{}: {} bytes is over the {MAX_ACKS_FILE}-byte limit",
                path.display(),
                m.len()
            )));
        }
        Ok(_) => {}
    }
    let bytes = fs::read(&path).map_err(io(&path))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| FolderError::Other(format!("{} is not a list of acks: {e}", path.display())))
}

/// Reads `DIR/ferry-dtn` (or `DIR` itself, if it is that folder): every bundle is
/// received as if from the network, acks free the copies they name, content goes into
/// the store (*blocking*).
pub fn import(dtn: &Dtn, dir: &Path) -> Result<ImportReport, FolderError> {
    let root = if dir.join(FOLDER).is_dir() {
        dir.join(FOLDER)
    } else if dir.join("bundles").is_dir() || dir.join("acks.json").is_file() {
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
    let acks = read_acks(&root)?;
    report.acks = acks.len() as u64;
    report.freed = dtn.on_acks(acks)? as u64;
    let bundles_dir = root.join("bundles");
    if bundles_dir.is_dir() {
        let mut files: Vec<PathBuf> = fs::read_dir(&bundles_dir)
            .map_err(io(&bundles_dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "bundle"))
            .collect();
        files.sort();
        for path in files {
            let name = path.display().to_string();
            match read_bundle_file(&path).map(|bytes| dtn.receive(&bytes, None, None)) {
                Ok(Ok(Receipt::Stored)) => report.stored += 1,
                Ok(Ok(Receipt::Delivered)) => report.delivered += 1,
                Ok(Ok(_)) => report.duplicates += 1,
                Ok(Err(rejection)) => {
                    tracing::warn!(file = %name, "bundle not imported: {}", rejection.reason);
                    report.rejected.push((name, rejection.reason));
                }
                Err(reason) => {
                    tracing::warn!(file = %name, "bundle not imported: {reason}");
                    report.rejected.push((name, reason));
                }
            }
        }
    }
    let content_dir = root.join("content");
    if content_dir.is_dir() {
        report.content = import_content(dtn, &content_dir, &mut report.rejected)?;
    }
    tracing::info!(folder = %root.display(), stored = report.stored, delivered = report.delivered,
        duplicates = report.duplicates, rejected = report.rejected.len(), "imported from folder");
    Ok(report)
}

fn read_bundle_file(path: &Path) -> Result<Vec<u8>, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len > MAX_BUNDLE_BYTES as u64 {
        return Err(format!(
            "{len} bytes is over the {MAX_BUNDLE_BYTES}-byte bundle limit"
        ));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_BUNDLE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// Imports every content file whose bytes hash to its name; others are rejected.
fn import_content(
    dtn: &Dtn,
    dir: &Path,
    rejected: &mut Vec<(String, String)>,
) -> Result<u64, FolderError> {
    let store = dtn.store();
    let mut imported = 0;
    for entry in fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
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
        match hash_file(&path) {
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
        let info = match kind {
            BlobKind::Blob => store.import_file(&path, false, None, &mut |_| {})?,
            BlobKind::Collection => {
                let bytes = fs::read(&path).map_err(io(&path))?;
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

fn hash_file(path: &Path) -> std::io::Result<ContentId> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(fs::File::open(path)?)?;
    Ok(hasher.finalize().into())
}

/// The file a bundle is exported to: one name per bundle id, whoever exports it.
pub fn bundle_file_name(id: &BundleId) -> String {
    format!("{}.bundle", id.digest_hex())
}
