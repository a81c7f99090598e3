mod crash;
mod import;
mod lifecycle;
mod recovery;
mod speed;
mod transfer;

use std::path::{Path, PathBuf};

use ferry_core::content::{ContentId, group_count};

use super::*;
use crate::DataDir;

/// Sizes around the group boundaries, and one of many groups.
const SIZES: [usize; 5] = [0, 1, 16 << 10, (16 << 10) + 1, (1 << 20) + 123];

/// Store first, so it is dropped before the directory lock is released.
fn open(path: &Path) -> (Store, DataDir) {
    let dir = DataDir::lock(path).unwrap();
    (Store::open(&dir).unwrap(), dir)
}

/// `len` pseudo-random bytes, different for each seed.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn write_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn import(store: &Store, path: &Path, in_place: bool) -> BlobInfo {
    store
        .import_file(path, in_place, None, &mut |_| {})
        .unwrap()
}

/// Moves groups `ranges` of blob `id` from `from` to `to` (which must have begun
/// the partial), one encoding per range.
fn transfer(from: &Store, to: &Store, id: &ContentId, ranges: &[(u64, u64)]) {
    for &(first, last) in ranges {
        let encoded = from.encode_groups(id, first, last).unwrap();
        to.write_verified(id, first, last, &encoded).unwrap();
    }
}

/// Ranges of `step` groups covering a blob of `size` bytes.
fn ranges(size: u64, step: u64) -> Vec<(u64, u64)> {
    let groups = group_count(size);
    (0..groups)
        .step_by(step as usize)
        .map(|g| (g, (g + step).min(groups)))
        .collect()
}

fn exported(store: &Store, id: &ContentId, dir: &Path) -> Vec<u8> {
    let dest = dir.join(format!("export-{id}"));
    store.export_blob(id, &dest, true).unwrap();
    std::fs::read(dest).unwrap()
}

fn tmp_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs/tmp")).unwrap().count()
}
