//! `ferry dtn send` to an `ipn:N.S` endpoint, as README promises next to peer
//! ids and `dtn://` endpoints: the bundle is made for that endpoint, held for its
//! node with the priority asked for, and malformed `ipn:` ids are refused.

use ferry_node::control::types::{DtnSendReply, DtnStatus};
use ferry_testkit::harness::Node;

#[test]
fn a_bundle_for_an_ipn_endpoint_is_held_for_its_node() {
    let node = Node::start("ana");
    let sent: DtnSendReply = node
        .ferry(&[
            "dtn",
            "send",
            "ipn:5.1",
            "to a node of another DTN",
            "--priority",
            "bulk",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(sent.destination, "ipn:5.1", "{sent:?}");

    let status: DtnStatus = node.ferry(&["dtn", "status", "--json"]).ok().json();
    let held = status
        .bundles
        .iter()
        .find(|b| b.id == sent.id)
        .unwrap_or_else(|| panic!("{} is not held: {status:#?}", sent.id));
    // Routing is by node: service 1 of node 5 is carried towards `ipn:5.0`.
    assert_eq!(held.destination, "ipn:5.0", "{held:?}");
    assert_eq!(held.priority, "bulk", "{held:?}");
    assert!(held.own, "{held:?}");
    assert_eq!(held.size, sent.bytes, "{held:?}");

    for bad in ["ipn:5", "ipn:0.1", "ipn:x.1", "ipn:5.1.2", "ipn:-1.1"] {
        let run = node.ferry(&["dtn", "send", bad, "hello"]);
        assert!(!run.status.success(), "{bad} accepted: {run:?}");
        assert!(run.stderr.contains(bad), "{bad}: {}", run.stderr);
    }
    let after: DtnStatus = node.ferry(&["dtn", "status", "--json"]).ok().json();
    assert_eq!(after.bundles.len(), 1, "a refused send stored something");
}
