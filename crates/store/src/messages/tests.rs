use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use ferry_core::Keypair;
use ferry_core::history::{
    WINDOW_AGE_MS, WINDOW_HARD_CAP, WINDOW_MESSAGES, in_window, plan_response,
};
use proptest::prelude::*;

use super::*;
use crate::DataDir;

const NOW: Millis = 1_700_000_000_000;

/// Store first, so it is dropped before the directory lock is released.
fn open(path: &Path) -> (Store, DataDir) {
    let dir = DataDir::lock(path).unwrap();
    (Store::open(&dir).unwrap(), dir)
}

fn ch(name: &str) -> ChannelName {
    name.parse().unwrap()
}

fn msg(key: &Keypair, channel: &str, timestamp_ms: Millis, text: &str) -> Message {
    Message::sign(key, ch(channel), "ana", timestamp_ms, text).unwrap()
}

fn texts(stored: &[StoredMessage]) -> Vec<&str> {
    stored.iter().map(|s| s.message.text.as_str()).collect()
}

#[test]
fn a_second_insert_of_the_same_message_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let m = msg(&key, "general", NOW, "hi");
    assert_eq!(store.insert_message(&m, 5).unwrap(), Some(1));
    assert_eq!(store.insert_message(&m, 6).unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 1);
    assert_eq!(store.channels().unwrap(), vec![(ch("general"), 1)]);
    let stored = store.recent(&ch("general"), 10).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].received_ms, 5,
        "the first arrival is the one kept"
    );
}

#[test]
fn messages_and_seq_survive_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let (a, b) = (
        msg(&key, "general", NOW, "a"),
        msg(&key, "general", NOW + 1, "b"),
    );
    {
        let (store, _dir) = open(tmp.path());
        assert_eq!(
            store.insert_messages(&[a.clone(), b.clone()], 7).unwrap(),
            vec![1, 2]
        );
    }
    let (store, _dir) = open(tmp.path());
    assert_eq!(store.last_seq().unwrap(), 2);
    let stored = store.recent(&ch("general"), 10).unwrap();
    assert_eq!(
        stored,
        vec![
            StoredMessage {
                seq: 1,
                received_ms: 7,
                message: a.clone()
            },
            StoredMessage {
                seq: 2,
                received_ms: 7,
                message: b
            },
        ]
    );
    assert_eq!(
        store.insert_message(&a, 8).unwrap(),
        None,
        "dedup survives too"
    );
    let c = msg(&key, "general", NOW + 2, "c");
    assert_eq!(store.insert_message(&c, 9).unwrap(), Some(3));
}

#[test]
fn recent_is_by_author_time_then_id_oldest_first_and_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let tie1 = msg(&key, "general", NOW + 20, "tie1");
    let tie2 = msg(&key, "general", NOW + 20, "tie2");
    let (lo, hi) = if tie1.id < tie2.id {
        ("tie1", "tie2")
    } else {
        ("tie2", "tie1")
    };
    for m in [
        msg(&key, "general", NOW + 30, "30"),
        msg(&key, "general", NOW + 10, "10"),
        tie1,
        msg(&key, "other", NOW + 99, "elsewhere"),
        tie2,
    ] {
        store.insert_message(&m, 0).unwrap();
    }
    let general = ch("general");
    assert_eq!(
        texts(&store.recent(&general, 10).unwrap()),
        vec!["10", lo, hi, "30"]
    );
    assert_eq!(texts(&store.recent(&general, 2).unwrap()), vec![hi, "30"]);
    assert!(store.recent(&general, 0).unwrap().is_empty());
    assert!(store.recent(&ch("nowhere"), 10).unwrap().is_empty());
}

#[test]
fn after_follows_arrival_order_not_author_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let general = ch("general");
    store
        .insert_message(&msg(&key, "general", NOW, "first"), 0)
        .unwrap();
    store
        .insert_message(&msg(&key, "other", NOW, "x"), 0)
        .unwrap();
    // Arrives later (say, through history sync) but was written earlier.
    store
        .insert_message(&msg(&key, "general", NOW - 1_000, "late"), 0)
        .unwrap();

    let all = store.after(&general, 0, 10).unwrap();
    assert_eq!(texts(&all), vec!["first", "late"]);
    assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(texts(&store.after(&general, 1, 10).unwrap()), vec!["late"]);
    assert_eq!(texts(&store.after(&general, 0, 1).unwrap()), vec!["first"]);
    assert!(store.after(&general, 3, 10).unwrap().is_empty());
    assert!(store.after(&general, u64::MAX, 10).unwrap().is_empty());
    assert_eq!(store.last_seq().unwrap(), 3);
}

#[test]
fn a_batch_skips_what_is_stored_and_repeats_within_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let (a, b, c) = (
        msg(&key, "g", 1, "a"),
        msg(&key, "g", 2, "b"),
        msg(&key, "g", 3, "c"),
    );
    assert_eq!(
        store.insert_messages(std::slice::from_ref(&a), 0).unwrap(),
        vec![1]
    );
    assert_eq!(
        store
            .insert_messages(&[a.clone(), b.clone(), b, c], 0)
            .unwrap(),
        vec![2, 3]
    );
    assert_eq!(store.insert_messages(&[a], 0).unwrap(), Vec::<u64>::new());
    assert!(store.insert_messages(&[], 0).unwrap().is_empty());
    assert_eq!(store.channels().unwrap(), vec![(ch("g"), 3)]);
}

#[test]
fn the_window_is_the_newest_messages_and_the_last_day() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    // 50 messages two days old, then 650 from the last hour: all 650 are in the
    // window (the last day) even though that is more than WINDOW_MESSAGES.
    let mut msgs: Vec<Message> = (0..50)
        .map(|i| msg(&key, "g", NOW - 2 * WINDOW_AGE_MS + i, &i.to_string()))
        .collect();
    msgs.extend((0..650).map(|i| msg(&key, "g", NOW - 3_600_000 + i, &format!("r{i}"))));
    store.insert_messages(&msgs, NOW).unwrap();
    let g = ch("g");

    let history = store.history(&g, NOW).unwrap();
    assert_eq!(history.len(), 700);
    assert!(
        history
            .windows(2)
            .all(|w| w[0].timestamp_ms >= w[1].timestamp_ms)
    );
    let by_id: BTreeMap<_, _> = msgs.iter().map(|m| (m.id, m)).collect();
    assert!(
        history
            .iter()
            .all(|s| s.wire_len == by_id[&s.id].wire().len())
    );

    let expected: Vec<MessageId> = history
        .iter()
        .enumerate()
        .filter(|(rank, s)| in_window(*rank, s.timestamp_ms, NOW))
        .map(|(_, s)| s.id)
        .collect();
    let window = store.window_ids(&g, NOW).unwrap();
    assert_eq!(window, expected);
    assert_eq!(window.len(), 650);

    // Much later, only the newest WINDOW_MESSAGES still count.
    assert_eq!(
        store
            .window_ids(&g, NOW + 10 * WINDOW_AGE_MS)
            .unwrap()
            .len(),
        WINDOW_MESSAGES
    );

    // A peer that has our window needs nothing from us.
    let have: HashSet<_> = window.into_iter().collect();
    assert!(
        plan_response(history, &have, NOW, usize::MAX)
            .send
            .is_empty()
    );
}

#[test]
fn history_and_window_stop_at_the_hard_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let msgs: Vec<Message> = (0..WINDOW_HARD_CAP as u64 + 1)
        .map(|i| msg(&key, "g", NOW - 10_000 + i, ""))
        .collect();
    store.insert_messages(&msgs, NOW).unwrap();
    let history = store.history(&ch("g"), NOW).unwrap();
    assert_eq!(history.len(), WINDOW_HARD_CAP);
    assert_eq!(history[0].id, msgs[WINDOW_HARD_CAP].id, "newest first");
    assert!(
        !history.iter().any(|s| s.id == msgs[0].id),
        "the oldest is beyond the cap"
    );
    assert_eq!(
        store.window_ids(&ch("g"), NOW).unwrap().len(),
        WINDOW_HARD_CAP
    );
}

#[test]
fn wires_come_back_in_the_order_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let (a, b) = (msg(&key, "g", 1, "a"), msg(&key, "g", 2, "b"));
    let unknown = msg(&key, "g", 3, "never stored");
    store.insert_messages(&[a.clone(), b.clone()], 0).unwrap();
    let wires = store.wires(&[b.id, unknown.id, a.id]).unwrap();
    assert_eq!(wires, vec![b.wire().to_vec(), a.wire().to_vec()]);
    assert_eq!(Message::decode(&wires[0]).unwrap(), b);
}

#[test]
fn joined_channels_are_listed_with_counts_and_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    {
        let (store, _dir) = open(tmp.path());
        assert!(store.channels().unwrap().is_empty());
        store.join_channel(&ch("zeta")).unwrap();
        store
            .insert_message(&msg(&key, "alpha", 1, "x"), 0)
            .unwrap();
        store.join_channel(&ch("alpha")).unwrap();
        store.join_channel(&ch("zeta")).unwrap();
    }
    let (store, _dir) = open(tmp.path());
    assert_eq!(
        store.channels().unwrap(),
        vec![(ch("alpha"), 1), (ch("zeta"), 0)]
    );
    store.insert_message(&msg(&key, "zeta", 1, "y"), 0).unwrap();
    assert_eq!(
        store.channels().unwrap(),
        vec![(ch("alpha"), 1), (ch("zeta"), 1)]
    );
}

/// Overwrites the stored wire bytes of `id`, as damage to the file would.
fn overwrite_wire(store: &Store, id: MessageId, wire: &[u8]) {
    let txn = store.db.begin_write().unwrap();
    txn.open_table(MESSAGES)
        .unwrap()
        .insert(id.0, (1, 0, wire))
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_row_that_does_not_decode_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let m = msg(&key, "g", 1, "fine");
    store.insert_message(&m, 0).unwrap();
    overwrite_wire(&store, m.id, b"garbage");

    let err = store.recent(&ch("g"), 10).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(err.to_string().contains(&m.id.to_string()), "{err}");
    assert!(matches!(
        store.after(&ch("g"), 0, 10),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn a_row_holding_another_message_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let m = msg(&key, "g", 1, "real");
    store.insert_message(&m, 0).unwrap();
    overwrite_wire(&store, m.id, msg(&key, "g", 1, "swapped").wire());
    let err = store.recent(&ch("g"), 10).unwrap_err();
    assert!(err.to_string().contains("has the bytes of"), "{err}");
}

#[test]
fn an_index_entry_without_its_message_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let m = msg(&key, "g", 1, "x");
    store.insert_message(&m, 0).unwrap();
    let txn = store.db.begin_write().unwrap();
    txn.open_table(MESSAGES).unwrap().remove(m.id.0).unwrap();
    txn.commit().unwrap();
    assert!(matches!(
        store.history(&ch("g"), NOW),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        store.recent(&ch("g"), 1),
        Err(StoreError::Corrupt(_))
    ));
    assert!(store.wires(&[m.id]).unwrap().is_empty());
}

#[test]
fn a_bad_channel_name_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let txn = store.db.begin_write().unwrap();
    txn.open_table(CHANNELS)
        .unwrap()
        .insert("no/slashes", 0)
        .unwrap();
    txn.commit().unwrap();
    assert!(matches!(store.channels(), Err(StoreError::Corrupt(_))));
}

const CHANNEL_NAMES: [&str; 3] = ["a", "b", "c"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The store behaves like a simple in-memory model: exact de-duplication, seqs
    /// that count new messages, time order with id tie-breaks, follow order by seq.
    #[test]
    fn the_store_matches_a_model(
        pool in proptest::collection::vec((0..CHANNEL_NAMES.len(), 0u64..6), 1..16),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..32),
        split in any::<prop::sample::Index>(),
        after in 0u64..40,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _dir) = open(tmp.path());
        let key = Keypair::generate_ed25519();
        let pool: Vec<Message> = pool
            .iter()
            .enumerate()
            .map(|(i, (c, ts))| msg(&key, CHANNEL_NAMES[*c], NOW + ts, &i.to_string()))
            .collect();
        let inserts: Vec<Message> = picks.iter().map(|p| pool[p.index(pool.len())].clone()).collect();

        // The model: id -> seq, in arrival order.
        let mut model: BTreeMap<MessageId, u64> = BTreeMap::new();
        let mut expected_seqs = Vec::new();
        for m in &inserts {
            if !model.contains_key(&m.id) {
                let seq = model.len() as u64 + 1;
                model.insert(m.id, seq);
                expected_seqs.push(seq);
            }
        }

        // Half in one batch, the rest one by one.
        let (batch, singles) = inserts.split_at(split.index(inserts.len() + 1));
        let mut seqs = store.insert_messages(batch, 0).unwrap();
        for m in singles {
            seqs.extend(store.insert_message(m, 0).unwrap());
        }
        prop_assert_eq!(&seqs, &expected_seqs);
        prop_assert_eq!(store.last_seq().unwrap(), model.len() as u64);

        let mut expected_channels = Vec::new();
        for name in CHANNEL_NAMES {
            let channel = ch(name);
            let mut by_time: Vec<&Message> =
                pool.iter().filter(|m| m.channel == channel && model.contains_key(&m.id)).collect();
            by_time.sort_by_key(|m| (m.timestamp_ms, m.id));
            by_time.dedup_by_key(|m| m.id);
            if !by_time.is_empty() {
                expected_channels.push((channel.clone(), by_time.len() as u64));
            }

            let recent = store.recent(&channel, usize::MAX).unwrap();
            let recent_ids: Vec<_> = recent.iter().map(|s| s.message.id).collect();
            let expected_ids: Vec<_> = by_time.iter().map(|m| m.id).collect();
            prop_assert_eq!(&recent_ids, &expected_ids);
            for s in &recent {
                prop_assert_eq!(s.seq, model[&s.message.id]);
            }
            let last3: Vec<_> = store.recent(&channel, 3).unwrap().iter().map(|s| s.message.id).collect();
            prop_assert_eq!(&last3[..], &expected_ids[expected_ids.len().saturating_sub(3)..]);

            let mut by_seq: Vec<(u64, MessageId)> =
                by_time.iter().map(|m| (model[&m.id], m.id)).filter(|(s, _)| *s > after).collect();
            by_seq.sort();
            let followed: Vec<_> =
                store.after(&channel, after, 4).unwrap().iter().map(|s| (s.seq, s.message.id)).collect();
            prop_assert_eq!(&followed[..], &by_seq[..by_seq.len().min(4)]);

            // Fewer than WINDOW_MESSAGES: the whole channel is its window.
            let newest_first: Vec<_> = expected_ids.iter().rev().copied().collect();
            let history: Vec<_> = store.history(&channel, NOW).unwrap().iter().map(|s| s.id).collect();
            prop_assert_eq!(&history, &newest_first);
            prop_assert_eq!(&store.window_ids(&channel, NOW).unwrap(), &newest_first);
        }
        prop_assert_eq!(store.channels().unwrap(), expected_channels);
    }
}

/// A store that keeps `max_messages` per channel and `max_age_ms`.
fn open_keeping(path: &Path, max_messages: u64, max_age_ms: Millis) -> (Store, DataDir) {
    let dir = DataDir::lock(path).unwrap();
    let retention = Retention {
        max_messages,
        max_age_ms,
    };
    (Store::open(&dir).unwrap().with_retention(retention), dir)
}

#[test]
fn retention_keeps_the_newest_per_channel_in_the_same_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open_keeping(tmp.path(), 3, WINDOW_AGE_MS);
    let key = Keypair::generate_ed25519();
    let msgs: Vec<Message> = (0..5)
        .map(|i| msg(&key, "g", NOW - 1_000 + i, &i.to_string()))
        .collect();
    let other = msg(&key, "o", NOW, "other channel");
    let mut batch = msgs.clone();
    batch.push(other.clone());
    // The two oldest of the batch are stored and pruned in one transaction: not new.
    assert_eq!(
        store.insert_messages(&batch, NOW).unwrap(),
        vec![3, 4, 5, 6]
    );
    assert_eq!(
        texts(&store.recent(&ch("g"), 10).unwrap()),
        vec!["2", "3", "4"]
    );
    assert_eq!(store.channels().unwrap(), vec![(ch("g"), 3), (ch("o"), 1)]);
    assert_eq!(store.after(&ch("g"), 0, 10).unwrap().len(), 3);
    // A pruned message sent again (a peer's window may still hold it) is not stored.
    assert!(store.insert_messages(&msgs[..2], NOW).unwrap().is_empty());
    assert_eq!(store.last_seq().unwrap(), 6);
    // A newer one pushes out the oldest kept.
    let newer = msg(&key, "g", NOW, "newer");
    assert_eq!(store.insert_message(&newer, NOW).unwrap(), Some(7));
    assert_eq!(
        texts(&store.recent(&ch("g"), 10).unwrap()),
        vec!["3", "4", "newer"]
    );
}

#[test]
fn retention_removes_messages_past_the_age_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open_keeping(tmp.path(), 100, WINDOW_AGE_MS);
    let key = Keypair::generate_ed25519();
    let old = msg(&key, "g", NOW - 2 * WINDOW_AGE_MS, "too old");
    let fresh = msg(&key, "g", NOW - 1_000, "fresh");
    assert_eq!(
        store
            .insert_messages(&[old.clone(), fresh.clone()], NOW)
            .unwrap(),
        vec![1]
    );
    // A quiet channel ages out too.
    assert_eq!(store.prune_channels(NOW).unwrap(), 0);
    assert_eq!(store.prune_channels(NOW + 2 * WINDOW_AGE_MS).unwrap(), 1);
    assert!(store.recent(&ch("g"), 10).unwrap().is_empty());
    assert_eq!(store.channels().unwrap(), vec![(ch("g"), 0)]);
}

#[test]
fn a_left_channel_is_not_listed_and_stays_left_until_joined() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    {
        let (store, _dir) = open(tmp.path());
        store.insert_message(&msg(&key, "a", 1, "x"), 0).unwrap();
        store.join_channel(&ch("b")).unwrap();
        store.leave_channel(&ch("a")).unwrap();
        store.leave_channel(&ch("never-joined")).unwrap();
    }
    let (store, _dir) = open(tmp.path());
    assert_eq!(store.channels().unwrap(), vec![(ch("b"), 0)]);
    assert_eq!(store.left_channels().unwrap(), vec![ch("a")]);
    assert_eq!(texts(&store.recent(&ch("a"), 10).unwrap()), vec!["x"]);
    // A message of a left channel (one in flight as it was left) keeps it left.
    store.insert_message(&msg(&key, "a", 2, "y"), 0).unwrap();
    assert_eq!(store.channels().unwrap(), vec![(ch("b"), 0)]);
    store.join_channel(&ch("a")).unwrap();
    assert_eq!(store.channels().unwrap(), vec![(ch("a"), 2), (ch("b"), 0)]);
    assert!(store.left_channels().unwrap().is_empty());
}

#[test]
fn messages_from_the_future_are_never_ranked() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _dir) = open(tmp.path());
    let key = Keypair::generate_ed25519();
    let year_2100: Millis = 4_102_444_800_000;
    let junk: Vec<Message> = (0..20)
        .map(|i| msg(&key, "g", year_2100 + i, "from 2100"))
        .collect();
    let real = msg(&key, "g", NOW, "real");
    let near = msg(&key, "g", NOW + MAX_FUTURE_SKEW_MS, "a fast clock");
    store.insert_messages(&junk, NOW).unwrap();
    store
        .insert_messages(&[real.clone(), near.clone()], NOW)
        .unwrap();
    let history: Vec<MessageId> = store
        .history(&ch("g"), NOW)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(history, vec![near.id, real.id]);
    assert_eq!(
        store.window_ids(&ch("g"), NOW).unwrap(),
        vec![near.id, real.id]
    );
}
