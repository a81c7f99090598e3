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
    peer: PeerId,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::lock(&dir.path().join("data")).unwrap();
        Self {
            _dir: dir,
            data,
            peer: Keypair::generate_ed25519().public().to_peer_id(),
        }
    }

    fn agent(&self) -> Dtn {
        let store = Arc::new(Store::open(&self.data).unwrap());
        Dtn::open(store, self.peer, DtnSettings::default()).unwrap()
    }
}

fn peer() -> PeerId {
    Keypair::generate_ed25519().public().to_peer_id()
}

/// A bundle from `from` to `to`'s text service, made now.
fn bundle(from: &PeerId, to: &PeerId, text: &str, seq: u64) -> Vec<u8> {
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
    .to_bytes()
}

#[test]
fn a_bundle_for_another_node_is_stored_once_and_one_for_us_is_delivered() {
    let node = Node::new();
    let dtn = node.agent();
    let (sender, elsewhere) = (peer(), peer());
    let carried = bundle(&sender, &elsewhere, "carry me", 0);
    let from = NodeId::from_peer(&sender);
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
    assert_eq!(
        dtn.receive(&mine, Some(&from), None),
        Ok(Receipt::Delivered)
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

    let mut flipped = bundle(&peer(), &peer(), "checksummed", 0);
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
    let (sender, elsewhere) = (peer(), peer());
    let carried = bundle(&sender, &elsewhere, "carry me", 0);
    let mine = bundle(&sender, &node.peer, "for you", 1);
    {
        let dtn = node.agent();
        assert_eq!(dtn.receive(&carried, None, None), Ok(Receipt::Stored));
        assert_eq!(dtn.receive(&mine, None, None), Ok(Receipt::Delivered));
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
    let (sender, elsewhere) = (peer(), peer());
    let carried = bundle(&sender, &elsewhere, "carry me", 0);
    assert_eq!(dtn.receive(&carried, None, None), Ok(Receipt::Stored));
    let id = dtn.held(&[])[0].id.clone();

    let other = NodeId::from_peer(&peer());
    dtn.contact_up(&other, "test");
    let ack = ferry_core::dtn::Ack {
        id: id.clone(),
        expires_at: dtn.held(&[])[0].expires_at,
    };
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
    dtn.forward_answered(&town_node, &plan[0].id, &Receipt::Delivered)
        .unwrap();
    assert!(dtn.held(&[]).is_empty(), "handed to its destination");
    assert!(!dtn.store().has_bundle(&meta.id).unwrap());
}
