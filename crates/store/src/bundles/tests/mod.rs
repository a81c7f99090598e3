mod crash;
mod full;

use std::path::Path;

use ferry_core::dtn::{Bundle, Eid, NewBundle, Router, Strategy};

use super::*;
use crate::DataDir;

/// This node.
const LOCAL: &str = "bus";
const NOW: DtnMillis = 1_000_000;
const LONG: u64 = 1_000_000_000;

/// Store first, so it is dropped before the directory lock is released.
fn open(path: &Path) -> (Store, DataDir) {
    let dir = DataDir::lock(path).unwrap();
    (Store::open(&dir).unwrap(), dir)
}

fn reopen(store: Store, dir: &DataDir) -> Store {
    drop(store);
    Store::open(dir).unwrap()
}

fn local() -> NodeId {
    NodeId::dtn(LOCAL).unwrap()
}

/// `len` pseudo-random bytes, different for each seed.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

struct Spec {
    from: &'static str,
    n: u64,
    len: usize,
    priority: Priority,
    lifetime_ms: u64,
}

impl Spec {
    fn new(n: u64, len: usize) -> Self {
        Self {
            from: "village",
            n,
            len,
            priority: Priority::Normal,
            lifetime_ms: LONG,
        }
    }

    fn own(self) -> Self {
        Self {
            from: LOCAL,
            ..self
        }
    }

    fn priority(self, priority: Priority) -> Self {
        Self { priority, ..self }
    }

    fn lifetime(self, lifetime_ms: u64) -> Self {
        Self {
            lifetime_ms,
            ..self
        }
    }

    /// A real RFC 9171 bundle's bytes, and its meta as this node holds it.
    fn build(&self) -> (Vec<u8>, BundleMeta) {
        let bundle = Bundle::new(NewBundle {
            source: Eid::dtn(self.from, "chat").unwrap(),
            destination: Eid::dtn("town", "chat").unwrap(),
            created: CreationTimestamp {
                time: NOW + self.n,
                seq: 0,
            },
            lifetime_ms: self.lifetime_ms,
            priority: self.priority,
            payload: payload(self.len, self.n),
        })
        .unwrap();
        let bytes = bundle.to_bytes();
        let own = self.from == LOCAL;
        let from = (!own).then(|| NodeId::dtn(self.from).unwrap());
        let meta = bundle.meta(bytes.len() as u64, own, from, NOW);
        (bytes, meta)
    }
}

fn unlimited() -> Quota {
    Quota {
        max_bytes: u64::MAX,
        max_bytes_per_peer: None,
    }
}

fn put(store: &Store, spec: Spec) -> (Vec<u8>, BundleMeta) {
    let (bytes, meta) = spec.build();
    let stored = store.put_bundle(&bytes, &meta, &unlimited(), NOW).unwrap();
    assert!(stored.new);
    assert_eq!(stored.meta, meta);
    (bytes, meta)
}

fn files(store: &Store, ext: &str) -> usize {
    fs::read_dir(&store.bundles.dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .ends_with(&format!(".{ext}"))
        })
        .count()
}

fn tmp_files(store: &Store) -> usize {
    fs::read_dir(store.bundles.dir.join(TMP_DIR))
        .unwrap()
        .count()
}

#[test]
fn two_thousand_small_bundles_put_read_back_and_survive_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    let mut stored = Vec::new();
    for n in 0..2_000 {
        stored.push(put(&store, Spec::new(n, 100 + (n as usize % 300))));
    }
    let check = |store: &Store| {
        let metas = store.bundle_metas().unwrap();
        assert_eq!(metas.len(), 2_000);
        for (bytes, meta) in &stored {
            assert_eq!(store.bundle_bytes(&meta.id).unwrap().as_ref(), Some(bytes));
            assert!(metas.contains(meta));
            // What was stored is a bundle again, the same one.
            assert_eq!(Bundle::parse(bytes).unwrap().id(), &meta.id);
        }
    };
    check(&store);
    assert_eq!(
        files(&store, "bundle"),
        0,
        "small bundles live in the database"
    );
    let store = reopen(store, &dir);
    check(&store);
}

#[test]
fn a_batch_is_stored_in_one_go_and_duplicates_are_noted() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    let built: Vec<_> = (0..500).map(|n| Spec::new(n, 50).build()).collect();
    let mut batch: Vec<(&[u8], &BundleMeta)> =
        built.iter().map(|(b, m)| (b.as_slice(), m)).collect();
    batch.push(batch[7]);
    let results = store.put_bundles(&batch, &unlimited(), NOW).unwrap();
    assert_eq!(results.len(), 501);
    assert!(results[..500].iter().all(|r| r.as_ref().unwrap().new));
    assert!(!results[500].as_ref().unwrap().new);
    let store = reopen(store, &dir);
    assert_eq!(store.bundle_metas().unwrap().len(), 500);
    for (bytes, meta) in &built {
        assert_eq!(store.bundle_bytes(&meta.id).unwrap().as_ref(), Some(bytes));
    }
}

#[test]
fn putting_the_same_bundle_twice_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let (bytes, meta) = put(&store, Spec::new(1, 10));
    let again = store.put_bundle(&bytes, &meta, &unlimited(), NOW).unwrap();
    assert!(!again.new);
    // Even other bytes under the same id: the first copy stays.
    let other = store
        .put_bundle(b"something else", &meta, &unlimited(), NOW)
        .unwrap();
    assert!(!other.new);
    assert_eq!(store.bundle_bytes(&meta.id).unwrap(), Some(bytes));
    assert_eq!(store.bundle_metas().unwrap(), vec![meta]);
}

#[test]
fn large_bundles_are_files_written_before_their_row_and_removed_after() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    let (big, big_meta) = put(&store, Spec::new(1, 5 << 20));
    let (edge, edge_meta) = put(&store, Spec::new(2, INLINE_MAX - 200));
    assert!(big.len() > INLINE_MAX);
    assert!(edge.len() <= INLINE_MAX, "{}", edge.len());
    assert_eq!(files(&store, "bundle"), 1);
    assert_eq!(tmp_files(&store), 0);
    assert!(
        store
            .bundles
            .dir
            .join(format!("{}.bundle", big_meta.id.digest_hex()))
            .exists()
    );
    let store = reopen(store, &dir);
    assert_eq!(store.bundle_bytes(&big_meta.id).unwrap(), Some(big));
    assert_eq!(store.bundle_bytes(&edge_meta.id).unwrap(), Some(edge));
    assert!(store.remove_bundle(&big_meta.id).unwrap());
    assert!(!store.remove_bundle(&big_meta.id).unwrap());
    assert_eq!(files(&store, "bundle"), 0);
    assert_eq!(store.bundle_bytes(&big_meta.id).unwrap(), None);
    assert_eq!(store.bundle_metas().unwrap(), vec![edge_meta]);
}

#[test]
fn leftovers_of_a_crash_are_deleted_on_open_and_named_files_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    let (big, big_meta) = put(&store, Spec::new(1, 100_000));
    let stray = Spec::new(2, 1).build().1;
    let bundles_dir = store.bundles.dir.clone();
    let orphan = bundles_dir.join(format!("{}.bundle", stray.id.digest_hex()));
    let orphan_inbox = bundles_dir.join(format!("{}.inbox", big_meta.id.digest_hex()));
    fs::write(&orphan, b"written, never committed").unwrap();
    fs::write(&orphan_inbox, b"written, never committed").unwrap();
    fs::write(bundles_dir.join(TMP_DIR).join("bundle-x"), b"half").unwrap();
    fs::write(bundles_dir.join("README"), b"not ours").unwrap();
    let store = reopen(store, &dir);
    assert!(!orphan.exists() && !orphan_inbox.exists());
    assert_eq!(tmp_files(&store), 0);
    assert!(bundles_dir.join("README").exists());
    assert_eq!(store.bundle_bytes(&big_meta.id).unwrap(), Some(big));
    assert_eq!(store.bundle_bytes(&stray.id).unwrap(), None);
}

fn quota(max_bytes: u64) -> Quota {
    Quota {
        max_bytes,
        max_bytes_per_peer: None,
    }
}

#[test]
fn a_refusal_by_quota_says_why_and_leaves_every_other_bundle_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    let held: Vec<_> = (0..5).map(|n| Spec::new(n, 100_000).build()).collect();
    let total: u64 = held.iter().map(|(b, _)| b.len() as u64).sum();
    let q = quota(total + 100);
    for (bytes, meta) in &held {
        assert!(store.put_bundle(bytes, meta, &q, NOW).unwrap().new);
    }
    // Same priority: first come, first served; a large one (a file) too.
    for len in [1_000, 100_000] {
        let (bytes, meta) = Spec::new(9, len).build();
        let err = store.put_bundle(&bytes, &meta, &q, NOW).unwrap_err();
        let StoreError::BundleRefused { id, refusal } = &err else {
            panic!("{err}");
        };
        assert_eq!(id, &meta.id);
        assert!(matches!(refusal, Refusal::Full { own: false, .. }));
        assert!(err.to_string().contains("store full"), "{err}");
        assert_eq!(store.bundle_bytes(&meta.id).unwrap(), None);
    }
    let (bytes, meta) = Spec::new(9, 1_000).build();
    let err = store
        .put_bundle(&bytes, &meta, &quota(10), NOW)
        .unwrap_err();
    assert!(err.to_string().contains("larger than the whole"), "{err}");

    assert_eq!(files(&store, "bundle"), 5, "no file of a refused bundle");
    assert_eq!(tmp_files(&store), 0);
    let store = reopen(store, &dir);
    assert_eq!(store.bundle_metas().unwrap().len(), 5);
    for (bytes, meta) in &held {
        assert_eq!(store.bundle_bytes(&meta.id).unwrap().as_ref(), Some(bytes));
    }
}

#[test]
fn a_peer_over_its_share_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let q = Quota {
        max_bytes: 100_000,
        max_bytes_per_peer: Some(3_000),
    };
    let mut refused = 0;
    for n in 0..10 {
        let (bytes, meta) = Spec::new(n, 1_000).build();
        match store.put_bundle(&bytes, &meta, &q, NOW) {
            Ok(stored) => assert!(stored.evicted.is_empty()),
            Err(StoreError::BundleRefused {
                refusal: Refusal::PeerShare { .. },
                ..
            }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 8);
    assert_eq!(store.bundle_metas().unwrap().len(), 2);
}

#[test]
fn eviction_drops_expired_then_lower_priority_foreign_never_own() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    let own = Spec::new(1, 100_000).own().priority(Priority::Bulk).build();
    let expired = Spec::new(2, 1_000).lifetime(1).build();
    let bulk = Spec::new(3, 100_000).priority(Priority::Bulk).build();
    let normal = Spec::new(4, 1_000).build();
    let size = |b: &(Vec<u8>, BundleMeta)| b.0.len() as u64;
    let q = quota(size(&own) + size(&expired) + size(&bulk) + size(&normal));
    for (bytes, meta) in [&own, &expired, &bulk, &normal] {
        store.put_bundle(bytes, meta, &q, 0).unwrap();
    }
    let now = NOW + 10_000;
    assert!(own.1.own && expired.1.is_expired(now) && !bulk.1.is_expired(now));
    assert_eq!(files(&store, "bundle"), 2);

    // A foreign expedited bundle: the expired one goes first, then the bulk one.
    let incoming = Spec::new(5, 5_000).priority(Priority::Expedited).build();
    let stored = store.put_bundle(&incoming.0, &incoming.1, &q, now).unwrap();
    assert_eq!(stored.expired, vec![expired.1.id.clone()]);
    assert_eq!(stored.evicted, vec![bulk.1.id.clone()]);
    assert_eq!(
        files(&store, "bundle"),
        1,
        "the evicted bundle's file is gone"
    );

    // Nothing foreign of lower priority is left big enough: a foreign bundle is
    // refused, the own bulk bundle untouched.
    let foreign = Spec::new(6, 100_000).priority(Priority::Expedited).build();
    let err = store
        .put_bundle(&foreign.0, &foreign.1, &q, now)
        .unwrap_err();
    assert!(err.to_string().contains("store full"), "{err}");
    // A new own bundle may evict foreign ones, never the own one.
    let own2 = Spec::new(7, 110_000).own().build();
    let err = store.put_bundle(&own2.0, &own2.1, &q, now).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::BundleRefused {
                refusal: Refusal::Full { own: true, .. },
                ..
            }
        ),
        "{err}"
    );
    let own3 = Spec::new(8, 98_000).own().build();
    let stored = store.put_bundle(&own3.0, &own3.1, &q, now).unwrap();
    assert!(stored.new);
    assert_eq!(
        stored.evicted,
        vec![normal.1.id.clone(), incoming.1.id.clone()]
    );

    let store = reopen(store, &dir);
    let ids: Vec<BundleId> = store
        .bundle_metas()
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert!(ids.contains(&own.1.id) && ids.contains(&own3.1.id));
    assert!(!ids.contains(&expired.1.id) && !ids.contains(&bulk.1.id));
    assert_eq!(store.bundle_bytes(&own.1.id).unwrap(), Some(own.0));
    assert_eq!(store.bundle_bytes(&bulk.1.id).unwrap(), None);
    assert_eq!(
        store.last_own_creation().unwrap(),
        Some(own3.1.id.created()),
        "the newest own bundle's timestamp is remembered"
    );
}

#[test]
fn expired_bundles_can_be_swept() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let (_, short) = put(&store, Spec::new(1, 100_000).lifetime(10));
    let (_, long) = put(&store, Spec::new(2, 10));
    assert_eq!(
        store.remove_expired_bundles(NOW + 100).unwrap(),
        vec![short.id]
    );
    assert_eq!(store.bundle_metas().unwrap(), vec![long]);
    assert_eq!(files(&store, "bundle"), 0);
}

/// Overwrites a row of `table` with `value`, behind the store's back.
fn tamper(store: &Store, table: TableDefinition<&str, &[u8]>, key: &str, value: &[u8]) {
    let txn = store.db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[test]
fn damaged_rows_and_bytes_are_corrupt_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    let (_, small) = put(&store, Spec::new(1, 10));
    let (_, big) = put(&store, Spec::new(2, 100_000));
    let (_, fine) = put(&store, Spec::new(3, 10));
    let corrupt = |r: Result<Option<Vec<u8>>, StoreError>| {
        assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
    };

    // Inline bytes altered.
    tamper(&store, BUNDLE_DATA, &small.id.to_string(), b"garbage");
    corrupt(store.bundle_bytes(&small.id));
    // A file altered, then missing.
    let path = store.bundles.path(Kind::Carried, &big.id.to_string());
    let mut bytes = fs::read(&path).unwrap();
    bytes[50_000] ^= 1;
    fs::write(&path, &bytes).unwrap();
    corrupt(store.bundle_bytes(&big.id));
    fs::remove_file(&path).unwrap();
    corrupt(store.bundle_bytes(&big.id));
    // Other bundles read as before.
    assert!(store.bundle_bytes(&fine.id).unwrap().is_some());

    // Rows that do not decode, or name another bundle, or hold an invalid field.
    let mut bad_priority = Record::new(&fine, b"x", NOW, 0);
    bad_priority.priority = 9;
    let other = Record::new(&small, b"x", NOW, 0).encode();
    for value in [&b"\xff\xff\xff"[..], &other, &bad_priority.encode()] {
        tamper(&store, BUNDLES, &fine.id.to_string(), value);
        // Forget the cached metas, as a reopen would.
        *store.bundles.lock() = None;
        let err = store.bundle_metas().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains(&fine.id.to_string()), "{err}");
    }
    // Opening still works, and removing the damaged record is the way out.
    let store = reopen(store, &dir);
    assert!(store.bundle_metas().is_err());
    assert!(store.remove_bundle(&fine.id).unwrap());
    assert!(
        store
            .remove_bundles(&[small.id.clone(), big.id.clone()])
            .unwrap()
            .len()
            == 2
    );
    assert!(store.bundle_metas().unwrap().is_empty());

    // Router state and inbox rows too.
    tamper(&store, DTN_STATE, ROUTER_KEY, b"\x07\x01");
    assert!(matches!(
        store.load_router_state(),
        Err(StoreError::Corrupt(_))
    ));
    let (bytes, meta) = Spec::new(4, 10).build();
    assert!(store.deliver_to_inbox(&bytes, &meta, NOW).unwrap());
    tamper(&store, INBOX, &meta.id.to_string(), b"\x00\x01");
    assert!(matches!(store.inbox(), Err(StoreError::Corrupt(_))));
    corrupt(store.inbox_bytes(&meta.id));
}

#[test]
fn router_state_round_trips_through_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    assert_eq!(store.load_router_state().unwrap(), None);
    let mut router = Router::new(local(), Strategy::SprayAndWait { copies: 8 });
    let (_, meta) = Spec::new(1, 10).build();
    router.insert(meta.clone(), Some(4), NOW);
    router.on_delivered(&Spec::new(2, 1).build().1.id, NOW + LONG, NOW);
    store.save_router_state(&router.state()).unwrap();
    let mut prophet = Router::new(
        local(),
        Strategy::Prophet(ferry_core::dtn::ProphetConfig::default()),
    );
    prophet.contact_up(&NodeId::dtn("town").unwrap(), NOW);
    let store = reopen(store, &dir);
    assert_eq!(store.load_router_state().unwrap(), Some(router.state()));
    store.save_router_state(&prophet.state()).unwrap();
    let store = reopen(store, &dir);
    assert_eq!(store.load_router_state().unwrap(), Some(prophet.state()));
}

#[test]
fn the_inbox_keeps_deliveries_once_in_order_across_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, dir) = open(tmp.path());
    let a = Spec::new(5, 10).build();
    let b = Spec::new(1, 200_000).build();
    let c = Spec::new(3, 10).build();
    assert!(store.deliver_to_inbox(&a.0, &a.1, NOW).unwrap());
    assert!(store.deliver_to_inbox(&b.0, &b.1, NOW + 1).unwrap());
    assert!(!store.deliver_to_inbox(&a.0, &a.1, NOW + 2).unwrap());
    assert_eq!(
        store
            .deliver_many_to_inbox(&[(&c.0, &c.1), (&b.0, &b.1)], NOW + 3)
            .unwrap(),
        vec![true, false]
    );
    assert_eq!(files(&store, "inbox"), 1);
    // The inbox is not the carried store.
    assert!(store.bundle_metas().unwrap().is_empty());
    let store = reopen(store, &dir);
    let inbox = store.inbox().unwrap();
    let order: Vec<_> = inbox.iter().map(|e| (e.seq, e.meta.clone())).collect();
    assert_eq!(
        order,
        vec![(1, a.1.clone()), (2, b.1.clone()), (3, c.1.clone())]
    );
    assert_eq!(inbox[1].delivered_at, NOW + 1);
    for (bytes, meta) in [&a, &b, &c] {
        assert_eq!(store.inbox_bytes(&meta.id).unwrap().as_ref(), Some(bytes));
    }
    assert!(store.remove_from_inbox(&b.1.id).unwrap());
    assert!(!store.remove_from_inbox(&b.1.id).unwrap());
    assert_eq!(files(&store, "inbox"), 0);
    let d = Spec::new(7, 10).build();
    assert!(store.deliver_to_inbox(&d.0, &d.1, NOW).unwrap());
    let seqs: Vec<u64> = store.inbox().unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 3, 4], "sequence numbers never go back");
}

#[test]
fn readers_and_writers_on_many_threads_see_whole_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let built: Vec<_> = (0..40)
        .map(|n| Spec::new(n, if n % 4 == 0 { 80_000 } else { 100 }).build())
        .collect();
    std::thread::scope(|s| {
        for chunk in built.chunks(10) {
            let store = &store;
            s.spawn(move || {
                for _ in 0..3 {
                    for (bytes, meta) in chunk {
                        store.put_bundle(bytes, meta, &unlimited(), NOW).unwrap();
                        if let Some(got) = store.bundle_bytes(&meta.id).unwrap() {
                            assert_eq!(&got, bytes);
                        }
                        store.remove_bundle(&meta.id).unwrap();
                    }
                }
            });
        }
        s.spawn(|| {
            for _ in 0..50 {
                for (bytes, meta) in &built {
                    if let Some(got) = store.bundle_bytes(&meta.id).unwrap() {
                        assert_eq!(&got, bytes);
                    }
                }
            }
        });
    });
    assert!(store.bundle_metas().unwrap().is_empty());
    assert_eq!(files(&store, "bundle"), 0);
}
