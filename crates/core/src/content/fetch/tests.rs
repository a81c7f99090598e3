use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::Keypair;

const MIB: u64 = 1 << 20;

fn peer(n: u8) -> PeerId {
    Keypair::ed25519_from_bytes([n; 32])
        .unwrap()
        .public()
        .to_peer_id()
}

fn config(request_groups: u64, max_in_flight_per_peer: usize) -> FetchConfig {
    FetchConfig {
        request_groups,
        max_in_flight_per_peer,
        ..FetchConfig::default()
    }
}

/// A fresh download of `groups` whole groups.
fn download(groups: u64, config: FetchConfig) -> Fetch {
    Fetch::new(
        groups * GROUP_BYTES,
        Some(Bitfield::new(groups).unwrap()),
        config,
    )
    .unwrap()
}

fn stats(fetch: &Fetch, who: &PeerId) -> ProviderStats {
    fetch
        .providers()
        .into_iter()
        .find(|s| s.peer == *who)
        .unwrap()
}

#[test]
fn providers_share_the_lowest_ranges() {
    let (a, b) = (peer(1), peer(2));
    let mut fetch = download(640, config(64, 4));
    fetch.add_provider(a, None);
    fetch.add_provider(b, None);
    let requests = fetch.poll_requests();
    let expected: Vec<_> = (0..8)
        .map(|n| (if n % 2 == 0 { a } else { b }, n * 64, n * 64 + 64))
        .collect();
    assert_eq!(requests, expected);
    assert!(fetch.poll_requests().is_empty(), "every slot is taken");
    fetch.completed(&b, 64, 128);
    assert_eq!(fetch.poll_requests(), [(b, 512, 576)]);
}

#[test]
fn a_resumed_download_asks_only_for_what_is_missing() {
    let mut have = Bitfield::new(640).unwrap();
    have.set_range(0, 600);
    have.set(610);
    let mut fetch = Fetch::new(10 * MIB, Some(have), FetchConfig::default()).unwrap();
    assert_eq!(fetch.verified_bytes(), 601 * GROUP_BYTES);
    let a = peer(1);
    fetch.add_provider(a, None);
    assert_eq!(fetch.poll_requests(), [(a, 600, 610), (a, 611, 640)]);
    fetch.completed(&a, 600, 610);
    fetch.completed(&a, 611, 640);
    assert!(fetch.is_complete());
    assert_eq!(fetch.verified_bytes(), fetch.size());
    assert_eq!(stats(&fetch, &a).verified_bytes, 39 * GROUP_BYTES);
}

#[test]
fn a_have_for_another_size_is_ignored() {
    let fetch = Fetch::new(
        10 * MIB,
        Some(Bitfield::full(3).unwrap()),
        FetchConfig::default(),
    )
    .unwrap();
    assert_eq!(fetch.have().groups(), 640);
    assert_eq!(fetch.verified_bytes(), 0);
}

#[test]
fn a_removed_provider_s_ranges_go_to_the_others() {
    let (a, b) = (peer(1), peer(2));
    let mut fetch = download(4, config(1, 2));
    fetch.add_provider(a, None);
    fetch.add_provider(b, None);
    assert_eq!(
        fetch.poll_requests(),
        [(a, 0, 1), (b, 1, 2), (a, 2, 3), (b, 3, 4)]
    );
    fetch.remove_provider(&a);
    assert_eq!(stats(&fetch, &a).dropped, Some(Dropped::Gone));
    assert_eq!(stats(&fetch, &a).in_flight, 0);
    assert!(fetch.poll_requests().is_empty(), "b is busy");
    fetch.completed(&b, 1, 2);
    assert_eq!(fetch.poll_requests(), [(b, 0, 1)]);
    fetch.completed(&b, 3, 4);
    assert_eq!(fetch.poll_requests(), [(b, 2, 3)]);
    // a comes back: it is asked again.
    fetch.add_provider(a, None);
    assert_eq!(stats(&fetch, &a).dropped, None);
    assert_eq!(
        fetch.poll_requests(),
        [(a, 0, 1), (a, 2, 3)],
        "nothing is left to hand out, so a repeats b's requests"
    );
}

#[test]
fn the_endgame_duplicates_a_straggler_once() {
    let (a, b, c) = (peer(1), peer(2), peer(3));
    let mut fetch = download(4, config(1, 1));
    for p in [a, b, c] {
        fetch.add_provider(p, None);
    }
    assert_eq!(fetch.poll_requests(), [(a, 0, 1), (b, 1, 2), (c, 2, 3)]);
    fetch.completed(&b, 1, 2);
    fetch.completed(&c, 2, 3);
    // b takes the last fresh range; c has nothing new, so it repeats a's.
    assert_eq!(fetch.poll_requests(), [(b, 3, 4), (c, 0, 1)]);
    fetch.completed(&b, 3, 4);
    assert!(
        fetch.poll_requests().is_empty(),
        "a's range is duplicated once"
    );
    fetch.completed(&c, 0, 1);
    assert!(fetch.is_complete());
    // a's answer arrives late: nothing is counted twice.
    fetch.completed(&a, 0, 1);
    assert_eq!(fetch.verified_bytes(), 4 * GROUP_BYTES);
    assert_eq!(stats(&fetch, &a).verified_bytes, 0);
    assert_eq!(stats(&fetch, &c).verified_bytes, 2 * GROUP_BYTES);
    assert!(fetch.providers().iter().all(|s| s.in_flight == 0));
}

#[test]
fn a_failed_straggler_leaves_its_range_to_the_duplicate() {
    let (a, b) = (peer(1), peer(2));
    let mut fetch = download(2, config(1, 1));
    fetch.add_provider(a, None);
    fetch.add_provider(b, None);
    assert_eq!(fetch.poll_requests(), [(a, 0, 1), (b, 1, 2)]);
    fetch.completed(&b, 1, 2);
    assert_eq!(fetch.poll_requests(), [(b, 0, 1)]);
    fetch.failed(&a, 0, 1, 0, Failure::Timeout);
    // b now owns the range, so a may in turn repeat it.
    assert_eq!(fetch.poll_requests(), [(a, 0, 1)]);
    fetch.completed(&b, 0, 1);
    assert!(fetch.is_complete());
    assert_eq!(stats(&fetch, &b).verified_bytes, 2 * GROUP_BYTES);
}

#[test]
fn a_corrupt_provider_is_dropped_for_good_but_its_good_prefix_kept() {
    let (a, b) = (peer(1), peer(2));
    let mut fetch = download(4, config(2, 1));
    fetch.add_provider(a, None);
    fetch.add_provider(b, None);
    assert_eq!(fetch.poll_requests(), [(a, 0, 2), (b, 2, 4)]);
    fetch.failed(&a, 0, 2, 1, Failure::Corrupt);
    assert!(fetch.have().get(0));
    assert_eq!(stats(&fetch, &a).verified_bytes, GROUP_BYTES);
    assert_eq!(stats(&fetch, &a).dropped, Some(Dropped::Corrupt));
    fetch.add_provider(a, None);
    fetch.remove_provider(&a);
    assert_eq!(stats(&fetch, &a).dropped, Some(Dropped::Corrupt));
    assert!(fetch.poll_requests().is_empty());
    fetch.completed(&b, 2, 4);
    assert_eq!(fetch.poll_requests(), [(b, 1, 2)]);
}

#[test]
fn repeated_failures_drop_a_provider_until_it_is_added_again() {
    let a = peer(1);
    let mut fetch = download(
        4,
        FetchConfig {
            max_failures: 2,
            ..config(1, 1)
        },
    );
    fetch.add_provider(a, None);
    assert_eq!(fetch.poll_requests(), [(a, 0, 1)]);
    fetch.failed(&a, 0, 1, 0, Failure::Timeout);
    assert_eq!(fetch.poll_requests(), [(a, 0, 1)]);
    fetch.completed(&a, 0, 1);
    assert_eq!(fetch.poll_requests(), [(a, 1, 2)]);
    fetch.failed(&a, 1, 2, 0, Failure::Unavailable);
    assert_eq!(
        fetch.poll_requests(),
        [(a, 1, 2)],
        "the completion broke the run"
    );
    fetch.failed(&a, 1, 2, 0, Failure::Timeout);
    assert_eq!(stats(&fetch, &a).dropped, Some(Dropped::Failing));
    assert!(fetch.poll_requests().is_empty());
    assert!(fetch.is_stalled());
    fetch.add_provider(a, None);
    assert!(!fetch.is_stalled());
    assert_eq!(fetch.poll_requests(), [(a, 1, 2)]);
}

#[test]
fn a_failed_request_keeps_its_verified_prefix() {
    let a = peer(1);
    let mut fetch = download(8, config(4, 1));
    fetch.add_provider(a, None);
    assert_eq!(fetch.poll_requests(), [(a, 0, 4)]);
    fetch.failed(&a, 0, 4, 3, Failure::Timeout);
    assert_eq!(fetch.verified_bytes(), 3 * GROUP_BYTES);
    assert_eq!(fetch.poll_requests(), [(a, 3, 7)]);
}

#[test]
fn partial_providers_are_asked_only_for_what_they_hold() {
    let (a, b) = (peer(1), peer(2));
    let mut fetch = download(8, config(4, 4));
    let mut holds = Bitfield::new(8).unwrap();
    holds.set_range(0, 3);
    holds.set(6);
    fetch.add_provider(a, Some(holds));
    assert_eq!(fetch.poll_requests(), [(a, 0, 3), (a, 6, 7)]);
    fetch.completed(&a, 0, 3);
    fetch.completed(&a, 6, 7);
    assert!(fetch.poll_requests().is_empty());
    assert!(fetch.is_stalled());
    fetch.add_provider(b, None);
    assert!(!fetch.is_stalled());
    assert_eq!(fetch.poll_requests(), [(b, 3, 6), (b, 7, 8)]);
}

#[test]
fn an_empty_blob_is_one_empty_group() {
    let a = peer(1);
    let mut fetch = Fetch::new(0, Some(Bitfield::new(1).unwrap()), FetchConfig::default()).unwrap();
    assert!(!fetch.is_complete());
    fetch.add_provider(a, None);
    assert_eq!(fetch.poll_requests(), [(a, 0, 1)]);
    fetch.completed(&a, 0, 1);
    assert!(fetch.is_complete());
    assert_eq!(fetch.verified_bytes(), 0);
    assert!(fetch.poll_requests().is_empty());
}

#[test]
fn a_short_last_group_counts_its_real_bytes() {
    let a = peer(1);
    let mut fetch = Fetch::new(
        GROUP_BYTES + 10,
        Some(Bitfield::new(2).unwrap()),
        FetchConfig::default(),
    )
    .unwrap();
    fetch.add_provider(a, None);
    assert_eq!(fetch.poll_requests(), [(a, 0, 2)]);
    fetch.completed(&a, 0, 2);
    assert_eq!(fetch.verified_bytes(), GROUP_BYTES + 10);
    let mut have = Bitfield::new(2).unwrap();
    have.set(1);
    assert_eq!(
        Fetch::new(GROUP_BYTES + 10, Some(have), FetchConfig::default())
            .unwrap()
            .verified_bytes(),
        10
    );
}

#[test]
fn bogus_reports_are_harmless() {
    let (a, stranger) = (peer(1), peer(9));
    let mut fetch = download(4, config(2, 1));
    fetch.add_provider(a, None);
    assert_eq!(fetch.poll_requests(), [(a, 0, 2)]);
    // Reports for requests never made, out of range, or inverted.
    fetch.failed(&a, 2, 4, 99, Failure::Timeout);
    fetch.completed(&a, 3, 1);
    fetch.completed(&stranger, 3, 1_000);
    fetch.failed(&stranger, 0, 1, 0, Failure::Corrupt);
    assert_eq!(stats(&fetch, &a).dropped, None);
    assert_eq!(
        fetch.verified_bytes(),
        2 * GROUP_BYTES,
        "verified data is data"
    );
    assert_eq!(fetch.providers().len(), 1);
    fetch.completed(&a, 0, 2);
    assert!(fetch.is_complete());
}

#[test]
fn zero_config_values_count_as_one() {
    let a = peer(1);
    let mut fetch = download(
        4,
        FetchConfig {
            request_groups: 0,
            max_in_flight_per_peer: 0,
            max_failures: 0,
        },
    );
    fetch.add_provider(a, None);
    assert_eq!(fetch.poll_requests(), [(a, 0, 1)]);
    fetch.failed(&a, 0, 1, 0, Failure::Timeout);
    assert_eq!(stats(&fetch, &a).dropped, Some(Dropped::Failing));
}

/// A deterministic generator for the simulation (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Honest,
    /// Honest, holding only part of the blob.
    Partial,
    /// Sends a good prefix, then bad data.
    Corrupt,
    /// Sometimes delivers, sometimes times out or refuses.
    Flaky,
    /// Never answers in time.
    Dead,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Honest),
        Just(Kind::Partial),
        Just(Kind::Corrupt),
        Just(Kind::Flaky),
        Just(Kind::Dead),
    ]
}

struct SimPeer {
    id: PeerId,
    kind: Kind,
    has: Option<Bitfield>,
    /// Relative chance that its next outstanding request is the one that
    /// resolves next.
    speed: u64,
    removed: bool,
    sent_corrupt: bool,
}

/// Drives a fetch against simulated providers with a random interleaving of
/// answers, checking the scheduler's promises at every step. The first peer
/// is honest and complete and is never removed.
fn simulate(
    seed: u64,
    size: u64,
    peers: &[(Kind, u64)],
    config: FetchConfig,
    churn: bool,
    resume: bool,
) -> Fetch {
    let mut rng = Rng(seed);
    let groups = group_count(size);
    let mut have = Bitfield::new(groups).unwrap();
    if resume {
        for g in 0..groups {
            if rng.percent(40) {
                have.set(g);
            }
        }
    }
    let already = Fetch::new(size, Some(have.clone()), config)
        .unwrap()
        .verified_bytes();
    let mut fetch = Fetch::new(size, Some(have), config).unwrap();
    let mut sim: Vec<SimPeer> = peers
        .iter()
        .enumerate()
        .map(|(i, &(kind, speed))| SimPeer {
            id: peer(i as u8),
            kind,
            has: (kind == Kind::Partial).then(|| {
                let mut has = Bitfield::new(groups).unwrap();
                (0..groups)
                    .filter(|_| rng.percent(60))
                    .for_each(|g| has.set(g));
                has
            }),
            speed,
            removed: false,
            sent_corrupt: false,
        })
        .collect();
    for p in &sim {
        fetch.add_provider(p.id, p.has.clone());
    }
    let position = |sim: &[SimPeer], id: &PeerId| sim.iter().position(|p| p.id == *id).unwrap();
    let mut pending: Vec<(usize, u64, u64)> = Vec::new();
    for _ in 0..200_000 {
        let dropped: Vec<PeerId> = fetch
            .providers()
            .into_iter()
            .filter(|s| s.dropped.is_some())
            .map(|s| s.peer)
            .collect();
        let have_before = fetch.have().clone();
        for (id, first, last) in fetch.poll_requests() {
            let i = position(&sim, &id);
            assert!(!dropped.contains(&id), "asked dropped {i}");
            assert!(!sim[i].sent_corrupt, "asked {i}, which sent bad data");
            assert!(first < last && last <= groups);
            assert!(last - first <= config.request_groups.max(1));
            for g in first..last {
                assert!(!have_before.get(g), "asked for verified group {g}");
                assert!(
                    sim[i].has.as_ref().is_none_or(|h| h.get(g)),
                    "asked {i} for {g}, which it lacks"
                );
            }
            pending.push((i, first, last));
        }
        let limit = config.max_in_flight_per_peer.max(1);
        for (i, p) in sim.iter().enumerate() {
            assert!(pending.iter().filter(|r| r.0 == i).count() <= limit || p.removed);
        }
        assert!(fetch.providers().iter().all(|s| s.in_flight <= limit));
        let active: Vec<bool> = fetch
            .providers()
            .iter()
            .map(|s| s.dropped.is_none())
            .collect();
        let mut cover: HashMap<u64, u32> = HashMap::new();
        for &(_, first, last) in pending.iter().filter(|r| active[r.0]) {
            for g in first..last {
                *cover.entry(g).or_default() += 1;
            }
        }
        assert!(
            cover.values().all(|&n| n <= 2),
            "a range went to three peers"
        );

        if fetch.is_complete() {
            break;
        }
        if churn && sim.len() > 1 && rng.percent(2) {
            let i = 1 + rng.below(sim.len() as u64 - 1) as usize;
            if sim[i].removed {
                fetch.add_provider(sim[i].id, sim[i].has.clone());
            } else {
                fetch.remove_provider(&sim[i].id);
                pending.retain(|r| r.0 != i);
            }
            sim[i].removed = !sim[i].removed;
        }
        assert!(!pending.is_empty(), "idle while incomplete");
        let total: u64 = pending.iter().map(|r| sim[r.0].speed).sum();
        let mut pick = rng.below(total);
        let at = pending
            .iter()
            .position(|r| {
                let speed = sim[r.0].speed;
                pick.checked_sub(speed).map(|rest| pick = rest).is_none()
            })
            .unwrap();
        let (i, first, last) = pending.swap_remove(at);
        let id = sim[i].id;
        let len = last - first;
        match sim[i].kind {
            Kind::Honest | Kind::Partial => fetch.completed(&id, first, last),
            Kind::Corrupt => {
                sim[i].sent_corrupt = true;
                fetch.failed(&id, first, last, rng.below(len + 1), Failure::Corrupt);
            }
            Kind::Flaky => match rng.below(10) {
                0..4 => fetch.completed(&id, first, last),
                4..7 => fetch.failed(&id, first, last, rng.below(len + 1), Failure::Timeout),
                _ => fetch.failed(&id, first, last, 0, Failure::Unavailable),
            },
            Kind::Dead => fetch.failed(&id, first, last, 0, Failure::Timeout),
        }
    }
    assert!(fetch.is_complete(), "did not finish");
    assert!(fetch.have().is_complete());
    assert_eq!(fetch.verified_bytes(), size);
    let credited: u64 = fetch.providers().iter().map(|s| s.verified_bytes).sum();
    assert_eq!(credited + already, size, "a group was counted twice");
    assert!(fetch.poll_requests().is_empty());
    assert!(!fetch.is_stalled());
    fetch
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), 1..3 * GROUP_BYTES, 0..3 * MIB]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn finishes_correctly_whatever_the_providers_do(
        seed in any::<u64>(),
        size in size(),
        others in proptest::collection::vec((kind(), 1u64..=8), 0..6),
        request_groups in 1u64..=16,
        max_in_flight_per_peer in 1usize..=4,
        max_failures in 1u32..=3,
        churn in any::<bool>(),
        resume in any::<bool>(),
    ) {
        let mut peers = vec![(Kind::Honest, 1 + seed % 8)];
        peers.extend(others);
        let config = FetchConfig { request_groups, max_in_flight_per_peer, max_failures };
        let fetch = simulate(seed, size, &peers, config, churn, resume);
        for (stats, &(kind, _)) in fetch.providers().iter().zip(&peers) {
            if kind == Kind::Dead {
                prop_assert_eq!(stats.verified_bytes, 0);
            }
        }
    }
}

proptest! {
    // Each case moves 256 MiB through the simulation.
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn equal_honest_providers_each_take_a_share(seed in any::<u64>()) {
        let size = 256 * MIB;
        // 1 MiB requests: 256 of them, so chance evens out. (With the 4 MiB
        // default a 256 MiB blob is 64 requests, and an eighth is only about
        // two deviations away.)
        let fetch = simulate(seed, size, &[(Kind::Honest, 1); 4], config(64, 4), false, false);
        for stats in fetch.providers() {
            // Each expects a quarter; an eighth is over four deviations away.
            prop_assert!(stats.verified_bytes >= size / 8, "{:?}", fetch.providers());
        }
    }
}

/// A `BlobResponse` as a hostile provider may write it: every field its own
/// choice, the bitfield's parts included (postcard lays out an enum by
/// variant index, so this encodes like the real type).
#[derive(serde::Serialize)]
enum HostileResponse {
    Have {
        size: u64,
        kind: crate::content::ContentKind,
        groups: Option<(u64, Vec<u64>)>,
    },
}

/// The size limit of the property below: small, so blobs stay cheap, with
/// sizes beyond it refused as the node refuses those beyond its own.
const TEST_MAX_BYTES: u64 = 300 * GROUP_BYTES;

proptest! {
    /// Whatever a provider answers to "what do you have", once decoded and
    /// checked the way the node does (`check_have`), the scheduler takes it
    /// and any sequence of reports that follow without panicking, and its
    /// figures stay within the blob.
    #[test]
    fn any_have_answer_fed_to_the_scheduler_is_safe(
        size in prop_oneof![0..TEST_MAX_BYTES + GROUP_BYTES, any::<u64>()],
        field in proptest::option::of((
            any::<u8>(),
            any::<u64>(),
            proptest::collection::vec(any::<u64>(), 0..7),
        )),
        resumed in any::<bool>(),
        events in proptest::collection::vec((0u64..330, 0u64..330, 0u8..5), 0..40),
        noise in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        use crate::transfer::{BlobResponse, check_have};
        // Mostly a field of the right count (its words fitted, its padding
        // cleared or not), else any count and any words.
        let field = field.map(|(how, other, mut words)| {
            let groups = if how % 4 == 0 { other } else { group_count(size) };
            if how % 4 != 1 {
                words.resize(groups.div_ceil(64).min(8) as usize, !0);
            }
            if how % 4 == 2 && groups % 64 != 0 && let Some(last) = words.last_mut() {
                *last &= (1 << (groups % 64)) - 1;
            }
            (groups, words)
        });
        let mut bytes = postcard::to_stdvec(&HostileResponse::Have {
            size,
            kind: crate::content::ContentKind::Blob,
            groups: field,
        })
        .unwrap();
        // Arbitrary bytes too: trailing, or in place of the answer.
        if noise.first().is_some_and(|b| b % 3 == 0) {
            bytes = noise.clone();
        }
        let Ok(BlobResponse::Have { size, groups, .. }) = postcard::from_bytes(&bytes) else {
            return Ok(());
        };

        if check_have(size, groups.as_ref(), TEST_MAX_BYTES).is_err() {
            return Ok(());
        }
        let have = if resumed { groups.clone() } else { None };
        let mut fetch = Fetch::new(size, have, config(4, 2)).unwrap();
        fetch.add_provider(peer(1), groups.clone());
        fetch.add_provider(peer(2), None);
        for (a, b, what) in events {
            let requests = fetch.poll_requests();
            for (_, first, last) in &requests {
                prop_assert!(first < last && *last <= group_count(size));
            }
            match (what, requests.first()) {
                (0, Some(&(who, first, last))) => fetch.completed(&who, first, last),
                (1, _) => fetch.completed(&peer(1), a, b),
                (2, _) => fetch.failed(&peer(1), a, b, a ^ b, Failure::Timeout),
                (3, _) => fetch.failed(&peer(2), a, b, b, Failure::Corrupt),
                _ => fetch.add_provider(peer(1), groups.clone()),
            }
            prop_assert!(fetch.verified_bytes() <= size);
            let _ = fetch.is_stalled();
        }
        if fetch.is_complete() {
            prop_assert_eq!(fetch.verified_bytes(), size);
        }
    }
}
