//! The largest write the store takes in one call (`MAX_ENCODE_GROUPS` groups,
//! 64 MiB less a group, under `FLUSH_BYTES`), never committed, is recovered
//! whole when the download is opened again after a crash.

use super::*;

/// A leecher holding a blob of 64 MiB and a bit whose last group is committed
/// and whose first `MAX_ENCODE_GROUPS - 1` groups were written in one call and
/// never committed, after a crash lost its download state (the in-memory
/// state is dropped without a commit, as the process dying would).
pub(super) struct Uncommitted {
    pub(super) leecher: Store,
    _dir: DataDir,
    pub(super) id: ContentId,
    pub(super) size: usize,
}

pub(super) fn written_not_committed(root: &Path) -> Uncommitted {
    let size = (64 << 20) + (32 << 10) + 100;
    let (seeder, _s) = open(&root.join("seeder"));
    let (leecher, dir) = open(&root.join("leecher"));
    let id = seeder
        .import_bytes(&bytes(size, 3), BlobKind::Blob, None)
        .unwrap()
        .id;
    leecher
        .begin_partial(&id, size as u64, BlobKind::Blob, None)
        .unwrap();
    // The last group first and committed, then 64 MiB less a group in one call:
    // less than FLUSH_BYTES, so nothing of it is committed.
    let groups = group_count(size as u64);
    transfer(&seeder, &leecher, &id, &[(groups - 1, groups)]);
    leecher.flush_blob(&id).unwrap();
    transfer(&seeder, &leecher, &id, &[(0, MAX_ENCODE_GROUPS - 1)]);
    assert_eq!(committed_count(&leecher, &id), 1);
    // A crash: the download state is lost without a commit.
    leecher.blobs.receiving_map().remove(&id);
    Uncommitted {
        leecher,
        _dir: dir,
        id,
        size,
    }
}

pub(super) fn committed_count(store: &Store, id: &ContentId) -> u64 {
    let txn = store.read().unwrap();
    let size = store.blob(id).unwrap().unwrap().size;
    read_bitfield(&txn.open_table(BITFIELDS).unwrap(), id, size)
        .unwrap()
        .count()
}

#[test]
fn the_largest_write_never_committed_is_recovered_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let u = written_not_committed(tmp.path());
    let info = u
        .leecher
        .begin_partial(&u.id, u.size as u64, BlobKind::Blob, None)
        .unwrap();
    assert_eq!(info.verified_groups, MAX_ENCODE_GROUPS);
    assert_eq!(committed_count(&u.leecher, &u.id), MAX_ENCODE_GROUPS);
}
