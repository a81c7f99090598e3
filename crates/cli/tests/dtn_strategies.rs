//! The `direct` and `prophet` DTN strategies in running nodes
//! (`ferry start --dtn-strategy`), three nodes on 127.0.0.1 brought into and
//! out of contact by hand: under `direct` a bundle goes to its destination
//! and to no one else; under `prophet` a node that has met the destination
//! carries the bundle to it, and one that has not is not given it.

use ferry_node::control::types::{DtnStatus, InboxItem};
use ferry_node::dtn::ContactView;
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, wait_connected, wait_until};

fn status(node: &Node) -> DtnStatus {
    node.ferry(&["dtn", "status", "--json"]).ok().json()
}

fn inbox(node: &Node) -> Vec<InboxItem> {
    node.ferry(&["dtn", "inbox", "--json"]).ok().json()
}

fn send(from: &Node, to: &str, text: &str) -> String {
    let reply: serde_json::Value = from.ferry(&["dtn", "send", to, text, "--json"]).ok().json();
    reply["id"].as_str().expect("the bundle's id").to_owned()
}

fn connect(node: &Node, peer: &Node) {
    let (node_id, peer_id) = (node.id().peer_id, peer.id().peer_id);
    node.ferry(&["connect", &peer.addr()]).ok();
    wait_connected(node, peer, &peer_id);
    wait_connected(peer, node, &node_id);
}

fn contact<'a>(status: &'a DtnStatus, peer_id: &str) -> Option<&'a ContactView> {
    status.contacts.iter().find(|c| c.node.contains(peer_id))
}

/// Waits until `node` delivered-to-self `id` (it is in its inbox).
#[track_caller]
fn wait_delivered(node: &Node, id: &str) -> InboxItem {
    wait_until(
        &format!("{id} in the inbox of {}", node.name),
        SPREAD_TIMEOUT,
        || {
            let items = inbox(node);
            items
                .iter()
                .find(|item| item.id == id)
                .cloned()
                .ok_or_else(|| format!("{items:#?}"))
        },
    )
}

/// Sends `peer` two bundles of its own from `node`, one after the other, and
/// waits for each to be delivered: a bundle for the peer is planned first, so
/// whatever else the strategy would hand the peer at that contact went out in
/// the same window as the first, before the second was even made.
#[track_caller]
fn two_rounds(node: &Node, peer: &Node, peer_id: &str) {
    for round in ["first", "second"] {
        let id = send(node, peer_id, &format!("{round} round"));
        wait_delivered(peer, &id);
    }
}

/// The ids of the bundles `node` holds.
fn held(node: &Node) -> Vec<String> {
    status(node).bundles.into_iter().map(|b| b.id).collect()
}

#[test]
fn direct_hands_a_bundle_only_to_its_destination() {
    let flags = ["--dtn-strategy", "direct"];
    let ana = Node::start_with("ana", &flags);
    let carrier = Node::start_with("carrier", &flags);
    let town = Node::start_with("town", &flags);
    assert_eq!(status(&ana).strategy, "direct");
    let (carrier_id, town_id) = (carrier.id().peer_id, town.id().peer_id);
    let for_town = send(&ana, &town_id, "for town, directly");

    connect(&ana, &carrier);
    two_rounds(&ana, &carrier, &carrier_id);
    assert_eq!(
        held(&carrier),
        Vec::<String>::new(),
        "a node that is not the destination was given a bundle"
    );
    assert!(held(&ana).contains(&for_town));

    connect(&ana, &town);
    let delivered = wait_delivered(&town, &for_town);
    assert_eq!(delivered.text.as_deref(), Some("for town, directly"));
}

#[test]
fn prophet_carries_a_bundle_through_a_node_that_met_the_destination() {
    let flags = ["--dtn-strategy", "prophet"];
    let mut village = Node::start_with("village", &flags);
    let carrier = Node::start_with("carrier", &flags);
    let mut town = Node::start_with("town", &flags);
    assert_eq!(status(&village).strategy, "prophet");
    let (village_id, carrier_id, town_id) = (
        village.id().peer_id,
        carrier.id().peer_id,
        town.id().peer_id,
    );
    let for_town = send(&village, &town_id, "for town, by carrier");

    // The carrier has never met town: it is not a better way there than the
    // village itself, so it is not given the bundle. The contact ends (the
    // village goes down).
    connect(&village, &carrier);
    two_rounds(&village, &carrier, &carrier_id);
    assert_eq!(held(&carrier), Vec::<String>::new());
    village.kill();

    // The carrier meets town, and that contact ends too.
    connect(&carrier, &town);
    wait_until(
        "the carrier to see its contact with town",
        SPREAD_TIMEOUT,
        || {
            let s = status(&carrier);
            match contact(&s, &town_id) {
                Some(c) if c.summaries_received > 0 => Ok(()),
                _ => Err(format!("{:#?}", s.contacts)),
            }
        },
    );
    town.kill();

    // The carrier meets the village again, now the better way to town: the
    // village hands the bundle over, and goes down.
    village.restart();
    connect(&village, &carrier);
    let carried = wait_until("the carrier to hold the bundle", SPREAD_TIMEOUT, || {
        let s = status(&carrier);
        s.bundles
            .iter()
            .find(|b| b.id == for_town)
            .cloned()
            .ok_or_else(|| format!("{:#?}", s.bundles))
    });
    assert!(!carried.own, "{carried:#?}");
    assert!(
        carried
            .received_from
            .as_deref()
            .is_some_and(|from| from.contains(&village_id)),
        "{carried:#?}"
    );
    village.kill();

    // Town comes back and meets only the carrier, which delivers.
    town.restart();
    connect(&carrier, &town);
    let delivered = wait_delivered(&town, &for_town);
    assert_eq!(delivered.text.as_deref(), Some("for town, by carrier"));
    assert!(delivered.source.contains(&village_id), "{delivered:#?}");
    let town_status = status(&town);
    assert!(
        contact(&town_status, &village_id).is_none(),
        "town met the village itself: {:#?}",
        town_status.contacts
    );
}
