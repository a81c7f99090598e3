//! `/ferry/dtn/1`: requests and responses from peers, decoded as the node's
//! codec decodes them (postcard, after the frame's size check), fed into the
//! DTN router the way the node's bundle agent feeds it, interleaved with
//! contacts going up and down, plans, transfers answered or broken, the
//! clock, own bundles and restarts.
//!
//! Script: a strategy byte, then operations naming one of four peer slots
//! by a byte:
//! - 0 `slot`: contact up
//! - 1 `slot`: contact down
//! - 2 `slot chunk`: a request from the peer (a summary: answered with ours;
//!   a bundle: parsed, admitted, stored or delivered)
//! - 3 `slot chunk`: a response from the peer (its summary, or the receipt
//!   for the oldest bundle we sent it)
//! - 4 `slot`: plan what to send the peer
//! - 5 `slot`: the oldest transfer to the peer breaks
//! - 6 `u32`: time passes (ms); expired bundles and acks go
//! - 7 `slot u64`: this node makes a bundle for the peer
//! - 8 `slot chunk`: the slot's node id becomes this text, if it parses (long
//!   and odd ids)
//! - 9: restart: the router is rebuilt from its saved state
//!
//! Properties: nothing panics; the summary lists every held bundle, sorted
//! and without duplicates; with the pending `router-contacts` check, the
//! router keeps contacts only for links that are up.
#![no_main]

use std::collections::{BTreeSet, VecDeque};

use ferry_core::dtn::wire::{
    DtnRequest, DtnResponse, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Receipt,
};
use ferry_core::dtn::{
    Admission, Bundle, BundleId, BundleMeta, CreationTimestamp, NodeId, Priority, ProphetConfig,
    Router, Strategy,
};
use ferry_fuzz::{PEERS, Script, peer};
use libfuzzer_sys::fuzz_target;

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], limit: usize) -> Option<T> {
    if bytes.len() > limit {
        return None;
    }
    postcard::from_bytes(bytes).ok()
}

fuzz_target!(|data: &[u8]| {
    ferry_fuzz::let_caught_panics_unwind();
    let mut s = Script::new(data);
    let strategy = match s.u8() % 4 {
        0 => Strategy::DirectDelivery,
        1 => Strategy::Epidemic,
        2 => Strategy::SprayAndWait {
            copies: s.u8().into(),
        },
        _ => Strategy::Prophet(ProphetConfig::default()),
    };
    let local = NodeId::dtn("local").expect("a valid node name");
    let mut router = Router::new(local.clone(), strategy.clone());
    let mut slots: [NodeId; PEERS] = std::array::from_fn(|i| NodeId::from_peer(&peer(i as u8)));
    let mut up: BTreeSet<NodeId> = BTreeSet::new();
    let mut sent: [VecDeque<BundleId>; PEERS] = Default::default();
    let mut now: u64 = 800_000_000_000;
    let mut steps = 0;
    while !s.is_empty() && steps < 256 {
        steps += 1;
        let op = s.u8() % 10;
        let slot = usize::from(s.u8()) % PEERS;
        let node = slots[slot].clone();
        match op {
            0 => {
                router.contact_up(&node, now);
                up.insert(node);
            }
            1 => {
                router.contact_down(&node, now);
                up.remove(&node);
                sent[slot].clear();
            }
            2 => match decode::<DtnRequest>(s.chunk(), MAX_REQUEST_BYTES) {
                Some(DtnRequest::Summary(summary)) => {
                    router.on_summary(&node, summary, now);
                    let _answer = DtnResponse::Summary(router.summary(now));
                }
                Some(DtnRequest::Bundle { copies, bytes }) => {
                    let Ok(bundle) = Bundle::parse(&bytes) else {
                        continue;
                    };
                    // Received, so never this node's own, whatever its source claims.
                    let meta = bundle.meta(bytes.len() as u64, false, Some(node.clone()), now);
                    match router.admission(&meta, now) {
                        Admission::ForUs => router.on_delivered(&meta.id, meta.expires_at, now),
                        Admission::New | Admission::Duplicate => {
                            let id = meta.id.clone();
                            router.insert(meta, Some(copies), now);
                            router.on_peer_has(&node, &id);
                        }
                        Admission::AlreadyDelivered | Admission::Expired => {}
                    }
                }
                None => {}
            },
            3 => match decode::<DtnResponse>(s.chunk(), MAX_RESPONSE_BYTES) {
                Some(DtnResponse::Summary(summary)) => {
                    router.on_summary(&node, summary, now);
                }
                Some(DtnResponse::Receipt(receipt)) => {
                    if let Some(id) = sent[slot].pop_front() {
                        match receipt {
                            Receipt::Stored | Receipt::Delivered(_) => {
                                router.on_forwarded(&node, &id, now);
                            }
                            Receipt::Have => router.on_peer_has(&node, &id),
                            Receipt::Refused(_) => router.on_forward_failed(&node, &id),
                        }
                    }
                }
                None => {}
            },
            4 => {
                for forward in router.plan(&node, now) {
                    assert!(forward.copies >= 1);
                    sent[slot].push_back(forward.id);
                }
            }
            5 => {
                if let Some(id) = sent[slot].pop_front() {
                    router.on_forward_failed(&node, &id);
                }
            }
            6 => {
                now = now.saturating_add(s.u32().into());
                router.expire(now);
            }
            7 => {
                let seq = s.u64();
                let source = local.endpoint("app").expect("a valid service");
                let meta = BundleMeta {
                    id: BundleId::new(source, CreationTimestamp { time: now, seq }),
                    destination: node,
                    size: 100,
                    priority: Priority::Normal,
                    expires_at: now.saturating_add(3_600_000),
                    own: true,
                    received_from: None,
                };
                router.insert(meta, None, now);
            }
            8 => {
                if let Ok(text) = std::str::from_utf8(s.chunk())
                    && let Ok(named) = text.parse::<NodeId>()
                {
                    router.contact_down(&slots[slot], now);
                    up.remove(&slots[slot]);
                    sent[slot].clear();
                    slots[slot] = named;
                }
            }
            _ => {
                router = Router::from_state(local.clone(), strategy.clone(), router.state(), now);
                up.clear();
                for queue in &mut sent {
                    queue.clear();
                }
            }
        }
        let summary = router.summary(now);
        assert_eq!(summary.holds.len(), router.len());
        assert!(
            summary.holds.windows(2).all(|w| w[0] < w[1]),
            "holds unsorted"
        );
        for contact in router.contacts() {
            assert!(
                up.contains(contact),
                "a contact kept for {contact} after its link went down"
            );
        }
    }
});
