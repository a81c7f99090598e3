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

use crate::dtn::{DtnMillis, NodeId};

/// Most predictabilities kept (own table, or taken from one peer): bounds memory
/// against a peer that sends a table naming a million nodes.
pub const MAX_PROPHET_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProphetConfig {
    pub p_encounter_first: f64,
    pub p_encounter_max: f64,
    pub p_first_threshold: f64,
    pub delta: f64,
    pub beta: f64,
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProphetTable {
    preds: BTreeMap<NodeId, f64>,
    last_encounter: BTreeMap<NodeId, DtnMillis>,
    aged_at: Option<DtnMillis>,
}

impl ProphetTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// P(self, node); 0 for a node not in the table.
    pub fn get(&self, node: &NodeId) -> f64 {
        self.preds.get(node).copied().unwrap_or(0.0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, f64)> {
        self.preds.iter().map(|(node, p)| (node, *p))
    }

    pub fn len(&self) -> usize {
        self.preds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.preds.is_empty()
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
        // γ^units; powf of a huge count is simply 0.
        let factor = config.gamma.powf(units as f64);
        for p in self.preds.values_mut() {
            *p = clamp_unit(*p * factor);
        }
        self.forget_below_threshold(config);
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
        self.preds.insert(peer.clone(), clamp_unit(new));
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
        self.age(config, now);
        let p_ab = self.get(peer);
        if p_ab <= 0.0 {
            return;
        }
        for (node, p_bc) in peer_table {
            if node == local || node == peer {
                continue;
            }
            let via = clamp_unit(p_ab * clamp_unit(p_bc) * config.beta);
            if via < config.p_first_threshold {
                continue;
            }
            let current = self.get(node);
            if via > current {
                self.preds.insert(node.clone(), via);
            }
        }
        self.enforce_bound();
    }

    fn forget_below_threshold(&mut self, config: &ProphetConfig) {
        let threshold = config.p_first_threshold;
        self.preds.retain(|_, p| *p >= threshold && *p > 0.0);
        let preds = &self.preds;
        self.last_encounter
            .retain(|node, _| preds.contains_key(node));
    }

    /// Keeps at most [`MAX_PROPHET_ENTRIES`], dropping the lowest predictabilities.
    fn enforce_bound(&mut self) {
        if self.preds.len() <= MAX_PROPHET_ENTRIES {
            return;
        }
        let mut by_value: Vec<(f64, NodeId)> =
            self.preds.iter().map(|(n, p)| (*p, n.clone())).collect();
        by_value.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let excess = self.preds.len() - MAX_PROPHET_ENTRIES;
        for (_, node) in by_value.into_iter().take(excess) {
            self.preds.remove(&node);
            self.last_encounter.remove(&node);
        }
    }
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
    }
}
