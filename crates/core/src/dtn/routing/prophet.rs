//! PRoPHET delivery predictabilities (RFC 6693 §2.1.2).
//!
//! Each node keeps, per other node, the predictability P ∈ [0, 1] that it will
//! deliver a bundle to that node. Three rules change it:
//!
//! - **Encounter** (RFC 6693 eq. 1): meeting B raises P(A,B). A first meeting (or one
//!   after P(A,B) has decayed below `p_first_threshold`) sets it to
//!   `p_encounter_first`; later ones move it toward 1 − δ by a step P_enc that is
//!   `p_encounter_max` for meetings more than `typical_interval_ms` apart and
//!   proportionally less for more frequent ones, so a flapping link does not inflate it.
//! - **Aging** (eq. 2): every `time_unit_ms` all values are multiplied by γ. Values
//!   that fall below `p_first_threshold` are forgotten, which keeps the table small.
//! - **Transitivity** (eq. 3, RFC 6693's `max` form): after B's table arrives,
//!   P(A,C) = max(P(A,C), P(A,B) · P(B,C) · β).
//!
//! The original paper's P_init = 0.75, β = 0.25, γ = 0.98 became, in RFC 6693,
//! P_encounter_first = 0.5, P_encounter_max = 0.7, β = 0.9, γ = 0.999 and δ = 0.01:
//! those are the defaults here. The RFC leaves the aging unit and the typical interval
//! to the deployment; ferry ages once a minute (γ^1440 ≈ 0.24 a day, so a bus that
//! comes daily is still remembered when it comes back) and calls ten minutes typical.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::vec_map::{VecMap, seek};
use crate::dtn::{DtnMillis, NodeId};

/// Most predictabilities kept (own table, or taken from one peer): bounds memory
/// against a peer that sends a table naming a million nodes.
pub const MAX_PROPHET_ENTRIES: usize = 10_000;

/// PRoPHET's parameters (RFC 6693 §2.1.2; see the module docs). From the config file, so
/// [`ProphetConfig::sanitized`] forces them into range before use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProphetConfig {
    /// P_encounter_first: the predictability set at a first meeting.
    pub p_encounter_first: f64,
    /// P_encounter_max: the largest step up at a later meeting (for meetings at least
    /// `typical_interval_ms` apart).
    pub p_encounter_max: f64,
    /// P_first_threshold: below it a predictability is forgotten, and the next meeting
    /// counts as a first.
    pub p_first_threshold: f64,
    /// δ: encounters move P toward 1 − δ, never to 1.
    pub delta: f64,
    /// β: how much transitivity (A meets B, B often meets C) counts.
    pub beta: f64,
    /// γ: the aging factor applied once per `time_unit_ms`.
    pub gamma: f64,
    /// The aging unit: γ is applied once per unit elapsed.
    pub time_unit_ms: u64,
    /// RFC 6693's I_typ: meetings further apart than this count fully.
    pub typical_interval_ms: u64,
}

impl Default for ProphetConfig {
    fn default() -> Self {
        Self {
            p_encounter_first: 0.5,
            p_encounter_max: 0.7,
            p_first_threshold: 0.1,
            delta: 0.01,
            beta: 0.9,
            gamma: 0.999,
            time_unit_ms: 60_000,
            typical_interval_ms: 600_000,
        }
    }
}

impl ProphetConfig {
    /// The same settings forced into their meaningful ranges, so that no configuration
    /// can push a predictability outside [0, 1] or stop time.
    pub fn sanitized(self) -> Self {
        let unit = |x: f64| {
            if x.is_finite() {
                x.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        Self {
            p_encounter_first: unit(self.p_encounter_first),
            p_encounter_max: unit(self.p_encounter_max),
            p_first_threshold: unit(self.p_first_threshold),
            delta: unit(self.delta),
            beta: unit(self.beta),
            gamma: unit(self.gamma),
            time_unit_ms: self.time_unit_ms.max(1),
            typical_interval_ms: self.typical_interval_ms.max(1),
        }
    }
}

/// One node's predictabilities, with what aging and encounters need to remember.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProphetTable {
    /// A vector: aging, summaries and transitivity walk all of it.
    preds: VecMap<NodeId, f64>,
    last_encounter: BTreeMap<NodeId, DtnMillis>,
    aged_at: Option<DtnMillis>,
    /// Counts the changes that may have lowered a predictability (aging, dropping
    /// entries): while it stands still they only rise, so a carrier found no better
    /// than us stays so. Not part of the table's value.
    #[serde(skip)]
    lowered: u64,
}

impl PartialEq for ProphetTable {
    fn eq(&self, other: &Self) -> bool {
        self.preds == other.preds
            && self.last_encounter == other.last_encounter
            && self.aged_at == other.aged_at
    }
}

impl ProphetTable {
    /// An empty table: no node is predicted.
    pub fn new() -> Self {
        Self::default()
    }

    /// P(self, node); 0 for a node not in the table.
    pub fn get(&self, node: &NodeId) -> f64 {
        self.preds.get(node).copied().unwrap_or(0.0)
    }

    /// Every node with a predictability, and that value, in node id order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, f64)> {
        self.preds.iter().map(|(node, p)| (node, *p))
    }

    /// How many nodes have a predictability.
    pub fn len(&self) -> usize {
        self.preds.len()
    }

    /// Whether no node has a predictability.
    pub fn is_empty(&self) -> bool {
        self.preds.is_empty()
    }

    /// Different whenever a predictability may have gone down since it was read.
    pub(super) fn lowered(&self) -> u64 {
        self.lowered
    }

    /// Applies γ once per whole time unit since the last aging. A clock that goes back
    /// ages nothing; the remainder of a unit carries over to the next call.
    pub fn age(&mut self, config: &ProphetConfig, now: DtnMillis) {
        let Some(aged_at) = self.aged_at else {
            self.aged_at = Some(now);
            return;
        };
        let units = now.saturating_sub(aged_at) / config.time_unit_ms;
        if units == 0 {
            return;
        }
        self.aged_at = Some(aged_at + units * config.time_unit_ms);
        self.lowered += 1;
        let factor = power(config.gamma, units);
        let mut forgotten = Vec::new();
        self.preds.retain(|(node, p)| {
            *p = clamp_unit(*p * factor);
            let keep = kept(*p, config);
            if !keep {
                forgotten.push(node.clone());
            }
            keep
        });
        for node in forgotten {
            self.last_encounter.remove(&node);
        }
    }

    /// RFC 6693 eq. 1: this node has just met `peer`.
    pub fn encounter(&mut self, config: &ProphetConfig, peer: &NodeId, now: DtnMillis) {
        self.age(config, now);
        let old = self.get(peer);
        let new = if old < config.p_first_threshold || !self.preds.contains_key(peer) {
            config.p_encounter_first
        } else {
            let interval = self
                .last_encounter
                .get(peer)
                .map_or(u64::MAX, |at| now.saturating_sub(*at));
            let p_enc = if interval >= config.typical_interval_ms {
                config.p_encounter_max
            } else {
                config.p_encounter_max * interval as f64 / config.typical_interval_ms as f64
            };
            old + (1.0 - config.delta - old) * p_enc
        };
        let new = clamp_unit(new);
        if new < old {
            self.lowered += 1;
        }
        self.preds.insert(peer.clone(), new);
        self.last_encounter.insert(peer.clone(), now);
        self.enforce_bound();
    }

    /// RFC 6693 eq. 3 with `peer`'s table (already sanitised by the caller or not:
    /// values outside [0, 1] and NaN are clamped here). Entries for this node itself
    /// and for the peer are skipped.
    pub fn transitive<'a>(
        &mut self,
        config: &ProphetConfig,
        local: &NodeId,
        peer: &NodeId,
        peer_table: impl IntoIterator<Item = (&'a NodeId, f64)>,
        now: DtnMillis,
    ) {
        let mut in_order: Vec<(&NodeId, f64)> = peer_table.into_iter().collect();
        // Stable: a node listed twice still counts each value in turn.
        in_order.sort_by(|a, b| a.0.cmp(b.0));
        self.transitive_in_order(config, local, peer, in_order, now);
    }

    /// [`ProphetTable::transitive`] with `peer_table` in node order (as a router
    /// keeps a peer's table): ours is walked alongside it and raised in place, one
    /// comparison a step, and the nodes new to us are added in one merge.
    pub(super) fn transitive_in_order<'a>(
        &mut self,
        config: &ProphetConfig,
        local: &NodeId,
        peer: &NodeId,
        peer_table: impl IntoIterator<Item = (&'a NodeId, f64)>,
        now: DtnMillis,
    ) {
        self.age(config, now);
        let p_ab = self.get(peer);
        if p_ab <= 0.0 {
            return;
        }
        let mut new_nodes: Vec<(NodeId, f64)> = Vec::new();
        {
            let mut ours = self.preds.iter_mut().peekable();
            for (node, p_bc) in peer_table {
                let via = clamp_unit(p_ab * clamp_unit(p_bc) * config.beta);
                if via < config.p_first_threshold || node == local || node == peer {
                    continue;
                }
                if seek(&mut ours, node, |(n, _)| *n) {
                    let (_, p) = ours.peek_mut().expect("sought");
                    if via > **p {
                        **p = via;
                    }
                } else if via > 0.0 {
                    new_nodes.push((node.clone(), via));
                }
            }
        }
        self.preds.merge_all(new_nodes, |p, via| *p = p.max(via));
        self.enforce_bound();
    }

    /// Keeps at most [`MAX_PROPHET_ENTRIES`], dropping the lowest predictabilities.
    fn enforce_bound(&mut self) {
        if self.preds.len() <= MAX_PROPHET_ENTRIES {
            return;
        }
        let excess = self.preds.len() - MAX_PROPHET_ENTRIES;
        self.lowered += 1;
        for node in self.preds.remove_lowest(excess, f64::total_cmp) {
            self.last_encounter.remove(&node);
        }
    }
}

/// Whether aging keeps a predictability in the table.
fn kept(p: f64, config: &ProphetConfig) -> bool {
    p >= config.p_first_threshold && p > 0.0
}

/// `base^exp` by repeated squaring. Multiplications are exactly rounded by IEEE 754,
/// so every platform gets the same bits, which `powf` (the platform's libm) does not
/// promise; a huge `exp` simply gives 0.
fn power(base: f64, mut exp: u64) -> f64 {
    let mut result = 1.0;
    let mut square = base;
    while exp > 0 {
        if exp & 1 == 1 {
            result *= square;
        }
        exp >>= 1;
        if exp > 0 {
            square *= square;
        }
    }
    result
}

/// NaN and infinities become 0; everything else is clamped into [0, 1].
pub(crate) fn clamp_unit(p: f64) -> f64 {
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(n: u8) -> NodeId {
        NodeId::dtn(&format!("n{n}")).unwrap()
    }

    #[test]
    fn first_meeting_then_repeated_meetings_rise_toward_one_minus_delta() {
        let cfg = ProphetConfig::default();
        let mut t = ProphetTable::new();
        t.encounter(&cfg, &node(1), 0);
        assert_eq!(t.get(&node(1)), 0.5);
        // A meeting a typical interval later takes the full step: 0.5 + 0.49 * 0.7.
        t.encounter(&cfg, &node(1), cfg.typical_interval_ms);
        let expected = 0.5 + (0.99 - 0.5) * 0.7;
        // Aging over 10 units happened first: 0.5 * 0.999^10.
        let aged = 0.5 * 0.999f64.powi(10);
        let expected_aged = aged + (0.99 - aged) * 0.7;
        assert!((t.get(&node(1)) - expected_aged).abs() < 1e-12);
        assert!(t.get(&node(1)) < expected);
        for k in 2..200 {
            t.encounter(&cfg, &node(1), k * cfg.typical_interval_ms);
        }
        assert!(t.get(&node(1)) <= 1.0 - cfg.delta + 1e-12);
        assert!(t.get(&node(1)) > 0.95);
    }

    #[test]
    fn a_flapping_link_barely_raises_predictability() {
        let cfg = ProphetConfig::default();
        let mut t = ProphetTable::new();
        t.encounter(&cfg, &node(1), 0);
        t.encounter(&cfg, &node(1), 1_000); // reconnect a second later
        assert!(t.get(&node(1)) < 0.5 + 0.01);
    }

    #[test]
    fn aging_is_per_whole_unit_and_forgets_small_values() {
        let cfg = ProphetConfig::default();
        let mut t = ProphetTable::new();
        t.encounter(&cfg, &node(1), 0);
        t.age(&cfg, cfg.time_unit_ms - 1);
        assert_eq!(t.get(&node(1)), 0.5);
        t.age(&cfg, cfg.time_unit_ms * 3 - 1); // 2 units, remainder carried
        assert!((t.get(&node(1)) - 0.5 * 0.999f64.powi(2)).abs() < 1e-12);
        t.age(&cfg, cfg.time_unit_ms * 3);
        assert!((t.get(&node(1)) - 0.5 * 0.999f64.powi(3)).abs() < 1e-12);
        // A day later a once-met node is still remembered; a week later it is not.
        t.age(&cfg, 24 * 3_600_000);
        assert!(t.get(&node(1)) > 0.1);
        t.age(&cfg, 7 * 24 * 3_600_000);
        assert_eq!(t.get(&node(1)), 0.0);
        assert!(t.is_empty());
    }

    #[test]
    fn transitivity_takes_the_max_and_skips_self_and_peer() {
        let cfg = ProphetConfig::default();
        let me = node(0);
        let mut t = ProphetTable::new();
        t.encounter(&cfg, &node(1), 0);
        let theirs = [
            (node(2), 0.8),
            (me.clone(), 1.0),
            (node(1), 1.0),
            (node(3), f64::NAN),
        ];
        t.transitive(&cfg, &me, &node(1), theirs.iter().map(|(n, p)| (n, *p)), 0);
        assert!((t.get(&node(2)) - 0.5 * 0.8 * 0.9).abs() < 1e-12);
        assert_eq!(t.get(&me), 0.0);
        assert_eq!(t.get(&node(1)), 0.5);
        assert_eq!(t.get(&node(3)), 0.0);
        // A lower transitive value does not lower an existing one.
        let weaker = [(node(2), 0.3)];
        t.transitive(&cfg, &me, &node(1), weaker.iter().map(|(n, p)| (n, *p)), 0);
        assert!((t.get(&node(2)) - 0.36).abs() < 1e-12);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Meet(u8),
        Hear(u8, Vec<(u8, f64)>),
        Wait(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let p = prop_oneof![
            -2.0f64..3.0,
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY)
        ];
        prop_oneof![
            (0u8..6).prop_map(Op::Meet),
            (0u8..6, proptest::collection::vec((0u8..8, p), 0..6))
                .prop_map(|(n, table)| Op::Hear(n, table)),
            (0u64..5_000_000).prop_map(Op::Wait),
        ]
    }

    proptest! {
        #[test]
        fn predictabilities_stay_in_unit_range_and_age_down(
            ops in proptest::collection::vec(op(), 1..60),
            quiet in 1u64..100,
        ) {
            let cfg = ProphetConfig::default();
            let me = node(0);
            let mut t = ProphetTable::new();
            let mut now = 0;
            for op in ops {
                match op {
                    Op::Meet(n) => t.encounter(&cfg, &node(n + 1), now),
                    Op::Hear(n, table) => {
                        let table: Vec<(NodeId, f64)> =
                            table.into_iter().map(|(c, p)| (node(c), p)).collect();
                        t.transitive(&cfg, &me, &node(n + 1), table.iter().map(|(c, p)| (c, *p)), now);
                    }
                    Op::Wait(ms) => { now += ms; t.age(&cfg, now); }
                }
                for (_, p) in t.iter() {
                    prop_assert!((0.0..=1.0).contains(&p), "{p}");
                }
            }
            // With no more meetings, each value only goes down, strictly once a unit passes.
            let before: Vec<(NodeId, f64)> = t.iter().map(|(n, p)| (n.clone(), p)).collect();
            t.age(&cfg, now + quiet * cfg.time_unit_ms);
            for (n, p) in before {
                let after = t.get(&n);
                prop_assert!(after < p, "{n}: {p} -> {after}");
            }
        }

        /// The table is walked alongside the peer's (in node order) and raised in
        /// place; the rules are eq. 3 taken entry by entry in the peer's order, into
        /// a map, whatever that order and whatever repeats.
        #[test]
        fn transitivity_matches_taking_entries_one_at_a_time(
            met in proptest::collection::vec(0u8..8, 1..6),
            heard in proptest::collection::vec((0u8..10, -0.5f64..1.5), 0..30),
            nan in any::<bool>(),
            peer in 0u8..8,
        ) {
            let cfg = ProphetConfig::default();
            let me = node(0);
            let mut t = ProphetTable::new();
            for n in &met {
                t.encounter(&cfg, &node(*n), 0);
            }
            let mut heard: Vec<(NodeId, f64)> =
                heard.into_iter().map(|(n, p)| (node(n), p)).collect();
            if nan {
                heard.push((node(3), f64::NAN));
            }
            let mut expected: BTreeMap<NodeId, f64> =
                t.iter().map(|(n, p)| (n.clone(), p)).collect();
            let p_ab = t.get(&node(peer));
            for (n, p_bc) in heard.iter().filter(|_| p_ab > 0.0) {
                let via = clamp_unit(p_ab * clamp_unit(*p_bc) * cfg.beta);
                if *n == me || *n == node(peer) || via < cfg.p_first_threshold {
                    continue;
                }
                if via > expected.get(n).copied().unwrap_or(0.0) {
                    expected.insert(n.clone(), via);
                }
            }
            t.transitive(&cfg, &me, &node(peer), heard.iter().map(|(n, p)| (n, *p)), 0);
            let got: BTreeMap<NodeId, f64> = t.iter().map(|(n, p)| (n.clone(), p)).collect();
            prop_assert_eq!(got, expected);
        }

        /// Aging is γ^k by repeated squaring (the same bits on every platform); in
        /// many steps or in one it agrees with `powf` to 1e-12 over two days.
        #[test]
        fn aging_in_steps_matches_aging_at_once(
            steps in proptest::collection::vec(0u64..6_000_000, 1..30),
            met in proptest::collection::vec((0u8..6, 0u64..120_000), 1..6),
        ) {
            // No forgetting, so that every value can be compared.
            let cfg = ProphetConfig { p_first_threshold: 0.0, ..ProphetConfig::default() };
            let mut stepwise = ProphetTable::new();
            stepwise.age(&cfg, 0);
            for (n, at) in &met {
                stepwise.encounter(&cfg, &node(*n), *at);
            }
            let start = met.iter().map(|(_, at)| *at).max().unwrap_or(0);
            let before: Vec<f64> = stepwise.iter().map(|(_, p)| p).collect();
            let mut at_once = stepwise.clone();
            let mut now = start;
            for step in &steps {
                now = (now + step).min(start + 2 * 24 * 3_600_000);
                stepwise.age(&cfg, now);
            }
            at_once.age(&cfg, now);
            // Aged once at 0, so units are counted from multiples of the unit.
            let units = now / cfg.time_unit_ms - start / cfg.time_unit_ms;
            let exact = |p: f64| p * cfg.gamma.powf(units as f64);
            let (stepwise, at_once): (Vec<f64>, Vec<f64>) = (
                stepwise.iter().map(|(_, p)| p).collect(),
                at_once.iter().map(|(_, p)| p).collect(),
            );
            for ((s, o), p) in stepwise.iter().zip(&at_once).zip(before) {
                let expected = exact(p);
                prop_assert!((s - expected).abs() <= 1e-12 * expected, "{s} vs {expected}");
                prop_assert!((o - expected).abs() <= 1e-12 * expected, "{o} vs {expected}");
            }
        }

        #[test]
        fn powers_by_squaring_match_powf(base in 0.9f64..1.0, exp in 0u64..100_000) {
            let expected = base.powf(exp as f64);
            // Each squaring doubles the error before it: at most about `exp` ulps.
            let tolerance = (exp as f64 + 1.0) * f64::EPSILON * expected;
            prop_assert!((power(base, exp) - expected).abs() <= tolerance);
        }
    }
}
