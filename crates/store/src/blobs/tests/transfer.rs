use std::sync::Arc;

use proptest::prelude::*;

use super::*;

const GROUP_BYTES_U64: u64 = ferry_core::content::GROUP_BYTES;

/// A seeder with one imported blob of `content` and a fresh leecher.
struct Pair {
    _tmp: tempfile::TempDir,
    seeder: (Store, DataDir),
    leecher: (Store, DataDir),
    id: ContentId,
    size: u64,
}

fn pair(content: &[u8]) -> Pair {
    let tmp = tempfile::tempdir().unwrap();
    let seeder = open(&tmp.path().join("seeder"));
    let leecher = open(&tmp.path().join("leecher"));
    let info = seeder
        .0
        .import_bytes(content, BlobKind::Blob, None)
        .unwrap();
    Pair {
        _tmp: tmp,
        seeder,
        leecher,
        id: info.id,
        size: info.size,
    }
}

impl Pair {
    fn seeder(&self) -> &Store {
        &self.seeder.0
    }

    fn leecher(&self) -> &Store {
        &self.leecher.0
    }

    fn begin(&self) -> BlobInfo {
        self.leecher()
            .begin_partial(&self.id, self.size, BlobKind::Blob, Some("x".into()))
            .unwrap()
    }
}

#[test]
fn every_size_transfers_group_by_group_and_completes() {
    for (i, &size) in SIZES.iter().enumerate() {
        let content = bytes(size, i as u64);
        let p = pair(&content);
        let info = p.begin();
        let groups = group_count(size as u64);
        assert_eq!(
            info.complete,
            size == 0,
            "an empty blob is complete at once"
        );
        assert_eq!(info.verified_groups, u64::from(size == 0), "size {size}");
        assert!(!info.pinned);
        transfer(p.seeder(), p.leecher(), &p.id, &ranges(size as u64, 1));
        let info = p.leecher().blob(&p.id).unwrap().unwrap();
        assert!(info.complete, "size {size}");
        assert_eq!(info.verified_groups, groups);
        assert_eq!(
            p.leecher().bitfield(&p.id).unwrap(),
            Some(Bitfield::full(groups).unwrap())
        );
        assert_eq!(exported(p.leecher(), &p.id, p._tmp.path()), content);
        assert_eq!(p.leecher().read_blob(&p.id, u64::MAX).unwrap(), content);
        // The leecher now seeds exactly what the seeder does.
        assert_eq!(
            p.leecher().encode_groups(&p.id, 0, groups).unwrap(),
            p.seeder().encode_groups(&p.id, 0, groups).unwrap()
        );
    }
}

#[test]
fn an_empty_blob_verifies_as_one_empty_group() {
    let p = pair(&[]);
    let encoded = p.seeder().encode_groups(&p.id, 0, 1).unwrap();
    assert!(encoded.is_empty());
    let info = p.begin();
    assert!(info.complete);
    // Receiving it again verifies and writes nothing.
    assert_eq!(
        p.leecher().write_verified(&p.id, 0, 5, &encoded).unwrap(),
        0
    );
    // The empty encoding is no proof for any other id.
    let other = ContentId::of(b"x");
    p.leecher()
        .begin_partial(&other, 0, BlobKind::Blob, None)
        .unwrap();
    let err = p
        .leecher()
        .write_verified(&other, 0, 1, &encoded)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReceiveError::BadData {
                reason: BadData::HashMismatch,
                verified: 0,
                ..
            }
        ),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Ranges of any length arriving in any order rebuild the exact bytes.
    #[test]
    fn ranges_in_random_order_rebuild_the_exact_bytes(
        size in prop_oneof![0usize..40_000, 40_000usize..700_000],
        step in 1u64..12,
        seed in any::<u64>(),
        order in any::<prop::sample::Index>(),
    ) {
        let content = bytes(size, seed);
        let p = pair(&content);
        p.begin();
        let mut todo = ranges(size as u64, step);
        // A deterministic shuffle from the sampled index.
        let mut shuffled = Vec::new();
        let mut k = order.index(usize::MAX);
        while !todo.is_empty() {
            shuffled.push(todo.remove(k % todo.len()));
            k = k / 7 + 13;
        }
        transfer(p.seeder(), p.leecher(), &p.id, &shuffled);
        let info = p.leecher().blob(&p.id).unwrap().unwrap();
        prop_assert!(info.complete);
        prop_assert_eq!(exported(p.leecher(), &p.id, p._tmp.path()), content);
    }
}

#[test]
fn a_flipped_byte_is_refused_and_the_good_prefix_kept() {
    let content = bytes(1 << 20, 3);
    let p = pair(&content);
    p.begin();
    let good = p.seeder().encode_groups(&p.id, 8, 16).unwrap();
    // The last byte belongs to the data of group 15.
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    let err = p.leecher().write_verified(&p.id, 8, 16, &bad).unwrap_err();
    match err {
        ReceiveError::BadData {
            verified,
            newly_verified,
            reason,
            first,
            last,
            ..
        } => {
            assert_eq!((verified, newly_verified, first, last), (7, 7, 8, 16));
            assert_eq!(reason, BadData::HashMismatch);
        }
        other => panic!("expected bad data, got {other}"),
    }
    let have = p.leecher().bitfield(&p.id).unwrap().unwrap();
    assert!((8..15).all(|g| have.get(g)));
    assert!(!have.get(15) && !have.get(7));
    // Only what verified is served, and it is right.
    p.leecher().encode_groups(&p.id, 8, 15).unwrap();
    assert!(matches!(
        p.leecher().encode_groups(&p.id, 8, 16),
        Err(StoreError::GroupsMissing { group: 15, .. })
    ));
    // The honest encoding then adds only the missing group.
    assert_eq!(p.leecher().write_verified(&p.id, 8, 16, &good).unwrap(), 1);

    // A flipped hash pair: nothing after it verifies.
    let good = p.seeder().encode_groups(&p.id, 20, 24).unwrap();
    let mut bad = good.clone();
    bad[3] ^= 0x80;
    let err = p.leecher().write_verified(&p.id, 20, 24, &bad).unwrap_err();
    assert!(
        matches!(
            err,
            ReceiveError::BadData {
                verified: 0,
                newly_verified: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(!p.leecher().bitfield(&p.id).unwrap().unwrap().get(20));
}

#[test]
fn truncated_or_padded_encodings_are_bad_data() {
    let content = bytes(200_000, 5);
    let p = pair(&content);
    p.begin();
    let good = p.seeder().encode_groups(&p.id, 0, 4).unwrap();
    let cut = &good[..good.len() - 100];
    let err = p.leecher().write_verified(&p.id, 0, 4, cut).unwrap_err();
    assert!(
        matches!(
            err,
            ReceiveError::BadData {
                verified: 3,
                reason: BadData::Truncated,
                ..
            }
        ),
        "{err}"
    );
    let mut padded = good.clone();
    padded.extend_from_slice(b"junk");
    let err = p
        .leecher()
        .write_verified(&p.id, 0, 4, &padded)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ReceiveError::BadData {
                verified: 4,
                newly_verified: 1,
                reason: BadData::TrailingBytes(4),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("the first 4 groups verified"),
        "{err}"
    );
    // A range of another blob's data does not verify either.
    let other = p
        .seeder()
        .import_bytes(&bytes(200_000, 6), BlobKind::Blob, None)
        .unwrap();
    let foreign = p.seeder().encode_groups(&other.id, 4, 8).unwrap();
    assert!(matches!(
        p.leecher().write_verified(&p.id, 4, 8, &foreign),
        Err(ReceiveError::BadData { verified: 0, .. })
    ));
}

#[test]
fn bad_requests_are_local_errors_not_bad_data() {
    let p = pair(&bytes(50_000, 1));
    let unknown = ContentId::of(b"unknown");
    assert!(matches!(
        p.leecher().write_verified(&unknown, 0, 1, &[]),
        Err(ReceiveError::Store(StoreError::BlobNotFound(_)))
    ));
    p.begin();
    assert!(matches!(
        p.leecher().write_verified(&p.id, 4, 9, &[]),
        Err(ReceiveError::Store(StoreError::RangeOutOfBlob {
            groups: 4,
            ..
        }))
    ));
    assert!(matches!(
        p.seeder().encode_groups(&p.id, 7, 8),
        Err(StoreError::RangeOutOfBlob { .. })
    ));
    let big = p
        .seeder()
        .import_bytes(&bytes(70 << 20, 2), BlobKind::Blob, None)
        .unwrap();
    assert!(matches!(
        p.seeder().encode_groups(&big.id, 0, MAX_ENCODE_GROUPS + 1),
        Err(StoreError::RangeTooLarge { asked: 4097, .. })
    ));
    let most = p
        .seeder()
        .encode_groups(&big.id, 1, MAX_ENCODE_GROUPS + 1)
        .unwrap();
    assert!(most.len() as u64 > MAX_ENCODE_GROUPS * 16_384);
    // Ranges past the end are clamped.
    assert_eq!(
        p.seeder().encode_groups(&p.id, 0, 100).unwrap(),
        p.seeder().encode_groups(&p.id, 0, 4).unwrap()
    );
    let err = p
        .leecher()
        .begin_partial(&p.id, 1, BlobKind::Blob, None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SizeMismatch {
                stored: 50_000,
                asked: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("ferry rm"), "{err}");
    let err = p
        .leecher()
        .begin_partial(&unknown, u64::MAX, BlobKind::Blob, None)
        .unwrap_err();
    assert!(matches!(err, StoreError::BlobTooLarge { .. }), "{err}");
}

#[test]
fn a_partial_blob_serves_the_groups_it_has_and_only_those() {
    let content = bytes(1 << 20, 8);
    let p = pair(&content);
    p.begin();
    transfer(p.seeder(), p.leecher(), &p.id, &[(0, 4), (40, 64)]);
    let info = p.leecher().blob(&p.id).unwrap().unwrap();
    assert_eq!((info.complete, info.verified_groups), (false, 28));
    assert!(matches!(
        p.leecher().encode_groups(&p.id, 2, 6),
        Err(StoreError::GroupsMissing { group: 4, .. })
    ));
    assert!(matches!(
        p.leecher().read_blob(&p.id, u64::MAX),
        Err(StoreError::BlobIncomplete {
            verified: 28,
            groups: 64,
            ..
        })
    ));
    let err = p
        .leecher()
        .export_blob(&p.id, &p._tmp.path().join("out"), false)
        .unwrap_err();
    assert!(err.to_string().contains("not complete yet"), "{err}");
    // A third node fetches from the leecher what it has, verified.
    let third = open(&p._tmp.path().join("third"));
    third
        .0
        .begin_partial(&p.id, p.size, BlobKind::Blob, None)
        .unwrap();
    transfer(p.leecher(), &third.0, &p.id, &[(1, 3), (40, 64)]);
    transfer(p.seeder(), &third.0, &p.id, &[(0, 1), (3, 40)]);
    assert_eq!(exported(&third.0, &p.id, p._tmp.path()), content);
}

#[test]
fn progress_survives_a_restart_and_the_download_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let content = bytes((1 << 20) + 123, 11);
    let (seeder, _s) = open(&tmp.path().join("seeder"));
    let id = seeder
        .import_bytes(&content, BlobKind::Blob, None)
        .unwrap()
        .id;
    let leecher_dir = tmp.path().join("leecher");
    {
        let (leecher, _l) = open(&leecher_dir);
        leecher
            .begin_partial(
                &id,
                content.len() as u64,
                BlobKind::Blob,
                Some("big".into()),
            )
            .unwrap();
        transfer(&seeder, &leecher, &id, &[(0, 10), (30, 40)]);
        // Dropping the store commits what is pending.
    }
    let (leecher, _l) = open(&leecher_dir);
    let have = leecher.bitfield(&id).unwrap().unwrap();
    assert_eq!(have.count(), 20);
    assert_eq!(have.missing_runs(), vec![(10, 30), (40, 65)]);
    let resumed = leecher
        .begin_partial(&id, content.len() as u64, BlobKind::Blob, None)
        .unwrap();
    assert_eq!(
        (resumed.verified_groups, resumed.name.as_deref()),
        (20, Some("big"))
    );
    for (first, last) in have.missing_runs() {
        transfer(&seeder, &leecher, &id, &[(first, last)]);
    }
    assert!(leecher.blob(&id).unwrap().unwrap().complete);
    assert_eq!(exported(&leecher, &id, tmp.path()), content);
}

#[test]
fn flush_blob_commits_without_a_restart() {
    let p = pair(&bytes(300_000, 12));
    p.begin();
    transfer(p.seeder(), p.leecher(), &p.id, &[(0, 5)]);
    let committed = |store: &Store| {
        let txn = store.read().unwrap();
        let table = txn.open_table(BITFIELDS).unwrap();
        read_bitfield(&table, &p.id, p.size).unwrap().count()
    };
    assert_eq!(
        committed(p.leecher()),
        0,
        "small writes wait for a batched fsync"
    );
    assert_eq!(p.leecher().bitfield(&p.id).unwrap().unwrap().count(), 5);
    p.leecher().flush_blob(&p.id).unwrap();
    assert_eq!(committed(p.leecher()), 5);
}

#[test]
fn ranges_of_one_blob_can_be_written_from_several_threads() {
    let content = bytes(3 << 20, 13);
    let p = Arc::new(pair(&content));
    p.begin();
    let all = ranges(p.size, 3);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let p = p.clone();
            // Each thread takes every fourth range, and they overlap a little.
            let mine: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 4 == t || i % 9 == 0)
                .map(|(_, r)| *r)
                .collect();
            std::thread::spawn(move || transfer(p.seeder(), p.leecher(), &p.id, &mine))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let info = p.leecher().blob(&p.id).unwrap().unwrap();
    assert!(info.complete);
    assert_eq!(exported(p.leecher(), &p.id, p._tmp.path()), content);
}

#[test]
fn data_for_a_complete_blob_is_verified_but_not_written() {
    let p = pair(&bytes(100_000, 14));
    let good = p.seeder().encode_groups(&p.id, 0, 7).unwrap();
    assert_eq!(p.seeder().write_verified(&p.id, 0, 7, &good).unwrap(), 0);
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    assert!(matches!(
        p.seeder().write_verified(&p.id, 0, 7, &bad),
        Err(ReceiveError::BadData {
            reason: BadData::HashMismatch,
            ..
        })
    ));
    assert_eq!(p.seeder().encode_groups(&p.id, 0, 7).unwrap(), good);
}

#[test]
fn encoding_into_a_buffer_appends_and_leaves_it_alone_on_error() {
    let p = pair(&bytes(100_000, 15));
    let mut buf = b"header".to_vec();
    p.seeder()
        .encode_groups_into(&p.id, 0, 3, &mut buf)
        .unwrap();
    assert_eq!(&buf[..6], b"header");
    assert_eq!(buf[6..], p.seeder().encode_groups(&p.id, 0, 3).unwrap());
    p.begin();
    let before = buf.clone();
    assert!(
        p.leecher()
            .encode_groups_into(&p.id, 0, 3, &mut buf)
            .is_err()
    );
    assert_eq!(buf, before);
    // A damaged copy fails midway; the buffer is restored too.
    std::fs::write(p.seeder().blobs.data_path(&p.id), bytes(100_000, 16)).unwrap();
    assert!(
        p.seeder()
            .encode_groups_into(&p.id, 0, 7, &mut buf)
            .is_err()
    );
    assert_eq!(buf, before);
}

#[test]
fn a_claimed_size_is_checked_against_the_last_group() {
    for (i, &size) in SIZES.iter().enumerate() {
        let p = pair(&bytes(size, 30 + i as u64));
        let size = size as u64;
        let n = group_count(size);
        let proof = p.seeder().encode_groups(&p.id, n - 1, n).unwrap();
        assert_eq!(verify_size(&p.id, size, &proof), Ok(()), "size {size}");
        for wrong in [
            size + 1,
            size.saturating_sub(1),
            size + GROUP_BYTES_U64,
            size * 2 + 5,
        ] {
            if wrong == size {
                continue;
            }
            assert!(
                verify_size(&p.id, wrong, &proof).is_err(),
                "{size} claimed as {wrong}"
            );
            let m = group_count(wrong);
            if let Ok(other) = p.seeder().encode_groups(&p.id, m - 1, m) {
                assert!(
                    verify_size(&p.id, wrong, &other).is_err(),
                    "{size} claimed as {wrong}"
                );
            }
        }
        let mut padded = proof.clone();
        padded.push(0);
        assert_eq!(
            verify_size(&p.id, size, &padded),
            Err(BadData::TrailingBytes(1))
        );
    }
    let id = ContentId::of(b"x");
    assert_eq!(
        verify_size(&id, u64::MAX, &[]),
        Err(BadData::TooLarge(u64::MAX))
    );
}

#[test]
fn receive_errors_say_whose_fault_they_are() {
    let p = pair(&bytes(100_000, 40));
    p.begin();
    let mut bad = p.seeder().encode_groups(&p.id, 0, 4).unwrap();
    *bad.last_mut().unwrap() ^= 1;
    let err = p.leecher().write_verified(&p.id, 0, 4, &bad).unwrap_err();
    assert!(err.is_bad_data());
    assert_eq!(err.verified_groups(), 3);
    let err = p
        .leecher()
        .write_verified(&ContentId::of(b"?"), 0, 4, &bad)
        .unwrap_err();
    assert!(!err.is_bad_data());
    assert_eq!(err.verified_groups(), 0);
}
