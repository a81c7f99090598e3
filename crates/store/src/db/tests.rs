//! Recovery from a full disk: the store's real database on a backend whose
//! writes fail while a switch is on ([`super::fault`]).

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_core::Keypair;
use ferry_core::channel::{ChannelName, Message};

use crate::{DataDir, StorageState, Store, StoreLimits};

const NOW: u64 = 1_700_000_000_000;

/// No reserve: every write reaches the database, which is what is tested.
fn no_reserve() -> StoreLimits {
    StoreLimits {
        reserve_bytes: 0,
        ..StoreLimits::default()
    }
}

fn open(path: &Path) -> (Store, super::fault::DiskFull, DataDir) {
    let dir = DataDir::lock(path).unwrap();
    let (store, full) = Store::open_with_full_disk(&dir, no_reserve());
    (store, full, dir)
}

fn general() -> ChannelName {
    "general".parse().unwrap()
}

fn msg(key: &Keypair, n: u64) -> Message {
    Message::sign(key, general(), "ana", NOW + n, &format!("message {n}")).unwrap()
}

fn texts(store: &Store) -> Vec<String> {
    store
        .recent(&general(), 100)
        .unwrap()
        .into_iter()
        .map(|m| m.message.text)
        .collect()
}

/// Retries `op` until it succeeds (the reopen after a failure is spaced by a
/// backoff of at most a few seconds); panics with the last error after 20 s.
#[track_caller]
fn eventually<T, E: std::fmt::Display>(what: &str, mut op: impl FnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match op() {
            Ok(value) => return value,
            Err(e) if Instant::now() > deadline => panic!("{what} still fails: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

#[test]
fn a_write_that_fails_on_a_full_disk_is_reported_and_the_store_recovers_without_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, full, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    store.insert_message(&msg(&key, 1), NOW).unwrap();
    assert_eq!(store.storage_health().state, StorageState::Ok);

    full.set(true);
    let err = store.insert_message(&msg(&key, 2), NOW).unwrap_err();
    assert!(err.is_storage_failure(), "{err}");
    let health = store.storage_health();
    assert_eq!(health.state, StorageState::Full, "{health:?}");
    let problem = health.problem.unwrap();
    assert!(problem.contains("database"), "{problem}");
    // Still full: every write fails, none is half kept.
    assert!(store.insert_message(&msg(&key, 3), NOW).is_err());

    // Reads fail too while the failed database cannot be reopened (opening it
    // after a failed write repairs it, which writes), with a clear error.
    let err = store.recent(&general(), 100).unwrap_err();
    assert!(err.is_storage_failure(), "{err}");
    assert!(err.to_string().contains("free some space"), "{err}");

    full.set(false);
    eventually("writing once space is free", || {
        store.insert_message(&msg(&key, 4), NOW)
    });
    assert_eq!(texts(&store), ["message 1", "message 4"]);
    assert_eq!(store.storage_health().state, StorageState::Ok);
    assert_eq!(store.storage_health().problem, None);
}

#[test]
fn what_was_committed_before_the_failure_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    {
        let (store, full, _dir) = open(tmp.path());
        for n in 0..20 {
            store.insert_message(&msg(&key, n), NOW).unwrap();
        }
        full.set(true);
        for n in 20..25 {
            assert!(store.insert_message(&msg(&key, n), NOW).is_err());
        }
        // Dropped while the disk is full: as good as a crash for the database.
    }
    let dir = DataDir::lock(tmp.path()).unwrap();
    let store = Store::open(&dir).unwrap();
    let expected: Vec<String> = (0..20).map(|n| format!("message {n}")).collect();
    assert_eq!(texts(&store), expected);
    store.insert_message(&msg(&key, 30), NOW).unwrap();
}

#[test]
fn the_reserve_refuses_messages_before_the_disk_is_full() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::lock(tmp.path()).unwrap();
    let limits = StoreLimits {
        // More than any disk has free.
        reserve_bytes: u64::MAX / 2,
        ..StoreLimits::default()
    };
    let (store, _full) = Store::open_with_full_disk(&dir, limits);
    let key = Keypair::generate_ed25519();
    let err = store.insert_message(&msg(&key, 1), NOW).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not enough free space for channel messages") && text.contains("free"),
        "{text}"
    );
    assert!(err.is_storage_failure());
    assert_eq!(store.storage_health().state, StorageState::Full);
    assert!(texts(&store).is_empty());
}

#[test]
fn writers_and_readers_on_many_threads_keep_exactly_what_was_committed_through_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, full, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let before: Vec<String> = (0..20)
        .map(|n| {
            let m = msg(&key, 50_000_000 + n);
            store.insert_message(&m, NOW).unwrap();
            m.text.clone()
        })
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let results: Vec<(Vec<String>, u64)> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4u64)
            .map(|t| {
                let (store, key, stop) = (&store, &key, &stop);
                scope.spawn(move || {
                    let (mut ok, mut failed) = (Vec::new(), 0);
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let m = msg(key, t * 1_000_000 + n);
                        match store.insert_message(&m, NOW) {
                            Ok(_) => ok.push(m.text.clone()),
                            Err(_) => failed += 1,
                        }
                        // Readers share the database with the writers.
                        let _ = store.recent(&general(), 10);
                        n += 1;
                    }
                    (ok, failed)
                })
            })
            .collect();
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(150));
            full.set(true);
            std::thread::sleep(Duration::from_millis(150));
            full.set(false);
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    eventually("writing after the last failure", || {
        store.insert_message(&msg(&key, 99_000_000), NOW)
    });
    let failed: u64 = results.iter().map(|(_, failed)| failed).sum();
    assert!(failed > 0, "the disk never failed a write");
    let mut expected: Vec<String> = results
        .into_iter()
        .flat_map(|(ok, _)| ok)
        .chain(before)
        .collect();
    expected.push("message 99000000".into());
    expected.sort();
    let mut stored: Vec<String> = store
        .recent(&general(), 1_000_000)
        .unwrap()
        .into_iter()
        .map(|m| m.message.text)
        .collect();
    stored.sort();
    assert_eq!(
        stored, expected,
        "what was committed, and only that, is stored"
    );
}
