use std::io::Write;

use super::*;

#[test]
fn a_file_shared_in_place_and_then_changed_is_no_longer_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("node"));
    let content = bytes(200_000, 1);
    let path = write_file(tmp.path(), "shared", &content);
    let info = import(&store, &path, true);
    store.encode_groups(&info.id, 0, 13).unwrap();

    // Same size, same mtime, one byte different: caught by verification.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut changed = content.clone();
    changed[150_000] ^= 1;
    std::fs::write(&path, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    // Groups before the change are still what was shared...
    store.encode_groups(&info.id, 0, 9).unwrap();
    // ...the changed one is refused, and from then on everything is.
    let err = store.encode_groups(&info.id, 9, 10).unwrap_err();
    assert!(matches!(err, StoreError::BlobChanged { .. }), "{err}");
    assert!(err.to_string().contains("no longer served"), "{err}");
    assert!(store.blob(&info.id).unwrap().unwrap().stale);
    assert!(matches!(
        store.encode_groups(&info.id, 0, 1),
        Err(StoreError::BlobChanged { .. })
    ));
    assert!(matches!(
        store.read_blob(&info.id, u64::MAX),
        Err(StoreError::BlobChanged { .. })
    ));
    // The file itself is never touched.
    assert_eq!(std::fs::read(&path).unwrap(), changed);

    // Sharing it again serves the new content under its new id; the old
    // content comes back if the file is restored and shared again.
    let new = import(&store, &path, true);
    assert_ne!(new.id, info.id);
    store.encode_groups(&new.id, 0, 13).unwrap();
    std::fs::write(&path, &content).unwrap();
    let back = import(&store, &path, true);
    assert_eq!(back.id, info.id);
    assert!(!back.stale);
    store.encode_groups(&info.id, 0, 13).unwrap();
}

#[test]
fn a_change_of_size_or_a_deleted_file_is_caught_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("node"));
    let a = write_file(tmp.path(), "a", &bytes(50_000, 2));
    let b = write_file(tmp.path(), "b", &bytes(50_000, 3));
    let a_info = import(&store, &a, true);
    let b_info = import(&store, &b, true);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&a)
        .unwrap()
        .write_all(b"x")
        .unwrap();
    assert!(matches!(
        store.encode_groups(&a_info.id, 0, 1),
        Err(StoreError::BlobChanged { .. })
    ));
    std::fs::remove_file(&b).unwrap();
    assert!(matches!(
        store.encode_groups(&b_info.id, 0, 1),
        Err(StoreError::BlobChanged { .. })
    ));
    let stale: Vec<bool> = store.blobs().unwrap().iter().map(|i| i.stale).collect();
    assert_eq!(stale, vec![true, true]);
}

#[test]
fn a_damaged_copy_in_the_store_is_reported_and_not_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("node"));
    let content = bytes(100_000, 4);
    let info = store.import_bytes(&content, BlobKind::Blob, None).unwrap();
    let data = store.blobs.data_path(&info.id);
    let mut damaged = content.clone();
    damaged[5] ^= 1;
    std::fs::write(&data, &damaged).unwrap();
    let err = store.encode_groups(&info.id, 0, 7).unwrap_err();
    assert!(matches!(err, StoreError::BlobCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("ferry rm"), "{err}");
    assert!(store.blob(&info.id).unwrap().unwrap().stale);
    // Importing the content again repairs it.
    let again = store.import_bytes(&content, BlobKind::Blob, None).unwrap();
    assert!(!again.stale);
    assert_eq!(
        store.encode_groups(&info.id, 0, 7).unwrap().len() as u64,
        100_000 + 6 * 64
    );
}

#[test]
fn remove_deletes_store_files_but_never_a_file_shared_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("node"));
    let copied = import(
        &store,
        &write_file(tmp.path(), "c", &bytes(40_000, 5)),
        false,
    );
    let path = write_file(tmp.path(), "p", &bytes(40_000, 6));
    let in_place = import(&store, &path, true);
    let partial = ContentId::of(&bytes(70_000, 7));
    store
        .begin_partial(&partial, 70_000, BlobKind::Blob, None)
        .unwrap();
    let files = |id: &ContentId| {
        [store.blobs.data_path(id), store.blobs.outboard_path(id)].map(|p| p.exists())
    };
    assert_eq!(files(&copied.id), [true, true]);
    assert_eq!(files(&in_place.id), [false, true]);
    assert_eq!(files(&partial), [true, true]);
    for id in [copied.id, in_place.id, partial] {
        assert!(store.remove_blob(&id).unwrap());
        assert_eq!(files(&id), [false, false]);
        assert_eq!(store.blob(&id).unwrap(), None);
        assert!(!store.remove_blob(&id).unwrap());
    }
    assert!(path.exists());
    assert!(store.blobs().unwrap().is_empty());
    assert!(matches!(
        store.encode_groups(&copied.id, 0, 1),
        Err(StoreError::BlobNotFound(_))
    ));
}

#[test]
fn export_refuses_to_overwrite_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("node"));
    let content = bytes(123_456, 8);
    let info = store.import_bytes(&content, BlobKind::Blob, None).unwrap();
    let dest = tmp.path().join("out/nested/file");
    store.export_blob(&info.id, &dest, false).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    std::fs::write(&dest, b"precious").unwrap();
    let err = store.export_blob(&info.id, &dest, false).unwrap_err();
    assert!(matches!(err, StoreError::Exists(_)), "{err}");
    // The CLI adds the advice (`--force`); the store names no flag.
    assert!(
        err.to_string().contains(&dest.display().to_string()) && !err.to_string().contains("--"),
        "{err}"
    );
    assert_eq!(std::fs::read(&dest).unwrap(), b"precious");
    store.export_blob(&info.id, &dest, true).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_ne!(
            mode & 0o044,
            0,
            "readable like any new file, not 0600: {mode:o}"
        );
    }
    // No temporary file is left beside it.
    let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap()).unwrap().collect();
    assert_eq!(left.len(), 1);
    let empty = store.import_bytes(&[], BlobKind::Blob, None).unwrap();
    let empty_dest = tmp.path().join("empty");
    store.export_blob(&empty.id, &empty_dest, false).unwrap();
    assert_eq!(std::fs::read(&empty_dest).unwrap(), b"");
}

#[test]
fn opening_the_store_removes_what_interrupted_writes_left() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("node");
    let (kept, in_place, orphan) = {
        let (store, _dir) = open(&node);
        let kept = store
            .import_bytes(b"kept", BlobKind::Blob, None)
            .unwrap()
            .id;
        let path = write_file(tmp.path(), "p", b"in place");
        let in_place = import(&store, &path, true).id;
        let orphan = ContentId::of(b"orphan");
        (kept, in_place, orphan)
    };
    let blobs = node.join("blobs");
    std::fs::write(blobs.join("tmp/import-half"), b"half a file").unwrap();
    let shard = blobs.join(hex2(&orphan));
    std::fs::create_dir_all(&shard).unwrap();
    let orphan_data = shard.join(format!("{orphan}.data"));
    std::fs::write(&orphan_data, b"orphan").unwrap();
    let stray_data = blobs.join(hex2(&in_place)).join(format!("{in_place}.data"));
    std::fs::write(&stray_data, b"in place").unwrap();
    let unrelated = shard.join("README");
    std::fs::write(&unrelated, b"not ours").unwrap();

    let (store, _dir) = open(&node);
    assert_eq!(tmp_entries(&node), 0);
    assert!(!orphan_data.exists() && !stray_data.exists());
    assert!(unrelated.exists());
    assert_eq!(store.read_blob(&kept, 100).unwrap(), b"kept");
    store.encode_groups(&in_place, 0, 1).unwrap();
}

#[test]
fn pinning_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let id = ContentId::of(&bytes(1000, 1));
    assert!(
        !store
            .begin_partial(&id, 1000, BlobKind::Blob, None)
            .unwrap()
            .pinned
    );
    assert!(store.set_pinned(&id, true).unwrap());
    assert!(store.blob(&id).unwrap().unwrap().pinned);
    assert!(!store.set_pinned(&ContentId::of(b"none"), true).unwrap());
}

#[test]
fn a_download_moved_out_is_served_from_its_new_place_until_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("data"));
    let content = bytes(300_000, 7);
    let info = import(&store, &write_file(tmp.path(), "src", &content), false);
    let dest = tmp.path().join("out").join("file.bin");

    store.move_blob_out(&info.id, &dest, false).unwrap();

    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert!(
        !store.blobs.data_path(&info.id).exists(),
        "moved, not copied"
    );
    let moved = store.blob(&info.id).unwrap().unwrap();
    assert_eq!(moved.in_place, Some(std::fs::canonicalize(&dest).unwrap()));
    assert!(store.encode_groups(&info.id, 0, 2).is_ok(), "still served");
    assert!(matches!(
        store.move_blob_out(&info.id, &tmp.path().join("src"), false),
        Err(StoreError::Exists(_))
    ));

    std::fs::write(&dest, b"edited by the user").unwrap();
    assert!(
        store.encode_groups(&info.id, 0, 2).is_err(),
        "a changed file is not served"
    );
}
