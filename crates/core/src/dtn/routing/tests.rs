use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::{Just, ProptestConfig, any, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::Strategy as Generator;

use super::*;
use crate::dtn::{CreationTimestamp, Eid, Priority};

fn node(i: usize) -> NodeId {
    NodeId::dtn(&format!("n{i}")).unwrap()
}

const HOUR: DtnMillis = 3_600_000;
const T0: DtnMillis = 800_000_000_000;

fn meta_from(src: usize, dst: usize, n: u64, priority: Priority) -> BundleMeta {
    BundleMeta {
        id: BundleId::new(
            Eid::dtn(&format!("n{src}"), "app").unwrap(),
            CreationTimestamp {
                time: T0 + n,
                seq: 0,
            },
        ),
        destination: node(dst),
        size: 100,
        priority,
        expires_at: T0 + 48 * HOUR,
        own: true,
        received_from: None,
    }
}

/// A tiny network of routers that moves metadata instead of bytes, as the simulator
/// will. `fail` decides, per transfer, whether it fails before the peer stores it.
struct Net {
    routers: Vec<Router>,
    delivered: BTreeMap<BundleId, usize>,
    now: DtnMillis,
}

impl Net {
    fn new(n: usize, strategy: Strategy) -> Self {
        Self {
            routers: (0..n)
                .map(|i| Router::new(node(i), strategy.clone()))
                .collect(),
            delivered: BTreeMap::new(),
            now: T0,
        }
    }

    fn originate(&mut self, src: usize, dst: usize, n: u64) -> BundleId {
        let meta = meta_from(src, dst, n, Priority::Normal);
        let id = meta.id.clone();
        assert_eq!(
            self.routers[src].insert(meta, None, self.now),
            Admission::New
        );
        id
    }

    fn contact(&mut self, a: usize, b: usize, mut fail: impl FnMut() -> bool) {
        self.now += 60_000;
        let now = self.now;
        self.routers[a].contact_up(&node(b), now);
        self.routers[b].contact_up(&node(a), now);
        let sa = self.routers[a].summary(now);
        let sb = self.routers[b].summary(now);
        self.routers[a].on_summary(&node(b), sb, now);
        self.routers[b].on_summary(&node(a), sa, now);
        for (x, y) in [(a, b), (b, a)] {
            for forward in self.routers[x].plan(&node(y), now) {
                if fail() {
                    self.routers[x].on_forward_failed(&node(y), &forward.id);
                    continue;
                }
                let meta = self.routers[x]
                    .held(&forward.id)
                    .expect("planned bundles are held")
                    .meta
                    .relayed(&node(y), &node(x));
                match self.routers[y].admission(&meta, now) {
                    Admission::ForUs => {
                        *self.delivered.entry(meta.id.clone()).or_default() += 1;
                        self.routers[y].on_delivered(&meta.id, meta.expires_at, now);
                    }
                    Admission::New | Admission::Duplicate => {
                        self.routers[y].insert(meta, Some(forward.copies), now);
                    }
                    Admission::AlreadyDelivered | Admission::Expired => {}
                }
                self.routers[x].on_forwarded(&node(y), &forward.id, now);
            }
        }
        self.routers[a].contact_down(&node(b), now);
        self.routers[b].contact_down(&node(a), now);
    }

    fn holders(&self, id: &BundleId) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|&i| self.routers[i].held(id).is_some())
            .collect()
    }

    fn copies(&self, id: &BundleId) -> u32 {
        self.routers
            .iter()
            .map(|r| r.held(id).map_or(0, |h| h.copies) + r.copies_in_flight(id))
            .sum()
    }
}

fn never() -> bool {
    false
}

#[test]
fn the_village_bus_town_mule_delivers_and_the_ack_rides_back() {
    let (village, bus, town) = (0, 1, 2);
    for strategy in [
        Strategy::Epidemic,
        Strategy::SprayAndWait { copies: 4 },
        Strategy::Prophet(ProphetConfig::default()),
    ] {
        let mut net = Net::new(3, strategy.clone());
        // The bus has met the town before (PRoPHET needs that history).
        net.contact(bus, town, never);
        let id = net.originate(village, town, 1);
        net.contact(village, bus, never);
        assert_eq!(net.holders(&id), vec![village, bus], "{strategy}");
        net.contact(bus, town, never);
        assert_eq!(net.delivered.get(&id), Some(&1), "{strategy}");
        // The bus handed it to its destination and dropped its copy at once.
        assert_eq!(net.holders(&id), vec![village], "{strategy}");
        assert!(net.routers[bus].is_acked(&id));
        // The next village–bus contact carries the ack home.
        net.contact(village, bus, never);
        assert!(net.holders(&id).is_empty(), "{strategy}");
        // A stray copy coming round again is refused everywhere it is known.
        let stale = meta_from(village, town, 1, Priority::Normal).relayed(&node(town), &node(bus));
        assert_eq!(
            net.routers[town].admission(&stale, net.now),
            Admission::AlreadyDelivered
        );
    }
}

#[test]
fn direct_delivery_waits_for_the_destination() {
    let mut net = Net::new(3, Strategy::DirectDelivery);
    let id = net.originate(0, 2, 1);
    net.contact(0, 1, never);
    assert_eq!(net.holders(&id), vec![0]);
    net.contact(1, 2, never);
    assert!(net.delivered.is_empty());
    net.contact(0, 2, never);
    assert_eq!(net.delivered.get(&id), Some(&1));
    assert!(net.holders(&id).is_empty());
}

#[test]
fn spray_and_wait_halves_copies_then_waits() {
    let mut net = Net::new(6, Strategy::SprayAndWait { copies: 8 });
    let id = net.originate(0, 5, 1);
    assert_eq!(net.routers[0].held(&id).unwrap().copies, 8);
    net.contact(0, 1, never);
    assert_eq!(net.routers[0].held(&id).unwrap().copies, 4);
    assert_eq!(net.routers[1].held(&id).unwrap().copies, 4);
    net.contact(1, 2, never);
    net.contact(2, 3, never);
    assert_eq!(net.routers[2].held(&id).unwrap().copies, 1);
    assert_eq!(net.routers[3].held(&id).unwrap().copies, 1);
    // One copy: wait phase, only the destination gets it.
    net.contact(3, 4, never);
    assert!(net.routers[4].held(&id).is_none());
    net.contact(3, 5, never);
    assert_eq!(net.delivered.get(&id), Some(&1));
    assert_eq!(net.copies(&id), 4 + 2 + 1); // n0, n1, n2 still hold theirs
}

#[test]
fn reserved_copies_come_back_when_a_transfer_fails_or_the_link_drops() {
    let mut r = Router::new(node(0), Strategy::SprayAndWait { copies: 8 });
    let meta = meta_from(0, 9, 1, Priority::Normal);
    let id = meta.id.clone();
    r.insert(meta, None, T0);
    r.contact_up(&node(1), T0);
    assert!(
        r.plan(&node(1), T0).is_empty(),
        "no plan before the peer's summary"
    );
    r.on_summary(&node(1), Summary::default(), T0);
    let plan = r.plan(&node(1), T0);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].copies, 4);
    assert_eq!(r.held(&id).unwrap().copies, 4);
    assert_eq!(r.copies_in_flight(&id), 4);
    assert!(
        r.plan(&node(1), T0).is_empty(),
        "not offered twice while in flight"
    );
    // A parallel contact can only be offered from what is left.
    r.contact_up(&node(2), T0);
    r.on_summary(&node(2), Summary::default(), T0);
    assert_eq!(r.plan(&node(2), T0)[0].copies, 2);
    r.on_forward_failed(&node(1), &id);
    assert_eq!(r.held(&id).unwrap().copies, 6);
    r.contact_down(&node(2), T0);
    assert_eq!(r.held(&id).unwrap().copies, 8);
    assert_eq!(r.copies_in_flight(&id), 0);
    // A peer that turns it down because it has it already: copies back, not re-offered.
    assert_eq!(r.plan(&node(1), T0)[0].copies, 4);
    r.on_peer_has(&node(1), &id);
    assert_eq!(r.held(&id).unwrap().copies, 8);
    assert!(r.plan(&node(1), T0).is_empty());
}

#[test]
fn plans_put_the_destination_first_then_priority_then_age() {
    let mut r = Router::new(node(0), Strategy::Epidemic);
    let old_bulk = meta_from(0, 9, 1, Priority::Bulk);
    let new_exp = meta_from(0, 9, 5, Priority::Expedited);
    let old_exp = meta_from(0, 9, 2, Priority::Expedited);
    let for_peer = meta_from(0, 1, 9, Priority::Bulk);
    for m in [&old_bulk, &new_exp, &old_exp, &for_peer] {
        r.insert(m.clone(), None, T0);
    }
    r.contact_up(&node(1), T0);
    r.on_summary(
        &node(1),
        Summary {
            holds: vec![old_bulk.id.clone()],
            ..Summary::default()
        },
        T0,
    );
    let order: Vec<BundleId> = r.plan(&node(1), T0).into_iter().map(|f| f.id).collect();
    assert_eq!(order, vec![for_peer.id, old_exp.id, new_exp.id]);
}

#[test]
fn prophet_forwards_only_to_better_carriers() {
    let cfg = ProphetConfig::default();
    let mut r = Router::new(node(0), Strategy::Prophet(cfg));
    // We met node 9 once: P(0,9) = 0.5.
    r.contact_up(&node(9), T0);
    r.contact_down(&node(9), T0);
    let meta = meta_from(0, 9, 1, Priority::Normal);
    r.insert(meta.clone(), None, T0);
    let peer_says = |p9: f64| Summary {
        predictabilities: vec![
            (node(9), p9),
            (node(5), 0.8),
            (node(3), f64::NAN),
            (node(4), 7.0),
        ],
        ..Summary::default()
    };
    r.contact_up(&node(1), T0);
    r.on_summary(&node(1), peer_says(0.3), T0);
    assert!(
        r.plan(&node(1), T0).is_empty(),
        "a worse carrier gets nothing"
    );
    r.contact_up(&node(2), T0);
    r.on_summary(&node(2), peer_says(0.6), T0);
    let plan = r.plan(&node(2), T0);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].reason, ForwardReason::Prophet);
    let table = r.prophet().unwrap();
    assert_eq!(
        table.get(&node(9)),
        0.5,
        "transitivity keeps the higher direct value"
    );
    // Transitivity through node 2 (met once, 0.5): 0.5 * 0.8 * 0.9.
    assert!((table.get(&node(5)) - 0.36).abs() < 1e-12);
    // NaN became 0 and 7.0 became 1: 0.5 * 1 * 0.9.
    assert_eq!(table.get(&node(3)), 0.0);
    assert!((table.get(&node(4)) - 0.45).abs() < 1e-12);
    assert!(table.iter().all(|(_, p)| (0.0..=1.0).contains(&p)));
    let summary = r.summary(T0);
    assert!(summary.predictabilities.iter().any(|(n, _)| *n == node(2)));
}

#[test]
fn acks_delete_copies_and_are_bounded_in_time() {
    let mut r = Router::new(node(0), Strategy::Epidemic);
    let meta = meta_from(3, 9, 1, Priority::Normal).relayed(&node(0), &node(3));
    r.insert(meta.clone(), None, T0);
    r.contact_up(&node(1), T0);
    let removed = r.on_summary(
        &node(1),
        Summary {
            acks: vec![Ack {
                id: meta.id.clone(),
                expires_at: u64::MAX,
            }],
            ..Summary::default()
        },
        T0,
    );
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, Removal::Acked);
    assert!(r.is_empty());
    assert_eq!(r.admission(&meta, T0), Admission::AlreadyDelivered);
    // A forged far-future expiry is capped at the retention limit.
    assert_eq!(
        r.acks().next().unwrap().expires_at,
        T0 + MAX_ACK_RETENTION_MS
    );
    r.expire(T0 + MAX_ACK_RETENTION_MS);
    assert!(!r.is_acked(&meta.id));
    // Already-expired acks are not kept at all.
    assert!(
        r.on_ack(
            Ack {
                id: meta.id.clone(),
                expires_at: T0
            },
            T0 + 1
        )
        .is_none()
    );
    assert!(!r.is_acked(&meta.id));
}

#[test]
fn expiry_drops_bundles_and_refuses_late_arrivals() {
    let mut r = Router::new(node(0), Strategy::Epidemic);
    let meta = meta_from(0, 9, 1, Priority::Normal);
    r.insert(meta.clone(), None, T0);
    assert!(r.expire(meta.expires_at - 1).is_empty());
    let removed = r.expire(meta.expires_at);
    assert_eq!(removed[0].reason, Removal::Expired);
    assert_eq!(r.admission(&meta, meta.expires_at), Admission::Expired);
    assert_eq!(r.insert(meta, None, T0 + 100 * HOUR), Admission::Expired);
    assert!(r.is_empty());
}

#[test]
fn bundles_for_this_node_are_delivered_not_carried() {
    let mut r = Router::new(node(9), Strategy::Epidemic);
    let meta = meta_from(0, 9, 1, Priority::Normal).relayed(&node(9), &node(0));
    assert_eq!(r.insert(meta.clone(), None, T0), Admission::ForUs);
    assert!(r.is_empty());
    r.on_delivered(&meta.id, meta.expires_at, T0);
    assert_eq!(r.admission(&meta, T0), Admission::AlreadyDelivered);
    assert_eq!(r.summary(T0).acks.len(), 1);
}

#[test]
fn state_survives_a_restart() {
    let mut r = Router::new(node(0), Strategy::SprayAndWait { copies: 6 });
    let a = meta_from(0, 9, 1, Priority::Normal);
    let b = meta_from(0, 9, 2, Priority::Normal);
    r.insert(a.clone(), None, T0);
    r.insert(b.clone(), None, T0);
    r.on_delivered(&b.id, b.expires_at, T0);
    r.contact_up(&node(1), T0);
    r.on_summary(&node(1), Summary::default(), T0);
    r.plan(&node(1), T0);
    r.on_forwarded(&node(1), &a.id, T0);
    let saved = r.state();
    let back = Router::from_state(node(0), r.strategy().clone(), saved.clone(), T0);
    assert_eq!(back.state(), saved);
    assert_eq!(back.held(&a.id).unwrap().copies, 3);
    assert!(back.is_acked(&b.id));
    assert_eq!(back.contacts().count(), 0);
}

#[test]
fn strategies_parse_and_print() {
    for text in ["direct", "epidemic", "spray:12", "prophet"] {
        let s: Strategy = text.parse().unwrap();
        assert_eq!(s.to_string(), text);
    }
    assert_eq!(
        "spray".parse::<Strategy>().unwrap(),
        Strategy::SprayAndWait {
            copies: Strategy::DEFAULT_SPRAY_COPIES
        }
    );
    for bad in ["spray:0", "spray:x", "flood", "epidemic:3"] {
        assert!(bad.parse::<Strategy>().is_err(), "{bad}");
    }
}

/// A contact between two different nodes out of `n`.
fn contacts(n: usize, len: std::ops::Range<usize>) -> impl Generator<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((0..n, 1..n), len)
        .prop_map(move |pairs| pairs.into_iter().map(|(a, d)| (a, (a + d) % n)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn spray_and_wait_never_exceeds_l_copies(
        l in 1u32..17,
        n in 3usize..9,
        bundles in proptest::collection::vec((0usize..9, 0usize..9), 1..4),
        seq in contacts(8, 1..60),
        failures in proptest::collection::vec(any::<bool>(), 64),
    ) {
        let mut net = Net::new(n, Strategy::SprayAndWait { copies: l });
        let mut ids = Vec::new();
        for (k, (src, dst)) in bundles.into_iter().enumerate() {
            let (src, dst) = (src % n, dst % n);
            if src == dst { continue; }
            ids.push((net.originate(src, dst, k as u64), dst));
        }
        let mut ever_held: BTreeMap<BundleId, BTreeSet<usize>> = BTreeMap::new();
        let mut coin = failures.into_iter().cycle();
        for (a, b) in seq {
            let (a, b) = (a % n, b % n);
            if a == b { continue; }
            net.contact(a, b, || coin.next().unwrap_or(false));
            for (id, dst) in &ids {
                prop_assert!(net.copies(id) <= l, "{} copies of {id}", net.copies(id));
                let holders = ever_held.entry(id.clone()).or_default();
                holders.extend(net.holders(id).into_iter().filter(|h| h != dst));
                prop_assert!(holders.len() as u32 <= l, "{} holders of {id}", holders.len());
                prop_assert!(net.delivered.get(id).copied().unwrap_or(0) <= 1);
            }
        }
    }

    #[test]
    fn epidemic_delivers_along_any_connected_sequence(
        n in 2usize..9,
        order in Just((1..8).collect::<Vec<usize>>()).prop_shuffle(),
        noise in contacts(8, 0..30),
        noise_at in proptest::collection::vec(0usize..8, 0..30),
    ) {
        // A path 0 → relays… → n-1, each hop a contact after the previous one,
        // with unrelated contacts mixed in anywhere.
        let relays: Vec<usize> = order.into_iter().filter(|&r| r < n - 1).collect();
        let mut path = vec![0];
        path.extend(relays);
        path.push(n - 1);
        let mut seq: Vec<(usize, usize)> = path.windows(2).map(|w| (w[0], w[1])).collect();
        for ((a, b), at) in noise.into_iter().zip(noise_at) {
            let (a, b) = (a % n, b % n);
            if a != b {
                seq.insert(at.min(seq.len()), (a, b));
            }
        }
        // Inserting noise never reorders the path's hops among themselves.
        let mut net = Net::new(n, Strategy::Epidemic);
        let id = net.originate(0, n - 1, 1);
        for (a, b) in seq {
            net.contact(a, b, never);
        }
        prop_assert_eq!(net.delivered.get(&id), Some(&1));
    }
}
