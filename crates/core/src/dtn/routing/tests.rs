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
        self.exchange(a, b);
        for (x, y) in [(a, b), (b, a)] {
            for forward in self.plan(x, y) {
                if fail() {
                    self.routers[x].on_forward_failed(&node(y), &forward.id);
                } else {
                    self.transfer(x, y, &forward);
                }
            }
        }
        self.routers[a].contact_down(&node(b), now);
        self.routers[b].contact_down(&node(a), now);
        for r in &self.routers {
            assert!(
                r.held
                    .values()
                    .all(|h| !r.is_acked(&h.meta.id, &h.meta.destination)),
                "a router holds a bundle it knows delivered"
            );
        }
    }

    /// `x` sends `y` a planned bundle, which arrives.
    fn transfer(&mut self, x: usize, y: usize, forward: &Forward) {
        let now = self.now;
        let meta = self.routers[x]
            .held(&forward.id)
            .expect("planned bundles are held")
            .meta
            .relayed(&node(x));
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

    /// Both summaries, each fed to the other side; checked against the simulator's
    /// shortcut, which must leave both routers exactly as they do.
    fn exchange(&mut self, a: usize, b: usize) {
        let now = self.now;
        let (mut a2, mut b2) = (self.routers[a].clone(), self.routers[b].clone());
        let sa = self.routers[a].summary(now);
        let sb = self.routers[b].summary(now);
        let gone_a = self.routers[a].on_summary(&node(b), sb, now);
        let gone_b = self.routers[b].on_summary(&node(a), sa, now);
        let shortcut = Router::exchange_summaries(&mut a2, &mut b2, now);
        assert_eq!(shortcut, (gone_a, gone_b));
        assert_eq!(a2, self.routers[a]);
        assert_eq!(b2, self.routers[b]);
    }

    /// `x`'s plan for `y`, checked against planning from scratch.
    fn plan(&mut self, x: usize, y: usize) -> Vec<Forward> {
        let mut probe = self.routers[x].clone();
        probe.age_prophet(self.now);
        let expected = plan_from_scratch(&probe, &node(y), self.now);
        let plan = self.routers[x].plan(&node(y), self.now);
        assert_eq!(plan, expected);
        plan
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

/// `plan` without its shortcuts (walks, the cache of declined bundles, the
/// invariant that no acknowledged bundle is held), on a router already aged, and
/// without reserving anything: what it must return.
fn plan_from_scratch(r: &Router, peer: &NodeId, now: DtnMillis) -> Vec<Forward> {
    let Some(contact) = r.contacts.get(peer).filter(|c| c.summarised) else {
        return Vec::new();
    };
    let mut chosen: Vec<(&Held, Forward)> = Vec::new();
    for held in r.held.values() {
        let id = &held.meta.id;
        if held.meta.is_expired(now)
            || contact.holds.contains_key(id)
            || contact.in_flight.contains_key(id)
            || r.is_acked(id, &held.meta.destination)
        {
            continue;
        }
        let forward = |copies, reason| Forward {
            id: id.clone(),
            copies,
            reason,
        };
        let destination = &held.meta.destination;
        let decision = if destination == peer {
            Some(forward(1, ForwardReason::Destination))
        } else {
            match &r.strategy {
                Strategy::DirectDelivery => None,
                Strategy::Epidemic => Some(forward(1, ForwardReason::Replicate)),
                Strategy::SprayAndWait { .. } => {
                    (held.copies > 1).then(|| forward(held.copies / 2, ForwardReason::Spray))
                }
                Strategy::Prophet(_) => {
                    let theirs = contact.predictabilities.get(destination).copied();
                    let ours = r.prophet().map_or(0.0, |t| t.get(destination));
                    (theirs.unwrap_or(0.0) > ours).then(|| forward(1, ForwardReason::Prophet))
                }
            }
        };
        chosen.extend(decision.map(|f| (held, f)));
    }
    chosen.sort_by(|(a, fa), (b, fb)| {
        let direct = |f: &Forward| f.reason != ForwardReason::Destination;
        direct(fa)
            .cmp(&direct(fb))
            .then(b.meta.priority.cmp(&a.meta.priority))
            .then(a.meta.id.created().cmp(&b.meta.id.created()))
            .then(a.meta.id.cmp(&b.meta.id))
    });
    chosen.into_iter().map(|(_, f)| f).collect()
}

/// `on_summary` without its shortcuts: every id inserted and every ack applied one
/// by one, in the order given. What it must do.
fn on_summary_one_by_one(
    r: &mut Router,
    peer: &NodeId,
    summary: Summary,
    now: DtnMillis,
) -> Vec<Removed> {
    let Some(contact) = r.contacts.get_mut(peer) else {
        return Vec::new();
    };
    contact.summarised = true;
    for id in summary.holds {
        if contact.holds.len() >= MAX_SUMMARY_IDS {
            break;
        }
        contact.holds.insert(id, ());
    }
    if r.prophet.is_some() {
        contact.declined = None;
        contact.predictabilities = summary
            .predictabilities
            .into_iter()
            .take(prophet::MAX_PROPHET_ENTRIES)
            .map(|(node, p)| (node, prophet::clamp_unit(p)))
            .collect();
    }
    let mut removed = Vec::new();
    for ack in summary.acks.into_iter().take(MAX_ACKS) {
        removed.extend(r.on_ack(ack, now));
    }
    if let Some((config, table)) = r.prophet.as_mut() {
        let contact = &r.contacts[peer];
        let preds = contact.predictabilities.iter().map(|(n, p)| (n, *p));
        table.transitive(config, &r.local, peer, preds, now);
    }
    removed
}

fn strategy(i: usize) -> Strategy {
    [
        Strategy::DirectDelivery,
        Strategy::Epidemic,
        Strategy::SprayAndWait { copies: 4 },
        Strategy::Prophet(ProphetConfig::default()),
    ][i % 4]
        .clone()
}

/// What happens in a small network before the moment a test looks at.
#[derive(Debug, Clone)]
enum Step {
    Originate(usize, usize),
    /// A contact; transfers fail on the `true`s, in turn.
    Meet(usize, usize, Vec<bool>),
    Wait(u64),
}

fn history(n: usize) -> impl Generator<Value = Vec<Step>> {
    let step = proptest::prop_oneof![
        (0..n, 0..n).prop_map(|(a, b)| Step::Originate(a, b)),
        (0..n, 1..n, proptest::collection::vec(any::<bool>(), 0..4))
            .prop_map(move |(a, d, fails)| Step::Meet(a, (a + d) % n, fails)),
        (0u64..4 * HOUR).prop_map(Step::Wait),
    ];
    proptest::collection::vec(step, 0..40)
}

impl Net {
    /// A new bundle from `src` to `dst`, unless they are one node or the test has
    /// run past the bundles' lifetime.
    fn originate_while_alive(&mut self, src: usize, dst: usize, n: u64) {
        if src != dst && !meta_from(src, dst, n, Priority::Normal).is_expired(self.now) {
            self.originate(src, dst, n);
        }
    }

    fn replay(&mut self, history: &[Step]) {
        for (k, step) in history.iter().enumerate() {
            match step {
                Step::Originate(a, b) => self.originate_while_alive(*a, *b, 1_000 + k as u64),
                Step::Meet(a, b, fails) => {
                    let mut fails = fails.iter().copied().cycle();
                    self.contact(*a, *b, || fails.next().unwrap_or(false));
                }
                Step::Wait(ms) => self.now += ms,
            }
        }
    }
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
        assert!(net.routers[bus].is_acked(&id, &node(town)));
        // The next village–bus contact carries the ack home.
        net.contact(village, bus, never);
        assert!(net.holders(&id).is_empty(), "{strategy}");
        // A stray copy coming round again is refused everywhere it is known.
        let stale = meta_from(village, town, 1, Priority::Normal).relayed(&node(bus));
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
    let meta = meta_from(3, 9, 1, Priority::Normal).relayed(&node(3));
    r.insert(meta.clone(), None, T0);
    r.contact_up(&node(1), T0);
    let removed = r.on_summary(
        &node(1),
        Summary {
            acks: vec![Ack {
                id: meta.id.clone(),
                destination: meta.destination.clone(),
                expires_at: u64::MAX,
                signature: None,
            }],
            ..Summary::default()
        },
        T0,
    );
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, Removal::Acked);
    assert!(r.is_empty());
    assert_eq!(r.admission(&meta, T0), Admission::AlreadyDelivered);
    // A forged far-future expiry is capped at the retention limit (the ack keeps
    // the expiry it says, which its signature covers, but is kept no longer).
    r.expire(T0 + MAX_ACK_RETENTION_MS - 1);
    assert!(r.is_acked(&meta.id, &meta.destination));
    r.expire(T0 + MAX_ACK_RETENTION_MS);
    assert!(!r.is_acked(&meta.id, &meta.destination));
    // Already-expired acks are not kept at all.
    assert!(
        r.on_ack(
            Ack {
                id: meta.id.clone(),
                destination: meta.destination.clone(),
                expires_at: T0,
                signature: None,
            },
            T0 + 1
        )
        .is_none()
    );
    assert!(!r.is_acked(&meta.id, &meta.destination));
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
    let meta = meta_from(0, 9, 1, Priority::Normal).relayed(&node(0));
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
    // `on_delivered` records the delivery to this node (it is the destination).
    assert!(back.is_acked(&b.id, back.local()));
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

/// The id of bundle `k` from `n{src}`, as its own allocation: equal to, not shared
/// with, the copies the routers hold.
fn fresh_id(src: usize, k: u64) -> BundleId {
    meta_from(src, 0, 1_000 + k, Priority::Normal).id
}

fn any_summary() -> impl Generator<Value = Summary> {
    let id = (0usize..5, 0u64..45).prop_map(|(src, k)| fresh_id(src, k));
    let expiry = proptest::prop_oneof![Just(0), T0..T0 + 200 * HOUR, Just(u64::MAX)];
    let p = proptest::prop_oneof![-0.5f64..1.5, Just(f64::NAN)];
    (
        proptest::collection::vec(id.clone(), 0..20),
        proptest::collection::vec((id, 0usize..8, expiry), 0..30),
        proptest::collection::vec((0usize..8, p), 0..12),
        any::<bool>(),
    )
        .prop_map(|(holds, acks, preds, in_order)| {
            let mut summary = Summary {
                holds,
                acks: acks
                    .into_iter()
                    .map(|(id, d, expires_at)| Ack {
                        id,
                        destination: node(d),
                        expires_at,
                        signature: None,
                    })
                    .collect(),
                predictabilities: preds.into_iter().map(|(n, p)| (node(n), p)).collect(),
            };
            if in_order {
                // As a router lists them.
                summary.holds.sort();
                summary.holds.dedup();
                summary
                    .acks
                    .sort_by(|a, b| (&a.id, &a.destination).cmp(&(&b.id, &b.destination)));
                summary
                    .acks
                    .dedup_by(|a, b| (&a.id, &a.destination) == (&b.id, &b.destination));
                summary.predictabilities.sort_by(|a, b| a.0.cmp(&b.0));
                summary.predictabilities.dedup_by(|a, b| a.0 == b.0);
            }
            summary
        })
}

/// What happens on a long contact between n0 and n1.
#[derive(Debug, Clone)]
enum During {
    /// n0 (`true`) or n1 plans for the other; each forward then arrives (0), fails
    /// (1) or stays in flight (2, and past the end of the list).
    Plan(bool, Vec<u8>),
    Wait(u64),
    /// n0 or n1 meets someone else meanwhile.
    MeetOther(bool, usize),
    Originate(bool, usize),
    Resummary,
}

fn during() -> impl Generator<Value = During> {
    proptest::prop_oneof![
        (any::<bool>(), proptest::collection::vec(0u8..3, 0..6))
            .prop_map(|(x, fates)| During::Plan(x, fates)),
        (0u64..3 * HOUR).prop_map(During::Wait),
        (any::<bool>(), 2usize..6).prop_map(|(x, c)| During::MeetOther(x, c)),
        (any::<bool>(), 0usize..6).prop_map(|(x, d)| During::Originate(x, d)),
        Just(During::Resummary),
    ]
}

/// A bundle PRoPHET declined to send a peer is offered again once our
/// predictability has aged below the peer's, or the peer's summary says more.
#[test]
fn a_declined_bundle_goes_once_the_peer_turns_out_better() {
    let (me, peer, dest) = (node(0), node(1), node(9));
    let summary = |p: f64| Summary {
        predictabilities: vec![(dest.clone(), p)],
        ..Summary::default()
    };
    let setup = || {
        let mut r = Router::new(me.clone(), Strategy::Prophet(ProphetConfig::default()));
        r.contact_up(&dest, T0);
        r.contact_down(&dest, T0);
        r.insert(meta_from(0, 9, 1, Priority::Normal), None, T0);
        r.contact_up(&peer, T0);
        r.on_summary(&peer, summary(0.45), T0);
        assert!(
            r.plan(&peer, T0).is_empty(),
            "0.45 is no better than our 0.5"
        );
        r
    };
    // Two hours on, our 0.5 has aged to 0.5 · 0.999^120 ≈ 0.443; one hour on, to
    // 0.5 · 0.999^60 ≈ 0.471.
    let mut r = setup();
    assert_eq!(r.plan(&peer, T0 + 2 * HOUR).len(), 1);
    let mut r = setup();
    assert!(r.plan(&peer, T0 + HOUR).is_empty());
    // Or the peer's next summary says 0.6.
    let mut r = setup();
    r.on_summary(&peer, summary(0.6), T0);
    assert_eq!(r.plan(&peer, T0).len(), 1);
}

#[test]
fn a_restored_router_carries_no_bundle_it_knows_delivered() {
    let meta = meta_from(0, 9, 1, Priority::Normal);
    let other = meta_from(0, 9, 2, Priority::Normal);
    let state = RouterState {
        held: vec![
            Held {
                meta: meta.clone(),
                copies: 1,
            },
            Held {
                meta: other.clone(),
                copies: 1,
            },
        ],
        acks: vec![Ack {
            id: meta.id.clone(),
            destination: meta.destination.clone(),
            expires_at: meta.expires_at,
            signature: None,
        }],
        prophet: None,
    };
    let r = Router::from_state(node(0), Strategy::Epidemic, state, T0);
    assert!(r.held(&meta.id).is_none());
    assert!(r.is_acked(&meta.id, &meta.destination));
    assert!(r.held(&other.id).is_some());
}

/// Near `MAX_ACKS`, where the order of acks decides which ones a trim forgets, both
/// `on_summary` and `exchange_summaries` apply a summary ack by ack.
#[test]
fn summaries_at_the_ack_bound_are_applied_ack_by_ack() {
    let max = MAX_ACKS as u64;
    let id = |k: u64| {
        BundleId::new(
            Eid::ipn(7, 1).unwrap(),
            CreationTimestamp { time: k, seq: 0 },
        )
    };
    let acks = |ks: &mut dyn Iterator<Item = u64>, base: DtnMillis| -> Vec<Ack> {
        ks.map(|k| Ack {
            id: id(k),
            destination: node(9),
            expires_at: base + k,
            signature: None,
        })
        .collect()
    };
    let mut near_full = Router::new(node(0), Strategy::Epidemic);
    near_full.contact_up(&node(1), T0);
    near_full.record_acks(acks(&mut (0..max - 3), T0 + HOUR), T0);
    assert_eq!(near_full.acks.len(), MAX_ACKS - 3);
    // Some known (now expiring later), most new, in descending order.
    let news = acks(&mut (max - 10..max + 10).rev(), T0 + 2 * HOUR);
    let mut fast = near_full.clone();
    let mut slow = near_full.clone();
    let summary = Summary {
        acks: news.clone(),
        ..Summary::default()
    };
    fast.on_summary(&node(1), summary.clone(), T0);
    on_summary_one_by_one(&mut slow, &node(1), summary, T0);
    assert_eq!(fast, slow);
    assert!(fast.acks.len() < MAX_ACKS);

    let mut peer = Router::new(node(1), Strategy::Epidemic);
    peer.contact_up(&node(0), T0);
    peer.record_acks(news, T0);
    let (mut a, mut b) = (near_full.clone(), peer.clone());
    let (mut a2, mut b2) = (near_full, peer);
    let sa = a.summary(T0);
    let sb = b.summary(T0);
    let gone = (
        a.on_summary(&node(1), sb, T0),
        b.on_summary(&node(0), sa, T0),
    );
    assert_eq!(Router::exchange_summaries(&mut a2, &mut b2, T0), gone);
    assert_eq!((a2, b2), (a, b));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Acks already known are skipped and ids in order are taken in one go, which
    /// must come to what applying every ack and id one by one comes to.
    #[test]
    fn on_summary_comes_to_applying_everything_one_by_one(
        s in 0usize..4,
        history in history(5),
        peer in 1usize..5,
        summary in any_summary(),
        later in 0u64..HOUR,
    ) {
        let mut net = Net::new(5, strategy(s));
        net.replay(&history);
        let now = net.now + later;
        let mut fast = net.routers[0].clone();
        fast.contact_up(&node(peer), now);
        let mut slow = fast.clone();
        // Twice: the second time the contact already knows some of it.
        for _ in 0..2 {
            let removed = fast.on_summary(&node(peer), summary.clone(), now);
            let expected = on_summary_one_by_one(&mut slow, &node(peer), summary.clone(), now);
            prop_assert_eq!(removed, expected);
            prop_assert_eq!(&fast, &slow);
        }
    }

    /// A long PRoPHET contact, planned again and again while both tables change
    /// (aging, other meetings, new bundles): every plan is what planning from
    /// scratch gives (`Net::plan` checks it), whatever `plan` remembers between.
    #[test]
    fn prophet_plans_in_a_long_contact_are_plans_from_scratch(
        history in history(6),
        ops in proptest::collection::vec(during(), 1..40),
    ) {
        let mut net = Net::new(6, Strategy::Prophet(ProphetConfig::default()));
        net.replay(&history);
        net.now += 60_000;
        net.routers[0].contact_up(&node(1), net.now);
        net.routers[1].contact_up(&node(0), net.now);
        net.exchange(0, 1);
        for (k, op) in ops.into_iter().enumerate() {
            let pick = |first: bool| if first { (0, 1) } else { (1, 0) };
            match op {
                During::Plan(first, fates) => {
                    let (x, y) = pick(first);
                    for (forward, fate) in net.plan(x, y).iter().zip(fates) {
                        match fate {
                            0 => net.transfer(x, y, forward),
                            1 => net.routers[x].on_forward_failed(&node(y), &forward.id),
                            _ => {}
                        }
                    }
                }
                During::Wait(ms) => net.now += ms,
                During::MeetOther(first, c) => net.contact(pick(first).0, c, never),
                During::Originate(first, d) => {
                    net.originate_while_alive(pick(first).0, d, 5_000 + k as u64);
                }
                During::Resummary => net.exchange(0, 1),
            }
        }
        net.routers[0].contact_down(&node(1), net.now);
        net.routers[1].contact_down(&node(0), net.now);
    }
}
