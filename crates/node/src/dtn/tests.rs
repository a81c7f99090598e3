//! The bundle agent over a real store in a temporary directory.

use std::sync::Arc;

use ferry_core::dtn::wire::Receipt;
use ferry_core::dtn::{
    Bundle, CreationTimestamp, Eid, NewBundle, NodeId, Priority, Summary, dtn_ms_from_unix_ms,
};
use ferry_core::{Keypair, PeerId};
use ferry_store::{DataDir, Store};

use super::{DEFAULT_LIFETIME_MS, Dtn, DtnSettings, TEXT_SERVICE, unix_now};

struct Node {
    _dir: tempfile::TempDir,
    data: DataDir,
    key: Keypair,
    peer: PeerId,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::lock(&dir.path().join("data")).unwrap();
        let key = Keypair::generate_ed25519();
        Self {
            _dir: dir,
            data,
            peer: key.public().to_peer_id(),
            key,
        }
    }

    fn agent(&self) -> Dtn {
        let store = Arc::new(Store::open(&self.data).unwrap());
        Dtn::open(store, self.key.clone(), DtnSettings::default()).unwrap()
    }
}

fn peer() -> PeerId {
    Keypair::generate_ed25519().public().to_peer_id()
}

/// A bundle from `from` to `to`'s text service, made now and signed by `from` as a
/// ferry node signs its bundles.
fn bundle(from: &Keypair, to: &PeerId, text: &str, seq: u64) -> Vec<u8> {
    let mut bundle = unsigned_bundle(&from.public().to_peer_id(), to, text, seq);
    bundle.sign(from).unwrap();
    bundle.to_bytes()
}

/// The same without a signature: what a forger makes.
fn unsigned_bundle(from: &PeerId, to: &PeerId, text: &str, seq: u64) -> Bundle {
    Bundle::new(NewBundle {
        source: Eid::for_peer(from, TEXT_SERVICE).unwrap(),
        destination: Eid::for_peer(to, TEXT_SERVICE).unwrap(),
        created: CreationTimestamp {
            time: dtn_ms_from_unix_ms(unix_now()),
            seq,
        },
        lifetime_ms: DEFAULT_LIFETIME_MS,
        priority: Priority::Normal,
        payload: text.as_bytes().to_vec(),
    })
    .unwrap()
}

#[test]
fn a_bundle_for_another_node_is_stored_once_and_one_for_us_is_delivered() {
    let node = Node::new();
    let dtn = node.agent();
    let (sender, elsewhere) = (Keypair::generate_ed25519(), peer());
    let carried = bundle(&sender, &elsewhere, "carry me", 0);
    let from = NodeId::from_peer(&sender.public().to_peer_id());
    assert_eq!(
        dtn.receive(&carried, Some(&from), Some(1)),
        Ok(Receipt::Stored)
    );
    assert_eq!(
        dtn.receive(&carried, Some(&from), Some(1)),
        Ok(Receipt::Have)
    );
    assert_eq!(dtn.held(&[]).len(), 1);

    let mine = bundle(&sender, &node.peer, "for you", 1);
    // The receipt carries this node's signed ack, for the carrier to pass on.
    let receipt = dtn.receive(&mine, Some(&from), None);
    assert!(
        matches!(&receipt, Ok(Receipt::Delivered(Some(ack)))
            if ack.verify() && ack.destination == NodeId::from_peer(&node.peer)),
        "{receipt:?}"
    );
    assert_eq!(dtn.receive(&mine, Some(&from), None), Ok(Receipt::Have));
    let inbox = dtn.inbox().unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].text.as_deref(), Some("for you"));
    assert_eq!(dtn.acks().len(), 1, "the delivery is acknowledged");
}

#[test]
fn malformed_and_oversize_bytes_are_the_senders_fault() {
    let dtn = Node::new().agent();
    let from = NodeId::from_peer(&peer());
    let garbage = dtn.receive(b"\x9f\x01\x02 not a bundle", Some(&from), None);
    assert!(garbage.as_ref().is_err_and(|r| r.peer_fault), "{garbage:?}");

    let mut flipped = bundle(&Keypair::generate_ed25519(), &peer(), "checksummed", 0);
    let last = flipped.len() - 2;
    flipped[last] ^= 0xff;
    let broken = dtn.receive(&flipped, Some(&from), None);
    assert!(broken.as_ref().is_err_and(|r| r.peer_fault), "{broken:?}");

    let huge = vec![0u8; ferry_core::dtn::MAX_BUNDLE_BYTES + 1];
    let oversize = dtn.receive(&huge, Some(&from), None).unwrap_err();
    assert!(oversize.reason.contains("over the"), "{}", oversize.reason);
    assert!(dtn.held(&[]).is_empty());
}

#[test]
fn a_restart_keeps_bundles_and_acks_even_without_saved_router_state() {
    let node = Node::new();
    let (sender, elsewhere) = (Keypair::generate_ed25519(), peer());
    let carried = bundle(&sender, &elsewhere, "carry me", 0);
    let mine = bundle(&sender, &node.peer, "for you", 1);
    {
        let dtn = node.agent();
        assert_eq!(dtn.receive(&carried, None, None), Ok(Receipt::Stored));
        assert!(matches!(
            dtn.receive(&mine, None, None),
            Ok(Receipt::Delivered(Some(_)))
        ));
        // No maintain(): as if killed before the router state was saved.
    }
    let dtn = node.agent();
    assert_eq!(
        dtn.held(&[]).len(),
        1,
        "the stored bundle is taken in again"
    );
    assert_eq!(
        dtn.receive(&mine, None, None),
        Ok(Receipt::Have),
        "the inbox restores the delivery acknowledgement"
    );
}

#[test]
fn an_ack_in_a_summary_frees_the_copy_in_the_store() {
    let node = Node::new();
    let dtn = node.agent();
    let (sender, elsewhere) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let elsewhere_peer = elsewhere.public().to_peer_id();
    let carried = bundle(&sender, &elsewhere_peer, "carry me", 0);
    assert_eq!(dtn.receive(&carried, None, None), Ok(Receipt::Stored));
    let id = dtn.held(&[])[0].id.clone();

    let other = NodeId::from_peer(&peer());
    dtn.contact_up(&other, "test");
    let ack = ferry_core::dtn::Ack::signed(
        &elsewhere,
        id.clone(),
        NodeId::from_peer(&elsewhere_peer),
        dtn.held(&[])[0].expires_at,
    )
    .unwrap();
    dtn.on_summary(
        &other,
        Summary {
            acks: vec![ack],
            ..Summary::default()
        },
    )
    .unwrap();
    assert!(dtn.held(&[]).is_empty());
    assert!(!dtn.store().has_bundle(&id).unwrap());
}

/// A node carrying one bundle from `sender` to `destination`, in contact with the
/// destination and planning to hand it over.
struct Carrying {
    _node: Node,
    dtn: Dtn,
    sender: Keypair,
    destination: Keypair,
    to: NodeId,
    held: ferry_core::dtn::BundleMeta,
}

fn carrying_for_a_contact() -> Carrying {
    let node = Node::new();
    let dtn = node.agent();
    let (sender, destination) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let destination_peer = destination.public().to_peer_id();
    let to = NodeId::from_peer(&destination_peer);
    let carried = bundle(&sender, &destination_peer, "carry me", 0);
    assert_eq!(dtn.receive(&carried, None, None), Ok(Receipt::Stored));
    let held = dtn.held(&[])[0].clone();
    dtn.contact_up(&to, "test");
    dtn.on_summary(&to, Summary::default()).unwrap();
    assert_eq!(dtn.plan(&to).len(), 1);
    Carrying {
        _node: node,
        dtn,
        sender,
        destination,
        to,
        held,
    }
}

/// A carrier that handed a bundle to its destination freed its copy at once; the
/// destination's signed ack comes later and frees nothing here, yet it is news to
/// pass on: the carrier's summary must go out again (its generation moves), or the
/// node the bundle came from never hears of the delivery.
#[test]
fn a_signed_ack_that_frees_nothing_here_still_changes_what_the_node_tells() {
    let Carrying {
        _node,
        dtn,
        sender,
        destination,
        to,
        held,
    } = carrying_for_a_contact();

    // Handed to the destination itself, whose receipt carries an ack it did not sign
    // (signed by another key): the copy is freed, the ack is not kept, and the one
    // the carrier records itself is unsigned, so nothing is passed on.
    let mut not_the_destinations = ferry_core::dtn::Ack::signed(
        &sender,
        held.id.clone(),
        NodeId::from_peer(&sender.public().to_peer_id()),
        held.expires_at,
    )
    .unwrap();
    not_the_destinations.destination = to.clone();
    dtn.forward_answered(
        &to,
        &held.id,
        &Receipt::Delivered(Some(not_the_destinations)),
    )
    .unwrap();
    assert!(dtn.held(&[]).is_empty());
    assert!(dtn.acks().is_empty(), "an unsigned ack is never passed on");

    // The destination's signed ack arrives in its summary.
    let before = dtn.generation();
    let ack =
        ferry_core::dtn::Ack::signed(&destination, held.id.clone(), to.clone(), held.expires_at)
            .unwrap();
    dtn.on_summary(
        &to,
        Summary {
            acks: vec![ack.clone()],
            ..Summary::default()
        },
    )
    .unwrap();
    assert_eq!(dtn.acks(), vec![ack], "the signed ack is kept to pass on");
    assert!(
        dtn.generation() > before,
        "the node's summary changed, so it must be sent again"
    );
}

/// The destination's signed ack comes with its receipt: the carrier keeps it to pass
/// on at once, so the node the bundle came from hears of the delivery even when the
/// contact with the destination ends before its next summary.
#[test]
fn the_signed_ack_in_a_delivery_receipt_is_passed_on() {
    let Carrying {
        _node,
        dtn,
        destination,
        to,
        held,
        ..
    } = carrying_for_a_contact();

    let before = dtn.generation();
    let ack =
        ferry_core::dtn::Ack::signed(&destination, held.id.clone(), to.clone(), held.expires_at)
            .unwrap();
    dtn.forward_answered(&to, &held.id, &Receipt::Delivered(Some(ack.clone())))
        .unwrap();
    assert!(dtn.held(&[]).is_empty(), "handed to its destination");
    assert_eq!(dtn.acks(), vec![ack], "kept to pass on");
    assert!(dtn.generation() > before, "the summary changed");
}

#[test]
fn own_bundles_wait_for_a_contact_and_go_to_it() {
    let node = Node::new();
    let dtn = node.agent();
    let town = peer();
    let meta = dtn
        .send(
            Eid::for_peer(&town, TEXT_SERVICE).unwrap(),
            TEXT_SERVICE,
            b"hello town".to_vec(),
            DEFAULT_LIFETIME_MS,
            Priority::Normal,
        )
        .unwrap();
    assert!(meta.own);
    let town_node = NodeId::from_peer(&town);
    dtn.contact_up(&town_node, "test");
    assert!(
        dtn.plan(&town_node).is_empty(),
        "nothing before its summary"
    );
    dtn.on_summary(&town_node, Summary::default()).unwrap();
    let plan = dtn.plan(&town_node);
    assert_eq!(plan.len(), 1);
    let bytes = dtn.outgoing(&plan[0].id).unwrap().unwrap();
    let sent = Bundle::parse(&bytes).unwrap();
    assert_eq!(sent.payload(), b"hello town");
    dtn.forward_answered(&town_node, &plan[0].id, &Receipt::Delivered(None))
        .unwrap();
    assert!(dtn.held(&[]).is_empty(), "handed to its destination");
    assert!(!dtn.store().has_bundle(&meta.id).unwrap());
}

/// A bundle in this node's name that it did not make (unsigned, dated the end of
/// time) is a stranger's: not own, counted against the peer, and it never reaches
/// the creation clock, before or after a restart.
#[test]
fn a_bundle_forged_in_our_name_is_foreign_and_leaves_the_clock_alone() {
    let node = Node::new();
    let from = NodeId::from_peer(&peer());
    let mut forged = Bundle::new(NewBundle {
        source: Eid::for_peer(&node.peer, TEXT_SERVICE).unwrap(),
        destination: Eid::for_peer(&peer(), TEXT_SERVICE).unwrap(),
        created: CreationTimestamp {
            time: u64::MAX,
            seq: u64::MAX,
        },
        lifetime_ms: DEFAULT_LIFETIME_MS,
        priority: Priority::Normal,
        payload: b"forged".to_vec(),
    })
    .unwrap();
    assert_eq!(forged.origin(), ferry_core::dtn::Origin::Forged);
    // Signing it with another key is refused: only its source's key signs it.
    assert!(forged.sign(&Keypair::generate_ed25519()).is_err());
    let to = Eid::for_peer(&peer(), TEXT_SERVICE).unwrap();
    for life in 0..2 {
        let dtn = node.agent();
        if life == 0 {
            assert_eq!(
                dtn.receive(&forged.to_bytes(), Some(&from), None),
                Ok(Receipt::Stored)
            );
        }
        let held = dtn.held(&[]);
        let stored = held.iter().find(|m| m.id == *forged.id()).unwrap();
        assert!(!stored.own);
        assert_eq!(stored.received_from.as_ref(), Some(&from));
        let send = || {
            dtn.send(
                to.clone(),
                TEXT_SERVICE,
                b"mine".to_vec(),
                DEFAULT_LIFETIME_MS,
                Priority::Normal,
            )
            .unwrap()
        };
        let (one, two) = (send(), send());
        assert_ne!(one.id, two.id);
        assert!(one.own && two.own);
        assert!(one.id.created().time < u64::MAX, "{}", one.id);
        let sent = Bundle::parse(&dtn.outgoing(&one.id).unwrap().unwrap()).unwrap();
        assert_eq!(sent.origin(), ferry_core::dtn::Origin::Signed);
    }
}

/// A bundle that claims to come from a ferry node but carries no signature of it
/// is not delivered as that node's word.
#[test]
fn an_unsigned_bundle_in_a_ferry_nodes_name_is_not_delivered() {
    let node = Node::new();
    let dtn = node.agent();
    let claimed = peer();
    let forged = unsigned_bundle(&claimed, &node.peer, "from your friend, honestly", 0);
    let refused = dtn
        .receive(&forged.to_bytes(), Some(&NodeId::from_peer(&peer())), None)
        .unwrap_err();
    assert!(refused.reason.contains("not signed"), "{}", refused.reason);
    assert!(dtn.inbox().unwrap().is_empty());
    assert!(dtn.acks().is_empty());
}

/// The next id the clock would give is already taken by a stranger's bundle in
/// this node's name: it is skipped.
#[test]
fn an_id_taken_by_a_forgery_is_skipped() {
    let node = Node::new();
    let dtn = node.agent();
    let first = dtn
        .send(
            Eid::for_peer(&peer(), TEXT_SERVICE).unwrap(),
            TEXT_SERVICE,
            b"first".to_vec(),
            DEFAULT_LIFETIME_MS,
            Priority::Normal,
        )
        .unwrap();
    let created = first.id.created();
    // Squat the next ids the clock can give, in the same millisecond or later.
    let from = NodeId::from_peer(&peer());
    for (time, seq) in [(created.time, created.seq + 1), (created.time + 1, 0)] {
        let squatter = Bundle::new(NewBundle {
            source: first.id.source().clone(),
            destination: Eid::for_peer(&peer(), TEXT_SERVICE).unwrap(),
            created: CreationTimestamp { time, seq },
            lifetime_ms: DEFAULT_LIFETIME_MS,
            priority: Priority::Normal,
            payload: b"squat".to_vec(),
        })
        .unwrap();
        assert_eq!(
            dtn.receive(&squatter.to_bytes(), Some(&from), None),
            Ok(Receipt::Stored)
        );
    }
    let next = dtn
        .send(
            Eid::for_peer(&peer(), TEXT_SERVICE).unwrap(),
            TEXT_SERVICE,
            b"next".to_vec(),
            DEFAULT_LIFETIME_MS,
            Priority::Normal,
        )
        .unwrap();
    assert!(next.own);
    let held = dtn.held(&[]);
    assert_eq!(held.iter().filter(|m| m.id == next.id).count(), 1);
    assert!(held.iter().find(|m| m.id == next.id).unwrap().own);
}

/// A store written by a version that took a forged bundle as its own has its last
/// own creation time at the end of time: it is not resumed, so sends still work
/// and get fresh ids.
#[test]
fn a_far_future_last_own_creation_is_not_resumed() {
    let node = Node::new();
    {
        let store = Store::open(&node.data).unwrap();
        let poison = Bundle::new(NewBundle {
            source: Eid::for_peer(&node.peer, TEXT_SERVICE).unwrap(),
            destination: Eid::for_peer(&peer(), TEXT_SERVICE).unwrap(),
            created: CreationTimestamp {
                time: u64::MAX,
                seq: u64::MAX,
            },
            lifetime_ms: DEFAULT_LIFETIME_MS,
            priority: Priority::Normal,
            payload: b"poison".to_vec(),
        })
        .unwrap();
        let bytes = poison.to_bytes();
        let now = dtn_ms_from_unix_ms(unix_now());
        let meta = poison.meta(bytes.len() as u64, true, None, now);
        store
            .put_bundle(&bytes, &meta, &ferry_core::dtn::Quota::default(), now)
            .unwrap();
        assert_eq!(
            store.last_own_creation().unwrap(),
            Some(CreationTimestamp {
                time: u64::MAX,
                seq: u64::MAX
            })
        );
    }
    let dtn = node.agent();
    let send = || {
        dtn.send(
            Eid::for_peer(&peer(), TEXT_SERVICE).unwrap(),
            TEXT_SERVICE,
            b"after".to_vec(),
            DEFAULT_LIFETIME_MS,
            Priority::Normal,
        )
        .unwrap()
    };
    let (one, two) = (send(), send());
    assert_ne!(one.id, two.id);
    assert!(one.id.created().time < u64::MAX);
}

#[test]
fn a_bundle_that_cannot_be_sent_keeps_the_class_of_its_failure() {
    use crate::error::{ErrorKind, NodeError};

    let full = super::OutgoingError::Store(ferry_store::StoreError::NoSpace {
        what: "a bundle".into(),
        needed: 10,
        free: 1,
        reserve: 8,
        path: "/data".into(),
    });
    assert_eq!(NodeError::from(full).kind(), ErrorKind::Storage);

    let node = Node::new();
    let meta = node
        .agent()
        .send(
            Eid::for_peer(&peer(), TEXT_SERVICE).unwrap(),
            TEXT_SERVICE,
            b"hello".to_vec(),
            DEFAULT_LIFETIME_MS,
            Priority::Normal,
        )
        .unwrap();
    let damaged = super::OutgoingError::Unsendable {
        id: meta.id,
        source: Bundle::parse(&[0xff]).unwrap_err(),
    };
    let error = NodeError::from(damaged);
    assert_eq!(error.kind(), ErrorKind::Internal);
    assert!(error.to_string().starts_with("stored bundle "), "{error}");
}
