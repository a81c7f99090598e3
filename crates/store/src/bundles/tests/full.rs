//! Bundles on a full disk: refused before it fills, nothing left behind when a
//! write fails, and the inbox's own quota.

use super::*;
use crate::{StorageState, StoreLimits};

fn open_full(path: &Path, limits: StoreLimits) -> (Store, crate::db::fault::DiskFull, DataDir) {
    let dir = DataDir::lock(path).unwrap();
    let (store, full) = Store::open_with_full_disk(&dir, limits);
    (store, full, dir)
}

fn no_reserve() -> StoreLimits {
    StoreLimits {
        reserve_bytes: 0,
        ..StoreLimits::default()
    }
}

#[test]
fn a_file_bundle_whose_commit_fails_leaves_no_file_and_the_store_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, full, _dir) = open_full(tmp.path(), no_reserve());
    let before = put(&store, Spec::new(1, 200_000));
    let (bytes, meta) = Spec::new(2, 300_000).build();

    full.set(true);
    let err = store
        .put_bundle(&bytes, &meta, &unlimited(), NOW)
        .unwrap_err();
    assert!(err.is_storage_failure(), "{err}");
    assert_eq!(tmp_files(&store), 0);
    assert_eq!(store.storage_health().state, StorageState::Full);
    assert_eq!(store.bundle_bytes(&meta.id).ok().flatten(), None);

    full.set(false);
    let other = Spec::new(3, 100_000).build();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while let Err(e) = store.put_bundle(&other.0, &other.1, &unlimited(), NOW) {
        assert!(std::time::Instant::now() < deadline, "still failing: {e}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        files(&store, "bundle"),
        2,
        "the failed bundle's file is gone once the database can tell"
    );
    let stored = store.put_bundle(&bytes, &meta, &unlimited(), NOW).unwrap();
    assert!(stored.new);
    assert_eq!(store.bundle_bytes(&before.1.id).unwrap(), Some(before.0));
    assert_eq!(store.bundle_bytes(&meta.id).unwrap(), Some(bytes));
    assert_eq!(store.storage_health().state, StorageState::Ok);
}

#[test]
fn the_reserve_refuses_a_bundle_with_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = StoreLimits {
        reserve_bytes: u64::MAX / 2,
        ..StoreLimits::default()
    };
    let (store, _full, _dir) = open_full(tmp.path(), limits);
    let (bytes, meta) = Spec::new(1, 100_000).build();
    let err = store
        .put_bundle(&bytes, &meta, &unlimited(), NOW)
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::NoSpace { needed, .. } if needed == bytes.len() as u64),
        "{text}"
    );
    assert!(
        text.contains("a DTN bundle") && text.contains("free"),
        "{text}"
    );
    let err = store.deliver_to_inbox(&bytes, &meta, NOW).unwrap_err();
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
    assert!(store.bundle_metas().unwrap().is_empty());
    assert_eq!(files(&store, "bundle") + files(&store, "inbox"), 0);
}

#[test]
fn the_inbox_has_a_quota_of_bundles_and_of_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let limits = StoreLimits {
        reserve_bytes: 0,
        inbox_max_bundles: 2,
        inbox_max_bytes: 250_000,
    };
    let (store, _full, dir) = open_full(tmp.path(), limits);
    let a = Spec::new(1, 1_000).build();
    let b = Spec::new(2, 1_000).build();
    let c = Spec::new(3, 1_000).build();
    assert!(store.deliver_to_inbox(&a.0, &a.1, NOW).unwrap());
    assert!(store.deliver_to_inbox(&b.0, &b.1, NOW).unwrap());
    let err = store.deliver_to_inbox(&c.0, &c.1, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::InboxFull {
                count: 2,
                max_count: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(store.remove_from_inbox(&a.1.id).unwrap());
    assert!(store.deliver_to_inbox(&c.0, &c.1, NOW).unwrap());

    // Bytes: counted from the disk after a restart too.
    drop(store);
    let (store, _full) = Store::open_with_full_disk(&dir, limits);
    assert!(store.remove_from_inbox(&b.1.id).unwrap());
    let big = Spec::new(4, 300_000).build();
    let err = store.deliver_to_inbox(&big.0, &big.1, NOW).unwrap_err();
    assert!(matches!(err, StoreError::InboxFull { .. }), "{err}");
    assert_eq!(files(&store, "inbox"), 0);
    assert_eq!(store.inbox().unwrap().len(), 1);
}
