//! A real crash: a child process writes part of a download and aborts (no
//! destructors, no flush), then the parent reopens its store.

use std::process::{Command, Stdio};

use super::*;

const CHILD_ENV: &str = "FERRY_STORE_CRASH_CHILD";
const SIZE: usize = (2 << 20) + 77;

fn seeder(root: &Path) -> (Store, DataDir, ContentId) {
    let (store, dir) = open(&root.join("seeder"));
    let id = store
        .import_bytes(&bytes(SIZE, 21), BlobKind::Blob, None)
        .unwrap()
        .id;
    (store, dir, id)
}

/// Run only as the child of the test below: groups 0..40 are committed with
/// `flush_blob`, 60..100 are written but not committed, then the process aborts.
#[test]
fn crash_child() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let root = PathBuf::from(root);
    let (seeder, _s, id) = seeder(&root);
    let (leecher, _l) = open(&root.join("leecher"));
    leecher
        .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();
    transfer(&seeder, &leecher, &id, &[(0, 20), (20, 40)]);
    leecher.flush_blob(&id).unwrap();
    transfer(&seeder, &leecher, &id, &[(60, 80), (80, 100)]);
    std::process::abort();
}

#[test]
fn a_crash_mid_download_keeps_only_groups_that_are_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "blobs::tests::crash::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, tmp.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have aborted");

    let (seeder, _s, id) = seeder(tmp.path());
    let (leecher, _l) = open(&tmp.path().join("leecher"));
    let have = leecher.bitfield(&id).unwrap().unwrap();
    assert!((0..40).all(|g| have.get(g)), "flushed groups survive");
    assert!((40..60).all(|g| !have.get(g)));
    // Every group marked is really there: it is served, verified, to a third node.
    let (third, _t) = open(&tmp.path().join("third"));
    third
        .begin_partial(&id, SIZE as u64, BlobKind::Blob, None)
        .unwrap();
    for g in (0..group_count(SIZE as u64)).filter(|&g| have.get(g)) {
        transfer(&leecher, &third, &id, &[(g, g + 1)]);
    }
    // And the download resumes from there.
    let missing = have.missing_runs();
    transfer(&seeder, &leecher, &id, &missing);
    assert_eq!(exported(&leecher, &id, tmp.path()), bytes(SIZE, 21));
}
