use super::*;

#[test]
fn an_imported_file_is_identified_by_its_blake3_hash() {
    let tmp = tempfile::tempdir().unwrap();
    for in_place in [false, true] {
        // One store per mode, as equal content (the empty files) is stored once.
        let node = tmp.path().join(format!("node-{in_place}"));
        let (store, _dir) = open(&node);
        for (i, &size) in SIZES.iter().enumerate() {
            let content = bytes(size, i as u64 * 2 + u64::from(in_place));
            let path = write_file(tmp.path(), &format!("f{i}-{in_place}"), &content);
            let mut reported = Vec::new();
            let info = store
                .import_file(&path, in_place, Some("f".into()), &mut |n| reported.push(n))
                .unwrap();
            assert_eq!(
                info.id,
                ContentId::from(blake3::hash(&content)),
                "size {size}"
            );
            assert_eq!(info.size, size as u64);
            assert!(info.complete && info.pinned && !info.stale);
            assert_eq!(info.verified_groups, group_count(size as u64));
            assert_eq!(info.kind, BlobKind::Blob);
            assert_eq!(info.name.as_deref(), Some("f"));
            assert_eq!(reported.last().copied().unwrap_or(0), size as u64);
            assert!(reported.windows(2).all(|w| w[0] < w[1]));
            let data = store.blobs.data_path(&info.id);
            if in_place {
                assert_eq!(info.in_place, Some(std::fs::canonicalize(&path).unwrap()));
                assert!(!data.exists());
            } else {
                assert_eq!(info.in_place, None);
                assert_eq!(std::fs::read(&data).unwrap(), content);
            }
            let outboard = std::fs::metadata(store.blobs.outboard_path(&info.id)).unwrap();
            assert_eq!(outboard.len(), tree(size as u64).outboard_size());
            assert_eq!(store.blob(&info.id).unwrap(), Some(info.clone()));
            assert_eq!(exported(&store, &info.id, tmp.path()), content);
        }
        assert_eq!(store.blobs().unwrap().len(), SIZES.len());
        assert_eq!(tmp_entries(&node), 0);
    }
}

#[test]
fn the_outboard_hashes_are_those_bao_tree_computes_in_memory() {
    use bao_tree::io::outboard::PostOrderMemOutboard;
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("node"));
    let content = bytes((1 << 20) + 123, 9);
    let info = store.import_bytes(&content, BlobKind::Blob, None).unwrap();
    let expected = PostOrderMemOutboard::create(&content, block_size());
    assert_eq!(ContentId::from(expected.root), info.id);
    let stored = std::fs::read(store.blobs.outboard_path(&info.id)).unwrap();
    assert_eq!(stored, expected.data);
}

#[test]
fn importing_the_same_content_twice_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let node = tmp.path().join("node");
    let (store, _dir) = open(&node);
    let content = bytes(100_000, 1);
    let a = write_file(tmp.path(), "a", &content);
    let b = write_file(tmp.path(), "b", &content);
    let first = store
        .import_file(&a, false, Some("a".into()), &mut |_| {})
        .unwrap();
    let again = store
        .import_file(&a, false, Some("a".into()), &mut |_| {})
        .unwrap();
    let other_name = store
        .import_file(&b, true, Some("b".into()), &mut |_| {})
        .unwrap();
    assert_eq!(first, again);
    // The copy already stored stays the one served; the first name is kept.
    assert_eq!(other_name, first);
    assert_eq!(store.blobs().unwrap(), vec![first.clone()]);
    let manifest = store
        .import_bytes(&content, BlobKind::Collection, None)
        .unwrap();
    assert_eq!(manifest.kind, BlobKind::Collection);
    assert_eq!(manifest.name.as_deref(), Some("a"));
    assert_eq!(tmp_entries(&node), 0);
    let shard = std::fs::read_dir(store.blobs.shard_dir(&first.id))
        .unwrap()
        .count();
    assert_eq!(shard, 2, "one data file and one outboard");
}

#[test]
fn small_blobs_read_back_whole_within_a_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let manifest = b"a manifest".to_vec();
    let info = store
        .import_bytes(&manifest, BlobKind::Collection, Some("dir".into()))
        .unwrap();
    assert_eq!(info.id, ContentId::of(&manifest));
    assert!(info.pinned && info.complete);
    assert_eq!(store.read_blob(&info.id, 100).unwrap(), manifest);
    let err = store.read_blob(&info.id, 5).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::BlobOverLimit {
                size: 10,
                max: 5,
                ..
            }
        ),
        "{err}"
    );
    let empty = store.import_bytes(&[], BlobKind::Blob, None).unwrap();
    assert_eq!(store.read_blob(&empty.id, 0).unwrap(), Vec::<u8>::new());
    let unknown = ContentId::of(b"nothing");
    assert!(matches!(
        store.read_blob(&unknown, 100),
        Err(StoreError::BlobNotFound(_))
    ));
}

#[test]
fn importing_what_is_not_a_readable_file_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("node"));
    let err = store
        .import_file(tmp.path(), false, None, &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, StoreError::NotAFile(_)), "{err}");
    let missing = tmp.path().join("missing");
    let err = store
        .import_file(&missing, false, None, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    assert!(store.blobs().unwrap().is_empty());
}

#[test]
fn a_file_changing_while_it_is_hashed_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(&tmp.path().join("node"));
    let path = write_file(tmp.path(), "growing", &bytes(3 << 20, 4));
    let mut appended = false;
    let err = store
        .import_file(&path, true, None, &mut |done| {
            if done > 1 << 20 && !appended {
                appended = true;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                std::io::Write::write_all(&mut f, b"more").unwrap();
            }
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::ChangedWhileImporting(_)), "{err}");
    assert!(store.blobs().unwrap().is_empty());
}
