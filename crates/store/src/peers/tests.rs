use std::path::Path;

use ferry_core::Keypair;
use proptest::prelude::*;

use super::*;
use crate::DataDir;

/// Store first, so it is dropped before the directory lock is released.
fn open(path: &Path) -> (Store, DataDir) {
    let dir = DataDir::lock(path).unwrap();
    (Store::open(&dir).unwrap(), dir)
}

fn peer_id() -> PeerId {
    Keypair::generate_ed25519().public().to_peer_id()
}

fn addr(port: u16) -> Multiaddr {
    format!("/ip4/10.0.0.2/tcp/{port}").parse().unwrap()
}

fn remembered(last_connected_ms: Millis) -> RememberedPeer {
    RememberedPeer {
        peer: peer_id(),
        name: Some("ana".into()),
        addrs: vec![addr(1), "/ip6/::1/udp/4001/quic-v1".parse().unwrap()],
        last_connected_ms,
    }
}

#[test]
fn remembered_peers_round_trip_across_a_reopen_newest_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (
        remembered(10),
        RememberedPeer {
            name: None,
            ..remembered(20)
        },
    );
    {
        let (store, _dir) = open(tmp.path());
        assert!(store.remembered_peers().unwrap().is_empty());
        store.remember_peer(&old).unwrap();
        store.remember_peer(&new).unwrap();
    }
    let (store, _dir) = open(tmp.path());
    assert_eq!(store.remembered_peers().unwrap(), vec![new, old]);
}

#[test]
fn remembering_again_replaces_and_keeps_the_last_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let mut p = remembered(10);
    store.remember_peer(&p).unwrap();
    p.addrs = (0..40).map(addr).collect();
    p.name = Some("bo".into());
    p.last_connected_ms = 30;
    store.remember_peer(&p).unwrap();
    let back = store.remembered_peers().unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].name.as_deref(), Some("bo"));
    assert_eq!(back[0].last_connected_ms, 30);
    assert_eq!(back[0].addrs, (24..40).map(addr).collect::<Vec<_>>());
}

#[test]
fn forgetting_removes_only_that_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let (a, b) = (remembered(1), remembered(2));
    store.remember_peer(&a).unwrap();
    store.remember_peer(&b).unwrap();
    store.forget_peer(&a.peer).unwrap();
    store.forget_peer(&peer_id()).unwrap();
    assert_eq!(store.remembered_peers().unwrap(), vec![b]);
}

#[test]
fn the_least_recently_connected_are_evicted_beyond_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    // Remembered out of time order, so eviction must go by time, not arrival.
    let peers: Vec<RememberedPeer> = (0..MAX_REMEMBERED_PEERS as u64 + 4)
        .map(|i| remembered(1_000 + (i * 7919) % 1_000))
        .collect();
    for p in &peers {
        store.remember_peer(p).unwrap();
    }
    let mut expected = peers.clone();
    expected.sort_by_key(|p| std::cmp::Reverse(p.last_connected_ms));
    expected.truncate(MAX_REMEMBERED_PEERS);
    assert_eq!(store.remembered_peers().unwrap(), expected);

    // A peer older than all of them is not kept at all.
    store.remember_peer(&remembered(0)).unwrap();
    assert_eq!(store.remembered_peers().unwrap(), expected);
}

#[test]
fn unreadable_rows_are_skipped_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let good = remembered(5);
    store.remember_peer(&good).unwrap();
    let bad_addr = postcard::to_stdvec(&Row {
        name: None,
        addrs: vec![vec![0xff, 0xff]],
    })
    .unwrap();
    let txn = store.db.begin_write().unwrap();
    {
        let mut table = txn.open_table(PEERS).unwrap();
        table
            .insert(b"not a peer id".as_slice(), (9, b"".as_slice()))
            .unwrap();
        let key = peer_id().to_bytes();
        table
            .insert(key.as_slice(), (8, b"\xff\xff\xff".as_slice()))
            .unwrap();
        let key = peer_id().to_bytes();
        table
            .insert(key.as_slice(), (7, bad_addr.as_slice()))
            .unwrap();
    }
    txn.commit().unwrap();
    assert_eq!(store.remembered_peers().unwrap(), vec![good]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn any_name_and_addresses_round_trip(
        name in proptest::option::of(".{0,64}"),
        ports in proptest::collection::vec(any::<u16>(), 0..20),
        last_connected_ms in any::<u64>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _dir) = open(tmp.path());
        let peer = RememberedPeer {
            peer: peer_id(),
            name,
            addrs: ports.iter().map(|p| addr(*p)).collect(),
            last_connected_ms,
        };
        store.remember_peer(&peer).unwrap();
        let back = store.remembered_peers().unwrap();
        prop_assert_eq!(back.len(), 1);
        prop_assert_eq!(&back[0].name, &peer.name);
        prop_assert_eq!(back[0].last_connected_ms, last_connected_ms);
        let kept = ports.len().saturating_sub(MAX_ADDRS_PER_PEER);
        prop_assert_eq!(&back[0].addrs[..], &peer.addrs[kept..]);
    }
}
