//! A real crash: a child process writes part of a download and aborts (no
//! destructors, no flush), then the parent reopens its store. What the child
//! wrote but did not commit is still in the files (the page cache survives the
//! process), and is recovered when the download is opened again, if it verifies.

use std::os::unix::fs::FileExt;

use bao_tree::io::outboard::PostOrderOutboard;
use bao_tree::io::sync::OutboardMut;
use ferry_core::content::GROUP_BYTES;

use super::*;
use crate::crash_child;

const SIZE: usize = (2 << 20) + 77;

fn seeder(root: &Path) -> (Store, DataDir, ContentId) {
    let (store, dir) = open(&root.join("seeder"));
    let id = store
        .import_bytes(&bytes(SIZE, 21), BlobKind::Blob, None)
        .unwrap()
        .id;
    (store, dir, id)
}

/// The child's part: groups 0..40 are committed with `flush_blob`, 60..100
/// are written but not committed (one call, so no batch comes due); then the
/// process aborts, the stores still open.
fn write_then_crash(root: &Path) -> ! {
    let (seeder, _s, id) = seeder(root);
    let (leecher, _l) = open(&root.join("leecher"));
    leecher
        .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();
    transfer(&seeder, &leecher, &id, &[(0, 20), (20, 40)]);
    leecher.flush_blob(&id).unwrap();
    transfer(&seeder, &leecher, &id, &[(60, 100)]);
    std::process::abort();
}

/// A fresh directory where a child process ran [`write_then_crash`]. Called
/// first by each test: in the child process, it does the child's part.
fn crashed() -> tempfile::TempDir {
    crash_child::child(write_then_crash);
    let tmp = tempfile::tempdir().unwrap();
    crash_child::crash(tmp.path(), &[]);
    tmp
}

/// The bitfield committed in the database, whatever is in memory.
fn committed(store: &Store, id: &ContentId) -> Bitfield {
    let txn = store.read().unwrap();
    read_bitfield(&txn.open_table(BITFIELDS).unwrap(), id, SIZE as u64).unwrap()
}

fn marked(have: &Bitfield) -> Vec<(u64, u64)> {
    let mut runs = Vec::new();
    let mut start = None;
    for g in 0..=have.groups() {
        match (g < have.groups() && have.get(g), start) {
            (true, None) => start = Some(g),
            (false, Some(s)) => {
                runs.push((s, g));
                start = None;
            }
            _ => {}
        }
    }
    runs
}

/// Every group marked in `leecher` is really there: it is served, verified,
/// to a third node. Then the download completes from `seeder` exactly.
fn check_and_finish(root: &Path, seeder: &Store, leecher: &Store, id: &ContentId) {
    let have = leecher.bitfield(id).unwrap().unwrap();
    let (third, _t) = open(&root.join("third"));
    third
        .begin_partial(id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();
    for g in (0..group_count(SIZE as u64)).filter(|&g| have.get(g)) {
        transfer(leecher, &third, id, &[(g, g + 1)]);
    }
    transfer(seeder, leecher, id, &have.missing_runs());
    assert_eq!(exported(leecher, id, root), bytes(SIZE, 21));
}

#[test]
fn a_crash_mid_download_keeps_only_groups_that_are_on_disk() {
    let tmp = crashed();

    let (seeder, _s, id) = seeder(tmp.path());
    let (leecher, _l) = open(&tmp.path().join("leecher"));
    let have = leecher.bitfield(&id).unwrap().unwrap();
    assert!((0..40).all(|g| have.get(g)), "flushed groups survive");
    assert!((40..60).all(|g| !have.get(g)));
    check_and_finish(tmp.path(), &seeder, &leecher, &id);
}

#[test]
fn groups_written_but_not_committed_before_a_crash_are_recovered_on_resume() {
    let tmp = crashed();
    let (seeder, _s, id) = seeder(tmp.path());
    let (leecher, _l) = open(&tmp.path().join("leecher"));
    assert_eq!(
        marked(&committed(&leecher, &id)),
        [(0, 40)],
        "the crash lost the marks"
    );

    let info = leecher
        .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();

    assert_eq!(info.verified_groups, 80);
    let have = leecher.bitfield(&id).unwrap().unwrap();
    assert_eq!(marked(&have), [(0, 40), (60, 100)]);
    assert_eq!(
        committed(&leecher, &id),
        have,
        "recovered groups are committed at once"
    );
    // Resuming again finds nothing more, and changes nothing.
    let again = leecher
        .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();
    assert_eq!(again.verified_groups, 80);
    check_and_finish(tmp.path(), &seeder, &leecher, &id);
}

#[test]
fn a_first_write_after_a_crash_also_recovers() {
    let tmp = crashed();
    let (seeder, _s, id) = seeder(tmp.path());
    let (leecher, _l) = open(&tmp.path().join("leecher"));

    // No begin_partial: the download state is first opened by a write.
    let encoded = seeder.encode_groups(&id, 40, 41).unwrap();
    assert_eq!(leecher.write_verified(&id, 40, 41, &encoded).unwrap(), 1);

    let have = leecher.bitfield(&id).unwrap().unwrap();
    assert_eq!(marked(&have), [(0, 41), (60, 100)]);
    assert_eq!(marked(&committed(&leecher, &id)), [(0, 40), (60, 100)]);
    check_and_finish(tmp.path(), &seeder, &leecher, &id);
}

#[test]
fn written_groups_damaged_on_disk_after_a_crash_are_not_recovered() {
    let tmp = crashed();
    let (seeder, _s, id) = seeder(tmp.path());
    let (leecher, _l) = open(&tmp.path().join("leecher"));
    let data = std::fs::OpenOptions::new()
        .write(true)
        .open(leecher.blobs.data_path(&id))
        .unwrap();
    // One byte of group 70, all of 80..82, and the last byte of 99.
    data.write_all_at(&[0xA5], 70 * GROUP_BYTES + 1000).unwrap();
    data.write_all_at(&vec![0; 2 * GROUP_BYTES as usize], 80 * GROUP_BYTES)
        .unwrap();
    data.write_all_at(&[0x5A], 100 * GROUP_BYTES - 1).unwrap();
    drop(data);

    let info = leecher
        .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();

    let have = leecher.bitfield(&id).unwrap().unwrap();
    assert_eq!(marked(&have), [(0, 40), (60, 70), (71, 80), (82, 99)]);
    assert_eq!(info.verified_groups, 40 + 10 + 9 + 17);
    assert_eq!(committed(&leecher, &id), have);
    check_and_finish(tmp.path(), &seeder, &leecher, &id);
}

#[test]
fn groups_under_damaged_hash_pairs_are_not_recovered() {
    let tmp = crashed();
    let (seeder, _s, id) = seeder(tmp.path());
    let (leecher, _l) = open(&tmp.path().join("leecher"));
    // Garbage in every hash pair under the node covering groups 64..72; the
    // data of those groups is intact.
    let tree = tree(SIZE as u64);
    let file = files::open_rw(&leecher.blobs.outboard_path(&id)).unwrap();
    let mut outboard = PostOrderOutboard {
        root: id.into(),
        tree,
        data: files::At(&file),
    };
    let span = ChunkNum(64 << GROUP_CHUNK_LOG)..ChunkNum(72 << GROUP_CHUNK_LOG);
    let garbage = (blake3::hash(b"left"), blake3::hash(b"right"));
    let mut damaged = 0;
    for node in tree.post_order_nodes_iter() {
        let range = node.chunk_range();
        if span.start <= range.start && range.end <= span.end {
            outboard.save(node, &garbage).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 4 + 2 + 1, "a subtree of 8 groups has 7 hash pairs");
    drop(file);

    leecher
        .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();

    let have = leecher.bitfield(&id).unwrap().unwrap();
    assert_eq!(marked(&have), [(0, 40), (60, 64), (72, 100)]);
    check_and_finish(tmp.path(), &seeder, &leecher, &id);
}

#[test]
fn a_partial_blob_with_nothing_written_recovers_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (seeder, _s, id) = seeder(tmp.path());
    {
        let (leecher, _l) = open(&tmp.path().join("leecher"));
        leecher
            .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
            .unwrap();
    }
    let (leecher, _l) = open(&tmp.path().join("leecher"));
    let info = leecher
        .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();
    assert_eq!(
        info.verified_groups, 0,
        "zeros in sparse files never verify"
    );
    check_and_finish(tmp.path(), &seeder, &leecher, &id);
}
