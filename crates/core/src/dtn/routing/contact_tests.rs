//! A contact's life against a hostile peer: summaries after it ended, holds out of
//! order, ids at their longest, acks for someone else's bundles.

use proptest::prelude::{ProptestConfig, any, prop_assert, prop_assert_eq, proptest};

use super::*;
use crate::dtn::eid::MAX_EID_LEN;
use crate::dtn::{CreationTimestamp, Eid, Priority};

const T0: DtnMillis = 800_000_000_000;

fn node(i: usize) -> NodeId {
    NodeId::dtn(&format!("n{i}")).unwrap()
}

fn meta(src: usize, dst: usize, n: u64) -> BundleMeta {
    BundleMeta {
        id: id(src, n),
        destination: node(dst),
        size: 100,
        priority: Priority::Normal,
        expires_at: T0 + 3_600_000,
        own: false,
        received_from: None,
    }
}

fn id(src: usize, n: u64) -> BundleId {
    BundleId::new(
        Eid::dtn(&format!("n{src}"), "app").unwrap(),
        CreationTimestamp {
            time: T0 + n,
            seq: 0,
        },
    )
}

/// An id as long as endpoint ids go.
fn long_id(k: u64) -> BundleId {
    let name = format!("{:x<width$}", format!("n{k}"), width = MAX_EID_LEN - 16);
    BundleId::new(
        Eid::dtn(&name, "x").unwrap(),
        CreationTimestamp { time: k, seq: 0 },
    )
}

fn ack(meta: &BundleMeta, destination: NodeId) -> Ack {
    Ack {
        id: meta.id.clone(),
        destination,
        expires_at: meta.expires_at,
        signature: None,
    }
}

#[test]
fn a_summary_after_contact_down_opens_no_contact() {
    let mut r = Router::new(node(0), Strategy::Epidemic);
    let carried = meta(3, 9, 1);
    r.insert(carried.clone(), None, T0);
    r.contact_up(&node(1), T0);
    r.contact_down(&node(1), T0);
    let summary = Summary {
        holds: vec![id(5, 1)],
        acks: vec![ack(&carried, node(9))],
        predictabilities: vec![(node(9), 0.9)],
    };
    assert!(r.on_summary(&node(1), summary.clone(), T0).is_empty());
    assert_eq!(r.contacts().count(), 0, "a contact was re-created");
    assert!(r.plan(&node(1), T0).is_empty());
    assert!(r.held(&carried.id).is_some(), "nothing of it applies");
    // Never opened at all: the same.
    assert!(r.on_summary(&node(2), summary, T0).is_empty());
    assert_eq!(r.contacts().count(), 0);
}

#[test]
fn the_simulators_exchange_after_contact_down_opens_no_contact_either() {
    let mut a = Router::new(node(0), Strategy::Epidemic);
    let mut b = Router::new(node(1), Strategy::Epidemic);
    a.contact_up(&node(1), T0);
    b.contact_up(&node(0), T0);
    a.contact_down(&node(1), T0);
    b.contact_down(&node(0), T0);
    Router::exchange_summaries(&mut a, &mut b, T0);
    assert_eq!(a.contacts().count() + b.contacts().count(), 0);
}

#[test]
fn an_ack_frees_only_a_copy_for_its_destination() {
    let mut r = Router::new(node(0), Strategy::Epidemic);
    let carried = meta(3, 9, 1);
    r.insert(carried.clone(), None, T0);
    r.contact_up(&node(1), T0);
    // Node 1 claims the delivery as if it were the destination.
    let removed = r.on_summary(
        &node(1),
        Summary {
            acks: vec![ack(&carried, node(1))],
            ..Summary::default()
        },
        T0,
    );
    assert!(removed.is_empty());
    assert!(r.held(&carried.id).is_some());
    assert_eq!(r.admission(&carried, T0), Admission::Duplicate);
    assert!(r.is_acked(&carried.id, &node(1)));
    assert!(!r.is_acked(&carried.id, &node(9)));
    // The destination's own ack does.
    assert_eq!(
        r.on_ack(ack(&carried, node(9)), T0).map(|r| r.reason),
        Some(Removal::Acked)
    );
    assert_eq!(r.admission(&carried, T0), Admission::AlreadyDelivered);
}

#[test]
fn a_signed_ack_stands_over_an_unsigned_one() {
    let mut r = Router::new(node(0), Strategy::Epidemic);
    let m = meta(3, 9, 1);
    let signature = Signature::try_from(&[7u8; 64][..]).unwrap();
    let signed = Ack {
        signature: Some(signature),
        ..ack(&m, node(9))
    };
    r.on_ack(signed.clone(), T0);
    let later_unsigned = Ack {
        expires_at: m.expires_at + 1_000,
        ..ack(&m, node(9))
    };
    assert!(!r.ack_is_news(&later_unsigned, T0));
    r.on_ack(later_unsigned, T0);
    assert_eq!(r.acks().collect::<Vec<_>>(), vec![signed]);
}

#[test]
fn summaries_of_long_ids_stay_within_the_bound() {
    let mut r = Router::new(node(0), Strategy::Epidemic);
    r.contact_up(&node(1), T0);
    let holds: Vec<BundleId> = (0..(MAX_SUMMARY_IDS as u64 + 10))
        .rev()
        .map(id_short)
        .collect();
    r.on_summary(
        &node(1),
        Summary {
            holds,
            ..Summary::default()
        },
        T0,
    );
    assert_eq!(r.contacts[&node(1)].holds.len(), MAX_SUMMARY_IDS);
    let long: Vec<BundleId> = (0..50).map(long_id).collect();
    r.contact_up(&node(2), T0);
    r.on_summary(
        &node(2),
        Summary {
            holds: long.clone(),
            ..Summary::default()
        },
        T0,
    );
    assert_eq!(r.contacts[&node(2)].holds.len(), long.len());
}

fn id_short(k: u64) -> BundleId {
    BundleId::new(
        Eid::ipn(7, 1).unwrap(),
        CreationTimestamp { time: k, seq: 0 },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever order and repeats a peer's holds come in, the contact knows each id
    /// once, in order, and a summary after `contact_down` changes nothing.
    #[test]
    fn unsorted_holds_are_taken_as_a_set(ks in proptest::collection::vec(0u64..50, 0..120), down in any::<bool>()) {
        let mut r = Router::new(node(0), Strategy::Epidemic);
        r.contact_up(&node(1), T0);
        if down {
            r.contact_down(&node(1), T0);
        }
        let before = r.clone();
        r.on_summary(&node(1), Summary {
            holds: ks.iter().map(|k| id(4, *k)).collect(),
            ..Summary::default()
        }, T0);
        if down {
            prop_assert_eq!(&r, &before);
        } else {
            let known: Vec<&BundleId> = r.contacts[&node(1)].holds.iter().map(|(k, _)| k).collect();
            prop_assert!(known.is_sorted_by(|a, b| a < b));
            let mut expected: Vec<u64> = ks.clone();
            expected.sort_unstable();
            expected.dedup();
            prop_assert_eq!(known.len(), expected.len());
        }
    }
}
