//! `ferry dtn send --priority`: when a contact comes up, higher priority goes
//! first (expedited, then normal, then bulk), even before older bundles, as
//! the router's plan order says (crates/core/src/dtn/routing.rs: destination
//! first, then priority, then age).
//!
//! What a test can see for certain is the order of delivery at the
//! destination (its inbox lists bundles in that order). A link has at most
//! eight bundles unanswered (`WINDOW` in crates/node/src/engine/dtn.rs), and
//! the destination answers a bundle only once it is stored: so of a plan of
//! eight expedited, eight normal and eight bulk bundles, the first delivered
//! is expedited and no bulk one can be delivered before nine others were.
//! Ordered by age instead, the bulk ones (made first) would lead.

use ferry_node::control::types::InboxItem;
use ferry_testkit::harness::{Node, SPREAD_TIMEOUT, wait_connected, wait_until};

/// Bundles per priority: a window's worth each, so each priority fills it.
const EACH: usize = 8;

fn inbox(node: &Node) -> Vec<InboxItem> {
    node.ferry(&["dtn", "inbox", "--json"]).ok().json()
}

#[test]
fn higher_priority_bundles_are_forwarded_first_when_a_contact_comes_up() {
    let ana = Node::start("ana");
    let bo = Node::start("bo");
    let bo_id = bo.id().peer_id;
    // Made oldest first in the reverse of priority order, while the two are
    // not in contact.
    for priority in ["bulk", "normal", "expedited"] {
        for n in 0..EACH {
            ana.ferry(&[
                "dtn",
                "send",
                &bo_id,
                &format!("{priority} {n}"),
                "--priority",
                priority,
            ])
            .ok();
        }
    }
    assert!(inbox(&bo).is_empty());

    ana.ferry(&["connect", &bo.addr()]).ok();
    wait_connected(&ana, &bo, &bo_id);
    let delivered = wait_until("every bundle delivered", SPREAD_TIMEOUT, || {
        let items = inbox(&bo);
        if items.len() == 3 * EACH {
            Ok(items)
        } else {
            Err(format!("{} of {}", items.len(), 3 * EACH))
        }
    });
    let order: Vec<&str> = delivered
        .iter()
        .map(|item| item.text.as_deref().unwrap_or("?"))
        .collect();
    let priority_of = |text: &str| text.split(' ').next().unwrap_or("").to_owned();

    assert_eq!(
        priority_of(order[0]),
        "expedited",
        "delivery order: {order:?}"
    );
    let first_bulk = order
        .iter()
        .position(|text| priority_of(text) == "bulk")
        .unwrap();
    assert!(
        first_bulk > EACH,
        "a bulk bundle went before the expedited and normal ones had the window: {order:?}"
    );
    let first_normal = order
        .iter()
        .position(|text| priority_of(text) == "normal")
        .unwrap();
    assert!(first_normal > 0, "delivery order: {order:?}");
}
