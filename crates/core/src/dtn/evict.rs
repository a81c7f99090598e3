//! The bundle store's quota, and what to drop to make room for a new bundle.
//!
//! # The policy
//! A new bundle of N bytes fits if the store's total stays within
//! [`Quota::max_bytes`]. If it does not, bundles are dropped in this order:
//!
//! 1. **expired** bundles, of any origin, soonest-expired first: their lifetime is
//!    over, RFC 9171 says to delete them anyway, and [`Room::expired`] lists them
//!    apart so the node logs them as expiries, not evictions;
//! 2. then **foreign** bundles (carried for others), **lowest priority first**, and
//!    within a priority **oldest first** (earliest creation time: nearer its end, and
//!    more likely already spread by the time it is dropped).
//!
//! Two rules bound who may displace whom:
//!
//! - **The node's own outgoing bundles are never evicted.** A person who ran
//!   `ferry dtn send` must never find the message silently gone. When the store is
//!   full of them, new *foreign* bundles are refused instead, and a new *own*
//!   bundle is refused with a reason the person sees ([`Refusal::Full`] with
//!   `own: true`): they learn at once, rather than never. An own bundle may displace
//!   any foreign one.
//! - **A foreign bundle only displaces foreign bundles of strictly lower priority.**
//!   Bundles of equal priority are first come, first served: otherwise a peer flooding
//!   fresh bundles would flush everything else the node carries (drop-oldest), which
//!   the "a flood from one peer: no loss of other bundles" forbids. On top of
//!   that, [`Quota::max_bytes_per_peer`] caps what bundles received from one peer may
//!   occupy, so even a flood of expedited bundles takes at most that share.
//!
//! The answer is a [`Room`] (what to drop, possibly nothing) or a [`Refusal`] that
//! says why, for the node's log line. Nothing is dropped unless the new bundle then
//! fits.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::bundle::{BundleId, BundleMeta};
use super::{DtnMillis, NodeId};

/// Storage limits for bundles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// All stored bundles together, own and foreign.
    pub max_bytes: u64,
    /// Foreign bundles received from one peer together; `None` for no per-peer cap.
    pub max_bytes_per_peer: Option<u64>,
}

impl Quota {
    /// `max_bytes` in all, a quarter of it per peer: a flood from one peer can fill a
    /// quarter of the store, and a data mule carrying for a whole village still fits
    /// a sizeable load.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            max_bytes_per_peer: Some(max_bytes / 4),
        }
    }
}

impl Default for Quota {
    /// 1 GiB, 256 MiB per peer.
    fn default() -> Self {
        Self::new(1 << 30)
    }
}

/// What to drop before storing the new bundle (both lists may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Room {
    /// Expired bundles, any origin.
    pub expired: Vec<BundleId>,
    /// Unexpired foreign bundles displaced by the new one. Never an own bundle.
    pub evicted: Vec<BundleId>,
}

impl Room {
    /// Whether nothing needs dropping.
    pub fn is_empty(&self) -> bool {
        self.expired.is_empty() && self.evicted.is_empty()
    }

    /// Everything to drop.
    pub fn ids(&self) -> impl Iterator<Item = &BundleId> {
        self.expired.iter().chain(&self.evicted)
    }
}

/// Why a bundle cannot be stored.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Refusal {
    /// The bundle alone is larger than the whole store.
    #[error("bundle of {size} bytes is larger than the whole {max_bytes}-byte store")]
    TooLarge {
        /// The bundle's size in bytes.
        size: u64,
        /// The store's whole quota in bytes.
        max_bytes: u64,
    },
    /// The peer that handed the bundle over already uses its share
    /// ([`Quota::max_bytes_per_peer`]).
    #[error(
        "bundles from {peer} already take {used} bytes; {size} more would pass its {limit}-byte share"
    )]
    PeerShare {
        /// The peer that handed it over.
        peer: NodeId,
        /// Bytes its bundles take now.
        used: u64,
        /// The refused bundle's size in bytes.
        size: u64,
        /// The per-peer share in bytes.
        limit: u64,
    },
    /// The store is full and dropping what the policy allows would not make room.
    #[error(
        "store full: {needed} more bytes needed, only {freeable} held by {}",
        if *own { "expired or foreign bundles (the rest are this node's own, never evicted)" }
        else { "expired or lower-priority foreign bundles" }
    )]
    Full {
        /// Bytes that would have to be freed.
        needed: u64,
        /// Bytes the policy may free for this bundle.
        freeable: u64,
        /// The refused bundle is the node's own.
        own: bool,
    },
}

/// What to drop from `stored` so that `incoming` fits in `quota`, or why it cannot.
pub fn make_room<'a>(
    quota: &Quota,
    stored: impl IntoIterator<Item = &'a BundleMeta>,
    incoming: &BundleMeta,
    now: DtnMillis,
) -> Result<Room, Refusal> {
    let stored: Vec<&BundleMeta> = stored.into_iter().collect();
    if incoming.size > quota.max_bytes {
        return Err(Refusal::TooLarge {
            size: incoming.size,
            max_bytes: quota.max_bytes,
        });
    }
    if !incoming.own
        && let (Some(peer), Some(limit)) = (&incoming.received_from, quota.max_bytes_per_peer)
    {
        let used: u64 = stored
            .iter()
            .filter(|m| !m.own && !m.is_expired(now) && m.received_from.as_ref() == Some(peer))
            .map(|m| m.size)
            .fold(0, u64::saturating_add);
        if used.saturating_add(incoming.size) > limit {
            return Err(Refusal::PeerShare {
                peer: peer.clone(),
                used,
                size: incoming.size,
                limit,
            });
        }
    }
    let used: u64 = stored.iter().map(|m| m.size).fold(0, u64::saturating_add);
    let needed = used
        .saturating_add(incoming.size)
        .saturating_sub(quota.max_bytes);
    if needed == 0 {
        return Ok(Room::default());
    }

    let mut expired: Vec<&BundleMeta> = stored
        .iter()
        .copied()
        .filter(|m| m.is_expired(now))
        .collect();
    expired.sort_by_key(|m| (m.expires_at, &m.id));
    let mut evictable: Vec<&BundleMeta> = stored
        .iter()
        .copied()
        .filter(|m| {
            !m.is_expired(now) && !m.own && (incoming.own || m.priority < incoming.priority)
        })
        .collect();
    evictable.sort_by_key(|m| (m.priority, m.id.created(), &m.id));

    let mut room = Room::default();
    let mut freed = 0u64;
    for m in &expired {
        if freed >= needed {
            break;
        }
        freed = freed.saturating_add(m.size);
        room.expired.push(m.id.clone());
    }
    for m in &evictable {
        if freed >= needed {
            break;
        }
        freed = freed.saturating_add(m.size);
        room.evicted.push(m.id.clone());
    }
    if freed >= needed {
        return Ok(room);
    }
    Err(Refusal::Full {
        needed,
        freeable: freed,
        own: incoming.own,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtn::{CreationTimestamp, Eid, Priority};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn node(n: u8) -> NodeId {
        NodeId::dtn(&format!("n{n}")).unwrap()
    }

    fn meta(
        n: u64,
        size: u64,
        priority: Priority,
        own: bool,
        expires_at: DtnMillis,
        from: Option<u8>,
    ) -> BundleMeta {
        let source = if own { 0 } else { 1 + (n % 3) as u8 };
        BundleMeta {
            id: BundleId::new(
                Eid::dtn(&format!("n{source}"), "app").unwrap(),
                CreationTimestamp { time: n, seq: 0 },
            ),
            destination: node(9),
            size,
            priority,
            expires_at,
            own,
            received_from: if own { None } else { from.map(node) },
        }
    }

    const LATER: DtnMillis = 1_000_000;

    #[test]
    fn nothing_is_dropped_while_it_fits() {
        let stored = [meta(1, 40, Priority::Bulk, false, 5, Some(1))];
        let quota = Quota {
            max_bytes: 100,
            max_bytes_per_peer: None,
        };
        let room = make_room(
            &quota,
            &stored,
            &meta(2, 60, Priority::Normal, false, LATER, Some(2)),
            10,
        )
        .unwrap();
        assert!(room.is_empty());
    }

    #[test]
    fn expired_go_first_then_lowest_priority_then_oldest() {
        let stored = [
            meta(1, 10, Priority::Normal, false, LATER, Some(1)),
            meta(2, 10, Priority::Bulk, false, LATER, Some(1)),
            meta(3, 10, Priority::Bulk, false, LATER, Some(2)),
            meta(4, 10, Priority::Normal, true, 5, None), // own but expired
            meta(5, 10, Priority::Expedited, false, LATER, Some(2)),
        ];
        let quota = Quota {
            max_bytes: 50,
            max_bytes_per_peer: None,
        };
        let incoming = meta(9, 30, Priority::Expedited, false, LATER, Some(3));
        let room = make_room(&quota, &stored, &incoming, 10).unwrap();
        assert_eq!(room.expired, vec![stored[3].id.clone()]);
        assert_eq!(
            room.evicted,
            vec![stored[1].id.clone(), stored[2].id.clone()]
        );
    }

    #[test]
    fn own_bundles_are_never_evicted_and_a_full_store_refuses() {
        let stored = [
            meta(1, 60, Priority::Bulk, true, LATER, None),
            meta(2, 30, Priority::Bulk, false, LATER, Some(1)),
        ];
        let quota = Quota {
            max_bytes: 100,
            max_bytes_per_peer: None,
        };
        // A foreign expedited bundle may take the bulk foreign one's place, not more.
        let foreign = meta(3, 40, Priority::Expedited, false, LATER, Some(2));
        assert_eq!(
            make_room(&quota, &stored, &foreign, 0).unwrap().evicted,
            vec![stored[1].id.clone()]
        );
        let big = meta(3, 50, Priority::Expedited, false, LATER, Some(2));
        let err = make_room(&quota, &stored, &big, 0).unwrap_err();
        assert_eq!(
            err,
            Refusal::Full {
                needed: 40,
                freeable: 30,
                own: false
            }
        );
        // A new own bundle evicts any foreign one, but never an own one.
        let own = meta(4, 40, Priority::Bulk, true, LATER, None);
        assert_eq!(
            make_room(&quota, &stored, &own, 0).unwrap().evicted,
            vec![stored[1].id.clone()]
        );
        let own_big = meta(4, 50, Priority::Expedited, true, LATER, None);
        let err = make_room(&quota, &stored, &own_big, 0).unwrap_err();
        assert!(matches!(err, Refusal::Full { own: true, .. }));
        assert!(err.to_string().contains("own"), "{err}");
    }

    #[test]
    fn a_flood_from_one_peer_displaces_nobody_else() {
        let quota = Quota {
            max_bytes: 1_000,
            max_bytes_per_peer: Some(300),
        };
        let mut stored: Vec<BundleMeta> = (0..7)
            .map(|n| {
                meta(
                    n,
                    100,
                    Priority::Normal,
                    false,
                    LATER,
                    Some(1 + (n % 2) as u8),
                )
            })
            .collect();
        let mut refused = 0;
        for n in 100..200 {
            let flood = meta(n, 100, Priority::Expedited, false, LATER, Some(7));
            match make_room(&quota, &stored, &flood, 0) {
                Ok(room) => {
                    assert!(room.is_empty(), "the flood evicted {:?}", room.evicted);
                    stored.push(flood);
                }
                Err(Refusal::PeerShare { used, limit, .. }) => {
                    assert_eq!((used, limit), (300, 300));
                    refused += 1;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(refused, 97);
        assert_eq!(
            stored
                .iter()
                .filter(|m| m.received_from == Some(node(7)))
                .count(),
            3
        );
        // The store is now exactly full, and equal priority displaces nobody.
        let other = meta(500, 100, Priority::Normal, false, LATER, Some(3));
        assert!(matches!(
            make_room(&quota, &stored, &other, 0),
            Err(Refusal::Full { .. })
        ));
    }

    #[test]
    fn a_bundle_larger_than_the_store_is_refused_outright() {
        let err = make_room(
            &Quota::new(10),
            [],
            &meta(1, 11, Priority::Normal, true, LATER, None),
            0,
        )
        .unwrap_err();
        assert_eq!(
            err,
            Refusal::TooLarge {
                size: 11,
                max_bytes: 10
            }
        );
    }

    fn arb_meta() -> impl Strategy<Value = BundleMeta> {
        (
            0u64..1_000,
            1u64..200,
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            prop::option::of(1u8..4),
        )
            .prop_map(|(n, size, p, own, expired, from)| {
                meta(
                    n,
                    size,
                    Priority::from_code(p).unwrap(),
                    own,
                    if expired { 50 } else { LATER },
                    from,
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn eviction_never_picks_own_and_frees_enough_or_refuses(
            stored in proptest::collection::vec(arb_meta(), 0..40),
            incoming in arb_meta().prop_map(|mut m| { m.expires_at = LATER; m }),
            max_bytes in 0u64..4_000,
            per_peer in prop::option::of(0u64..2_000),
        ) {
            // Ids are unique in a store.
            let mut seen = BTreeSet::new();
            let stored: Vec<BundleMeta> = stored.into_iter().filter(|m| seen.insert(m.id.clone())).collect();
            let now = 100;
            let quota = Quota { max_bytes, max_bytes_per_peer: per_peer };
            let used: u64 = stored.iter().map(|m| m.size).sum();
            let by_id = |id: &BundleId| stored.iter().find(|m| &m.id == id).unwrap();
            match make_room(&quota, &stored, &incoming, now) {
                Ok(room) => {
                    let mut dropped = BTreeSet::new();
                    for id in &room.expired {
                        prop_assert!(by_id(id).is_expired(now));
                        prop_assert!(dropped.insert(id.clone()));
                    }
                    for id in &room.evicted {
                        let m = by_id(id);
                        prop_assert!(!m.own, "evicted an own bundle");
                        prop_assert!(!m.is_expired(now));
                        prop_assert!(incoming.own || m.priority < incoming.priority);
                        prop_assert!(dropped.insert(id.clone()));
                    }
                    let freed: u64 = dropped.iter().map(|id| by_id(id).size).sum();
                    prop_assert!(used - freed + incoming.size <= max_bytes, "does not fit");
                }
                Err(Refusal::TooLarge { size, .. }) => prop_assert!(size > max_bytes),
                Err(Refusal::PeerShare { used, size, limit, .. }) => {
                    prop_assert!(!incoming.own);
                    prop_assert!(used + size > limit);
                }
                Err(Refusal::Full { needed, freeable, own }) => {
                    prop_assert_eq!(own, incoming.own);
                    prop_assert_eq!(needed, used + incoming.size - max_bytes);
                    // Even dropping every candidate would not have been enough.
                    let all: u64 = stored.iter()
                        .filter(|m| m.is_expired(now) || (!m.own && (incoming.own || m.priority < incoming.priority)))
                        .map(|m| m.size).sum();
                    prop_assert_eq!(freeable, all);
                    prop_assert!(all < needed);
                }
            }
        }
    }
}
